"""Rule check_gates: the honesty gates on the finished table."""

from pathlib import Path

from dbn_backfill.artifacts import GatesReport, SpotCounts
from dbn_backfill.config import BackfillConfig
from dbn_backfill.gates.checks import log_results, raise_on_failure, run_gates
from dbn_backfill.runtime.step import run_step
from dbn_backfill.tradedate import Calendar


def main() -> None:
    cfg: BackfillConfig = snakemake.params.cfg
    results = run_gates(
        cfg=cfg,
        calendar=Calendar.load(Path(snakemake.input.calendar)),
        sources=list(snakemake.params.sources),
        seed=snakemake.params.run_id,
        spot=SpotCounts.read(Path(snakemake.input.spot)),
    )
    log_results(results)
    report = GatesReport(run_id=snakemake.params.run_id, db=str(cfg.db), gates=results)
    report.write(Path(snakemake.output.report))
    # kept when a gate fails (a log), for dbn-backfill status and report
    report.write(Path(snakemake.log.results))
    raise_on_failure(results)


run_step("check_gates", snakemake, main)  # noqa: F821

"""Rule check_gates: the honesty gates on the finished table, for every root."""

from pathlib import Path

from dbn_backfill.artifacts import GatesReport, SpotCounts
from dbn_backfill.config import BackfillConfig
from dbn_backfill.gates.checks import log_results, raise_on_failure, run_gates
from dbn_backfill.runtime.step import run_step
from dbn_backfill.tradedate import Calendar


def main() -> None:
    cfg: BackfillConfig = snakemake.params.cfg
    calendar = Calendar.load(Path(snakemake.input.calendar))
    outcome = {}
    for root, spot, report_path, kept in zip(
        cfg.symbols,
        snakemake.input.spot,
        snakemake.output.reports,
        snakemake.params.results,
        strict=True,
    ):
        results = run_gates(
            cfg=cfg.for_root(root),
            calendar=calendar,
            sources=list(snakemake.params.sources[root]),
            seed=snakemake.params.run_id,
            spot=SpotCounts.read(Path(spot)),
        )
        log_results(results, root)
        report = GatesReport(run_id=snakemake.params.run_id, db=str(cfg.db), gates=results)
        report.write(Path(report_path))
        # kept when a gate fails (a log), for dbn-backfill status and report
        report.write(Path(kept))
        outcome[root] = results
    raise_on_failure(outcome)


run_step("check_gates", snakemake, main)  # noqa: F821

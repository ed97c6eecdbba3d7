"""Rule check_gates: the honesty gates on the finished table, for every root."""

from pathlib import Path

from dbn_backfill.artifacts import GatesReport, SpotCounts
from dbn_backfill.config import BackfillConfig
from dbn_backfill.gates.checks import log_results, raise_on_failure, run_root_gates
from dbn_backfill.runtime.step import run_step
from dbn_backfill.tradedate import Calendar


def main() -> None:
    cfg: BackfillConfig = snakemake.params.cfg
    outcome = run_root_gates(
        cfg=cfg,
        calendar=Calendar.load(Path(snakemake.input.calendar)),
        sources={root: list(files) for root, files in snakemake.params.sources.items()},
        seed=snakemake.params.run_id,
        spots={
            root: SpotCounts.read(Path(spot))
            for root, spot in zip(cfg.symbols, snakemake.input.spot, strict=True)
        },
    )
    for root, report_path, kept in zip(
        cfg.symbols, snakemake.output.reports, snakemake.params.results, strict=True
    ):
        log_results(outcome[root], root)
        report = GatesReport(run_id=snakemake.params.run_id, db=str(cfg.db), gates=outcome[root])
        report.write(Path(report_path))
        # kept when a gate fails (a log), for dbn-backfill status and report
        report.write(Path(kept))
    raise_on_failure(outcome)


run_step("check_gates", snakemake, main)  # noqa: F821

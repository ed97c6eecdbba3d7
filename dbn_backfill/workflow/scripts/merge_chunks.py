"""Rule merge_chunks: the single writer commits every root's chunks into DuckDB."""

from pathlib import Path

from dbn_backfill.artifacts import DecodeSummary
from dbn_backfill.config import BackfillConfig
from dbn_backfill.runtime.step import run_step
from dbn_backfill.store.universe import load_roots, merge_roots
from dbn_backfill.tradedate import Calendar


def main() -> None:
    cfg: BackfillConfig = snakemake.params.cfg
    summaries = [DecodeSummary.read(Path(p)) for p in snakemake.input.summaries]
    reports = merge_roots(
        cfg=cfg,
        roots=load_roots(
            cfg.symbols,
            [Path(p) for p in snakemake.input.manifests],
            [Path(p) for p in snakemake.input.bars],
            [Path(p) for p in snakemake.input.selections],
            [Path(p) for p in snakemake.input.terms],
        ),
        calendar=Calendar.load(Path(snakemake.input.calendar)),
        sources={f.path: f for summary in summaries for f in summary.files},
        run_id=snakemake.params.run_id,
    )
    for root, path in zip(cfg.symbols, snakemake.output.reports, strict=True):
        reports[root].write(Path(path))


run_step("merge_chunks", snakemake, main)  # noqa: F821

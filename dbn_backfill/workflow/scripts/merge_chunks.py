"""Rule merge_chunks: the single writer commits every chunk into DuckDB."""

from pathlib import Path

from dbn_backfill.artifacts import BatchManifest, DecodeSummary
from dbn_backfill.config import BackfillConfig
from dbn_backfill.runtime.step import run_step
from dbn_backfill.store.merge import load_chunks, merge
from dbn_backfill.tradedate import Calendar


def main() -> None:
    cfg: BackfillConfig = snakemake.params.cfg
    summaries = [DecodeSummary.read(Path(p)) for p in snakemake.input.summaries]
    report = merge(
        cfg=cfg,
        chunks=load_chunks(
            [BatchManifest.read(Path(p)) for p in snakemake.input.manifests],
            [Path(p) for p in snakemake.input.bars],
            [Path(p) for p in snakemake.input.selections],
        ),
        calendar=Calendar.load(Path(snakemake.input.calendar)),
        sources={f.path: f for summary in summaries for f in summary.files},
        run_id=snakemake.params.run_id,
    )
    report.write(Path(snakemake.output.report))


run_step("merge_chunks", snakemake, main)  # noqa: F821

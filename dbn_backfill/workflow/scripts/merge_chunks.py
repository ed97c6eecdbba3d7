"""Rule merge_chunks: the single writer commits one batch of one root into DuckDB."""

from pathlib import Path

from dbn_backfill.artifacts import BatchManifest, DecodeSummary
from dbn_backfill.config import from_mapping
from dbn_backfill.runtime.step import run_step
from dbn_backfill.store.batches import merge_batch
from dbn_backfill.store.merge import load_chunks
from dbn_backfill.tradedate import Calendar


def main() -> None:
    # the settings and run id come from the workflow's config, not params: a param is
    # a rerun trigger, and a new run id (or a flag such as retry_failed) must not rerun
    # a batch that is committed (the plan removes the markers the database contradicts)
    config = snakemake.config
    cfg = from_mapping(config).for_root(snakemake.wildcards.root)
    inputs = snakemake.input
    summaries = [DecodeSummary.read(Path(p)) for p in inputs.summaries]
    marker = merge_batch(
        cfg=cfg,
        batch_id=snakemake.wildcards.batch,
        chunks=load_chunks(
            [BatchManifest.read(Path(inputs.manifest))],
            [Path(inputs.bars)],
            [Path(inputs.selection)],
            [Path(inputs.terms)],
        ),
        calendar=Calendar.load(Path(inputs.calendar)),
        sources={f.path: f for summary in summaries for f in summary.files},
        run_id=config["run_id"],
    )
    marker.write(Path(snakemake.output.marker))


run_step("merge_chunks", snakemake, main)  # noqa: F821

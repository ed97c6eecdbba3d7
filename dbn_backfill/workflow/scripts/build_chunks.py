"""Rule build_chunks: validate, select the front contract, write a batch's chunk bars."""

from pathlib import Path

from dbn_backfill.chunks.build import build_batch
from dbn_backfill.runtime.step import run_step


def main() -> None:
    build_batch(
        decoded=[Path(p) for p in snakemake.input.decoded],
        batch_id=snakemake.wildcards.batch,
        chunks=list(snakemake.params.chunks),
        bars_output=Path(snakemake.output.bars),
        selection_output=Path(snakemake.output.selection),
        manifest_output=Path(snakemake.output.manifest),
        symbol=snakemake.wildcards.root,
        files=set(snakemake.params.files),
    )


run_step("build_chunks", snakemake, main)  # noqa: F821

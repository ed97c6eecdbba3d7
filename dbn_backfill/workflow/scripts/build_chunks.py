"""Rule build_chunks_<batch>: validate, select the front contract, write chunk bars."""

import datetime as dt
from pathlib import Path

from dbn_backfill.chunks.build import build_batch
from dbn_backfill.chunks.grid import Chunk
from dbn_backfill.runtime.step import run_step


def main() -> None:
    chunks = [
        Chunk(dt.date.fromisoformat(first), dt.date.fromisoformat(last))
        for first, last in snakemake.params.chunks
    ]
    build_batch(
        decoded=[Path(p) for p in snakemake.input.decoded],
        chunks=chunks,
        chunk_outputs=[Path(p) for p in snakemake.output.chunks],
        selection_output=Path(snakemake.output.selection),
        manifest_output=Path(snakemake.output.manifest),
        symbol=snakemake.params.symbol,
    )


run_step("build_chunks", snakemake, main)  # noqa: F821

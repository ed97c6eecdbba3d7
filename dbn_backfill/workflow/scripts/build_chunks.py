"""Rule build_chunks: validate, select the front contract, write a batch's chunk bars."""

from pathlib import Path

from dbn_backfill.chunks.build import build_batch
from dbn_backfill.runtime.step import run_step
from dbn_backfill.tradedate import Calendar


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
        terms_output=Path(snakemake.output.terms),
        roll_rule=snakemake.params.roll_rule,
        basis_first=snakemake.params.basis_first,
        calendar=Calendar.load(Path(snakemake.input.calendar)),
    )


run_step("build_chunks", snakemake, main)  # noqa: F821

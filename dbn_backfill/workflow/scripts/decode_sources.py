"""Rule decode_sources: stream a group of DBN files into the decoded parquet."""

from pathlib import Path

from dbn_backfill.runtime.step import run_step
from dbn_backfill.sources.decode import decode_group
from dbn_backfill.tradedate import Calendar


def main() -> None:
    decode_group(
        [Path(p) for p in snakemake.params.dbn],
        snakemake.wildcards.group,
        Path(snakemake.output.parquet),
        Path(snakemake.output.summary),
        dataset=snakemake.params.dataset,
        calendar=Calendar.load(Path(snakemake.input.calendar)),
    )


run_step("decode_sources", snakemake, main)  # noqa: F821

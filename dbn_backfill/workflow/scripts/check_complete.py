"""Rule check_complete: every root has bars on every business day, before any merge."""

from pathlib import Path

from dbn_backfill.config import from_mapping
from dbn_backfill.runtime.step import run_step
from dbn_backfill.store.batches import check_decoded_complete
from dbn_backfill.tradedate import Calendar


def main() -> None:
    marker = check_decoded_complete(
        from_mapping(snakemake.config),
        Calendar.load(Path(snakemake.input.calendar)),
        [Path(p) for p in snakemake.input.decoded],
    )
    marker.write(Path(snakemake.output.marker))


run_step("check_complete", snakemake, main)  # noqa: F821

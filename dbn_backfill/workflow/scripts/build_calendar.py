"""Rule build_calendar: write the CME business days the other jobs use."""

from pathlib import Path

from dbn_backfill.runtime.step import run_step
from dbn_backfill.tradedate import build_calendar
from dbn_backfill.runtime.plan import CALENDAR_FIRST, CALENDAR_LAST


def main() -> None:
    calendar = build_calendar(
        snakemake.params.name,
        snakemake.params.session_tz,
        snakemake.params.session_roll,
        CALENDAR_FIRST,
        CALENDAR_LAST,
    )
    calendar.save(Path(snakemake.output[0]))


run_step("build_calendar", snakemake, main)  # noqa: F821

"""Rule build_calendar: write the CME business days the other jobs use."""

from pathlib import Path

from dbn_backfill.runtime.plan import CALENDAR_FIRST, CALENDAR_LAST
from dbn_backfill.runtime.step import run_step
from dbn_backfill.tradedate import build_calendar


def main() -> None:
    params = snakemake.params
    calendar = build_calendar(
        params.calendar, params.session_tz, params.session_roll, CALENDAR_FIRST, CALENDAR_LAST
    )
    calendar.save(Path(snakemake.output[0]))


run_step("build_calendar", snakemake, main)  # noqa: F821

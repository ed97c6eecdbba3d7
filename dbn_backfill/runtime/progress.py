"""Console progress of long steps: a line every few seconds, never one per item.

A step's full detail (one line per chunk, per file, per gate) goes to its log file;
the console gets its warnings and errors, its start and end, and these progress
lines (logger ``dbn_backfill.progress``), so 16 years of chunks print a few dozen
lines, not thousands. Under ``dbn-backfill`` a step's stderr is Snakemake's, which goes
to the run log; the person's console is :mod:`dbn_backfill.views.console`.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("dbn_backfill.progress")

#: Seconds between two progress lines of one step.
EVERY = 3.0


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """Progress of ``what`` over ``total`` items (``unit``), printed at most every
    :data:`EVERY` seconds, with the elapsed time and an estimate of the time left."""

    def __init__(self, what: str, total: int, unit: str, every: float = EVERY) -> None:
        self.what, self.total, self.unit, self.every = what, max(0, total), unit, every
        self.started = time.monotonic()
        self.last = self.started

    def update(self, done: int, extra: str = "", force: bool = False) -> None:
        """Report ``done`` of ``total`` items, unless a line was printed less than
        ``every`` seconds ago (``force`` prints anyway)."""
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        elapsed = now - self.started
        share = done / self.total if self.total else 1.0
        left = f", about {_duration(elapsed / share - elapsed)} left" if 0 < share < 1 else ""
        more = f", {extra}" if extra else ""
        log.info(
            "%s: %s of %s %s (%.0f%%)%s, %s elapsed%s",
            self.what,
            f"{done:,}",
            f"{self.total:,}",
            self.unit,
            100 * share,
            more,
            _duration(elapsed),
            left,
        )

    def finish(self, done: int, extra: str = "") -> None:
        """The closing line (always printed)."""
        self.update(done, extra, force=True)


def on_console(record: logging.LogRecord) -> bool:
    """What a step prints on the console: warnings and errors, progress, start and end."""
    return (
        record.levelno >= logging.WARNING
        or record.name == log.name
        or bool(getattr(record, "console", False))
    )

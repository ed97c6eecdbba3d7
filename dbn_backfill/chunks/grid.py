"""The chunk grid and the batches of chunks a job builds (contract sections 5 and 8).

A chunk is ``chunk_days`` consecutive CME business days on a grid anchored at the
calendar's first business day, so changing ``start`` or ``end`` never moves an
interior chunk boundary; only the first and last chunk are clipped to the range.
A batch is ``chunks_per_job`` consecutive grid chunks: one process builds them, to
keep interpreter start-up (about a second) off the per-chunk path.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dbn_backfill.sources.dbn_files import SourceHeader
from dbn_backfill.tradedate import Calendar


@dataclass(frozen=True)
class Chunk:
    """Trade dates ``[first, last]`` (business days) committed in one transaction."""

    first: dt.date
    last: dt.date

    @property
    def chunk_id(self) -> str:
        return f"chunk_{self.first:%Y%m%d}_{self.last:%Y%m%d}"


@dataclass(frozen=True)
class Batch:
    """Consecutive chunks built by one job."""

    index: int
    chunks: tuple[Chunk, ...]

    @property
    def first(self) -> dt.date:
        return self.chunks[0].first

    @property
    def last(self) -> dt.date:
        return self.chunks[-1].last

    @property
    def batch_id(self) -> str:
        return f"batch_{self.first:%Y%m%d}_{self.last:%Y%m%d}"


def plan_chunks(
    calendar: Calendar, start: dt.date, end: dt.date, chunk_days: int, chunks_per_job: int
) -> list[Batch]:
    """Batches of chunks covering the business days of ``[start, end]``.

    Returns an empty list when the range holds no business day.
    """
    lo = int(np.searchsorted(calendar.days, np.datetime64(start, "D"), side="left"))
    hi = int(np.searchsorted(calendar.days, np.datetime64(end, "D"), side="right"))
    if lo >= hi:
        return []
    index = np.arange(lo, hi)
    chunk_of = index // chunk_days
    batches: dict[int, list[Chunk]] = {}
    for c in np.unique(chunk_of):
        members = index[chunk_of == c]
        chunk = Chunk(_date(calendar.days[members[0]]), _date(calendar.days[members[-1]]))
        batches.setdefault(int(c) // chunks_per_job, []).append(chunk)
    return [Batch(index=b, chunks=tuple(chunks)) for b, chunks in sorted(batches.items())]


def header_trade_span(header: SourceHeader, calendar: Calendar) -> tuple[dt.date, dt.date | None]:
    """Trade dates a file can hold according to its header (``None``: open-ended).

    Decoding checks that every kept record lies inside the header's range, so a
    batch only depends on the files whose span overlaps it.
    """
    first = calendar.trade_dates(np.array([header.start_ns], dtype="int64"))[0]
    if header.end_ns is None:
        return _date(first), None
    last_ns = max(header.start_ns, header.end_ns - 1)
    last = calendar.trade_dates(np.array([last_ns], dtype="int64"))[0]
    return _date(first), _date(last)


def overlaps(span: tuple[dt.date, dt.date | None], first: dt.date, last: dt.date) -> bool:
    """Whether a span (``None``: open-ended) meets ``[first, last]``."""
    lo, hi = span
    return lo <= last and (hi is None or hi >= first)


def _date(value: np.datetime64) -> dt.date:
    return pd.Timestamp(value).date()

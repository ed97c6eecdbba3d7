"""CME business days and trade-date assignment (contract section 3).

:func:`cme_calendar` is the one entry point to the business days, for planning,
fetching, ``status`` and the report: it takes them from ``pandas_market_calendars``
over a fixed span (:data:`CALENDAR_FIRST`..:data:`CALENDAR_LAST`), or from a saved copy
(:func:`save_calendar`; the plan writes one per run, which every job then loads instead
of importing the calendar library, 1 s per process) when that copy was built from the
same settings and library version.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

NS_PER_MINUTE = 60_000_000_000
NS_PER_DAY = 86_400_000_000_000

#: Fixed span of the business-day calendar: the chunk grid is anchored at its first day.
CALENDAR_FIRST = dt.date(2000, 1, 1)
CALENDAR_LAST = dt.date(2039, 12, 31)


@dataclass(frozen=True)
class Calendar:
    """The business days of a CME calendar and the session rule.

    Attributes:
        name: calendar name in ``pandas_market_calendars`` (e.g. ``CME_TradeDate``).
        session_tz: IANA zone the session roll is defined in.
        session_roll: local wall time (``HH:MM``) at which the next session date starts.
        days: sorted business days, ``datetime64[D]``.
    """

    name: str
    session_tz: str
    session_roll: str
    days: np.ndarray

    @property
    def first(self) -> dt.date:
        return pd.Timestamp(self.days[0]).date()

    @property
    def last(self) -> dt.date:
        return pd.Timestamp(self.days[-1]).date()

    @property
    def shift(self) -> pd.Timedelta:
        """What is added to local wall time so its date is the session date."""
        hours, minutes = (int(x) for x in self.session_roll.split(":"))
        return pd.Timedelta(hours=24) - pd.Timedelta(hours=hours, minutes=minutes)

    def is_business_day(self, day: dt.date) -> bool:
        """Whether ``day`` is a business day of the calendar."""
        d = np.datetime64(day, "D")
        i = int(np.searchsorted(self.days, d))
        return i < len(self.days) and self.days[i] == d

    def business_days(self, start: dt.date, end: dt.date) -> np.ndarray:
        """Business days in ``[start, end]`` (inclusive), ``datetime64[D]``."""
        lo = np.searchsorted(self.days, np.datetime64(start, "D"), side="left")
        hi = np.searchsorted(self.days, np.datetime64(end, "D"), side="right")
        return self.days[lo:hi]

    def required_days(
        self, start: dt.date, end: dt.date, expected_gaps: tuple[dt.date, ...] | list[dt.date] = ()
    ) -> list[dt.date]:
        """The business days of ``[start, end]`` that must have bars (contract section 5):
        every business day less ``expected_gaps``."""
        gaps = set(expected_gaps)
        days = (pd.Timestamp(d).date() for d in self.business_days(start, end))
        return [d for d in days if d not in gaps]

    def previous_business_day(self, day: dt.date) -> dt.date | None:
        """The business day before ``day`` (None: before the calendar's first)."""
        i = int(np.searchsorted(self.days, np.datetime64(day, "D"), side="left")) - 1
        return None if i < 0 else pd.Timestamp(self.days[i]).date()

    def session_dates(self, ts_event_ns: np.ndarray) -> np.ndarray:
        """Session dates (before holiday forwarding) of UTC nanosecond stamps, ``datetime64[D]``."""
        utc = pd.DatetimeIndex(np.asarray(ts_event_ns, dtype="int64").view("datetime64[ns]"))
        local = utc.tz_localize("UTC").tz_convert(self.session_tz).tz_localize(None)
        return (local + self.shift).values.astype("datetime64[D]")

    def trade_dates(self, ts_event_ns: np.ndarray) -> np.ndarray:
        """CME trade dates of UTC nanosecond stamps (contract section 3), ``datetime64[D]``.

        The session date is the date of local wall time + (24 h - roll); a session
        date that is not a business day moves forward to the next business day.

        Raises:
            ValueError: a stamp falls after the last business day the calendar knows.
        """
        session = self.session_dates(ts_event_ns)
        idx = np.searchsorted(self.days, session, side="left")
        if len(idx) and int(idx.max()) >= len(self.days):
            bad = session[idx >= len(self.days)][0]
            raise ValueError(
                f"session date {bad} is after the calendar's last business day {self.days[-1]}"
            )
        return self.days[idx]

    def session_bounds_utc(
        self, first: dt.date, last: dt.date
    ) -> tuple[pd.Timestamp, pd.Timestamp]:
        """UTC ``[lo, hi)`` holding every bar whose trade date is in ``[first, last]``.

        Bars of trade date ``first`` start right after the previous business day's
        session (holiday sessions included); bars of ``last`` end at its roll.
        """
        prev = self.previous_business_day(first)
        lo_date = (prev + dt.timedelta(days=1)) if prev is not None else first
        return self._session_start_utc(lo_date), self._session_start_utc(
            last + dt.timedelta(days=1)
        )

    def _session_start_utc(self, session_date: dt.date) -> pd.Timestamp:
        wall = pd.Timestamp(session_date) - self.shift
        return wall.tz_localize(self.session_tz).tz_convert("UTC")

    def to_json(self) -> dict[str, object]:
        """The calendar as JSON values (:meth:`from_json` reads it back)."""
        return {
            "name": self.name,
            "session_tz": self.session_tz,
            "session_roll": self.session_roll,
            "days": [str(d) for d in self.days],
        }

    @classmethod
    def load(cls, path: Path) -> Calendar:
        """The calendar a plan saved at ``path`` (:func:`save_calendar`)."""
        return cls.from_json(json.loads(Path(path).read_text()))

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Calendar:
        """The calendar :meth:`to_json` wrote (other keys are ignored)."""
        return cls(
            name=raw["name"],
            session_tz=raw["session_tz"],
            session_roll=raw["session_roll"],
            days=np.array(raw["days"], dtype="datetime64[D]"),
        )


def calendar_origin(name: str, session_tz: str, session_roll: str) -> dict[str, str]:
    """What a calendar is built from: its settings, its span and the library's version
    (a saved copy with another origin is not used)."""
    return {
        "calendar": name,
        "session_tz": session_tz,
        "session_roll": session_roll,
        "first": str(CALENDAR_FIRST),
        "last": str(CALENDAR_LAST),
        "pandas_market_calendars": metadata.version("pandas_market_calendars"),
    }


def cme_calendar(
    name: str = "CME_TradeDate",
    session_tz: str = "America/Chicago",
    session_roll: str = "17:00",
    saved: Path | None = None,
) -> Calendar:
    """The business days of calendar ``name`` over the fixed span, with the session rule.

    Args:
        name, session_tz, session_roll: config ``calendar``, ``session_tz``,
            ``session_roll`` (defaults: the schema's).
        saved: a copy written by :func:`save_calendar`, used when it was built from the
            same settings and ``pandas_market_calendars`` version (else ignored).

    Raises:
        ValueError: the calendar is unknown or the roll is not ``HH:MM``.
    """
    if saved is not None:
        try:
            raw = json.loads(Path(saved).read_text())
            if raw.get("built_from") == calendar_origin(name, session_tz, session_roll):
                return Calendar.from_json(raw)
        except (OSError, ValueError, KeyError, AttributeError):
            pass  # no usable copy: build it
    return build_calendar(name, session_tz, session_roll, CALENDAR_FIRST, CALENDAR_LAST)


def save_calendar(calendar: Calendar, path: Path) -> bool:
    """Write ``calendar`` (with its origin) to ``path`` unless the file already holds
    exactly that: its modification time is what tells Snakemake that the days changed.
    Atomic. Returns whether it wrote."""
    origin = calendar_origin(calendar.name, calendar.session_tz, calendar.session_roll)
    text = json.dumps({**calendar.to_json(), "built_from": origin})
    path = Path(path)
    try:
        if path.read_text() == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


def build_calendar(
    name: str, session_tz: str, session_roll: str, first: dt.date, last: dt.date
) -> Calendar:
    """Business days of ``name`` in ``pandas_market_calendars`` over ``[first, last]``.

    Raises:
        ValueError: the calendar is unknown or the roll is not ``HH:MM``.
    """
    import pandas_market_calendars as mcal

    _check_roll(session_roll)
    schedule = mcal.get_calendar(name).schedule(start_date=first, end_date=last)
    days = np.asarray(schedule.index.values.astype("datetime64[D]"))
    return Calendar(name=name, session_tz=session_tz, session_roll=session_roll, days=days)


def _check_roll(value: str) -> None:
    try:
        hours, minutes = (int(x) for x in value.split(":"))
    except ValueError as exc:
        raise ValueError(f"session_roll {value!r} is not HH:MM") from exc
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise ValueError(f"session_roll {value!r} is not HH:MM")

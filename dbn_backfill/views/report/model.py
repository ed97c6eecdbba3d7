"""The report model: everything ``dbn-backfill report`` shows, as typed frozen records.

:func:`dbn_backfill.views.report.gather.collect` fills it from the database, the
checkpoint files and the run records; :mod:`.render` turns it into HTML and
:mod:`.figures` into charts. Nothing here reads a file or writes HTML.

The per-trade-date series the charts draw stays a :class:`pandas.DataFrame`
(:attr:`ReportModel.days`, its columns listed there); every table of the report is a
tuple of records.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dbn_backfill.artifacts import Checkpoint
from dbn_backfill.errors import BackfillError
from dbn_backfill.views.runs import RunRecord

#: Kind of a roll to a later expiry; any other kind is a roll back to an earlier one.
ROLL = "roll"
BACK = "back to an earlier expiry"


#: Minutes of a regular CME Globex session (17:00-16:00 Chicago).
REGULAR_MINUTES = 1380


class ReportError(BackfillError):
    """The report cannot be made (no such database, no or several symbols, ...)."""


@dataclass(frozen=True)
class Roll:
    """A trade date whose selected contract differs from the previous trade date's.

    ``from_volume`` is the from-contract's volume of the day, known only when it is the
    runner-up (None otherwise); ``share_top2`` is ``to_volume / (to_volume +
    runner_up_volume)``. ``from_expiry`` / ``to_expiry`` (``YYYY-MM``) and ``gap``,
    ``ratio``, ``stale`` are the ``rolls`` view's (contract section 12; None: unknown,
    e.g. a trade date without term structure).
    """

    trade_date: dt.date
    from_symbol: str
    to_symbol: str
    kind: str
    to_volume: int
    from_volume: int | None
    runner_up: str | None
    runner_up_volume: int | None
    share_top2: float
    from_expiry: str | None = None
    to_expiry: str | None = None
    gap: float | None = None
    ratio: float | None = None
    stale: bool | None = None

    @property
    def is_back(self) -> bool:
        """Whether this is a roll back to an earlier expiry."""
        return self.kind != ROLL

    @property
    def from_contract(self) -> str:
        """The from-contract as the report names it, ``MGCV0 (2010-10)``."""
        return f"{self.from_symbol} ({self.from_expiry})" if self.from_expiry else self.from_symbol

    @property
    def to_contract(self) -> str:
        """The to-contract as the report names it, ``MGCZ0 (2010-12)``."""
        return f"{self.to_symbol} ({self.to_expiry})" if self.to_expiry else self.to_symbol


@dataclass(frozen=True)
class ExposureDay:
    """A trade date on which the other roll rule would have picked another contract:
    ``stored`` the selected contract (``MGCJ4 (2024-04)``), ``other`` the other rule's
    pick (raw symbol, ``other_rule_pick``), ``rule`` the rule that stored it."""

    trade_date: dt.date
    stored: str
    other: str
    rule: str | None


@dataclass(frozen=True)
class Exposure:
    """Lookahead exposure (contract section 5a): on how many trade dates the other roll
    rule would have picked another contract than the one stored.

    ``rules`` are the roll rules of the stored trade dates (one, unless the database
    was switched part-way); ``differs`` / ``same`` / ``unknown`` count the trade dates
    whose ``other_rule_pick`` differs from the selected contract, equals it, or is NULL
    (older lineage); ``days`` are the differing ones, oldest first.
    """

    rules: tuple[str, ...]
    trade_dates: int
    differs: int
    same: int
    unknown: int
    days: tuple[ExposureDay, ...]

    @property
    def known(self) -> int:
        """Trade dates whose other rule's pick is known."""
        return self.differs + self.same

    @property
    def share(self) -> float | None:
        """``differs`` / ``known`` (None: no known trade date)."""
        return self.differs / self.known if self.known else None

    @property
    def rule(self) -> str:
        """The run's rule as shown: ``same_day_volume``, several joined, or ``unknown``."""
        return " + ".join(self.rules) if self.rules else "unknown"

    @property
    def other_rule(self) -> str:
        """The other rule as shown (``the other rule`` when the rule is not one known)."""
        if len(self.rules) == 1 and self.rules[0] in OTHER_RULE:
            return OTHER_RULE[self.rules[0]]
        return "the other rule"


#: The other roll rule of each (contract section 5a).
OTHER_RULE = {"same_day_volume": "prior_day_volume", "prior_day_volume": "same_day_volume"}
NO_EXPOSURE = Exposure(rules=(), trade_dates=0, differs=0, same=0, unknown=0, days=())


@dataclass(frozen=True)
class TradeDay:
    """One trade date's bars against its own session (a row of the thinnest days).

    ``bars`` are the bars in the trade date's own session (the one scheduled on that
    date), ``session_minutes`` its minutes (fewer on an early close); ``coverage`` is
    bars / session minutes, ``relative_coverage`` coverage / its local median;
    ``longest_hole`` the longest stretch of the session without a bar (minutes);
    ``holiday_bars`` the bars of a holiday's session counted for the trade date (0:
    none). Without an own session in the calendar, bars and minutes are those of every
    session counted for it; coverage, relative coverage and hole are None when unknown.
    """

    trade_date: dt.date
    contract: str
    bars: int
    session_minutes: int | None
    coverage: float | None
    relative_coverage: float | None
    longest_hole: float | None
    holiday_bars: int
    chunk_id: str

    @property
    def early_close(self) -> bool:
        """Whether the session is shorter than a regular 23-hour one (an early close)."""
        return self.session_minutes is not None and self.session_minutes < REGULAR_MINUTES


@dataclass(frozen=True)
class Chunk:
    """A committed chunk (``bars_1m_chunks``) with its trade dates and contracts."""

    chunk_id: str
    chunk_start: dt.date | None
    chunk_end: dt.date | None
    trade_dates: int
    rows: int
    contracts: str
    content_hash: str
    committed_at: dt.datetime | None
    run_id: str | None


@dataclass(frozen=True)
class Source:
    """A DBN file the committed chunks came from (``bars_1m_chunk_sources``)."""

    path: str
    size: int
    sha256: str
    chunks: int
    first_trade_date: dt.date | None
    last_trade_date: dt.date | None


@dataclass(frozen=True)
class PackageVersion:
    """A key package's version as the run recorded it and where the report ran (None:
    not recorded / not installed)."""

    name: str
    run: str | None
    report: str | None


@dataclass(frozen=True)
class Settings:
    """The settings shown: the latest run's ``config.json``, or what the lineage says.

    ``origin`` says which; ``values`` are the settings in file order, ``versions``
    the key packages.
    """

    origin: str
    values: Mapping[str, Any]
    versions: tuple[PackageVersion, ...]
    from_run: bool


@dataclass(frozen=True)
class Checkpoints:
    """The checkpoint files of the symbol: counts by status (``unreadable`` for files
    that cannot be read) and the ``failed`` / ``in_progress`` ones."""

    counts: Mapping[str, int]
    problems: tuple[Checkpoint, ...]


@dataclass(frozen=True)
class ReportModel:
    """Everything the report shows.

    Attributes:
        days: one row per committed trade date, ordered: ``trade_date`` (datetime64),
            ``source_symbol``, ``instrument_id``, ``volume``, ``runner_up``,
            ``runner_up_volume``, ``chunk_id``, ``expiry`` / ``runner_up_expiry``
            (``YYYYMM`` as float, NaN when not an outright), ``days_to_month`` /
            ``runner_up_days_to_month``, ``share_top2``, ``bars``, ``sessions``,
            ``expected_minutes``, ``session_bars``, ``session_minutes``,
            ``holiday_bars``, ``longest_hole``, ``coverage``, ``relative_coverage``,
            ``thin`` (bool) (:func:`~.days.bars_frame`, :func:`~.days.coverage`),
            ``day_share`` / ``earlier_share`` / ``later_share`` (the day's outright
            volume split into the selected contract's share and those of the
            contracts expiring before and after it, from the term structure; NaN
            without it: :func:`~.days.with_term_shares`). Treat it as read-only.
        thinnest: the thinnest trade dates by relative coverage, thinnest first.
        missing_days: business days of the committed span without bars (ISO).
        expected_gaps: the latest recorded run's ``expected_gaps`` (ISO).
        outside_bars: bars outside every scheduled session of ``session_calendar``.
        run: the latest run (None without run records); ``gates_run`` the latest run
            with a gates report; ``runs`` every run, oldest first.
        gates_origin: the file ``gates_run``'s gates came from (relative to the work
            directory).
        checkpoints: None when no checkpoint folder was given.
    """

    db: Path
    symbol: str
    generated_at: str
    session_calendar: str
    thin_fraction: float
    days: pd.DataFrame
    rolls: tuple[Roll, ...]
    thinnest: tuple[TradeDay, ...]
    missing_days: tuple[str, ...]
    expected_gaps: tuple[str, ...]
    outside_bars: int
    chunks: tuple[Chunk, ...]
    sources: tuple[Source, ...]
    runs: tuple[RunRecord, ...]
    run: RunRecord | None
    gates_run: RunRecord | None
    gates_origin: str | None
    settings: Settings
    checkpoints: Checkpoints | None = field(default=None)
    exposure: Exposure = field(default=NO_EXPOSURE)

    @property
    def first_trade_date(self) -> dt.date | None:
        """The first committed trade date (None: nothing committed)."""
        return None if self.days.empty else self.days["trade_date"].min().date()

    @property
    def last_trade_date(self) -> dt.date | None:
        """The last committed trade date (None: nothing committed)."""
        return None if self.days.empty else self.days["trade_date"].max().date()

    @property
    def bars(self) -> int:
        """Bars of the symbol in ``bars_1m`` (over every trade date)."""
        return int(self.days["bars"].sum()) if not self.days.empty else 0

    @property
    def contracts(self) -> int:
        """Distinct contracts selected: (raw symbol, expiry) pairs, so ``MGCV0`` of 2010
        and of 2020 count twice (a frame without ``expiry_text``: raw symbols)."""
        if self.days.empty:
            return 0
        if "expiry_text" not in self.days:
            return int(self.days["source_symbol"].nunique())
        pairs = self.days[["source_symbol", "expiry_text"]].fillna("")
        return len(pairs.drop_duplicates())

    @property
    def contract_names(self) -> tuple[str, ...]:
        """The contracts selected, named ``MGCV0 (2010-10)``, in order of first use."""
        if self.days.empty:
            return ()
        column = "contract" if "contract" in self.days else "source_symbol"
        return tuple(dict.fromkeys(str(c) for c in self.days[column]))

    @property
    def rolls_stale(self) -> int:
        """Rolls whose gap is stale (``rolls.stale``)."""
        return sum(1 for r in self.rolls if r.stale)

    @property
    def rolls_back(self) -> int:
        """Rolls back to an earlier expiry."""
        return sum(1 for r in self.rolls if r.is_back)

    @property
    def source_bytes(self) -> int:
        """Total size of the source files."""
        return sum(s.size for s in self.sources)


@dataclass(frozen=True)
class OverviewRow:
    """One root in the universe overview: its committed span, trade dates, bars,
    contracts and rolls, and the gates of its latest run.

    ``gates_passed`` is None when the latest run has no gates report (or there is no
    run record); ``gates`` is ``(passed, total)`` of that report.
    """

    root: str
    first_trade_date: dt.date | None
    last_trade_date: dt.date | None
    trade_dates: int
    rows: int
    contracts: int
    rolls: int
    rolls_back: int
    missing_days: int
    exposure: Exposure
    latest_run: str | None
    gates_passed: bool | None
    gates: tuple[int, int] | None

    @classmethod
    def of(cls, model: ReportModel) -> OverviewRow:
        """The overview row of one root's report model."""
        run = model.run
        report = run.gates if run is not None else None
        return cls(
            root=model.symbol,
            first_trade_date=model.first_trade_date,
            last_trade_date=model.last_trade_date,
            trade_dates=len(model.days),
            rows=model.bars,
            contracts=model.contracts if not model.days.empty else 0,
            rolls=len(model.rolls),
            rolls_back=model.rolls_back,
            missing_days=len(model.missing_days),
            exposure=model.exposure,
            latest_run=run.run_id if run is not None else None,
            gates_passed=report.passed if report is not None else None,
            gates=(sum(1 for g in report.gates if g.passed), len(report.gates))
            if report is not None
            else None,
        )


@dataclass(frozen=True)
class UniverseModel:
    """The report of several roots of one database: each root's :class:`ReportModel`
    (sorted by root) and the overview of them all.

    A universe of one root is that root's report as it always was (:attr:`single`).
    """

    db: Path
    generated_at: str
    roots: tuple[ReportModel, ...]

    @property
    def single(self) -> bool:
        """Whether this is one root's report."""
        return len(self.roots) == 1

    @property
    def symbols(self) -> tuple[str, ...]:
        """The roots shown, in order."""
        return tuple(m.symbol for m in self.roots)

    @property
    def overview(self) -> tuple[OverviewRow, ...]:
        """One row per root."""
        return tuple(OverviewRow.of(m) for m in self.roots)

    @property
    def first_trade_date(self) -> dt.date | None:
        """The first trade date any root committed (None: none did)."""
        firsts = [m.first_trade_date for m in self.roots if m.first_trade_date is not None]
        return min(firsts) if firsts else None

    @property
    def last_trade_date(self) -> dt.date | None:
        """The last trade date any root committed (None: none did)."""
        lasts = [m.last_trade_date for m in self.roots if m.last_trade_date is not None]
        return max(lasts) if lasts else None

    @property
    def rows(self) -> int:
        """Bars of every root shown."""
        return sum(m.bars for m in self.roots)

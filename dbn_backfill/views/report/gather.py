"""Gathering the report model: the database (read-only), checkpoints, run records.

:func:`collect` reads everything ``dbn-backfill report`` shows into a
:class:`~dbn_backfill.views.report.model.ReportModel`; it writes nothing.

The lineage stores the selected contract's and the runner-up's volume per trade date:
the share of the top two is ``volume / (volume + runner_up_volume)`` (1 when only one
contract traded). The term structure (``bars_1m_term_structure``) holds every
outright's volume of the trade date: the roll chart splits the day's volume by it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from dbn_backfill.layout import Layout, root_checkpoint_files
from dbn_backfill.store import checkpoints as ckpt
from dbn_backfill.store.database import connect, table_exists
from dbn_backfill.tradedate import Calendar
from dbn_backfill.views.report.days import (
    THIN_FRACTION,
    bars_frame,
    coverage,
    roll_frame,
    rolls_view_frame,
    selection_frame,
    sessions,
    term_frame,
    with_term_shares,
)
from dbn_backfill.views.report.model import (
    Checkpoints,
    Chunk,
    Exposure,
    ExposureDay,
    PackageVersion,
    ReportError,
    ReportModel,
    Roll,
    Settings,
    Source,
    TradeDay,
    UniverseModel,
)
from dbn_backfill.views.runs import RunRecord, list_runs, package_versions, trade_calendar

#: ``pandas_market_calendars`` session calendar per CME root (expected minutes per
#: session); other roots use the run's trade-date calendar (``CME_TradeDate``: 23 h).
SESSION_CALENDARS = {
    **dict.fromkeys(("GC", "MGC", "SI", "SIL", "HG", "MHG", "PL", "PA"), "CMEGlobex_Metals"),
    **dict.fromkeys(("CL", "MCL", "NG", "RB", "HO"), "CMEGlobex_Energy"),
    **dict.fromkeys(("ES", "MES", "NQ", "MNQ", "YM", "MYM", "RTY", "M2K"), "CME Globex Equity"),
}
#: Rows of the thinnest-days table.
THIN_ROWS = 20


def default_symbol(con: duckdb.DuckDBPyConnection, db: Path) -> str:
    """The only symbol of the database's lineage.

    Raises:
        ReportError: no symbol, or several (then ``--symbol`` is needed).
    """
    if not table_exists(con, "bars_1m_trade_dates"):
        raise ReportError(f"{db} holds no backfill lineage (table bars_1m_trade_dates)")
    symbols = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT symbol FROM bars_1m_trade_dates ORDER BY 1"
        ).fetchall()
    ]
    if len(symbols) != 1:
        raise ReportError(f"{db} holds {len(symbols)} symbols {symbols}; choose one with --symbol")
    return str(symbols[0])


def database_symbols(db: Path) -> list[str]:
    """Every symbol of the database's lineage, sorted.

    Raises:
        ReportError: no lineage in the database.
        SchemaMismatchError: no such database, or not DuckDB.
    """
    con = connect(Path(db), read_only=True)
    try:
        if not table_exists(con, "bars_1m_trade_dates"):
            raise ReportError(f"{db} holds no backfill lineage (table bars_1m_trade_dates)")
        return [
            str(r[0])
            for r in con.execute(
                "SELECT DISTINCT symbol FROM bars_1m_trade_dates ORDER BY 1"
            ).fetchall()
        ]
    finally:
        con.close()


def chunk_frame(con: duckdb.DuckDBPyConnection, symbol: str) -> pd.DataFrame:
    """Committed chunks with their trade dates and contracts (``MGCJ4 (2024-04)``; the
    raw symbol alone where the lineage has no expiry)."""
    have = {r[1] for r in con.execute("PRAGMA table_info('bars_1m_trade_dates')").fetchall()}
    name = (
        "t.source_symbol || coalesce(' (' || t.expiry || ')', '')"
        if "expiry" in have
        else "t.source_symbol"
    )
    return con.execute(
        f"""
        SELECT c.chunk_id, c.chunk_start, c.chunk_end, count(t.trade_date) AS trade_dates,
               c.rows, string_agg(DISTINCT {name}, ' ' ORDER BY {name}) AS contracts,
               c.content_hash, c.committed_at, c.run_id
        FROM bars_1m_chunks c LEFT JOIN bars_1m_trade_dates t
          ON t.symbol = c.symbol AND t.chunk_id = c.chunk_id
        WHERE c.symbol = ?
        GROUP BY ALL ORDER BY c.chunk_start
        """,
        [symbol],
    ).df()


def source_frame(con: duckdb.DuckDBPyConnection, symbol: str) -> pd.DataFrame:
    """Source files of the committed chunks: size, sha256 and the chunks they fed."""
    return con.execute(
        """
        SELECT s.path, s.size, s.sha256, count(*) AS chunks,
               min(c.chunk_start) AS first_trade_date, max(c.chunk_end) AS last_trade_date
        FROM bars_1m_chunk_sources s JOIN bars_1m_chunks c
          ON c.symbol = s.symbol AND c.chunk_id = s.chunk_id
        WHERE s.symbol = ?
        GROUP BY ALL ORDER BY s.path, s.sha256
        """,
        [symbol],
    ).df()


def lineage_config(
    symbol: str, days: pd.DataFrame, chunks: pd.DataFrame, sources: pd.DataFrame,
    calendar: Calendar,
) -> dict[str, Any]:  # fmt: skip
    """What the database lineage says about the settings (no run record found)."""
    if days.empty:
        return {"symbol": symbol}
    lengths = [
        len(calendar.business_days(a, b))
        for a, b in zip(
            pd.to_datetime(chunks["chunk_start"]).dt.date,
            pd.to_datetime(chunks["chunk_end"]).dt.date,
            strict=True,
        )
    ]
    common = os.path.commonpath(list(sources["path"])) if len(sources) else ""
    return {
        "symbol": symbol,
        "first trade date": str(days["trade_date"].min().date()),
        "last trade date": str(days["trade_date"].max().date()),
        "chunk_days (most common chunk length)": (
            int(pd.Series(lengths).mode().iloc[0]) if lengths else ""
        ),
        "chunks committed": len(chunks),
        "runs that committed chunks": ", ".join(sorted(set(chunks["run_id"].astype(str)))),
        "source files": len(sources),
        "dbn (common folder of the sources)": common,
        "calendar": calendar.name,
        "session_tz": calendar.session_tz,
        "session_roll": calendar.session_roll,
    }


def checkpoint_summary(checkpoint_dir: Path, symbol: str) -> Checkpoints:
    """Counts by status of the checkpoint files of ``symbol`` in ``checkpoint_dir`` (an
    unreadable file counts as ``unreadable``), and the failed / in_progress ones."""
    counts: dict[str, int] = {}
    problems = []
    for path in root_checkpoint_files(checkpoint_dir, symbol):
        checkpoint = ckpt.read(path.parent, path.stem)
        if checkpoint is None:
            counts["unreadable"] = counts.get("unreadable", 0) + 1
            continue
        if checkpoint.symbol != symbol:
            continue
        counts[checkpoint.status] = counts.get(checkpoint.status, 0) + 1
        if checkpoint.status in ("failed", "in_progress"):
            problems.append(checkpoint)
    return Checkpoints(counts=counts, problems=tuple(problems))


# ------------------------------------------------------------- frames to records


def _int(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _float(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _date(value: Any) -> dt.date | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).date()


def _utc(value: Any) -> dt.datetime | None:
    if value is None or pd.isna(value):
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def _str(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def _bool(value: Any) -> bool | None:
    return None if value is None or pd.isna(value) else bool(value)


def exposure_of(days: pd.DataFrame) -> Exposure:
    """Lookahead exposure of the selection frame: the trade dates whose
    ``other_rule_pick`` differs from the selected contract, equals it, or is unknown."""
    if days.empty or "other_rule_pick" not in days:
        return Exposure(rules=(), trade_dates=len(days), differs=0, same=0,
                        unknown=len(days), days=())  # fmt: skip
    other = days["other_rule_pick"]
    unknown = other.isna()
    differs = ~unknown & (other.astype("string") != days["source_symbol"].astype("string"))
    rules = tuple(sorted({str(r) for r in days["roll_rule"].dropna()}))
    return Exposure(
        rules=rules,
        trade_dates=len(days),
        differs=int(differs.sum()),
        same=int((~unknown & ~differs).sum()),
        unknown=int(unknown.sum()),
        days=tuple(
            ExposureDay(
                trade_date=pd.Timestamp(r["trade_date"]).date(),
                stored=str(r.get("contract") or r["source_symbol"]),
                other=str(r["other_rule_pick"]),
                rule=_str(r["roll_rule"]),
            )
            for r in days[differs.to_numpy(dtype=bool)].to_dict("records")
        ),
    )


def rolls_of(frame: pd.DataFrame) -> tuple[Roll, ...]:
    """The rows of :func:`roll_frame` as records."""
    return tuple(
        Roll(
            trade_date=pd.Timestamp(r["trade_date"]).date(),
            from_symbol=str(r["from_symbol"]),
            to_symbol=str(r["to_symbol"]),
            kind=str(r["kind"]),
            to_volume=int(r["to_volume"]),
            from_volume=_int(r["from_volume"]),
            runner_up=_str(r["runner_up"]),
            runner_up_volume=_int(r["runner_up_volume"]),
            share_top2=float(r["share_top2"]),
            from_expiry=_str(r.get("from_expiry")),
            to_expiry=_str(r.get("to_expiry")),
            gap=_float(r.get("gap")),
            ratio=_float(r.get("ratio")),
            stale=_bool(r.get("stale")),
        )
        for r in frame.to_dict("records")
    )


def thinnest(days: pd.DataFrame, n: int = THIN_ROWS) -> tuple[TradeDay, ...]:
    """The ``n`` trade dates of lowest relative coverage, lowest first (their bars and
    minutes those of their own session, :func:`~.days.coverage`)."""
    if days.empty:
        return ()
    return tuple(
        TradeDay(
            trade_date=pd.Timestamp(r["trade_date"]).date(),
            contract=str(r.get("contract") or r["source_symbol"]),
            bars=int(r["bars"] if pd.isna(r["session_bars"]) else r["session_bars"]),
            session_minutes=_int(
                r["expected_minutes"] if pd.isna(r["session_minutes"]) else r["session_minutes"]
            ),
            coverage=_float(r["coverage"]),
            relative_coverage=_float(r["relative_coverage"]),
            longest_hole=_float(r["longest_hole"]),
            holiday_bars=_int(r["holiday_bars"]) or 0,
            chunk_id=str(r["chunk_id"]),
        )
        for r in days.nsmallest(n, "relative_coverage").to_dict("records")
    )


def chunks_of(frame: pd.DataFrame) -> tuple[Chunk, ...]:
    """The rows of :func:`chunk_frame` as records."""
    return tuple(
        Chunk(
            chunk_id=str(r["chunk_id"]),
            chunk_start=_date(r["chunk_start"]),
            chunk_end=_date(r["chunk_end"]),
            trade_dates=int(r["trade_dates"]),
            rows=int(r["rows"]),
            contracts=_str(r["contracts"]) or "",
            content_hash=str(r["content_hash"]),
            committed_at=_utc(r["committed_at"]),
            run_id=_str(r["run_id"]),
        )
        for r in frame.to_dict("records")
    )


def sources_of(frame: pd.DataFrame) -> tuple[Source, ...]:
    """The rows of :func:`source_frame` as records."""
    return tuple(
        Source(
            path=str(r["path"]),
            size=int(r["size"]),
            sha256=str(r["sha256"]),
            chunks=int(r["chunks"]),
            first_trade_date=_date(r["first_trade_date"]),
            last_trade_date=_date(r["last_trade_date"]),
        )
        for r in frame.to_dict("records")
    )


def _per_day(
    con: duckdb.DuckDBPyConnection, symbol: str, calendar: Calendar, name: str
) -> tuple[pd.DataFrame, list[str], int]:
    """The trade-date frame with bars and coverage, the business days without bars, and
    the bars outside every session of calendar ``name``."""
    days = selection_frame(con, symbol)
    missing: list[str] = []
    outside = 0
    if not days.empty:
        first = days["trade_date"].min().date()
        last = days["trade_date"].max().date()
        per_day, outside = bars_frame(con, symbol, calendar, sessions(name, calendar, first, last))
        days = days.merge(per_day, on="trade_date", how="left")
        have = set(days["trade_date"].dt.date)
        missing = [
            str(d)
            for d in (pd.Timestamp(x).date() for x in calendar.business_days(first, last))
            if d not in have
        ]
    else:
        days = days.assign(bars=[], sessions=[], expected_minutes=[], session_bars=[],
                           session_minutes=[], holiday_bars=[], longest_hole=[])  # fmt: skip
    return coverage(days), missing, outside


def _settings(
    symbol: str, recorded: RunRecord | None, workdir: Path | None, lineage: dict[str, Any] | None
) -> Settings:
    """The settings and versions ``recorded`` by a run, else ``lineage``'s."""
    now = package_versions()
    if recorded is not None and recorded.config is not None and workdir is not None:
        layout = Layout(Path(workdir))
        record = layout.run_record(symbol, recorded.run_id, "config")
        shown = record.relative_to(layout.runs_dir(symbol).parent)  # runs/<run>/config.json
        return Settings(
            origin=f"{shown} (the latest run that recorded its settings)",
            values=dict(recorded.config.settings),
            versions=tuple(
                PackageVersion(name, recorded.config.versions.get(name), v)
                for name, v in now.items()
            ),
            from_run=True,
        )
    return Settings(
        origin="no run record found: reconstructed from the database lineage",
        values=dict(lineage or {"symbol": symbol}),
        versions=tuple(PackageVersion(name, None, v) for name, v in now.items()),
        from_run=False,
    )


def collect(
    db: Path,
    *,
    symbol: str | None = None,
    checkpoint: Path | None = None,
    workdir: Path | None = None,
    session_calendar: str | None = None,
) -> ReportModel:
    """Read everything the report shows (a read-only database connection; nothing written).

    Args:
        db: the DuckDB file of the backfill.
        symbol: the CME root (default: the database's only one).
        checkpoint: the checkpoint folder (None: no checkpoint figures).
        workdir: the work directory holding the run records (None: none, the settings
            are reconstructed from the lineage).
        session_calendar: ``pandas_market_calendars`` calendar of the sessions (default
            by root, :data:`SESSION_CALENDARS`, else the run's trade-date calendar).

    Returns:
        The report model.

    Raises:
        ReportError: no lineage in the database, no symbol or several.
        SchemaMismatchError: no such database, or not DuckDB.
    """
    db = Path(db)
    con = connect(db, read_only=True)
    try:
        con.execute("SET enable_progress_bar = false").fetchall()
        symbol = symbol or default_symbol(con, db)
        if not table_exists(con, "bars_1m_trade_dates"):
            raise ReportError(f"{db} holds no backfill lineage (table bars_1m_trade_dates)")
        runs = list_runs(workdir, symbol) if workdir is not None else []
        recorded = next((r for r in reversed(runs) if r.config is not None), None)
        calendar = trade_calendar(recorded.config if recorded else None, workdir, symbol)
        name = session_calendar or SESSION_CALENDARS.get(symbol, calendar.name)
        days, missing, outside = _per_day(con, symbol, calendar, name)
        chunks = chunk_frame(con, symbol)
        sources = source_frame(con, symbol)
        view = rolls_view_frame(con, symbol)
        terms = term_frame(con, symbol)
    finally:
        con.close()
    days = with_term_shares(days, terms)
    rolls = roll_frame(days, view)
    lineage = None if recorded else lineage_config(symbol, days, chunks, sources, calendar)
    with_gates = [r for r in runs if r.gates is not None]
    return ReportModel(
        db=db,
        symbol=symbol,
        generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        session_calendar=name,
        thin_fraction=THIN_FRACTION,
        days=days,
        rolls=rolls_of(rolls),
        thinnest=thinnest(days),
        missing_days=tuple(missing),
        expected_gaps=recorded.config.expected_gaps if recorded and recorded.config else (),
        outside_bars=outside,
        chunks=chunks_of(chunks),
        sources=sources_of(sources),
        runs=tuple(runs),
        run=runs[-1] if runs else None,
        gates_run=with_gates[-1] if with_gates else None,
        gates_origin=_relative(with_gates[-1].gates_origin, workdir) if with_gates else None,
        settings=_settings(symbol, recorded, workdir, lineage),
        checkpoints=checkpoint_summary(checkpoint, symbol) if checkpoint is not None else None,
        exposure=exposure_of(days),
    )


def collect_universe(
    db: Path,
    *,
    symbols: Sequence[str] | None = None,
    checkpoint: Path | None = None,
    workdir: Path | None = None,
    session_calendar: str | None = None,
) -> UniverseModel:
    """Read the report of several roots: :func:`collect` of each.

    Args:
        symbols: the roots, in the order shown (None: every root of the database's
            lineage, sorted).
        db, checkpoint, workdir, session_calendar: as for :func:`collect` (a
            ``session_calendar`` given holds for every root).

    Returns:
        The universe model (one root: :attr:`UniverseModel.single`).

    Raises:
        ReportError: no lineage in the database, or no symbol in it.
        SchemaMismatchError: no such database, or not DuckDB.
    """
    roots = list(symbols) if symbols else database_symbols(db)
    if not roots:
        raise ReportError(f"{db} holds no symbol: nothing is committed yet")
    models = tuple(
        collect(
            db,
            symbol=root,
            checkpoint=checkpoint,
            workdir=workdir,
            session_calendar=session_calendar,
        )  # fmt: skip
        for root in roots
    )
    return UniverseModel(
        db=Path(db),
        generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        roots=models,
    )


def _relative(path: Path | None, workdir: Path | None) -> str | None:
    """``path`` relative to ``workdir`` when inside it, else as given."""
    if path is None:
        return None
    if workdir is not None:
        try:
            return str(path.relative_to(workdir))
        except ValueError:
            pass
    return str(path)

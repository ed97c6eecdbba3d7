"""``dbn-backfill report``: one self-contained HTML file showing what a backfill did.

    dbn-backfill report --db PATH [--checkpoint DIR] [--workdir DIR] [--symbol MGC]
                        --out report.html [--charts-dir DIR] [--session-calendar NAME]

It reads the database through a read-only connection (and the run records under the
work directory, the checkpoint files), writes nothing but ``--out`` (and the chart
PNGs with ``--charts-dir``), and holds:

* rolls: the selected contract per trade date, its share of the top two contracts'
  volume and the runner-up (charts), and a table of every roll;
* bars per trade date against the minutes of the CME session(s) of that trade date
  (``pandas_market_calendars``), the thinnest days, business days without bars;
* the gates of the latest run with a gates report, the runs of the work directory;
* the committed chunks (trade dates, rows, contracts, content hash, commit time) and
  the source files (size, sha256);
* the latest run's settings (``runs/<run_id>/config.json``, or what the lineage says)
  and the versions of the key packages.

Charts are PNGs embedded as ``data:`` URIs: the file opens offline in any browser.

The lineage stores the selected contract's and the runner-up's volume per trade date,
not the day's total outright volume, so the share shown is the share of the top two:
``volume / (volume + runner_up_volume)`` (1 when only one contract traded).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import html
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from dbn_backfill.errors import BackfillError
from dbn_backfill.layout import find_workdir, root_checkpoint_files
from dbn_backfill.store import checkpoints as ckpt
from dbn_backfill.store.database import connect, table_exists
from dbn_backfill.symbols import expiry_key, is_outright
from dbn_backfill.tradedate import Calendar
from dbn_backfill.views.runs import (
    RunRecord,
    latest_gates,
    latest_run,
    list_runs,
    package_versions,
    trade_calendar,
)

#: ``pandas_market_calendars`` session calendar per CME root (expected minutes per
#: session); other roots use the run's trade-date calendar (``CME_TradeDate``: 23 h).
SESSION_CALENDARS = {
    **dict.fromkeys(("GC", "MGC", "SI", "SIL", "HG", "MHG", "PL", "PA"), "CMEGlobex_Metals"),
    **dict.fromkeys(("CL", "MCL", "NG", "RB", "HO"), "CMEGlobex_Energy"),
    **dict.fromkeys(("ES", "MES", "NQ", "MNQ", "YM", "MYM", "RTY", "M2K"), "CME Globex Equity"),
}
#: Rows of the thinnest-days table.
THIN_ROWS = 20


class ReportError(BackfillError):
    """The report cannot be made (no such database, no or several symbols, ...)."""


@dataclass
class ReportData:
    """Everything the report shows, as frames and dicts (see :func:`collect`)."""

    db: Path
    symbol: str
    generated_at: str
    session_calendar: str
    days: pd.DataFrame  # one row per trade date: selection, expiry, share, bars, coverage
    rolls: pd.DataFrame
    chunks: pd.DataFrame
    sources: pd.DataFrame
    missing_days: list[str]
    expected_gaps: list[str]
    outside_bars: int
    run: RunRecord | None
    gates_run: RunRecord | None
    runs: list[RunRecord]
    config: dict[str, Any]
    config_origin: str
    versions: dict[str, dict[str, str | None]]
    checkpoint_counts: dict[str, int] = field(default_factory=dict)
    checkpoint_problems: list[dict[str, Any]] = field(default_factory=list)
    charts: dict[str, bytes] = field(default_factory=dict)


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


def sessions(name: str, calendar: Calendar, first: dt.date, last: dt.date) -> pd.DataFrame:
    """CME sessions of ``pandas_market_calendars`` calendar ``name`` with their trade date.

    A session's trade date is its schedule date when that is a business day of
    ``calendar``, else the next business day (contract section 3: a holiday session
    counts for the next trade date). Returns ``open``, ``close`` (UTC), ``minutes``
    (breaks excluded), ``trade_date``.
    """
    import pandas_market_calendars as mcal

    schedule = mcal.get_calendar(name).schedule(
        start_date=pd.Timestamp(first) - pd.Timedelta(days=10),
        end_date=pd.Timestamp(last) + pd.Timedelta(days=1),
    )
    if schedule.empty:
        return pd.DataFrame(columns=["open", "close", "minutes", "trade_date"])
    seconds = (schedule["market_close"] - schedule["market_open"]).dt.total_seconds()
    if {"break_start", "break_end"} <= set(schedule.columns):
        pause = (schedule["break_end"] - schedule["break_start"]).dt.total_seconds()
        seconds = seconds - pause.fillna(0)
    labels = schedule.index.values.astype("datetime64[D]")
    idx = np.searchsorted(calendar.days, labels, side="left")
    inside = idx < len(calendar.days)
    out = pd.DataFrame(
        {
            "open": schedule["market_open"].to_numpy()[inside],
            "close": schedule["market_close"].to_numpy()[inside],
            "minutes": (seconds.to_numpy()[inside] / 60).round().astype("int64"),
            "trade_date": calendar.days[idx[inside]],
        }
    )
    out["open"] = pd.to_datetime(out["open"], utc=True)
    out["close"] = pd.to_datetime(out["close"], utc=True)
    lo, hi = np.datetime64(first, "D"), np.datetime64(last, "D")
    keep = (out["trade_date"] >= lo) & (out["trade_date"] <= hi)
    return out[keep].reset_index(drop=True)


def _expiry(symbols: pd.Series, years: np.ndarray, symbol: str) -> np.ndarray:
    """``YYYYMM`` of each outright's contract month (section 5 year rule), NaN otherwise."""
    out = np.full(len(symbols), np.nan)
    cache: dict[tuple[str, int], float] = {}
    for i, (raw, year) in enumerate(zip(symbols.to_numpy(), years, strict=True)):
        if not isinstance(raw, str) or not is_outright(raw, symbol):
            continue
        key = (raw, int(year))
        if key not in cache:
            y, m = expiry_key(raw, symbol, int(year))
            cache[key] = float(y * 100 + m)
        out[i] = cache[key]
    return out


def _days_to_month(expiry: np.ndarray, trade_dates: pd.Series) -> np.ndarray:
    """Days from each trade date to the first day of the contract month ``YYYYMM``."""
    out = np.full(len(expiry), np.nan)
    ok = ~np.isnan(expiry)
    if ok.any():
        yyyymm = expiry[ok].astype("int64")
        months = ((yyyymm // 100 - 1970) * 12 + (yyyymm % 100 - 1)).astype("datetime64[M]")
        starts = months.astype("datetime64[D]")
        trade = trade_dates.to_numpy()[ok].astype("datetime64[D]")
        out[ok] = (starts - trade).astype("int64")
    return out


def selection_frame(con: duckdb.DuckDBPyConnection, symbol: str) -> pd.DataFrame:
    """The lineage's selection per trade date, with expiries and the top-two share."""
    days = con.execute(
        "SELECT trade_date, source_symbol, instrument_id, volume, runner_up, "
        "runner_up_volume, chunk_id FROM bars_1m_trade_dates WHERE symbol = ? "
        "ORDER BY trade_date",
        [symbol],
    ).df()
    if days.empty:
        return days.assign(
            expiry=[], runner_up_expiry=[], days_to_month=[], runner_up_days_to_month=[],
            share_top2=[],
        )  # fmt: skip
    days["trade_date"] = pd.to_datetime(days["trade_date"])
    years = pd.DatetimeIndex(days["trade_date"]).year.to_numpy()
    days["expiry"] = _expiry(days["source_symbol"], years, symbol)
    days["runner_up_expiry"] = _expiry(days["runner_up"], years, symbol)
    days["days_to_month"] = _days_to_month(days["expiry"].to_numpy(), days["trade_date"])
    days["runner_up_days_to_month"] = _days_to_month(
        days["runner_up_expiry"].to_numpy(), days["trade_date"]
    )
    volume = days["volume"].astype("float64")
    runner = pd.to_numeric(days["runner_up_volume"], errors="coerce").fillna(0).astype("float64")
    total = volume + runner
    days["share_top2"] = np.where(total > 0, volume / total.where(total > 0, 1), 1.0)
    return days


def roll_frame(days: pd.DataFrame) -> pd.DataFrame:
    """One row per trade date whose selected contract differs from the previous one's."""
    columns = [
        "trade_date", "from_symbol", "to_symbol", "kind", "to_volume", "from_volume",
        "runner_up", "runner_up_volume", "share_top2",
    ]  # fmt: skip
    if len(days) < 2:
        return pd.DataFrame(columns=columns)
    prev = days["source_symbol"].shift()
    prev_expiry = days["expiry"].shift()
    at = days.index[days["source_symbol"].ne(prev) & prev.notna()]
    rolls = pd.DataFrame(
        {
            "trade_date": days.loc[at, "trade_date"],
            "from_symbol": prev.loc[at],
            "to_symbol": days.loc[at, "source_symbol"],
            "to_volume": days.loc[at, "volume"],
            "runner_up": days.loc[at, "runner_up"],
            "runner_up_volume": days.loc[at, "runner_up_volume"],
            "share_top2": days.loc[at, "share_top2"],
        }
    )
    earlier = days.loc[at, "expiry"] < prev_expiry.loc[at]
    rolls["kind"] = np.where(earlier, "back to an earlier expiry", "roll")
    # the from-contract's volume on the roll day is known when it is the runner-up
    rolls["from_volume"] = rolls["runner_up_volume"].where(
        rolls["runner_up"] == rolls["from_symbol"]
    )
    return rolls[columns].reset_index(drop=True)


def bars_frame(
    con: duckdb.DuckDBPyConnection,
    symbol: str,
    calendar: Calendar,
    session_table: pd.DataFrame,
) -> tuple[pd.DataFrame, int]:
    """Per trade date: ``bars``, ``sessions``, ``expected_minutes``, ``longest_hole``; and
    the number of bars outside every scheduled session.

    A bar's trade date is the contract's rule (section 3, as the gates compute it); its
    session the scheduled session containing its open time. The longest hole of a trade
    date is the longest stretch of one of its sessions without a bar, edges included.
    """
    shift = int(calendar.shift.total_seconds())
    con.register("report_calendar", pd.DataFrame({"day": calendar.days}))
    con.register("report_sessions", session_table[["open", "close"]])
    try:
        per_session = con.execute(
            f"""
            WITH b AS (
              SELECT ts_utc, CAST(timezone('{calendar.session_tz}', ts_utc)
                       + INTERVAL {shift} SECOND AS DATE) AS session_date
              FROM bars_1m WHERE symbol = ?),
            t AS (SELECT b.ts_utc, CAST(c.day AS DATE) AS trade_date
                  FROM b ASOF LEFT JOIN report_calendar c ON b.session_date <= CAST(c.day AS DATE)),
            s AS (SELECT t.ts_utc, t.trade_date, s.open, s.close
                  FROM t ASOF LEFT JOIN report_sessions s ON t.ts_utc >= s.open),
            k AS (SELECT trade_date, ts_utc, open, close,
                         open IS NOT NULL AND ts_utc < close AS inside FROM s),
            g AS (SELECT *, ts_utc - lag(ts_utc) OVER (PARTITION BY open ORDER BY ts_utc) AS gap
                  FROM k WHERE inside)
            SELECT trade_date, open, true AS inside, count(*) AS n, min(ts_utc) AS first,
                   max(ts_utc) AS last, max(epoch(gap)) / 60 - 1 AS inner_hole
            FROM g GROUP BY trade_date, open
            UNION ALL
            SELECT trade_date, NULL, false, count(*), NULL, NULL, NULL
            FROM k WHERE NOT inside GROUP BY trade_date
            """,
            [symbol],
        ).df()
    finally:
        con.unregister("report_calendar")
        con.unregister("report_sessions")
    per_session["trade_date"] = pd.to_datetime(per_session["trade_date"])
    inside = per_session[per_session["inside"]].copy()
    outside = int(per_session.loc[~per_session["inside"], "n"].sum())
    sess = session_table.copy()
    sess["trade_date"] = pd.to_datetime(sess["trade_date"])
    if not inside.empty:
        inside["open"] = pd.to_datetime(inside["open"], utc=True)
        inside["first"] = pd.to_datetime(inside["first"], utc=True)
        inside["last"] = pd.to_datetime(inside["last"], utc=True)
    merged = sess.merge(inside[["open", "n", "first", "last", "inner_hole"]], on="open", how="left")
    merged["n"] = merged["n"].fillna(0)
    head = (merged["first"] - merged["open"]).dt.total_seconds() / 60
    tail = (merged["close"] - merged["last"]).dt.total_seconds() / 60 - 1
    hole = pd.concat([head, tail, merged["inner_hole"].astype("float64")], axis=1).max(axis=1)
    merged["hole"] = hole.where(merged["n"] > 0, merged["minutes"].astype("float64"))
    per_day = merged.groupby("trade_date").agg(
        sessions=("open", "size"),
        expected_minutes=("minutes", "sum"),
        longest_hole=("hole", "max"),
    )
    bars = per_session.groupby("trade_date")["n"].sum().rename("bars")
    out = per_day.join(bars, how="outer").reset_index()
    out["bars"] = out["bars"].fillna(0).astype("int64")
    return out, outside


#: A trade date is thin when its coverage is below this fraction of the centred median
#: coverage of :data:`THIN_WINDOW` trade dates around it (coverage drifts over years).
THIN_FRACTION = 0.5
THIN_WINDOW = 61


def coverage(days: pd.DataFrame) -> pd.DataFrame:
    """Add ``coverage`` (bars / session minutes), ``relative_coverage`` (coverage / its
    local median) and ``thin`` to the per-trade-date frame."""
    expected = days["expected_minutes"].astype("float64")
    days["coverage"] = days["bars"].astype("float64") / expected.where(expected > 0)
    local = days["coverage"].rolling(THIN_WINDOW, center=True, min_periods=1).median()
    days["relative_coverage"] = days["coverage"] / local.where(local > 0)
    days["thin"] = (days["relative_coverage"] < THIN_FRACTION).fillna(False).astype(bool)
    return days


def chunk_frame(con: duckdb.DuckDBPyConnection, symbol: str) -> pd.DataFrame:
    """Committed chunks with their trade dates and contracts."""
    return con.execute(
        """
        SELECT c.chunk_id, c.chunk_start, c.chunk_end, count(t.trade_date) AS trade_dates,
               c.rows, string_agg(DISTINCT t.source_symbol, ' ' ORDER BY t.source_symbol)
                 AS contracts,
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


def checkpoint_summary(
    checkpoint_dir: Path, symbol: str
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Counts by status of the checkpoint files, and the failed / in_progress ones."""
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
            problems.append(checkpoint.to_json())
    return counts, problems


def collect(
    db: Path,
    *,
    symbol: str | None = None,
    checkpoint: Path | None = None,
    workdir: Path | None = None,
    session_calendar: str | None = None,
) -> ReportData:
    """Read everything the report shows (read-only database connection).

    Raises:
        ReportError / SchemaMismatchError: no database, no lineage, several symbols.
    """
    db = Path(db)
    con = connect(db, read_only=True)
    try:
        con.execute("SET enable_progress_bar = false").fetchall()
        symbol = symbol or default_symbol(con, db)
        if not table_exists(con, "bars_1m_trade_dates"):
            raise ReportError(f"{db} holds no backfill lineage (table bars_1m_trade_dates)")
        run = latest_run(workdir, symbol) if workdir is not None else None
        gates_run = latest_gates(workdir, symbol) if workdir is not None else None
        runs = list_runs(workdir, symbol) if workdir is not None else []
        recorded = next((r for r in reversed(runs) if r.config), None)
        config = dict((recorded.config or {}).get("config", {})) if recorded else {}
        calendar = trade_calendar(config, workdir, symbol)
        days = selection_frame(con, symbol)
        rolls = roll_frame(days)
        chunks = chunk_frame(con, symbol)
        sources = source_frame(con, symbol)
        name = session_calendar or SESSION_CALENDARS.get(symbol, calendar.name)
        missing: list[str] = []
        outside = 0
        if not days.empty:
            first = days["trade_date"].min().date()
            last = days["trade_date"].max().date()
            per_day, outside = bars_frame(
                con, symbol, calendar, sessions(name, calendar, first, last)
            )
            days = days.merge(per_day, on="trade_date", how="left")
            have = set(days["trade_date"].dt.date)
            missing = [
                str(d)
                for d in (pd.Timestamp(x).date() for x in calendar.business_days(first, last))
                if d not in have
            ]
        else:
            days = days.assign(bars=[], sessions=[], expected_minutes=[], longest_hole=[])
        days = coverage(days)
    finally:
        con.close()
    if recorded is not None:
        origin = f"runs/{recorded.run_id}/config.json (the latest run that recorded its settings)"
        run_versions = dict((recorded.config or {}).get("versions", {}))
    else:
        config = lineage_config(symbol, days, chunks, sources, calendar)
        origin = "no run record found: reconstructed from the database lineage"
        run_versions = {}
    now = package_versions()
    versions = {name: {"run": run_versions.get(name), "report": v} for name, v in now.items()}
    counts: dict[str, int] = {}
    problems: list[dict[str, Any]] = []
    if checkpoint is not None:
        counts, problems = checkpoint_summary(checkpoint, symbol)
    gaps = config.get("expected_gaps", [])
    return ReportData(
        db=db,
        symbol=symbol,
        generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        session_calendar=name,
        days=days,
        rolls=rolls,
        chunks=chunks,
        sources=sources,
        missing_days=missing,
        expected_gaps=list(gaps) if isinstance(gaps, list) else [],
        outside_bars=outside,
        run=run,
        gates_run=gates_run,
        runs=runs,
        config=config,
        config_origin=origin,
        versions=versions,
        checkpoint_counts=counts,
        checkpoint_problems=problems,
    )


def render_charts(data: ReportData) -> dict[str, bytes]:
    """The report's PNG charts: ``rolls``, ``rolls_detail``, ``bars_per_day``."""
    from dbn_backfill.views import charts

    data.charts = {
        "rolls": charts.roll_overview(data.days, data.rolls, data.symbol),
        "rolls_detail": charts.roll_detail(data.days, data.rolls, data.symbol),
        "bars_per_day": charts.bars_per_day(
            data.days, data.symbol, data.session_calendar, THIN_FRACTION
        ),
    }
    return data.charts


# ---------------------------------------------------------------------------- HTML

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em 2em;
color:#222;max-width:1500px}
h1{font-size:1.5em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;
margin-top:1.8em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,td.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}
.pass{color:#17803d;font-weight:600}.fail{color:#c62828;font-weight:600}
.warn{color:#b45309}.muted{color:#666}
img.chart{max-width:100%;border:1px solid #eee}
nav a{margin-right:1em}details summary{cursor:pointer;margin:.4em 0}
"""


def _e(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if value is pd.NaT:
        return ""
    return html.escape(str(value))


def _pct(value: Any, digits: int) -> str:
    """``value`` (a fraction) as a percentage; empty when missing."""
    return "" if value is None or pd.isna(value) else f"{float(value):.{digits}%}"


def _day(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d}"


def _stamp(value: Any) -> str:
    if value is None or pd.isna(value):
        return ""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        if value.tzinfo is not None:
            return value.strftime("%Y-%m-%d %H:%M:%S UTC")
        return value.strftime("%Y-%m-%d")
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return ""
        if float(value).is_integer():
            return f"{int(value):,}"
        return f"{value:,.3f}"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    return str(value) if value is not None and value is not pd.NA else ""


def table(
    table_id: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    numeric: Iterable[int] = (),
    mono: Iterable[int] = (),
) -> str:
    """An HTML table; ``numeric`` / ``mono`` are column positions right-aligned / monospace."""
    num, code = set(numeric), set(mono)
    out = [f'<table id="{table_id}"><thead><tr>']
    out += [f"<th>{_e(h)}</th>" for h in headers]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        for i, cell in enumerate(row):
            cls = " ".join(c for c, on in (("num", i in num), ("mono", i in code)) if on)
            attr = f' class="{cls}"' if cls else ""
            text = cell[1] if isinstance(cell, tuple) and cell[0] == "html" else _e(_fmt(cell))
            out.append(f"<td{attr}>{text}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _img(chart_id: str, png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<img class="chart" id="chart-{chart_id}" alt="{html.escape(alt)}" '
        f'title="{html.escape(alt)}" src="data:image/png;base64,{data}">'
    )


def _status(passed: bool | None) -> tuple[str, str]:
    if passed is None:
        return ("html", '<span class="muted">unknown</span>')
    return (
        "html",
        '<span class="pass">PASS</span>' if passed else '<span class="fail">FAIL</span>',
    )


def _summary(data: ReportData) -> str:
    d = data.days
    items = []
    if not d.empty:
        items.append(
            f"<b>{len(d):,}</b> trade dates {d['trade_date'].min():%Y-%m-%d} .. "
            f"{d['trade_date'].max():%Y-%m-%d}, <b>{int(d['bars'].sum()):,}</b> bars, "
            f"<b>{d['source_symbol'].nunique()}</b> contracts, <b>{len(data.rolls)}</b> rolls "
            f"({int((data.rolls['kind'] != 'roll').sum()) if len(data.rolls) else 0} back to "
            "an earlier expiry)"
        )
    else:
        items.append("no trade date committed")
    items.append(
        f"<b>{len(data.chunks):,}</b> chunks committed from <b>{len(data.sources):,}</b> "
        "source files"
    )
    if data.checkpoint_counts:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(data.checkpoint_counts.items()))
        cls = "fail" if data.checkpoint_problems else "pass"
        items.append(f'checkpoints: <span class="{cls}">{_e(counts)}</span>')
    if data.gates_run is not None and data.gates_run.gates is not None:
        passed = bool(data.gates_run.gates.get("passed"))
        word = '<span class="pass">passed</span>' if passed else '<span class="fail">FAILED</span>'
        items.append(f"gates of run <code>{_e(data.gates_run.run_id)}</code>: {word}")
    else:
        items.append('<span class="muted">no gates report found (give --workdir)</span>')
    if data.missing_days:
        items.append(
            f'<span class="warn">{len(data.missing_days)} business days without bars</span> '
            "inside the committed span"
        )
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _rolls_section(data: ReportData) -> str:
    parts = ["<h2 id='rolls-section'>Rolls</h2>"]
    parts.append(
        "<p>The selected contract of each trade date (contract section 5: the highest "
        "volume of the day wins). Top: days from the trade date to the selected contract's "
        "month, so every clean roll is a jump up of one listing cycle, a roll back to an "
        "earlier expiry a jump down (red); grey dots are the runner-up. Bottom: the "
        "selected contract's <b>share of the top two</b> contracts' volume, "
        "<code>volume / (volume + runner_up_volume)</code> from "
        "<code>bars_1m_trade_dates</code> (the day's total outright volume is not stored); "
        "near 50&nbsp;% is a near tie.</p>"
    )
    parts.append(_img("rolls", data.charts["rolls"], f"{data.symbol} roll chart"))
    parts.append(
        _img("rolls-detail", data.charts["rolls_detail"], f"{data.symbol} contract ladder")
    )
    rows = [
        (
            r.trade_date,
            r.from_symbol,
            r.to_symbol,
            ("html", f'<span class="fail">{_e(r.kind)}</span>') if r.kind != "roll" else r.kind,
            r.to_volume,
            r.from_volume,
            r.runner_up,
            r.runner_up_volume,
            f"{r.share_top2:.1%}",
        )
        for r in data.rolls.itertuples(index=False)
    ]
    parts.append(
        f"<p>{len(rows)} rolls. Volumes are the trade date's totals (valid outright bars).</p>"
    )
    parts.append(
        table(
            "rolls",
            [
                "trade date",
                "from",
                "to",
                "kind",
                "volume of to",
                "volume of from",
                "runner-up",
                "runner-up volume",
                "share of top two",
            ],
            rows,
            numeric=(4, 5, 7, 8),
        )  # fmt: skip
    )
    return "".join(parts)


def _bars_section(data: ReportData) -> str:
    d = data.days
    parts = ["<h2 id='bars-section'>Bars per trade date</h2>"]
    parts.append(
        "<p>Bars stored per trade date against the minutes of that trade date's CME "
        f"session(s) in <code>{_e(data.session_calendar)}</code> "
        "(pandas_market_calendars; a holiday session counts for the next trade date). "
        "Coverage = bars / session minutes: a minute without a trade has no bar, so "
        "coverage is below 100&nbsp;% in quiet hours; thin days and long holes inside a "
        "session stand out.</p>"
    )
    parts.append(_img("bars-per-day", data.charts["bars_per_day"], f"{data.symbol} bars per day"))
    if data.outside_bars:
        parts.append(
            f'<p class="warn">{data.outside_bars:,} bars lie outside every scheduled '
            "session of that calendar.</p>"
        )
    thin = d.nsmallest(THIN_ROWS, "relative_coverage") if not d.empty else d
    rows = [
        (
            r.trade_date,
            r.source_symbol,
            r.bars,
            r.expected_minutes,
            _pct(r.coverage, 1),
            _pct(r.relative_coverage, 0),
            r.longest_hole,
            r.sessions,
            r.chunk_id,
        )
        for r in thin.itertuples(index=False)
    ]
    parts.append(f"<h3>The {len(rows)} thinnest trade dates</h3>")
    parts.append(
        table(
            "thin-days",
            [
                "trade date",
                "contract",
                "bars",
                "session minutes",
                "coverage",
                "vs. local median",
                "longest hole (min)",
                "sessions",
                "chunk",
            ],
            rows,
            numeric=(2, 3, 4, 5, 6, 7),
            mono=(8,),
        )  # fmt: skip
    )
    parts.append("<h3>Business days without bars</h3>")
    if data.missing_days:
        gaps = set(data.expected_gaps)
        listed = ", ".join(
            f"{d}{' (expected gap)' if d in gaps else ''}" for d in data.missing_days
        )
        parts.append(
            f'<p id="missing-days" class="warn">{len(data.missing_days)} business days of '
            f"the committed span have no bars: {_e(listed)}</p>"
        )
    else:
        parts.append(
            '<p id="missing-days">None: every business day of the committed span has bars.</p>'
        )
    return "".join(parts)


def _gates_section(data: ReportData) -> str:
    parts = ["<h2 id='gates-section'>Gates</h2>"]
    run = data.gates_run
    if run is None or run.gates is None:
        parts.append('<p class="muted">No gates report found; give --workdir.</p>')
        return "".join(parts)
    note = ""
    if data.run is not None and data.run.run_id != run.run_id:
        note = (
            f' <span class="warn">The latest run, <code>{_e(data.run.run_id)}</code>, has no '
            "gates report (it stopped before its gates).</span>"
        )
    origin = run.gates_origin
    where = origin.relative_to(run.path.parents[3]) if origin is not None else "?"
    parts.append(f"<p>Contract section 9, from <code>{_e(where)}</code>.{note}</p>")
    rows = [(g.get("name"), _status(g.get("passed")), g.get("detail")) for g in run.gates["gates"]]
    parts.append(table("gates", ["gate", "result", "what it found"], rows))
    return "".join(parts)


def _runs_section(data: ReportData) -> str:
    parts = ["<h2 id='runs-section'>Runs</h2>"]
    if not data.runs:
        parts.append('<p class="muted">No run records found; give --workdir.</p>')
        return "".join(parts)
    rows = []
    for r in reversed(data.runs):
        cfg = (r.config or {}).get("config", {})
        merge = r.merge or {}
        rows.append(
            (
                r.run_id,
                (r.config or {}).get("started_at", ""),
                f"{cfg.get('start', '')} .. {cfg.get('end', '')}" if cfg else "",
                merge.get("chunks_committed") if r.merge else "no merge report",
                merge.get("chunks_skipped"),
                merge.get("chunks_failed"),
                merge.get("rows_inserted"),
                merge.get("seconds"),
                _status(r.gates.get("passed") if r.gates else None),
            )
        )
    parts.append(
        table(
            "runs",
            [
                "run",
                "started",
                "range",
                "committed",
                "skipped",
                "failed",
                "rows inserted",
                "merge seconds",
                "gates",
            ],
            rows,
            numeric=(3, 4, 5, 6, 7),
            mono=(0,),
        )  # fmt: skip
    )
    if data.checkpoint_problems:
        parts.append("<h3>Checkpoints needing attention</h3>")
        parts.append(
            table(
                "checkpoint-problems",
                ["chunk", "status", "started", "finished", "error"],
                [
                    (
                        p["chunk_id"],
                        p.get("status"),
                        p.get("started_at"),
                        p.get("finished_at"),
                        p.get("error"),
                    )
                    for p in data.checkpoint_problems
                ],  # fmt: skip
                mono=(0,),
            )
        )
    return "".join(parts)


def _chunks_section(data: ReportData) -> str:
    c = data.chunks
    parts = ["<h2 id='chunks-section'>Chunks</h2>"]
    parts.append(
        f"<p>{len(c):,} committed chunks (<code>bars_1m_chunks</code>): one transaction "
        "each; the content hash is the sha256 of the chunk's bars and selection.</p>"
    )
    rows = [
        (
            r.chunk_id,
            f"{_day(r.chunk_start)} .. {_day(r.chunk_end)}",
            r.trade_dates,
            r.rows,
            r.contracts,
            r.content_hash,
            _stamp(r.committed_at),
            r.run_id,
        )
        for r in c.itertuples(index=False)
    ]
    body = table(
        "chunks",
        ["chunk", "trade dates", "days", "rows", "contract(s)", "content hash", "committed",
         "run"],
        rows,
        numeric=(2, 3),
        mono=(0, 5, 7),
    )  # fmt: skip
    parts.append(_maybe_fold(body, len(rows), "chunks"))
    return "".join(parts)


def _sources_section(data: ReportData) -> str:
    s = data.sources
    parts = ["<h2 id='sources-section'>Sources</h2>"]
    parts.append(
        f"<p>{len(s):,} DBN files the committed chunks came from "
        f"(<code>bars_1m_chunk_sources</code>), {int(s['size'].sum()) if len(s) else 0:,} "
        "bytes.</p>"
    )
    rows = [
        (
            r.path,
            r.size,
            r.sha256,
            r.chunks,
            f"{_day(r.first_trade_date)} .. {_day(r.last_trade_date)}",
        )
        for r in s.itertuples(index=False)
    ]
    body = table(
        "sources",
        ["file", "size (bytes)", "sha256", "chunks", "trade dates of those chunks"],
        rows,
        numeric=(1, 3),
        mono=(0, 2),
    )
    parts.append(_maybe_fold(body, len(rows), "files"))
    return "".join(parts)


def _maybe_fold(body: str, n: int, what: str) -> str:
    if n <= 40:
        return body
    return f"<details><summary>show all {n:,} {what}</summary>{body}</details>"


def _config_section(data: ReportData) -> str:
    parts = ["<h2 id='config-section'>Settings and versions</h2>"]
    parts.append(f"<p>Settings: {_e(data.config_origin)}.</p>")
    parts.append(
        table("config", ["key", "value"], [(k, v) for k, v in data.config.items()], mono=(1,))
    )
    parts.append(
        "<p>Versions of the key packages: as recorded by that run, and in the environment "
        "that wrote this report.</p>"
    )
    rows = [(k, v["run"] or "", v["report"] or "not installed") for k, v in data.versions.items()]
    parts.append(table("versions", ["package", "run", "report"], rows, mono=(1, 2)))
    return "".join(parts)


def to_html(data: ReportData) -> str:
    """The whole report as one HTML document (charts must be rendered first)."""
    if not data.charts:
        render_charts(data)
    title = f"dbn-backfill report: {data.symbol}"
    nav = "".join(
        f'<a href="#{i}">{t}</a>'
        for i, t in (
            ("rolls-section", "Rolls"), ("bars-section", "Bars per day"),
            ("gates-section", "Gates"), ("runs-section", "Runs"), ("chunks-section", "Chunks"),
            ("sources-section", "Sources"), ("config-section", "Settings and versions"),
        )
    )  # fmt: skip
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">Database <code>{_e(data.db)}</code>, written {_e(data.generated_at)}'
        " by <code>dbn-backfill report</code>.</p>",
        f"<nav>{nav}</nav>",
        _summary(data),
        _rolls_section(data),
        _bars_section(data),
        _gates_section(data),
        _runs_section(data),
        _chunks_section(data),
        _sources_section(data),
        _config_section(data),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def write_report(
    out: Path,
    db: Path,
    *,
    symbol: str | None = None,
    checkpoint: Path | None = None,
    workdir: Path | None = None,
    session_calendar: str | None = None,
    charts_dir: Path | None = None,
) -> ReportData:
    """Collect, render and write the report to ``out`` (and the PNGs to ``charts_dir``)."""
    data = collect(
        db, symbol=symbol, checkpoint=checkpoint, workdir=workdir,
        session_calendar=session_calendar,
    )  # fmt: skip
    render_charts(data)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(to_html(data), encoding="utf-8")
    os.replace(tmp, out)
    if charts_dir is not None:
        Path(charts_dir).mkdir(parents=True, exist_ok=True)
        for name, png in data.charts.items():
            (Path(charts_dir) / f"{name}.png").write_bytes(png)
    return data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True, help="DuckDB file of the backfill")
    parser.add_argument("--out", required=True, help="HTML file to write")
    parser.add_argument("--symbol", default=None, help="CME root (default: the db's only one)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder (optional)")
    parser.add_argument(
        "--workdir",
        default=None,
        help="work directory of the runs (default: the current directory if it has runs)",
    )
    parser.add_argument(
        "--session-calendar",
        default=None,
        help="pandas_market_calendars calendar of the sessions (default by root, e.g. "
        "CMEGlobex_Metals for MGC)",
    )
    parser.add_argument("--charts-dir", default=None, help="also write the chart PNGs here")


def run(args: argparse.Namespace) -> int:
    """The ``report`` subcommand; prints where the report is."""
    import sys

    workdir = Path(args.workdir) if args.workdir else find_workdir(args.symbol, Path(args.db))
    try:
        data = write_report(
            Path(args.out),
            Path(args.db),
            symbol=args.symbol,
            checkpoint=Path(args.checkpoint) if args.checkpoint else None,
            workdir=workdir,
            session_calendar=args.session_calendar,
            charts_dir=Path(args.charts_dir) if args.charts_dir else None,
        )
    except BackfillError as exc:
        print(f"dbn-backfill report: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"dbn-backfill report: {data.symbol}, {len(data.days):,} trade dates, "
        f"{len(data.rolls)} rolls, {len(data.chunks):,} chunks -> {Path(args.out).resolve()}"
    )
    return 0

"""The report's trade-date series: the selection per trade date with expiries and the
top-two share, the rolls, and the bars of each trade date against its CME sessions.

Frames in, frames out (pandas; the bars are counted in DuckDB): :mod:`.gather` turns
them into the report model.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from dbn_backfill.store.database import table_exists, view_exists
from dbn_backfill.symbols import expiry_key, is_outright
from dbn_backfill.tradedate import Calendar
from dbn_backfill.views.report.model import BACK, ROLL


def sessions(name: str, calendar: Calendar, first: dt.date, last: dt.date) -> pd.DataFrame:
    """CME sessions of ``pandas_market_calendars`` calendar ``name`` with their trade date.

    A session's trade date is its schedule date when that is a business day of
    ``calendar``, else the next business day (contract section 3: a holiday session
    counts for the next trade date). Returns ``open``, ``close`` (UTC), ``minutes``
    (breaks excluded; an early close makes a session shorter), ``trade_date``, ``own``
    (whether the session is the trade date's own, scheduled on that date: False for a
    holiday's session counted for the next trade date).
    """
    import pandas_market_calendars as mcal

    schedule = mcal.get_calendar(name).schedule(
        start_date=pd.Timestamp(first) - pd.Timedelta(days=10),
        end_date=pd.Timestamp(last) + pd.Timedelta(days=1),
    )
    if schedule.empty:
        return pd.DataFrame(columns=["open", "close", "minutes", "trade_date", "own"])
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
    out["own"] = out["trade_date"].to_numpy() == labels[inside]
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


#: Lineage columns the report reads beyond the first release's (an older database the
#: next run has not migrated yet lacks them: read as NULL).
LINEAGE_EXTRAS = ("expiry", "runner_up_expiry", "roll_rule", "other_rule_pick")


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {str(r[1]) for r in con.execute(f"PRAGMA table_info('{table}')").fetchall()}


def _yyyymm(text: pd.Series) -> np.ndarray:
    """``YYYY-MM`` texts as ``YYYYMM`` floats (NaN for NULL)."""
    parsed = text.astype("string").str.replace("-", "", regex=False)
    return pd.to_numeric(parsed, errors="coerce").to_numpy(dtype="float64")


def _yyyy_mm(yyyymm: np.ndarray) -> list[str | None]:
    """``YYYYMM`` floats as ``YYYY-MM`` texts (None for NaN)."""
    return [None if np.isnan(v) else f"{int(v) // 100:04d}-{int(v) % 100:02d}" for v in yyyymm]


def contract_label(raw: object, expiry: object) -> str | None:
    """A contract as the report names it: raw symbol and expiry, ``MGCV0 (2010-10)``
    (the raw symbol alone when the expiry is unknown; None without a raw symbol)."""
    if not isinstance(raw, str):
        return None
    return f"{raw} ({expiry})" if isinstance(expiry, str) and expiry else raw


def selection_frame(con: duckdb.DuckDBPyConnection, symbol: str) -> pd.DataFrame:
    """The lineage's selection per trade date, with expiries and the top-two share.

    A contract is its raw symbol with its expiry (``MGCV0`` of 2010 and of 2020 are two):
    ``expiry_text`` / ``runner_up_expiry_text`` are the lineage's ``YYYY-MM`` (computed
    from the raw symbol by the section 5 year rule where the lineage has none), and
    ``contract`` / ``runner_up_contract`` the names shown, ``MGCV0 (2010-10)``.
    """
    have = _columns(con, "bars_1m_trade_dates")
    extras = ", ".join(c if c in have else f"CAST(NULL AS TEXT) AS {c}" for c in LINEAGE_EXTRAS)
    days = con.execute(
        "SELECT trade_date, source_symbol, instrument_id, volume, runner_up, "
        f"runner_up_volume, chunk_id, {extras} FROM bars_1m_trade_dates WHERE symbol = ? "
        "ORDER BY trade_date",
        [symbol],
    ).df()
    if days.empty:
        return days.assign(
            expiry_text=[], runner_up_expiry_text=[], contract=[], runner_up_contract=[],
            days_to_month=[], runner_up_days_to_month=[], share_top2=[],
        )  # fmt: skip
    days["trade_date"] = pd.to_datetime(days["trade_date"])
    years = pd.DatetimeIndex(days["trade_date"]).year.to_numpy()
    for col, raw in (("expiry", "source_symbol"), ("runner_up_expiry", "runner_up")):
        stored = _yyyymm(days[col])
        computed = _expiry(days[raw], years, symbol)
        days[col] = np.where(np.isnan(stored), computed, stored)
        days[f"{col}_text"] = _yyyy_mm(days[col].to_numpy())
    days["contract"] = [
        contract_label(r, e)
        for r, e in zip(days["source_symbol"], days["expiry_text"], strict=True)
    ]
    days["runner_up_contract"] = [
        contract_label(r, e)
        for r, e in zip(days["runner_up"], days["runner_up_expiry_text"], strict=True)
    ]
    days["days_to_month"] = _days_to_month(days["expiry"].to_numpy(), days["trade_date"])
    days["runner_up_days_to_month"] = _days_to_month(
        days["runner_up_expiry"].to_numpy(), days["trade_date"]
    )
    volume = days["volume"].astype("float64")
    runner = pd.to_numeric(days["runner_up_volume"], errors="coerce").fillna(0).astype("float64")
    total = volume + runner
    days["share_top2"] = np.where(total > 0, volume / total.where(total > 0, 1), 1.0)
    return days


def rolls_view_frame(con: duckdb.DuckDBPyConnection, symbol: str) -> pd.DataFrame:
    """The ``rolls`` view of contract section 12 for ``symbol`` (empty, with its columns,
    when the database predates the view)."""
    columns = ["trade_date", "from_contract", "from_expiry", "to_contract", "to_expiry",
               "gap", "ratio", "roll_back", "stale"]  # fmt: skip
    if not view_exists(con, "rolls"):
        return pd.DataFrame(columns=columns)
    frame = con.execute(
        f"SELECT {', '.join(columns)} FROM rolls WHERE symbol = ? ORDER BY trade_date", [symbol]
    ).df()
    frame["trade_date"] = pd.to_datetime(frame["trade_date"])
    return frame


def term_frame(con: duckdb.DuckDBPyConnection, symbol: str) -> pd.DataFrame:
    """Each outright's share of its trade date's outright volume (``bars_1m_term_structure``,
    contract section 7): ``trade_date`` (datetime64), ``source_symbol``, ``expiry``
    (``YYYY-MM``), ``contract`` (``MGCZ4 (2024-12)``), ``volume``, ``share`` (NaN on a
    day without volume), ordered by trade date and expiry. Empty, with these columns,
    when the database predates the table."""
    columns = ["trade_date", "source_symbol", "expiry", "contract", "volume", "share"]
    if not table_exists(con, "bars_1m_term_structure"):
        return pd.DataFrame(columns=columns)
    frame = con.execute(
        """
        SELECT trade_date, source_symbol, expiry,
               source_symbol || ' (' || expiry || ')' AS contract, volume,
               volume / nullif(sum(volume) OVER (PARTITION BY trade_date), 0) AS share
        FROM bars_1m_term_structure WHERE symbol = ?
        ORDER BY trade_date, expiry, source_symbol
        """,
        [symbol],
    ).df()
    frame["trade_date"] = pd.to_datetime(frame["trade_date"])
    return frame[columns]


def with_term_shares(days: pd.DataFrame, terms: pd.DataFrame) -> pd.DataFrame:
    """Add the term structure's split of each trade date's outright volume to the
    selection frame: ``day_share`` (the selected contract's share), ``earlier_share``
    (the contracts expiring before it) and ``later_share`` (after it); NaN on a trade
    date without term structure (``terms``: :func:`term_frame`).

    Contracts are ordered by expiry, ``YYYY-MM``; a contract of the selected one's
    expiry under another raw symbol counts as later.
    """
    if terms.empty:
        return days.assign(day_share=np.nan, earlier_share=np.nan, later_share=np.nan)
    picked = days[["trade_date", "source_symbol", "expiry_text"]].rename(
        columns={"source_symbol": "selected", "expiry_text": "selected_expiry"}
    )
    t = terms.merge(picked, on="trade_date", how="inner")
    mine = (t["source_symbol"] == t["selected"]) & (t["expiry"] == t["selected_expiry"])
    earlier = ~mine & (t["expiry"] < t["selected_expiry"])
    t["part"] = np.where(mine, "day_share", np.where(earlier, "earlier_share", "later_share"))
    parts = t.pivot_table(index="trade_date", columns="part", values="share", aggfunc="sum")
    parts = parts.reindex(columns=["day_share", "earlier_share", "later_share"]).fillna(0.0)
    out = days.drop(columns=["day_share", "earlier_share", "later_share"], errors="ignore")
    return out.merge(parts.reset_index(), on="trade_date", how="left")


def roll_frame(days: pd.DataFrame, view: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per trade date whose selected contract (raw symbol and expiry) differs
    from the previous one's, with the ``rolls`` view's ``gap``, ``ratio`` and ``stale``
    of that trade date (``view``: :func:`rolls_view_frame`; None or no row: unknown)."""
    columns = [
        "trade_date", "from_symbol", "to_symbol", "kind", "to_volume", "from_volume",
        "runner_up", "runner_up_volume", "share_top2", "from_expiry", "to_expiry",
        "gap", "ratio", "stale",
    ]  # fmt: skip
    if len(days) < 2:
        return pd.DataFrame(columns=columns)
    prev = days["source_symbol"].shift()
    prev_expiry = days["expiry"].shift()
    changed = days["source_symbol"].ne(prev) | (
        days["expiry"].ne(prev_expiry) & days["expiry"].notna() & prev_expiry.notna()
    )
    at = days.index[changed & prev.notna()]
    rolls = pd.DataFrame(
        {
            "trade_date": days.loc[at, "trade_date"],
            "from_symbol": prev.loc[at],
            "to_symbol": days.loc[at, "source_symbol"],
            "to_volume": days.loc[at, "volume"],
            "runner_up": days.loc[at, "runner_up"],
            "runner_up_volume": days.loc[at, "runner_up_volume"],
            "share_top2": days.loc[at, "share_top2"],
            "from_expiry": days["expiry_text"].shift().loc[at],
            "to_expiry": days.loc[at, "expiry_text"],
        }
    )
    earlier = days.loc[at, "expiry"] < prev_expiry.loc[at]
    rolls["kind"] = np.where(earlier, BACK, ROLL)
    # the from-contract's volume on the roll day is known when it is the runner-up
    rolls["from_volume"] = rolls["runner_up_volume"].where(
        rolls["runner_up"] == rolls["from_symbol"]
    )
    measured = ["gap", "ratio", "stale"]
    if view is not None and not view.empty:
        rolls = rolls.merge(view[["trade_date", *measured]], on="trade_date", how="left")
    else:
        rolls = rolls.assign(**dict.fromkeys(measured, None))
    return rolls[columns].reset_index(drop=True)


def bars_frame(
    con: duckdb.DuckDBPyConnection,
    symbol: str,
    calendar: Calendar,
    session_table: pd.DataFrame,
) -> tuple[pd.DataFrame, int]:
    """Bars of each trade date against its own CME session, and the bars outside every
    scheduled session.

    Args:
        session_table: :func:`sessions` of the span.

    Returns:
        Per trade date: ``bars`` (all its bars), ``sessions`` (scheduled sessions
        counted for it), ``expected_minutes`` (their minutes), ``session_bars`` /
        ``session_minutes`` (bars in, and minutes of, its own session: the one scheduled
        on that date, shorter on an early close; NaN without one), ``holiday_bars``
        (bars in a holiday's session counted for it, 0 without one), ``longest_hole``
        (the longest stretch of its own session without a bar, edges included; of
        every session counted for it when it has no own session); and the number of
        bars outside every scheduled session. A bar's trade date is the contract's rule
        (section 3, as the gates compute it); its session the scheduled session
        containing its open time.
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
    sess["own"] = sess["own"].astype(bool)
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
    merged["own_n"] = merged["n"].where(merged["own"])
    merged["own_minutes"] = merged["minutes"].where(merged["own"])
    merged["own_hole"] = merged["hole"].where(merged["own"])
    merged["holiday_n"] = merged["n"].where(~merged["own"], 0)
    per_day = merged.groupby("trade_date").agg(
        sessions=("open", "size"),
        expected_minutes=("minutes", "sum"),
        session_bars=("own_n", "max"),
        session_minutes=("own_minutes", "max"),
        holiday_bars=("holiday_n", "sum"),
        own_hole=("own_hole", "max"),
        any_hole=("hole", "max"),
    )
    per_day["longest_hole"] = per_day["own_hole"].fillna(per_day["any_hole"])
    per_day = per_day.drop(columns=["own_hole", "any_hole"])
    bars = per_session.groupby("trade_date")["n"].sum().rename("bars")
    out = per_day.join(bars, how="outer").reset_index()
    out["bars"] = out["bars"].fillna(0).astype("int64")
    out["holiday_bars"] = out["holiday_bars"].fillna(0).astype("int64")
    return out, outside


#: A trade date is thin when its coverage is below this fraction of the centred median
#: coverage of :data:`THIN_WINDOW` trade dates around it (coverage drifts over years).
THIN_FRACTION = 0.5
THIN_WINDOW = 61


def coverage(days: pd.DataFrame) -> pd.DataFrame:
    """Add ``coverage``, ``relative_coverage`` and ``thin`` to the per-trade-date frame
    of :func:`bars_frame` (merged with the selection) and return it.

    ``coverage`` is the bars in the trade date's own session / that session's minutes
    (an early close counts its own, fewer, minutes: a half day with a bar in every
    minute is 100 %; a holiday's session counted for the trade date, thinly traded by
    nature, is left out); without an own session, all its bars / all its sessions'
    minutes. ``relative_coverage`` is coverage / its centred local median; a trade date
    is ``thin`` when that is below :data:`THIN_FRACTION`.
    """
    own = days["session_minutes"].astype("float64")
    every = days["expected_minutes"].astype("float64")
    bars = days["session_bars"].astype("float64").where(own > 0, days["bars"].astype("float64"))
    minutes = own.where(own > 0, every)
    days["coverage"] = bars / minutes.where(minutes > 0)
    local = days["coverage"].rolling(THIN_WINDOW, center=True, min_periods=1).median()
    days["relative_coverage"] = days["coverage"] / local.where(local > 0)
    days["thin"] = (days["relative_coverage"] < THIN_FRACTION).fillna(False).astype(bool)
    return days

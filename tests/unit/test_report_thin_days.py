"""Thin days judged against each trade date's own CME session: an early close counts its
own, fewer, minutes, and a holiday's session counted for the next trade date is left
out of the coverage (a small database built here, every minute of a session a bar)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from dbn_backfill.store.database import ensure_tables
from dbn_backfill.views.report import collect

D = dt.date
SYMBOL = "MGC"
CONTRACT = "MGCZ4"
THANKSGIVING, FRIDAY = D(2024, 11, 28), D(2024, 11, 29)
#: a bar in every minute of these UTC spans (CMEGlobex_Metals sessions), but:
SESSIONS = {
    D(2024, 11, 25): ("2024-11-24 23:00", "2024-11-25 22:00"),
    D(2024, 11, 26): ("2024-11-25 23:00", "2024-11-26 22:00"),
    D(2024, 11, 27): ("2024-11-26 23:00", "2024-11-27 22:00"),
    # Thanksgiving: the holiday's session (early close 13:30 Chicago) counts for Friday
    THANKSGIVING: ("2024-11-27 23:00", "2024-11-28 19:30"),
    # the day after: an early close at 12:45 Chicago, 1,185 minutes
    FRIDAY: ("2024-11-28 23:00", "2024-11-29 18:45"),
    D(2024, 12, 2): ("2024-12-01 23:00", "2024-12-02 22:00"),
    D(2024, 12, 3): ("2024-12-02 23:00", "2024-12-03 22:00"),
}
#: ... the holiday's session trades thinly (every 100th minute), and 12-03 lost its
#: afternoon: a bar in its first 600 minutes only (43 % of 1,380: truly thin)
HOLIDAY_EVERY = 100
THIN_DAY, THIN_BARS = D(2024, 12, 3), 600


def bars(session: D) -> pd.DatetimeIndex:
    start, end = SESSIONS[session]
    stamps = pd.date_range(start, end, freq="1min", inclusive="left", tz="UTC")
    if session == THANKSGIVING:
        return stamps[::HOLIDAY_EVERY]
    if session == THIN_DAY:
        return stamps[:THIN_BARS]
    return stamps


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("thin") / "mgc.duckdb"
    stamps = pd.DatetimeIndex([]).tz_localize("UTC").append([bars(s) for s in SESSIONS])
    frame = pd.DataFrame(
        {"ts_utc": stamps, "symbol": SYMBOL, "source_symbol": CONTRACT, "open": 1.0,
         "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10}
    )  # fmt: skip
    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        ensure_tables(con, path)
        con.register("frame", frame)
        con.execute("INSERT INTO bars_1m SELECT * FROM frame")
        for day in SESSIONS:
            if day == THANKSGIVING:
                continue  # not a CME trade date: its session counts for Friday
            con.execute(
                "INSERT INTO bars_1m_trade_dates (symbol, trade_date, source_symbol, "
                "instrument_id, volume, chunk_id) VALUES (?, ?, ?, 1, 100, 'c1')",
                [SYMBOL, day, CONTRACT],
            )
    finally:
        con.close()
    return path


def test_an_early_close_with_every_minute_is_not_thin(db):
    model = collect(db)
    friday = model.days.set_index("trade_date").loc[pd.Timestamp(FRIDAY)]
    holiday = len(bars(THANKSGIVING))
    assert (friday["session_minutes"], friday["session_bars"]) == (1185, 1185)
    assert friday["holiday_bars"] == holiday and friday["bars"] == 1185 + holiday
    assert friday["coverage"] == 1.0 and not friday["thin"]
    # the old rule (every bar of the trade date over every session's minutes, the
    # holiday's included) made this complete half day the thinnest, and thin:
    old = friday["bars"] / friday["expected_minutes"]
    assert friday["expected_minutes"] == 1185 + 1230 and old < model.thin_fraction


def test_the_thinnest_table_is_topped_by_the_truly_thin_day(db):
    model = collect(db)
    thin = model.days.loc[model.days["thin"], "trade_date"]
    assert list(thin.dt.date) == [THIN_DAY]
    first = model.thinnest[0]
    assert (first.trade_date, first.bars, first.session_minutes) == (THIN_DAY, THIN_BARS, 1380)
    assert first.coverage == pytest.approx(THIN_BARS / 1380) and not first.early_close
    friday = next(d for d in model.thinnest if d.trade_date == FRIDAY)
    assert friday.early_close and friday.coverage == 1.0
    assert friday.holiday_bars == len(bars(THANKSGIVING))
    assert all(d.coverage == 1.0 for d in model.thinnest[1:])

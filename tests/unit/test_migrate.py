"""A database written before the roll rule (contract section 5a): its lineage tables
gain the new columns, filled for the old rows, ``bars_1m`` is untouched, and the views
of section 12 read it."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from dbn_backfill.schema import DDL
from dbn_backfill.store.database import ADDED_COLUMNS, ensure_tables, migrate
from dbn_backfill.tradedate import Calendar

D = dt.date
CALENDAR = Calendar(
    "CME_TradeDate",
    "America/Chicago",
    "17:00",
    np.array(["2024-03-27", "2024-03-28", "2024-04-01", "2024-04-02"], dtype="datetime64[D]"),
)

#: the lineage DDL of the release before the roll rule
OLD_LINEAGE = (
    """CREATE TABLE bars_1m_trade_dates (
      symbol TEXT NOT NULL, trade_date DATE NOT NULL,
      source_symbol TEXT NOT NULL, instrument_id BIGINT NOT NULL, volume BIGINT NOT NULL,
      runner_up TEXT, runner_up_volume BIGINT,
      chunk_id TEXT NOT NULL,
      PRIMARY KEY (symbol, trade_date))""",
    """CREATE TABLE bars_1m_chunks (
      symbol TEXT NOT NULL, chunk_id TEXT NOT NULL,
      chunk_start DATE NOT NULL, chunk_end DATE NOT NULL,
      rows BIGINT NOT NULL, content_hash TEXT NOT NULL,
      committed_at TIMESTAMPTZ NOT NULL, run_id TEXT NOT NULL,
      PRIMARY KEY (symbol, chunk_id))""",
    """CREATE TABLE bars_1m_chunk_sources (
      symbol TEXT NOT NULL, chunk_id TEXT NOT NULL,
      path TEXT NOT NULL, size BIGINT NOT NULL, sha256 TEXT NOT NULL)""",
)


def old_database(path) -> None:
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone='UTC'")
    con.execute(DDL)
    for ddl in OLD_LINEAGE:
        con.execute(ddl)
    for day, sym, close in [
        (D(2024, 3, 28), "MGCJ4", 2000.0),
        (D(2024, 4, 1), "MGCM4", 2010.0),
    ]:
        ts = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=14, minutes=30)
        con.execute(
            "INSERT INTO bars_1m VALUES (?, 'MGC', ?, ?, ?, ?, ?, 5)",
            [ts.to_pydatetime(), sym, close, close + 1, close - 1, close],
        )
        con.execute(
            "INSERT INTO bars_1m_trade_dates VALUES ('MGC', ?, ?, 7, 5, 'MGCM4', 3, 'c1')",
            [day, sym],
        )
    con.execute(
        "INSERT INTO bars_1m_chunks VALUES ('MGC', 'c1', '2024-03-28', '2024-04-01', 2, 'h', "
        "now(), 'r0')"
    )
    con.close()


def test_an_older_lineage_is_migrated_and_read_by_the_views(tmp_path):
    db = tmp_path / "old.duckdb"
    old_database(db)
    con = duckdb.connect(str(db))
    con.execute("SET TimeZone='UTC'")
    bars_before = con.execute("SELECT * FROM bars_1m ORDER BY ALL").fetchall()
    ensure_tables(con, db, CALENDAR)
    assert con.execute("SELECT * FROM bars_1m ORDER BY ALL").fetchall() == bars_before
    for table, columns in ADDED_COLUMNS.items():
        have = [r[1] for r in con.execute(f"PRAGMA table_info('{table}')").fetchall()]
        assert have[-len(columns) :] == [c for c, _ in columns]
    rows = con.execute(
        "SELECT trade_date, expiry, runner_up_expiry, roll_rule, basis_day, basis_volume, "
        "runner_up_basis_volume, other_rule_pick, session_start_utc "
        "FROM bars_1m_trade_dates ORDER BY trade_date"
    ).fetchall()
    assert [r[:8] for r in rows] == [
        (D(2024, 3, 28), "2024-04", "2024-06", "same_day_volume", D(2024, 3, 28), 5, 3, None),
        (D(2024, 4, 1), "2024-06", "2024-06", "same_day_volume", D(2024, 4, 1), 5, 3, None),
    ]
    assert pd.Timestamp(rows[1][8]) == pd.Timestamp("2024-03-28 22:00", tz="UTC")
    # the roll J4 -> M4 is seen; its gap is unknown until the chunk is committed again
    assert con.execute("SELECT * FROM rolls").fetchall() == [
        ("MGC", D(2024, 4, 1), "MGCJ4", "2024-04", "MGCM4", "2024-06", None, None, False, None)
    ]
    adj = con.execute("SELECT close FROM bars_1m_adj_diff ORDER BY ts_utc").fetchall()
    assert adj == [(2000.0,), (2010.0,)]  # unknown gaps adjust nothing
    con.execute("BEGIN")
    assert migrate(con, CALENDAR) == []  # a second time: nothing to do
    con.execute("COMMIT")
    con.close()

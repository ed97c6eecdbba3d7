"""DuckDB access: open, verify the table shape, create tables exactly once, migrate the
lineage of an older database, and (re)create the derived views.

Lineage (contract section 7) lives in four tables next to ``bars_1m``:
``bars_1m_trade_dates`` (the selection per trade date, with its roll rule and basis
day), ``bars_1m_term_structure`` (per trade date every outright with valid bars:
expiry, volume, bars, last bar), ``bars_1m_chunks`` (per committed chunk: rows,
content hash, lineage hash, commit time) and ``bars_1m_chunk_sources`` (the DBN files a
chunk came from: path, size, sha256). The views of contract section 12 (``rolls``,
``bars_1m_adj_factors``, ``bars_1m_adj_diff``, ``bars_1m_adj_ratio``) are computed
from them and ``bars_1m`` on every read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from dbn_backfill.errors import LockError, SchemaMismatchError
from dbn_backfill.schema import COLUMNS, DDL, PRIMARY_KEY, TABLE
from dbn_backfill.symbols import expiry_key
from dbn_backfill.tradedate import Calendar

LINEAGE_DDL = (
    """
    CREATE TABLE IF NOT EXISTS bars_1m_trade_dates (
      symbol TEXT NOT NULL, trade_date DATE NOT NULL,
      source_symbol TEXT NOT NULL, instrument_id BIGINT NOT NULL, volume BIGINT NOT NULL,
      runner_up TEXT, runner_up_volume BIGINT,
      chunk_id TEXT NOT NULL,
      expiry TEXT, runner_up_expiry TEXT, roll_rule TEXT, basis_day DATE,
      basis_volume BIGINT, runner_up_basis_volume BIGINT, other_rule_pick TEXT,
      session_start_utc TIMESTAMPTZ,
      PRIMARY KEY (symbol, trade_date))
    """,
    """
    CREATE TABLE IF NOT EXISTS bars_1m_term_structure (
      symbol TEXT NOT NULL, trade_date DATE NOT NULL, source_symbol TEXT NOT NULL,
      expiry TEXT NOT NULL, instrument_id BIGINT NOT NULL, volume BIGINT NOT NULL,
      bars BIGINT NOT NULL, first_ts_utc TIMESTAMPTZ NOT NULL,
      last_ts_utc TIMESTAMPTZ NOT NULL, last_close DOUBLE NOT NULL,
      chunk_id TEXT NOT NULL,
      PRIMARY KEY (symbol, trade_date, source_symbol))
    """,
    """
    CREATE TABLE IF NOT EXISTS bars_1m_chunks (
      symbol TEXT NOT NULL, chunk_id TEXT NOT NULL,
      chunk_start DATE NOT NULL, chunk_end DATE NOT NULL,
      rows BIGINT NOT NULL, content_hash TEXT NOT NULL,
      committed_at TIMESTAMPTZ NOT NULL, run_id TEXT NOT NULL,
      lineage_hash TEXT,
      PRIMARY KEY (symbol, chunk_id))
    """,
    """
    CREATE TABLE IF NOT EXISTS bars_1m_chunk_sources (
      symbol TEXT NOT NULL, chunk_id TEXT NOT NULL,
      path TEXT NOT NULL, size BIGINT NOT NULL, sha256 TEXT NOT NULL)
    """,
)


def connect(db: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open ``db`` with the session zone set to UTC.

    Raises:
        LockError: another process has the database open (DuckDB's file lock).
        SchemaMismatchError: the file exists but is not a DuckDB database.
    """
    if read_only and not Path(db).exists():
        raise SchemaMismatchError(f"database {db} does not exist")
    try:
        con = duckdb.connect(str(db), read_only=read_only)
    except duckdb.IOException as exc:
        message = str(exc)
        if "lock" in message.lower():
            raise LockError(in_use_message(db, message)) from exc
        raise SchemaMismatchError(f"{db} is not a DuckDB database: {message}") from exc
    except duckdb.Error as exc:
        raise SchemaMismatchError(f"{db} cannot be opened as a DuckDB database: {exc}") from exc
    con.execute("SET TimeZone='UTC'").fetchall()
    return con


def in_use_message(db: Path, duckdb_message: str) -> str:
    """What to tell the user when DuckDB's lock on ``db`` is held elsewhere; DuckDB's
    message names the holder ("Conflicting lock is held in <program> (PID <n>)")."""
    found = re.search(r"held in (.+?) \(PID (\d+)\)", duckdb_message)
    holder = f"process {found.group(2)} ({found.group(1)})" if found else "another process"
    return (
        f"database {db} is open in {holder} (a notebook's connection, read-only ones "
        f"included, blocks the single writer); close it and rerun. Nothing was changed. "
        f"DuckDB said: {duckdb_message}"
    )


def check_not_open_elsewhere(db: Path) -> None:
    """Open an existing ``db`` read-write for a moment, before any work, so a
    database held by another process stops the run at once (a missing one is
    created by the merge).

    Raises:
        LockError: another process holds it open (the message names the process).
        SchemaMismatchError: it is not a DuckDB database.
    """
    if Path(db).exists():
        connect(db).close()


def first_row(con: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    """The first row of the pending result, consuming all of it (DuckDB 2 refuses new
    work on a connection with an unfinished result)."""
    rows = con.fetchall()
    return rows[0] if rows else None


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether ``con``'s database has a table named ``name``."""
    row = first_row(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'",
            [name],
        )
    )
    return bool(row and row[0])


def view_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether ``con``'s database has a (persistent) view named ``name``."""
    row = first_row(
        con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND NOT temporary",
            [name],
        )
    )
    return bool(row and row[0])


def shape_problems(con: duckdb.DuckDBPyConnection) -> list[str]:
    """How an existing ``bars_1m`` differs from section 6 (empty: it matches)."""
    info = con.execute(f"PRAGMA table_info('{TABLE}')").fetchall()
    found = [(r[1], str(r[2]).upper(), bool(r[3])) for r in info]
    expected = [(n, t, nn) for n, t, nn in COLUMNS]
    problems = []
    if found != expected:
        problems.append(f"columns are {found}, expected {expected}")
    pk = con.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() "
        "WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'",
        [TABLE],
    ).fetchall()
    keys = [tuple(r[0]) for r in pk]
    if keys != [PRIMARY_KEY]:
        problems.append(f"primary key is {keys or 'missing'}, expected {PRIMARY_KEY}")
    return problems


def check_shape(con: duckdb.DuckDBPyConnection, db: Path) -> bool:
    """Verify an existing ``bars_1m``; returns whether it exists.

    Raises:
        SchemaMismatchError: it exists with another shape (nothing is changed).
    """
    if not table_exists(con, TABLE):
        return False
    problems = shape_problems(con)
    if problems:
        raise SchemaMismatchError(
            f"{db}: table {TABLE} exists with another shape (contract section 6): "
            + "; ".join(problems)
            + ". Nothing was changed; migrate or drop it yourself."
        )
    return True


#: Columns added to lineage tables after their first release (table -> [(name, type)]),
#: in table order: :func:`migrate` adds those an older database lacks.
ADDED_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "bars_1m_trade_dates": [
        ("expiry", "TEXT"),
        ("runner_up_expiry", "TEXT"),
        ("roll_rule", "TEXT"),
        ("basis_day", "DATE"),
        ("basis_volume", "BIGINT"),
        ("runner_up_basis_volume", "BIGINT"),
        ("other_rule_pick", "TEXT"),
        ("session_start_utc", "TIMESTAMPTZ"),
    ],
    "bars_1m_chunks": [("lineage_hash", "TEXT")],
}

#: The derived views of contract section 12, in creation order (each reads the ones
#: before it). Cheap: ``rolls`` and the factors read one row per trade date; the
#: adjusted views are one ASOF join of ``bars_1m`` to the factors on the trade date's
#: first instant.
VIEWS: tuple[tuple[str, str], ...] = (
    (
        "rolls",
        """
        WITH days AS (
          SELECT symbol, trade_date, source_symbol, expiry,
                 lag(source_symbol) OVER w AS from_contract,
                 lag(expiry) OVER w AS from_expiry
          FROM bars_1m_trade_dates
          WINDOW w AS (PARTITION BY symbol ORDER BY trade_date))
        SELECT d.symbol, d.trade_date, d.from_contract, d.from_expiry,
               d.source_symbol AS to_contract, d.expiry AS to_expiry,
               CAST(CASE WHEN t.last_close IS NULL THEN NULL
                         WHEN f.last_close IS NULL THEN 0
                         ELSE t.last_close - f.last_close END AS DOUBLE) AS gap,
               CAST(CASE WHEN t.last_close IS NULL THEN NULL
                         WHEN f.last_close IS NULL THEN 1
                         ELSE t.last_close / f.last_close END AS DOUBLE) AS ratio,
               d.expiry < d.from_expiry AS roll_back,
               CASE WHEN t.last_close IS NULL THEN NULL
                    ELSE f.last_close IS NULL
                         OR greatest(t.last_ts_utc, f.last_ts_utc)
                            - least(t.last_ts_utc, f.last_ts_utc) > INTERVAL 5 MINUTE
               END AS stale
        FROM days d
        LEFT JOIN bars_1m_term_structure t
          ON t.symbol = d.symbol AND t.trade_date = d.trade_date
         AND t.source_symbol = d.source_symbol
        LEFT JOIN bars_1m_term_structure f
          ON f.symbol = d.symbol AND f.trade_date = d.trade_date
         AND f.source_symbol = d.from_contract AND f.expiry = d.from_expiry
        WHERE d.from_contract IS NOT NULL
          AND (d.source_symbol <> d.from_contract OR d.expiry IS DISTINCT FROM d.from_expiry)
        """,
    ),
    (
        "bars_1m_adj_factors",
        """
        SELECT d.symbol, d.trade_date, d.session_start_utc,
               coalesce(sum(coalesce(r.gap, 0)) OVER w, 0) AS adj_diff,
               coalesce(product(coalesce(r.ratio, 1)) OVER w, 1) AS adj_ratio
        FROM bars_1m_trade_dates d
        LEFT JOIN rolls r ON r.symbol = d.symbol AND r.trade_date = d.trade_date
        WINDOW w AS (PARTITION BY d.symbol ORDER BY d.trade_date
                     ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)
        """,
    ),
    (
        "bars_1m_adj_diff",
        """
        SELECT b.ts_utc, b.symbol, b.source_symbol,
               b.open + coalesce(f.adj_diff, 0) AS open,
               b.high + coalesce(f.adj_diff, 0) AS high,
               b.low + coalesce(f.adj_diff, 0) AS low,
               b.close + coalesce(f.adj_diff, 0) AS close,
               b.volume
        FROM bars_1m b ASOF LEFT JOIN bars_1m_adj_factors f
          ON b.symbol = f.symbol AND b.ts_utc >= f.session_start_utc
        """,
    ),
    (
        "bars_1m_adj_ratio",
        """
        SELECT b.ts_utc, b.symbol, b.source_symbol,
               b.open * coalesce(f.adj_ratio, 1) AS open,
               b.high * coalesce(f.adj_ratio, 1) AS high,
               b.low * coalesce(f.adj_ratio, 1) AS low,
               b.close * coalesce(f.adj_ratio, 1) AS close,
               b.volume
        FROM bars_1m b ASOF LEFT JOIN bars_1m_adj_factors f
          ON b.symbol = f.symbol AND b.ts_utc >= f.session_start_utc
        """,
    ),
)


def ensure_tables(
    con: duckdb.DuckDBPyConnection, db: Path, calendar: Calendar | None = None
) -> None:
    """Create ``bars_1m`` exactly once (after verifying any existing one) and the
    lineage, migrate an older lineage (:func:`migrate`), and (re)create the views."""
    exists = check_shape(con, db)
    con.execute("BEGIN")
    if not exists:
        con.execute(DDL)
    for ddl in LINEAGE_DDL:
        con.execute(ddl)
    migrate(con, calendar)
    for name, sql in VIEWS:
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
    con.execute("COMMIT")


def migrate(con: duckdb.DuckDBPyConnection, calendar: Calendar | None = None) -> list[str]:
    """Bring the lineage of a database written before the roll rule (contract section
    5a) to the current shape, in the open transaction; ``bars_1m`` is never touched.

    * adds the columns of :data:`ADDED_COLUMNS` a table lacks (``ALTER TABLE ... ADD
      COLUMN``, NULL in existing rows);
    * fills them for the trade dates that have none (``roll_rule`` NULL): the only rule
      there was, ``same_day_volume``, so the basis day is the trade date and the basis
      volumes are the volumes; the expiries from the raw symbols (section 5, rule 2);
      the session start from ``calendar`` (NULL without one). ``other_rule_pick``
      stays NULL (unknown), and the term structure of those trade dates stays empty
      until a run commits them again (their content hash predates this version, so the
      next run over their range does).

    Returns:
        ``table.column`` of every column added.
    """
    added = []
    for table, columns in ADDED_COLUMNS.items():
        have = {r[1] for r in con.execute(f"PRAGMA table_info('{table}')").fetchall()}
        for name, kind in columns:
            if name not in have:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
                added.append(f"{table}.{name}")
    legacy = con.execute(
        "SELECT symbol, trade_date, source_symbol, runner_up FROM bars_1m_trade_dates "
        "WHERE roll_rule IS NULL"
    ).fetchall()
    if legacy:
        _fill_legacy(con, legacy, calendar)
    return added


def _fill_legacy(
    con: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]], calendar: Calendar | None
) -> None:
    def expiry(raw: str | None, symbol: str, year: int) -> str | None:
        if raw is None:
            return None
        try:
            y, m = expiry_key(raw, symbol, year)
        except ValueError:
            return None
        return f"{y:04d}-{m:02d}"

    filled = pa.table(  # noqa: F841 (read by the statement)
        {
            "symbol": [r[0] for r in rows],
            "trade_date": pa.array([r[1] for r in rows], pa.date32()),
            "expiry": [expiry(r[2], r[0], r[1].year) for r in rows],
            "runner_up_expiry": [expiry(r[3], r[0], r[1].year) for r in rows],
            "session_start_utc": pa.array(
                [
                    calendar.session_bounds_utc(r[1], r[1])[0].to_pydatetime()
                    if calendar is not None and calendar.first <= r[1] <= calendar.last
                    else None
                    for r in rows
                ],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    con.execute(
        """
        UPDATE bars_1m_trade_dates AS t SET
          expiry = f.expiry, runner_up_expiry = f.runner_up_expiry,
          roll_rule = 'same_day_volume', basis_day = t.trade_date,
          basis_volume = t.volume, runner_up_basis_volume = t.runner_up_volume,
          session_start_utc = f.session_start_utc
        FROM filled AS f
        WHERE t.symbol = f.symbol AND t.trade_date = f.trade_date
        """
    )

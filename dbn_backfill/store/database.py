"""DuckDB access: open, verify the table shape, create tables exactly once.

Lineage (contract section 7) lives in three tables next to ``bars_1m``:
``bars_1m_trade_dates`` (the selection per trade date), ``bars_1m_chunks`` (per
committed chunk: rows, content hash, commit time) and ``bars_1m_chunk_sources``
(the DBN files a chunk came from: path, size, sha256).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb

from dbn_backfill.errors import LockError, SchemaMismatchError
from dbn_backfill.schema import COLUMNS, DDL, PRIMARY_KEY, TABLE

LINEAGE_DDL = (
    """
    CREATE TABLE IF NOT EXISTS bars_1m_trade_dates (
      symbol TEXT NOT NULL, trade_date DATE NOT NULL,
      source_symbol TEXT NOT NULL, instrument_id BIGINT NOT NULL, volume BIGINT NOT NULL,
      runner_up TEXT, runner_up_volume BIGINT,
      chunk_id TEXT NOT NULL,
      PRIMARY KEY (symbol, trade_date))
    """,
    """
    CREATE TABLE IF NOT EXISTS bars_1m_chunks (
      symbol TEXT NOT NULL, chunk_id TEXT NOT NULL,
      chunk_start DATE NOT NULL, chunk_end DATE NOT NULL,
      rows BIGINT NOT NULL, content_hash TEXT NOT NULL,
      committed_at TIMESTAMPTZ NOT NULL, run_id TEXT NOT NULL,
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


def ensure_tables(con: duckdb.DuckDBPyConnection, db: Path) -> None:
    """Create ``bars_1m`` exactly once (after verifying any existing one) and the lineage."""
    exists = check_shape(con, db)
    con.execute("BEGIN")
    if not exists:
        con.execute(DDL)
    for ddl in LINEAGE_DDL:
        con.execute(ddl)
    con.execute("COMMIT")

"""``dbn-backfill rolls``: the roll table of contract section 12, read-only.

One row per roll (a trade date whose contract differs from the previous trade date's
with rows), from the database's ``rolls`` view: ``symbol, trade_date, from_contract,
from_expiry, to_contract, to_expiry, gap, ratio, roll_back, stale``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from dbn_backfill.errors import BackfillError
from dbn_backfill.store.database import connect, table_exists, view_exists

#: The columns of the roll table, in order (contract section 12).
COLUMNS = (
    "symbol",
    "trade_date",
    "from_contract",
    "from_expiry",
    "to_contract",
    "to_expiry",
    "gap",
    "ratio",
    "roll_back",
    "stale",
)
FORMATS = ("table", "csv", "parquet", "json")


def read_rolls(db: Path, symbol: str | None = None) -> pd.DataFrame:
    """The rolls of ``symbol`` (every root when None), by symbol and trade date.

    Raises:
        SchemaMismatchError: ``db`` is missing or not a DuckDB database.
        BackfillError: it holds no ``rolls`` view (no backfill of this version ran on it).
    """
    con = connect(db, read_only=True)
    try:
        if not view_exists(con, "rolls"):
            what = "lineage" if not table_exists(con, "bars_1m_trade_dates") else "rolls view"
            raise BackfillError(f"{db} holds no {what}: run a backfill of this version on it first")
        where = "WHERE symbol = ?" if symbol else ""
        frame = con.execute(
            f"SELECT {', '.join(COLUMNS)} FROM rolls {where} ORDER BY symbol, trade_date",
            [symbol] if symbol else [],
        ).df()
    finally:
        con.close()
    frame["trade_date"] = pd.to_datetime(frame["trade_date"]).dt.date
    return frame


def write(frame: pd.DataFrame, fmt: str, out: Path | None) -> None:
    """Write ``frame`` as ``fmt`` to ``out`` (stdout when None; parquet needs a file).

    Raises:
        BackfillError: parquet without ``out``.
    """
    if fmt == "parquet":
        if out is None:
            raise BackfillError("--format parquet needs --out FILE")
        frame.to_parquet(out, index=False)
        return
    if fmt == "csv":
        text = frame.to_csv(index=False)
    elif fmt == "json":
        text = frame.assign(trade_date=frame["trade_date"].astype(str)).to_json(
            orient="records", indent=1
        )
        text += "\n"
    else:
        with pd.option_context("display.max_rows", None, "display.width", 200):
            text = (frame.to_string(index=False) if len(frame) else "no rolls") + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        Path(out).write_text(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True, help="DuckDB file of a backfill")
    parser.add_argument("--symbol", default=None, help="one root (default: every root)")
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("--out", default=None, help="file to write (default: stdout)")


def run(args: argparse.Namespace) -> int:
    """Returns: 0, or 2 when the database cannot be read."""
    try:
        frame = read_rolls(Path(args.db), args.symbol)
        write(frame, args.format, Path(args.out) if args.out else None)
    except BackfillError as exc:
        print(f"dbn-backfill rolls: error: {exc}", file=sys.stderr)
        return 2
    return 0

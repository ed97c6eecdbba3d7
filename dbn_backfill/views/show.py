"""Print what a backfill stored: per-contract row counts, lineage and a few rows."""

from __future__ import annotations

from pathlib import Path

from dbn_backfill.store.database import connect


def show(db: Path, symbol: str | None = None, rows: int = 5) -> None:
    """Print, for ``symbol`` (every root when None): bars per contract, trade dates per
    root, and the first ``rows`` rows.

    Raises:
        SchemaMismatchError: ``db`` is not a DuckDB database.
    """
    con = connect(db, read_only=True)
    try:
        where = "WHERE symbol = ?" if symbol else ""
        params = [symbol] if symbol else []
        print(f"{db}: bars_1m")
        print(
            con.sql(
                "SELECT symbol, source_symbol, count(*) AS bars, min(ts_utc) AS first, "
                f"max(ts_utc) AS last FROM bars_1m {where} GROUP BY ALL ORDER BY first",
                params=params,
            )
        )
        print(
            con.sql(
                "SELECT symbol, count(*) AS trade_dates, "
                "count(DISTINCT source_symbol) AS contracts, min(trade_date) AS first, "
                f"max(trade_date) AS last FROM bars_1m_trade_dates {where} "
                "GROUP BY symbol ORDER BY symbol",
                params=params,
            )
        )
        print(
            con.sql(
                f"SELECT * FROM bars_1m {where} ORDER BY ts_utc LIMIT {int(rows)}", params=params
            )
        )
    finally:
        con.close()

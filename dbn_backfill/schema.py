"""The one definition of ``bars_1m`` (contract section 6): DDL, Arrow schema, pandera checks."""

from __future__ import annotations

import pyarrow as pa

TABLE = "bars_1m"

#: (name, DuckDB type, NOT NULL) in table order.
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("ts_utc", "TIMESTAMP WITH TIME ZONE", True),
    ("symbol", "VARCHAR", True),
    ("source_symbol", "VARCHAR", True),
    ("open", "DOUBLE", True),
    ("high", "DOUBLE", True),
    ("low", "DOUBLE", True),
    ("close", "DOUBLE", True),
    ("volume", "BIGINT", True),
)
PRIMARY_KEY = ("symbol", "ts_utc")

DDL = f"""
CREATE TABLE {TABLE} (
  ts_utc        TIMESTAMPTZ NOT NULL,
  symbol        TEXT        NOT NULL,
  source_symbol TEXT        NOT NULL,
  open DOUBLE NOT NULL, high DOUBLE NOT NULL, low DOUBLE NOT NULL, close DOUBLE NOT NULL,
  volume        BIGINT      NOT NULL,
  PRIMARY KEY (symbol, ts_utc)
)
"""

ARROW_SCHEMA = pa.schema(
    [
        pa.field("ts_utc", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("source_symbol", pa.string(), nullable=False),
        pa.field("open", pa.float64(), nullable=False),
        pa.field("high", pa.float64(), nullable=False),
        pa.field("low", pa.float64(), nullable=False),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("volume", pa.int64(), nullable=False),
    ]
)


#: One row per (symbol, trade date): the selection the build writes and
#: ``bars_1m_trade_dates`` stores (same columns, same order; the columns after
#: ``chunk_id`` came with the roll rule, contract section 5a, and are added to an
#: older table by :func:`dbn_backfill.store.database.migrate`).
SELECTION_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("trade_date", pa.date32()),
        ("source_symbol", pa.string()),
        ("instrument_id", pa.int64()),
        ("volume", pa.int64()),
        ("runner_up", pa.string()),
        ("runner_up_volume", pa.int64()),
        ("chunk_id", pa.string()),
        ("expiry", pa.string()),  # YYYY-MM of source_symbol (contract section 5, rule 2)
        ("runner_up_expiry", pa.string()),
        ("roll_rule", pa.string()),  # same_day_volume | prior_day_volume
        ("basis_day", pa.date32()),  # the day whose volumes ranked (trade_date itself or B)
        ("basis_volume", pa.int64()),  # the winner's volume on basis_day
        ("runner_up_basis_volume", pa.int64()),
        ("other_rule_pick", pa.string()),  # the other rule's contract (null: unknown)
        ("session_start_utc", pa.timestamp("us", tz="UTC")),  # first instant of the trade date
    ]
)

#: One row per (symbol, trade date, outright of the root with valid bars that day): the
#: day's term structure (contract section 7), table ``bars_1m_term_structure``.
TERM_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("trade_date", pa.date32()),
        ("source_symbol", pa.string()),
        ("expiry", pa.string()),
        ("instrument_id", pa.int64()),
        ("volume", pa.int64()),
        ("bars", pa.int64()),
        ("first_ts_utc", pa.timestamp("us", tz="UTC")),
        ("last_ts_utc", pa.timestamp("us", tz="UTC")),
        ("last_close", pa.float64()),
        ("chunk_id", pa.string()),
    ]
)


def bars_schema(symbol: str):  # type: ignore[no-untyped-def]
    """The pandera schema a chunk's bars must satisfy before they may be committed.

    Section 4 row rules plus the key: whole-minute UTC stamps, finite positive prices,
    consistent OHLC, non-negative volume, one bar per (symbol, ts_utc), and the
    configured root in ``symbol``.
    """
    import pandera.pandas as pa_

    prices = {
        name: pa_.Column(
            "float64",
            [pa_.Check(lambda s: s.notna() & (s > 0) & (s < float("inf")), name="finite_positive")],
            nullable=False,
        )
        for name in ("open", "high", "low", "close")
    }
    return pa_.DataFrameSchema(
        {
            "ts_utc": pa_.Column(
                "datetime64[us, UTC]",
                pa_.Check(lambda s: (s.astype("int64") % 60_000_000) == 0, name="whole_minute"),
                nullable=False,
            ),
            "symbol": pa_.Column(str, pa_.Check.equal_to(symbol), nullable=False),
            "source_symbol": pa_.Column(str, nullable=False),
            **prices,
            "volume": pa_.Column("int64", pa_.Check.ge(0), nullable=False),
        },
        checks=[
            pa_.Check(
                lambda df: df["high"] >= df[["open", "close", "low"]].max(axis=1),
                name="high_is_max",
            ),
            pa_.Check(lambda df: df["low"] <= df[["open", "close"]].min(axis=1), name="low_is_min"),
        ],
        unique=["symbol", "ts_utc"],
        strict=True,
        ordered=True,
    )

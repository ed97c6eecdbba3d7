"""Which records are outrights of the root, and which contract is front (sections 2 and 5)."""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd

MONTH_CODES = "FGHJKMNQUVXZ"


@lru_cache(maxsize=64)
def outright_pattern(symbol: str) -> re.Pattern[str]:
    """``^{symbol}[FGHJKMNQUVXZ][0-9]{1,2}$``: an outright future of root ``symbol``."""
    return re.compile(rf"^{re.escape(symbol)}[{MONTH_CODES}][0-9]{{1,2}}$")


def is_outright(raw_symbol: str, symbol: str) -> bool:
    return outright_pattern(symbol).match(raw_symbol) is not None


def expiry_key(raw_symbol: str, symbol: str, trade_year: int) -> tuple[int, int]:
    """(year, month) of an outright's expiry as seen on a trade date of ``trade_year``.

    The year is the smallest year >= ``trade_year - 1`` whose last one or two digits
    equal the symbol's digits: ``MGCZ9`` traded in 2024 is 2029, ``MGCG0`` traded in
    2019 is 2020, ``MGCZ24`` is 2024.

    Raises:
        ValueError: ``raw_symbol`` is not an outright of ``symbol``.
    """
    if not is_outright(raw_symbol, symbol):
        raise ValueError(f"{raw_symbol!r} is not an outright of {symbol!r}")
    tail = raw_symbol[len(symbol) :]
    month = MONTH_CODES.index(tail[0]) + 1
    digits = tail[1:]
    modulus = 10 ** len(digits)
    floor = trade_year - 1
    year = floor + (int(digits) - floor) % modulus
    return year, month


def select_front(volumes: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """Front contract per trade date from per-contract volume totals (section 5).

    Args:
        volumes: one row per (trade_date, raw_symbol) with columns ``trade_date``
            (datetime64), ``raw_symbol``, ``volume`` (total over the date's valid
            outright bars) and ``instrument_id`` (the id carrying most of that volume).
        symbol: the root.

    Returns:
        One row per trade date: ``trade_date, source_symbol, instrument_id, volume,
        runner_up, runner_up_volume`` (runner-up columns null when only one contract
        traded). Ranking: volume desc, then earliest expiry, then raw symbol asc.
    """
    columns = [
        "trade_date",
        "source_symbol",
        "instrument_id",
        "volume",
        "runner_up",
        "runner_up_volume",
    ]
    if volumes.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    frame = volumes.copy()
    frame["raw_symbol"] = frame["raw_symbol"].astype(str)  # lexicographic, not category order
    years = pd.DatetimeIndex(frame["trade_date"]).year.to_numpy()
    keys = [
        expiry_key(s, symbol, int(y))
        for s, y in zip(frame["raw_symbol"].to_numpy(), years, strict=True)
    ]
    frame["expiry"] = np.array([y * 100 + m for y, m in keys], dtype="int64")
    frame = frame.sort_values(
        ["trade_date", "volume", "expiry", "raw_symbol"],
        ascending=[True, False, True, True],
        kind="mergesort",
    )
    frame["rank"] = frame.groupby("trade_date", sort=False).cumcount()
    first = frame[frame["rank"] == 0].set_index("trade_date")
    second = frame[frame["rank"] == 1].set_index("trade_date")
    out = pd.DataFrame(
        {
            "source_symbol": first["raw_symbol"],
            "instrument_id": first["instrument_id"].astype("int64"),
            "volume": first["volume"].astype("int64"),
        }
    )
    out["runner_up"] = second["raw_symbol"].reindex(out.index)
    out["runner_up_volume"] = second["volume"].reindex(out.index).astype("Int64")
    return out.reset_index()[columns]

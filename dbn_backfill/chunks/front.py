"""The front contract of each trade date: the ranking of contract section 5."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dbn_backfill.symbols import expiry_key


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

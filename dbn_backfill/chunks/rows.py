"""Row rules for outright records in range (contract sections 2 and 4), vectorized.

Works on a pandas frame of decoded records with the columns of
:data:`dbn_backfill.sources.decode.DECODED_SCHEMA` (prices still fixed-point integers).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dbn_backfill.tradedate import NS_PER_MINUTE

UNDEF_PRICE = np.iinfo(np.int64).max
INT64_MAX = np.iinfo(np.int64).max
PRICE_COLUMNS = ("open", "high", "low", "close")
VALUE_COLUMNS = (*PRICE_COLUMNS, "volume")


def to_price(fixed: np.ndarray) -> np.ndarray:
    """Fixed-point 1e-9 integers to float64 exactly as ``databento`` does: ``x / 1e9``."""
    return np.asarray(fixed, dtype="int64") / 1e9


def invalid_mask(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Which rows break section 4, and why.

    Returns:
        ``(mask, reasons)``: a boolean array, and for each row a string naming the
        broken rules (empty for valid rows).
    """
    n = len(frame)
    ts = frame["ts_event"].to_numpy(dtype="int64")
    fixed = {c: frame[c].to_numpy(dtype="int64") for c in PRICE_COLUMNS}
    price = {c: to_price(v) for c, v in fixed.items()}
    volume = frame["volume"].to_numpy(dtype="uint64")
    rules: list[tuple[str, np.ndarray]] = [("ts_event not a whole minute", ts % NS_PER_MINUTE != 0)]
    for c in PRICE_COLUMNS:
        rules.append((f"{c} is UNDEF_PRICE", fixed[c] == UNDEF_PRICE))
        rules.append((f"{c} not finite and > 0", ~(np.isfinite(price[c]) & (price[c] > 0))))
    hi_max = np.maximum(np.maximum(price["open"], price["close"]), price["low"])
    lo_min = np.minimum(price["open"], price["close"])
    rules.append(("high < max(open, close, low)", price["high"] < hi_max))
    rules.append(("low > min(open, close)", price["low"] > lo_min))
    rules.append(("volume does not fit int64", volume > np.uint64(INT64_MAX)))
    mask = np.zeros(n, dtype=bool)
    reasons = np.full(n, "", dtype=object)
    for name, broken in rules:
        if broken.any():
            mask |= broken
            reasons[broken] = reasons[broken] + np.where(reasons[broken] == "", "", "; ") + name
    return mask, reasons


def describe(row: pd.Series) -> str:
    """One record as a user reads it: file, instrument, symbol, ts_event and values."""
    ts = int(row["ts_event"])
    return (
        f"file {row['source']}, instrument_id {int(row['instrument_id'])}, "
        f"raw symbol {row['raw_symbol']}, ts_event {ts} ({pd.Timestamp(ts, unit='ns', tz='UTC')}), "
        f"open {int(row['open']) / 1e9!r} high {int(row['high']) / 1e9!r} "
        f"low {int(row['low']) / 1e9!r} close {int(row['close']) / 1e9!r} "
        f"volume {int(row['volume'])}"
    )


def dedupe(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Drop identical repeats of ``(instrument_id, ts_event)``; report the conflicts.

    Identical records (same open, high, low, close, volume) seen in overlapping files
    count once. Records that differ, and two instrument ids that resolve to the same
    raw symbol with a bar at the same ``ts_event``, are errors.

    Returns:
        ``(deduplicated frame, error messages)``.
    """
    errors: list[str] = []
    key = ["instrument_id", "ts_event"]
    dup = frame.duplicated(key, keep=False)
    if dup.any():
        repeated = frame[dup]
        distinct = repeated.drop_duplicates([*key, *VALUE_COLUMNS])
        conflict = distinct.duplicated(key, keep=False)
        if conflict.any():
            first = distinct[conflict].sort_values(key).head(2)
            errors.append(
                f"{int(conflict.sum())} conflicting duplicate records of the same "
                "(instrument_id, ts_event) with different values (contract section 4), "
                "first pair: " + " <> ".join(describe(first.iloc[i]) for i in range(len(first)))
            )
        frame = frame.drop_duplicates([*key, *VALUE_COLUMNS])
    clash = frame.duplicated(["raw_symbol", "ts_event"], keep=False)
    if clash.any():
        pair = frame[clash].sort_values(["raw_symbol", "ts_event"]).head(2)
        errors.append(
            "two instrument ids resolve to the same raw symbol with a bar at the same "
            "ts_event (contract section 4): "
            + " <> ".join(describe(pair.iloc[i]) for i in range(len(pair)))
        )
    return frame, errors

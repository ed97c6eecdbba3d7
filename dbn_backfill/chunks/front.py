"""The front contract of each trade date: the ranking of contract section 5 under the
roll rules of section 5a, and the day's term structure (section 7) it is ranked from.

Pure functions on small frames (one row per trade date and contract), no I/O:

* :func:`term_structure`: per (trade date, contract) of valid, de-duplicated outright
  records: expiry, instrument id, total volume, bars, first and last bar, last close.
* :func:`select_front`: the selected contract and runner-up per trade date under the
  run's rule, with the rule's basis day and basis volumes and the other rule's pick.

``same_day_volume`` ranks the contracts of trade date T by their volume on T (rules 1-3).
``prior_day_volume`` ranks the same candidates (the contracts with valid bars on T) by
their volume on B, the CME business day before T (0 without bars on B), ties as rules
2-3; when B holds no outright bar of the root at all, T falls back to its own volume
and its basis day is T.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Set

import numpy as np
import pandas as pd

from dbn_backfill.config import ROLL_RULES
from dbn_backfill.symbols import expiry_key

SAME_DAY, PRIOR_DAY = ROLL_RULES
RULES = ROLL_RULES

#: The columns of :func:`select_front`'s result, in order.
SELECTION_COLUMNS = [
    "trade_date",
    "source_symbol",
    "expiry",
    "instrument_id",
    "volume",
    "runner_up",
    "runner_up_expiry",
    "runner_up_volume",
    "roll_rule",
    "basis_day",
    "basis_volume",
    "runner_up_basis_volume",
    "other_rule_pick",
]

#: The columns of :func:`term_structure`'s result, in order.
TERM_COLUMNS = [
    "trade_date",
    "raw_symbol",
    "expiry",
    "instrument_id",
    "volume",
    "bars",
    "first_ts",
    "last_ts",
    "last_close",
]


def expiry_months(raw_symbols: np.ndarray, trade_dates: np.ndarray, symbol: str) -> np.ndarray:
    """``year * 100 + month`` of each outright's expiry as seen on its trade date
    (contract section 5, rule 2), int64."""
    years = pd.DatetimeIndex(np.asarray(trade_dates, dtype="datetime64[D]")).year.to_numpy()
    cache: dict[tuple[str, int], int] = {}
    out = np.empty(len(years), dtype="int64")
    for i, (raw, year) in enumerate(zip(raw_symbols, years, strict=True)):
        key = (str(raw), int(year))
        if key not in cache:
            y, m = expiry_key(key[0], symbol, key[1])
            cache[key] = y * 100 + m
        out[i] = cache[key]
    return out


def expiry_text(months: pd.Series) -> pd.Series:
    """``YYYY-MM`` of :func:`expiry_months` values (null stays null)."""
    values = months.astype("Int64")
    text = (values // 100).astype(str).str.zfill(4) + "-" + (values % 100).astype(str).str.zfill(2)
    return text.where(values.notna(), None).astype(object)


def term_structure(frame: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """The term structure of every trade date of ``frame`` (contract section 7).

    Args:
        frame: valid, de-duplicated outright records (decoded columns: ``trade_date``
            datetime64[D], ``raw_symbol``, ``instrument_id``, ``ts_event``, fixed-point
            ``close``, ``volume``).
        symbol: the root.

    Returns:
        One row per (trade_date, raw_symbol), sorted so: ``expiry`` (``year*100+month``),
        ``instrument_id`` (the id carrying most of the contract's volume that day, the
        smallest on a tie), ``volume`` (total), ``bars``, ``first_ts`` and ``last_ts``
        (ns of its first and last bar), ``last_close`` (price of its last bar).
    """
    if frame.empty:
        return pd.DataFrame(
            {c: pd.Series(dtype="int64") for c in TERM_COLUMNS}
            | {"trade_date": pd.Series(dtype="datetime64[s]"), "raw_symbol": pd.Series(dtype=str)}
        )
    work = pd.DataFrame(
        {
            "trade_date": frame["trade_date"].to_numpy(dtype="datetime64[D]"),
            "raw_symbol": frame["raw_symbol"].astype(str).to_numpy(),
            "instrument_id": frame["instrument_id"].to_numpy(dtype="int64"),
            "ts_event": frame["ts_event"].to_numpy(dtype="int64"),
            "close": frame["close"].to_numpy(dtype="int64"),
            "volume": frame["volume"].to_numpy(dtype="int64"),
        }
    ).sort_values(["trade_date", "raw_symbol", "ts_event"], kind="mergesort")
    keys = ["trade_date", "raw_symbol"]
    per_iid = (
        work.groupby([*keys, "instrument_id"], sort=True)["volume"]
        .sum()
        .reset_index()
        .sort_values(
            [*keys, "volume", "instrument_id"],
            ascending=[True, True, False, True],
            kind="mergesort",
        )
        .groupby(keys, sort=True)["instrument_id"]
        .first()
    )
    grouped = work.groupby(keys, sort=True)
    out = grouped.agg(
        volume=("volume", "sum"),
        bars=("ts_event", "size"),
        first_ts=("ts_event", "first"),
        last_ts=("ts_event", "last"),
        last_close=("close", "last"),
    )
    out["instrument_id"] = per_iid.reindex(out.index).astype("int64")
    out = out.reset_index()
    out["last_close"] = out["last_close"].to_numpy(dtype="int64") / 1e9  # as databento does
    out["expiry"] = expiry_months(
        out["raw_symbol"].to_numpy(), out["trade_date"].to_numpy(), symbol
    )
    for column in ("volume", "bars", "first_ts", "last_ts"):
        out[column] = out[column].astype("int64")
    return out[TERM_COLUMNS]


def _ranked(cand: pd.DataFrame, key: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """First and second candidate per trade date by ``key`` desc, earliest expiry, then
    raw symbol (rules 1-3 with ``key`` as the volume), each indexed by trade date."""
    ordered = cand.sort_values(
        ["trade_date", key, "expiry", "raw_symbol"],
        ascending=[True, False, True, True],
        kind="mergesort",
    )
    rank = ordered.groupby("trade_date", sort=False).cumcount().to_numpy()
    first = ordered[rank == 0].set_index("trade_date")
    second = ordered[rank == 1].set_index("trade_date")
    return first, second


def select_front(
    terms: pd.DataFrame,
    symbol: str,
    rule: str = SAME_DAY,
    basis: pd.DataFrame | None = None,
    basis_of: Mapping[dt.date, dt.date | None] | None = None,
    unknown: Set[dt.date] = frozenset(),
) -> pd.DataFrame:
    """Front contract per trade date under ``rule`` (contract sections 5 and 5a).

    Args:
        terms: :func:`term_structure` of the trade dates to select for (the candidates;
            ``trade_date``, ``raw_symbol``, ``instrument_id`` and ``volume`` suffice).
        symbol: the root.
        rule: ``same_day_volume`` or ``prior_day_volume``.
        basis: per (``trade_date``, ``raw_symbol``) the ``volume`` of valid outright
            records of basis days (any superset of the days ``basis_of`` names;
            :func:`term_structure` output will do). None: no basis day has bars.
        basis_of: trade date -> its basis day B (the CME business day before it), None
            when unknown (before the calendar). Missing: every T falls back.
        unknown: trade dates whose basis day's records broke a rule (sections 2, 4):
            their ``prior_day_volume`` pick is unknown. Under ``prior_day_volume`` such
            a trade date must not be selected for at all (its chunk fails).

    Returns:
        One row per trade date, columns :data:`SELECTION_COLUMNS`: the rule's pick and
        runner-up with their expiries (``YYYY-MM``) and their volumes on T, the rule,
        the basis day (T itself for ``same_day_volume`` and for a fallback), the basis
        volumes of pick and runner-up, and ``other_rule_pick``: the other rule's pick
        (null when unknown). Runner-up columns are null when one contract traded.

    Raises:
        ValueError: an unknown rule, or a trade date of ``unknown`` under
            ``prior_day_volume``.
    """
    if rule not in RULES:
        raise ValueError(f"unknown roll rule {rule!r}")
    if terms.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SELECTION_COLUMNS})
    cand = terms[["trade_date", "raw_symbol", "instrument_id", "volume"]].copy()
    cand["expiry"] = (
        terms["expiry"].to_numpy(dtype="int64")
        if "expiry" in terms
        else expiry_months(cand["raw_symbol"].to_numpy(), cand["trade_date"].to_numpy(), symbol)
    )
    cand["raw_symbol"] = cand["raw_symbol"].astype(str)  # lexicographic, not category order
    cand["trade_date"] = cand["trade_date"].to_numpy(dtype="datetime64[D]")
    days = pd.DatetimeIndex(np.unique(cand["trade_date"].to_numpy()))
    lost = {np.datetime64(d, "D") for d in unknown}
    if rule == PRIOR_DAY and any(d in lost for d in days.to_numpy(dtype="datetime64[D]")):
        raise ValueError("a trade date whose basis day is invalid cannot be selected for")
    # the basis day of each trade date, when it holds bars of the root
    mapping = {np.datetime64(t, "D"): b for t, b in (basis_of or {}).items()}
    b_days = np.array(
        [
            np.datetime64(mapping[t], "D") if mapping.get(t) is not None else np.datetime64("NaT")
            for t in days.to_numpy(dtype="datetime64[D]")
        ],
        dtype="datetime64[D]",
    )
    basis_frame = (
        basis[["trade_date", "raw_symbol", "volume"]].copy()
        if basis is not None and not basis.empty
        else pd.DataFrame({"trade_date": [], "raw_symbol": [], "volume": []})
    )
    basis_frame["trade_date"] = basis_frame["trade_date"].to_numpy(dtype="datetime64[D]")
    basis_frame["raw_symbol"] = basis_frame["raw_symbol"].astype(str)
    with_bars = set(basis_frame["trade_date"].to_numpy(dtype="datetime64[D]").tolist())
    has = np.array([(not np.isnat(b)) and b.astype(object) in with_bars for b in b_days])
    per_day = pd.DataFrame(
        {"trade_date": days.to_numpy(dtype="datetime64[D]"), "b": b_days, "has": has}
    )
    cand = cand.merge(per_day, on="trade_date", how="left")
    looked = cand.merge(
        basis_frame.rename(columns={"trade_date": "b", "volume": "b_volume"}),
        on=["b", "raw_symbol"],
        how="left",
    )
    cand["prior_key"] = np.where(
        looked["has"].to_numpy(dtype=bool),
        looked["b_volume"].fillna(0).to_numpy(dtype="int64"),
        cand["volume"].to_numpy(dtype="int64"),
    )
    cand["prior_day"] = np.where(
        cand["has"].to_numpy(dtype=bool),
        cand["b"].to_numpy(dtype="datetime64[D]"),
        cand["trade_date"].to_numpy(dtype="datetime64[D]"),
    )
    same_first, same_second = _ranked(cand, "volume")
    prior_first, prior_second = _ranked(cand, "prior_key")
    if rule == SAME_DAY:
        first, second, key = same_first, same_second, "volume"
        other = prior_first["raw_symbol"].astype(object)
        other[[d in lost for d in other.index.to_numpy(dtype="datetime64[D]")]] = None
        basis_day = pd.Series(first.index.to_numpy(dtype="datetime64[D]"), index=first.index)
    else:
        first, second, key = prior_first, prior_second, "prior_key"
        other = same_first["raw_symbol"].astype(object)
        basis_day = first["prior_day"]
    out = pd.DataFrame(
        {
            "source_symbol": first["raw_symbol"],
            "expiry": expiry_text(first["expiry"]),
            "instrument_id": first["instrument_id"].astype("int64"),
            "volume": first["volume"].astype("int64"),
        }
    )
    out["runner_up"] = second["raw_symbol"].reindex(out.index)
    out["runner_up_expiry"] = expiry_text(second["expiry"].reindex(out.index))
    out["runner_up_volume"] = second["volume"].reindex(out.index).astype("Int64")
    out["roll_rule"] = rule
    out["basis_day"] = basis_day.reindex(out.index).to_numpy(dtype="datetime64[D]")
    out["basis_volume"] = first[key].astype("int64")
    out["runner_up_basis_volume"] = second[key].reindex(out.index).astype("Int64")
    out["other_rule_pick"] = other.reindex(out.index)
    out.index.name = "trade_date"
    return out.reset_index()[SELECTION_COLUMNS]

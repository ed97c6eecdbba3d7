"""Two independent reference backfills the workflow is measured against.

* ``floor``: the minimal single-process way to do the contract's work on this data.
  Decode with ``databento.DBNStore.to_ndarray(count=...)``, resolve instruments
  through the files' metadata mappings with one ``searchsorted``, trade dates from a
  dense per-UTC-hour table (``America/Chicago`` + 7 h, forward to the next
  ``CME_TradeDate`` business day), row rules, duplicates and the front-contract
  selection as numpy array operations, and one bulk ``INSERT`` into an empty
  ``bars_1m``.
* ``naive``: what one would write first: ``to_df(count=...)`` with databento's symbol
  mapping, pandas for trade dates, rules and selection, and ``INSERT OR REPLACE``
  per chunk of ``chunk_days`` trade dates.

Both implement the contract's selection and row rules (sections 2-6) and stop
with an error on anything the contract says stops a run; they ignore the
workflow's checkpoints, lineage, locks and gates. Several roots (``--symbol
MGC,GC``, a universe) take one decode of the files and one selection per root;
``--expected-gaps`` lists business days allowed without bars (``DATE`` for every
root, ``ROOT:DATE`` for one). Run one in a fresh process::

    python -m bench.reference floor --dbn DIR --db OUT.duckdb --symbol MGC,GC \\
        --start 2024-01-02 --end 2024-12-31
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dbn_backfill.schema import DDL  # the one definition of bars_1m

NS_PER_MINUTE = 60_000_000_000
NS_PER_HOUR = 3_600_000_000_000
NS_PER_DAY = 86_400_000_000_000
RTYPE_OHLCV_1M = 33
UNDEF_PRICE = np.iinfo(np.int64).max
INT64_MAX = np.iinfo(np.int64).max
MONTH_CODES = "FGHJKMNQUVXZ"
SESSION_TZ = "America/Chicago"
SESSION_SHIFT_HOURS = 7  # 24 h - 17:00 roll
CALENDAR = "CME_TradeDate"


class ReferenceError_(RuntimeError):
    """A contract rule stopped the reference run."""


# --------------------------------------------------------------------------- shared


def find_dbn(dbn: Path) -> list[Path]:
    """The file itself, or ``*.dbn``/``*.dbn.zst`` below a folder in sorted path order."""
    if dbn.is_file():
        return [dbn]
    found = sorted(
        p for p in dbn.rglob("*") if p.is_file() and p.name.endswith((".dbn", ".dbn.zst"))
    )
    if not found:
        raise ReferenceError_(f"{dbn}: no *.dbn or *.dbn.zst file")
    return found


def outright_pattern(symbol: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(symbol)}[{MONTH_CODES}][0-9]{{1,2}}$")


def parse_roots(value: str) -> list[str]:
    """``MGC`` or ``MGC,GC`` -> the roots, in order, without repeats."""
    roots = list(dict.fromkeys(r.strip() for r in value.split(",") if r.strip()))
    if not roots or any(not re.fullmatch(r"[A-Z0-9]+", r) for r in roots):
        raise ReferenceError_(f"bad --symbol {value!r}")
    return roots


def parse_gaps(value: str, roots: Sequence[str]) -> dict[str, set[dt.date]]:
    """``D1,ROOT:D2`` -> business days allowed without bars, per root."""
    gaps: dict[str, set[dt.date]] = {r: set() for r in roots}
    for item in (x.strip() for x in value.split(",")):
        if not item:
            continue
        root, _, day = item.rpartition(":")
        date = dt.date.fromisoformat(day)
        for r in [root] if root else roots:
            if r not in gaps:
                raise ReferenceError_(f"expected gap {item!r}: {r} is not a root of the run")
            gaps[r].add(date)
    return gaps


def missing_days(days: np.ndarray, have: np.ndarray, gaps: set[dt.date]) -> np.ndarray:
    """Business days of ``days`` not in ``have`` and not expected gaps."""
    allowed = np.array(sorted(gaps), dtype="datetime64[D]")
    return np.setdiff1d(np.setdiff1d(days, have), allowed)


def check_metadata(path: Path, metadata: object, dataset: str) -> None:
    schema = str(getattr(metadata, "schema", "")).lower()
    found_dataset = str(getattr(metadata, "dataset", ""))
    stype_out = str(getattr(metadata, "stype_out", "")).lower()
    problems = []
    if "ohlcv-1m" not in schema:
        problems.append(f"schema {schema!r}")
    if found_dataset != dataset:
        problems.append(f"dataset {found_dataset!r}")
    if "instrument_id" not in stype_out:
        problems.append(f"stype_out {stype_out!r}")
    if problems:
        raise ReferenceError_(f"{path}: unexpected " + ", ".join(problems))


def business_days(first: dt.date, last: dt.date) -> np.ndarray:
    """``CME_TradeDate`` business days in ``[first, last]`` as ``datetime64[D]``."""
    import pandas_market_calendars as mcal

    schedule = mcal.get_calendar(CALENDAR).schedule(start_date=first, end_date=last)
    return np.asarray(schedule.index.values.astype("datetime64[D]"))


def expiry_keys(symbols: Sequence[str], root: str, years: np.ndarray) -> np.ndarray:
    """``year * 100 + month`` of each outright (columns) as seen in each trade year (rows)."""
    month = np.array([MONTH_CODES.index(s[len(root)]) + 1 for s in symbols], dtype=np.int64)
    digits = np.array([int(s[len(root) + 1 :]) for s in symbols], dtype=np.int64)
    modulus = np.array([10 ** len(s[len(root) + 1 :]) for s in symbols], dtype=np.int64)
    floor = years.astype(np.int64)[:, None] - 1
    year = floor + (digits[None, :] - floor) % modulus[None, :]
    return np.asarray(year * 100 + month[None, :])


def select_front(
    volume: np.ndarray, present: np.ndarray, symbols: Sequence[str], root: str, years: np.ndarray
) -> np.ndarray:
    """Column of the front contract per row (trade date), -1 where nothing traded.

    ``volume[d, s]``: total volume of symbol ``s`` on trade date ``d``; ``present``: it
    has bars that day. Highest volume; ties: earliest expiry, then smallest raw symbol.
    """
    n_sym = len(symbols)
    if n_sym == 0:
        return np.full(volume.shape[0], -1)
    lex = np.empty(n_sym, dtype=np.int64)
    lex[np.argsort(np.array(symbols, dtype=object), kind="stable")] = np.arange(n_sym)
    vol = np.where(present, volume, -1)
    best = vol.max(axis=1, keepdims=True)
    candidate = present & (vol == best)
    key = expiry_keys(symbols, root, years) * n_sym + lex[None, :]
    key = np.where(candidate, key, np.iinfo(np.int64).max)
    pick = np.argmin(key, axis=1)
    return np.where(present.any(axis=1), pick, -1)


# --------------------------------------------------------------------------- floor


class _TradeDates:
    """Trade date (days since epoch) per UTC hour, extended on demand.

    Both the Chicago offset and the +7 h shift change only on whole UTC hours, so
    every minute of a UTC hour shares the session date.
    """

    def __init__(self) -> None:
        self.h0 = 0
        self.table = np.empty(0, dtype=np.int64)
        self.bdays = np.empty(0, dtype="datetime64[D]")

    def _build(self, h_lo: int, h_hi: int) -> None:
        import pandas as pd

        hours = np.arange(h_lo, h_hi + 1, dtype=np.int64)
        utc = pd.DatetimeIndex((hours * NS_PER_HOUR).view("datetime64[ns]"), tz="UTC")
        local = utc.tz_convert(SESSION_TZ).tz_localize(None)
        session = (local + pd.Timedelta(hours=SESSION_SHIFT_HOURS)).values.astype("datetime64[D]")
        lo, hi = session.min(), session.max()
        if not len(self.bdays) or self.bdays[0] > lo or self.bdays[-1] < hi:
            self.bdays = business_days(lo.astype(dt.date), hi.astype(dt.date) + dt.timedelta(40))
        idx = np.searchsorted(self.bdays, session, side="left")
        if int(idx.max()) >= len(self.bdays):
            raise ReferenceError_("a session date lies after the last known business day")
        self.h0 = h_lo
        self.table = self.bdays[idx].astype(np.int64)

    def ensure(self, lo_ns: int, hi_ns: int) -> None:
        """Cover UTC nanoseconds ``[lo_ns, hi_ns]`` (a file's declared range)."""
        h_lo, h_hi = lo_ns // NS_PER_HOUR, hi_ns // NS_PER_HOUR
        if len(self.table) and h_lo >= self.h0 and h_hi < self.h0 + len(self.table):
            return
        if len(self.table):
            h_lo, h_hi = min(h_lo, self.h0), max(h_hi, self.h0 + len(self.table) - 1)
        self._build(h_lo - 24 * 40, h_hi + 24 * 400)  # slack: daily files need one build

    def __call__(self, ts: np.ndarray) -> np.ndarray:
        hours = (ts // NS_PER_HOUR).astype(np.int64)
        self.ensure(int(ts.min()), int(ts.max()))  # records outside the declared range
        return self.table[hours - self.h0]


def floor(
    dbn: Path,
    db: Path,
    roots: Sequence[str],
    start: dt.date,
    end: dt.date,
    dataset: str = "GLBX.MDP3",
    count: int = 1 << 21,
    gaps: dict[str, set[dt.date]] | None = None,
) -> int:
    """The minimal single-process backfill of ``roots`` into an empty database (one
    decode of the files, one front-contract selection per root); returns rows written."""
    import databento
    import duckdb
    import pyarrow as pa
    from databento.common.error import BentoWarning

    warnings.simplefilter("error", BentoWarning)  # truncated file: stop
    gaps = gaps or {}
    patterns = [outright_pattern(r) for r in roots]
    trade_dates = _TradeDates()
    lo_day = np.datetime64(start, "D").astype(np.int64)
    hi_day = np.datetime64(end, "D").astype(np.int64)
    sym_code: dict[str, int] = {}
    sym_root: list[int] = []  # root index of each symbol code
    kept: list[dict[str, np.ndarray]] = []

    def code_of(raw: str) -> int:
        """Code of an outright of one of the roots (patterns are anchored: disjoint),
        -1 for any other symbol."""
        if raw in sym_code:
            return sym_code[raw]
        for ri, pattern in enumerate(patterns):
            if pattern.match(raw):
                sym_code[raw] = len(sym_root)
                sym_root.append(ri)
                return sym_code[raw]
        return -1

    for path in find_dbn(dbn):
        store = databento.DBNStore.from_file(path)
        check_metadata(path, store.metadata, dataset)
        end_ns = store.metadata.end
        if end_ns is None or end_ns >= 2**63:
            end_ns = store.metadata.start
        trade_dates.ensure(int(store.metadata.start), int(end_ns))
        # metadata mappings -> (instrument_id, start day, end day, symbol code) sorted
        iv = []
        for raw, entries in store.metadata.mappings.items():
            sym = code_of(raw)
            for e in entries:
                if e["symbol"]:
                    s = np.datetime64(e["start_date"], "D").astype(np.int64)
                    t = np.datetime64(e["end_date"], "D").astype(np.int64)
                    iv.append((int(e["symbol"]), int(s), int(t), sym))
        iv_arr = np.array(sorted(iv), dtype=np.int64).reshape(-1, 4)
        iv_key = (iv_arr[:, 0].astype(np.uint64) << np.uint64(32)) | iv_arr[:, 1].astype(np.uint64)
        for block in store.to_ndarray(count=count):
            if not len(block):
                continue
            bad = np.flatnonzero(block["rtype"] != RTYPE_OHLCV_1M)
            if len(bad):
                raise ReferenceError_(f"{path}: record with rtype {block['rtype'][bad[0]]}")
            ts = block["ts_event"].astype(np.int64)
            iid = block["instrument_id"].astype(np.uint64)
            day = ts // NS_PER_DAY
            if len(iv_arr):
                key = (iid << np.uint64(32)) | day.astype(np.uint64)
                j = np.searchsorted(iv_key, key, side="right") - 1
                jj = np.maximum(j, 0)
                hit = (j >= 0) & (iv_arr[jj, 0].astype(np.uint64) == iid) & (day < iv_arr[jj, 2])
                code = np.where(hit, iv_arr[jj, 3], -2)
            else:
                code = np.full(len(ts), -2)
            interesting = np.flatnonzero(code != -1)  # outrights of the root, or unresolved
            if not len(interesting):
                continue
            td = trade_dates(ts[interesting])
            in_range = (td >= lo_day) & (td <= hi_day)
            unresolved = in_range & (code[interesting] == -2)
            if unresolved.any():
                k = interesting[np.flatnonzero(unresolved)[0]]
                raise ReferenceError_(
                    f"{path}: instrument {int(iid[k])} has no mapping at ts_event {int(ts[k])}"
                )
            take = interesting[in_range]
            if not len(take):
                continue
            rec = block[take]
            kept.append(
                {
                    "ts": ts[take],
                    "iid": rec["instrument_id"].astype(np.uint32),
                    "code": code[take].astype(np.int16),
                    "td": td[in_range],
                    "open": rec["open"].astype(np.int64),
                    "high": rec["high"].astype(np.int64),
                    "low": rec["low"].astype(np.int64),
                    "close": rec["close"].astype(np.int64),
                    "volume": rec["volume"].astype(np.uint64),
                }
            )

    cols = None
    if kept:  # column by column, freeing the blocks as we go
        cols = {k: np.concatenate([b.pop(k) for b in kept]) for k in list(kept[0])}
    del kept
    symbols = sorted(sym_code, key=sym_code.__getitem__)
    root_of = np.array(sym_root, dtype=np.int32)
    con = duckdb.connect(str(db))
    con.execute("SET enable_progress_bar = false")
    con.execute(DDL)
    days = business_days(start, end)
    if cols is None:
        con.close()
        for root in roots:
            missing = missing_days(days, days[:0], gaps.get(root, set()))
            if len(missing):
                raise ReferenceError_(
                    f"{root}: {len(missing)} business days without bars, first {missing[0]}"
                )
        return 0
    _check_rows(cols)
    cols = _dedupe(cols)

    # front contract per root and trade date: dense (day, symbol) totals of all roots,
    # each root's selection over its own columns
    td0 = int(cols["td"].min())
    n_days = int(cols["td"].max()) - td0 + 1
    n_sym = len(symbols)
    cell = (cols["td"] - td0) * n_sym + cols["code"]
    volume = np.bincount(cell, weights=cols["volume"].astype(np.float64), minlength=n_days * n_sym)
    volume = volume.reshape(n_days, n_sym)
    present = (np.bincount(cell, minlength=n_days * n_sym) > 0).reshape(n_days, n_sym)
    day_values = np.arange(td0, td0 + n_days).astype("datetime64[D]")
    years = day_values.astype("datetime64[Y]").astype(np.int64) + 1970
    front = np.full((len(roots), n_days), -1, dtype=np.int64)  # symbol code per root, day
    for ri, root in enumerate(roots):
        mine = np.flatnonzero(root_of == ri)
        pick = select_front(
            volume[:, mine], present[:, mine], [symbols[c] for c in mine], root, years
        )
        if len(mine):
            front[ri] = np.where(pick >= 0, mine[np.maximum(pick, 0)], -1)
        missing = missing_days(days, day_values[front[ri] >= 0], gaps.get(root, set()))
        if len(missing):
            con.close()
            raise ReferenceError_(
                f"{root}: {len(missing)} business days without bars, first {missing[0]}"
            )
    row_root = root_of[cols["code"]]
    keep = front[row_root, cols["td"] - td0] == cols["code"]
    n = int(keep.sum())
    code = cols["code"][keep].astype(np.int32)
    table = pa.table(
        {
            "ts_utc": pa.array(cols["ts"][keep] // 1000, pa.timestamp("us", tz="UTC")),
            "symbol": pa.DictionaryArray.from_arrays(
                pa.array(row_root[keep].astype(np.int32)), pa.array(list(roots))
            ),
            "source_symbol": pa.DictionaryArray.from_arrays(pa.array(code), pa.array(symbols)),
            "open": cols["open"][keep] / 1e9,
            "high": cols["high"][keep] / 1e9,
            "low": cols["low"][keep] / 1e9,
            "close": cols["close"][keep] / 1e9,
            "volume": cols["volume"][keep].astype(np.int64),
        }
    )
    del cols
    con.register("staged", table)
    con.execute("INSERT INTO bars_1m SELECT * FROM staged")
    con.close()
    return n


def _check_rows(c: dict[str, np.ndarray]) -> None:
    """Contract section 4 on every outright record in range."""
    o, h, lo, cl = c["open"], c["high"], c["low"], c["close"]
    bad = c["ts"] % NS_PER_MINUTE != 0
    for p in (o, h, lo, cl):
        bad |= (p <= 0) | (p == UNDEF_PRICE)
    bad |= h < np.maximum(np.maximum(o, cl), lo)
    bad |= lo > np.minimum(o, cl)
    bad |= c["volume"] > np.uint64(INT64_MAX)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ReferenceError_(
            f"{int(bad.sum())} invalid outright records, first instrument {int(c['iid'][i])} "
            f"ts_event {int(c['ts'][i])}: o={o[i]} h={h[i]} l={lo[i]} c={cl[i]} "
            f"v={int(c['volume'][i])}"
        )


def _dedupe(c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Identical repeats of (instrument_id, ts_event) count once; any other clash of
    (raw symbol, ts_event) stops the run (contract section 4)."""
    ts = c["ts"]
    if np.all(ts[1:] >= ts[:-1]):
        order = np.argsort(c["code"], kind="stable")  # int16: radix sort, ts order kept
    else:
        order = np.lexsort((ts, c["code"]))
    code_s, ts_s = c["code"][order], ts[order]
    dup = (code_s[1:] == code_s[:-1]) & (ts_s[1:] == ts_s[:-1])
    if not dup.any():
        return c
    a, b = order[:-1][dup], order[1:][dup]
    same = c["iid"][a] == c["iid"][b]
    for k in ("open", "high", "low", "close", "volume"):
        same &= c[k][a] == c[k][b]
    if not same.all():
        i, j = int(a[~same][0]), int(b[~same][0])
        raise ReferenceError_(
            f"conflicting records at ts_event {int(ts[i])}: instrument {int(c['iid'][i])} "
            f"and {int(c['iid'][j])} (or different values) for the same raw symbol"
        )
    drop = np.zeros(len(ts), dtype=bool)
    drop[b] = True
    return {k: v[~drop] for k, v in c.items()}


# --------------------------------------------------------------------------- naive


def naive(
    dbn: Path,
    db: Path,
    roots: Sequence[str],
    start: dt.date,
    end: dt.date,
    dataset: str = "GLBX.MDP3",
    chunk_days: int = 5,
    count: int = 1_000_000,
    gaps: dict[str, set[dt.date]] | None = None,
) -> int:
    """``to_df`` + pandas + ``INSERT OR REPLACE`` per chunk (one decode, the roots'
    selections one after the other); returns rows written."""
    import databento
    import duckdb
    import pandas as pd
    from databento.common.error import BentoWarning

    warnings.simplefilter("ignore", FutureWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*inplace.*")
    warnings.simplefilter("error", BentoWarning)
    gaps = gaps or {}
    pattern = "|".join(f"(?:{outright_pattern(r).pattern})" for r in roots)
    bdays = business_days(start - dt.timedelta(days=400), end + dt.timedelta(days=40))
    bday_index = pd.DatetimeIndex(bdays)
    frames = []
    for path in find_dbn(dbn):
        store = databento.DBNStore.from_file(path)
        check_metadata(path, store.metadata, dataset)
        for df in store.to_df(count=count):
            if df.empty:
                continue
            if (df["rtype"] != RTYPE_OHLCV_1M).any():
                raise ReferenceError_(f"{path}: record of another rtype")
            local = pd.DatetimeIndex(df.index).tz_convert(SESSION_TZ).tz_localize(None)
            session = (local + pd.Timedelta(hours=SESSION_SHIFT_HOURS)).normalize()
            # beyond the calendar's ends means out of [start, end] either way
            pos = np.minimum(bday_index.searchsorted(session, side="left"), len(bday_index) - 1)
            df = df.assign(trade_date=bday_index[pos].values)
            df = df[
                (df["trade_date"] >= pd.Timestamp(start)) & (df["trade_date"] <= pd.Timestamp(end))
            ]
            if df["symbol"].isna().any():
                raise ReferenceError_(f"{path}: unresolved instrument in range")
            df = df[df["symbol"].str.match(pattern)]
            # the root: the raw symbol without its month code and year digits
            df = df.assign(root=df["symbol"].str.replace(r"[A-Z][0-9]{1,2}$", "", regex=True))
            frames.append(
                df.reset_index()[
                    [
                        "ts_event",
                        "instrument_id",
                        "symbol",
                        "trade_date",
                        "root",
                        "open",
                        "high",
                        "low",
                        "close",
                        "volume",
                    ]
                ]
            )
    con = duckdb.connect(str(db))
    con.execute(DDL)
    days = [d for d in bdays if np.datetime64(start) <= d <= np.datetime64(end)]
    if not frames:
        for root in roots:
            if [d for d in days if d.item() not in gaps.get(root, set())]:
                raise ReferenceError_(f"{root}: {len(days)} business days without bars")
        return 0
    bars = pd.concat(frames, ignore_index=True)
    del frames

    # section 4
    ns = bars["ts_event"].astype("int64")
    prices = bars[["open", "high", "low", "close"]]
    bad = np.array(ns % NS_PER_MINUTE != 0, dtype=bool)  # a writable copy
    bad |= ~np.asarray((np.isfinite(prices) & (prices > 0)).all(axis=1))
    bad |= bars["high"] < prices[["open", "close", "low"]].max(axis=1)
    bad |= bars["low"] > prices[["open", "close"]].min(axis=1)
    bad |= bars["volume"] > INT64_MAX
    if bad.any():
        raise ReferenceError_(f"invalid outright record: {bars[bad].iloc[0].to_dict()}")
    bars = bars.drop_duplicates(
        ["instrument_id", "ts_event", "open", "high", "low", "close", "volume"]
    )
    if bars.duplicated(["symbol", "ts_event"]).any():
        raise ReferenceError_("conflicting duplicate records")

    # section 5, root by root
    totals = bars.groupby(["root", "trade_date", "symbol"])["volume"].sum().reset_index()
    totals["expiry"] = [
        int(expiry_keys([s], r, np.array([d.year]))[0, 0])
        for r, s, d in zip(totals["root"], totals["symbol"], totals["trade_date"], strict=True)
    ]
    totals = totals.sort_values(
        ["root", "trade_date", "volume", "expiry", "symbol"],
        ascending=[True, True, False, True, True],
    )
    front = totals.drop_duplicates(["root", "trade_date"])[["root", "trade_date", "symbol"]]
    for root in roots:
        mine = front[front["root"] == root]
        have = set(pd.DatetimeIndex(mine["trade_date"]).values.astype("datetime64[D]"))
        allowed = {np.datetime64(g, "D") for g in gaps.get(root, set())}
        missing = [d for d in days if d not in have and d not in allowed]
        if missing:
            raise ReferenceError_(
                f"{root}: {len(missing)} business days without bars, first {missing[0]}"
            )
    chosen = bars.merge(front, on=["root", "trade_date", "symbol"])
    out = pd.DataFrame(
        {
            "ts_utc": chosen["ts_event"].dt.as_unit("us"),
            "symbol": chosen["root"].astype(str),
            "source_symbol": chosen["symbol"].astype(str),
            "open": chosen["open"],
            "high": chosen["high"],
            "low": chosen["low"],
            "close": chosen["close"],
            "volume": chosen["volume"].astype("int64"),
            "trade_date": chosen["trade_date"],
        }
    )
    rows = 0
    for i in range(0, len(days), chunk_days):
        lo, hi = pd.Timestamp(days[i]), pd.Timestamp(days[min(i + chunk_days, len(days)) - 1])
        chunk = out[(out["trade_date"] >= lo) & (out["trade_date"] <= hi)].drop(
            columns="trade_date"
        )
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT OR REPLACE INTO bars_1m SELECT * FROM chunk")
        con.execute("COMMIT")
        rows += len(chunk)
    con.close()
    return rows


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.reference", description=__doc__)
    p.add_argument("kind", choices=("floor", "naive"))
    p.add_argument("--dbn", type=Path, required=True)
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--symbol", default="MGC", help="root, or several: MGC,GC")
    p.add_argument("--expected-gaps", default="", help="D1,ROOT:D2 allowed without bars")
    p.add_argument("--start", type=dt.date.fromisoformat, required=True)
    p.add_argument("--end", type=dt.date.fromisoformat, required=True)
    p.add_argument("--chunk-days", type=int, default=5)
    args = p.parse_args(argv)
    if args.db.exists():
        args.db.unlink()
    started = time.monotonic()
    run = floor if args.kind == "floor" else naive
    kwargs: dict[str, object] = {"chunk_days": args.chunk_days} if args.kind == "naive" else {}
    try:
        roots = parse_roots(args.symbol)
        kwargs["gaps"] = parse_gaps(args.expected_gaps, roots)
        rows = run(args.dbn, args.db, roots, args.start, args.end, **kwargs)  # type: ignore[operator]
    except ReferenceError_ as exc:
        print(f"{args.kind}: error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.kind}: {rows} rows in {time.monotonic() - started:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Generate realistic sample Databento ``GLBX.MDP3`` ``ohlcv-1m`` DBN files.

``dbn-backfill synth --out DIR --start YYYY-MM-DD --end YYYY-MM-DD --seed N
[--layout single|daily|monthly] [--compress zst|plain] [--symbol MGC]``

The files look like a Databento download of ``{symbol}.FUT`` with parent
symbology: outrights of the root (one-digit-year raw symbols such as ``MGCG4``,
the year wrapping every decade), calendar spreads (``MGCG4-MGCJ4``, prices may be
zero or negative) and outrights of another root (``GC``) in the same files,
instrument ids resolved through date-interval metadata symbol mappings.

Market model
------------
* Sessions: the ``CMEGlobex_Metals`` calendar of ``pandas_market_calendars``
  (17:00-16:00 America/Chicago, the daily halt, holidays, early closes, daylight
  saving), plus any ``CME_TradeDate`` business day it might lack. A session's
  trade date is its label if that is a ``CME_TradeDate`` business day, else the
  next one (e.g. the MLK-Monday morning session counts for Tuesday) -- exactly the
  "Chicago time + 7 h, then roll forward" rule.
* Contracts: active months G J M Q V Z listed 12 months out (back months sparse),
  serial months thin within 3 months, expiry on the third-last business day of
  the contract month. Volume migrates from the expiring active month to the next
  over ~5 sessions around a roll day near the 25th of the month before the
  contract month (jittered per contract), so the volume front rolls every cycle.
* Bars: a bar exists in a minute only if a trade happened (Bernoulli per minute
  and instrument, intensity from daily volume x an intraday profile); the first
  minute of every trade date always trades the front, so every business day has
  outright bars of the root. Prices are a log random walk of one spot (pulled
  towards a historical gold level per year) plus cost of carry per contract,
  tick 0.1 (fixed-point 1e-9); spreads are near minus far leg.

Everything is generated per UTC month in vectorized numpy (no per-bar Python),
from RNGs seeded by ``seed`` only, so the same arguments give byte-identical
files, and the records of a UTC month are the same whatever the layout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd
import pandas_market_calendars as mcal

from dbn_backfill.sampledata.dbnwrite import OHLCV_DTYPE, OHLCV_LENGTH_WORDS, SymbolInterval
from dbn_backfill.sampledata.dbnwrite import _write_dbn_records as write_records

__all__ = ["SynthReport", "add_arguments", "generate", "print_report", "raw_symbol", "run"]

DATASET = "GLBX.MDP3"
SCHEMA = "ohlcv-1m"
RTYPE_OHLCV_1M = 33
PUBLISHER_GLBX = 1

MONTH_CODES = "FGHJKMNQUVXZ"
ACTIVE_MONTHS = (2, 4, 6, 8, 10, 12)  # G J M Q V Z
TICK = 0.1
TICK_FIXED = 100_000_000

MIN_NS = 60 * 1_000_000_000
DAY_NS = 24 * 60 * MIN_NS
MONTH_NS = 30.4375 * DAY_NS

LAYOUTS = ("single", "daily", "monthly")
COMPRESSIONS = ("zst", "plain")

_KIND_OUTRIGHT = 0
_KIND_SPREAD = 1

# Rough COMEX gold level by year; the spot walk is pulled towards it.
_GOLD_LEVEL = {
    2008: 870.0,
    2009: 975.0,
    2010: 1225.0,
    2011: 1570.0,
    2012: 1670.0,
    2013: 1410.0,
    2014: 1265.0,
    2015: 1160.0,
    2016: 1250.0,
    2017: 1260.0,
    2018: 1270.0,
    2019: 1395.0,
    2020: 1770.0,
    2021: 1800.0,
    2022: 1800.0,
    2023: 1945.0,
    2024: 2390.0,
    2025: 3300.0,
    2026: 3900.0,
}
_CARRY_PER_MONTH = 0.0025  # contango: far months trade higher
_SIGMA_MIN = 0.16 / np.sqrt(252 * 1380)  # ~16 % annual volatility
_TRADE_SIZE = 2.5  # contracts per trade, for the minute trade intensity
_HOLIDAY_FACTOR = 0.25  # activity of sessions whose label is not a business day
_ROLL_WIDTH = 1.0  # business days, logistic volume migration
_ROLL_DAY = 25  # roll centre: first business day >= this day of the month before


@dataclass(frozen=True)
class _RootParams:
    """Volume model of one root."""

    daily_volume_2010: float
    volume_growth: float  # per year
    deferred_weight: float  # the next active month outside the roll
    deferred_decay: float  # per further active month
    expiring_weight: float  # the rolled-out contract until expiry
    serial_weight: float  # serial months within 3 months (0: none)
    horizon_months: int  # active months listed with volume this far out
    spread_peak: float  # spread weight at the roll (0: no spreads)
    spread_base: float


_MAIN = _RootParams(
    daily_volume_2010=3000.0,
    volume_growth=1.19,
    deferred_weight=0.03,
    deferred_decay=0.35,
    expiring_weight=0.004,
    serial_weight=0.004,
    horizon_months=12,
    spread_peak=0.05,
    spread_base=0.0015,
)
_OTHER = _RootParams(
    daily_volume_2010=9000.0,
    volume_growth=1.05,
    deferred_weight=0.02,
    deferred_decay=0.3,
    expiring_weight=0.003,
    serial_weight=0.0,
    horizon_months=6,
    spread_peak=0.0,
    spread_base=0.0,
)


@dataclass
class SynthReport:
    """What :func:`generate` wrote."""

    files: list[Path] = field(default_factory=list)
    records: int = 0
    instruments: int = 0
    #: (trade date, from raw symbol, to raw symbol) of the front contract by daily volume.
    rolls: list[tuple[dt.date, str, str]] = field(default_factory=list)


# --------------------------------------------------------------------------- calendar


def _to_ns(values: pd.Series | pd.Index) -> np.ndarray:
    """tz-aware timestamps -> int64 UTC nanoseconds (pandas may hold us units)."""
    return np.asarray(pd.DatetimeIndex(values).tz_convert("UTC").as_unit("ns").asi8)


def _to_day(values: pd.Index) -> np.ndarray:
    return np.asarray(pd.DatetimeIndex(values).values.astype("datetime64[D]"))


@dataclass(frozen=True)
class _Calendar:
    bdays: np.ndarray  # datetime64[D], CME_TradeDate business days (wide range)
    bday_month: np.ndarray  # int64 month index (year * 12 + month - 1) of each bday
    sess_label: np.ndarray  # datetime64[D]
    sess_open: np.ndarray  # int64 ns
    sess_close: np.ndarray  # int64 ns
    sess_tdi: np.ndarray  # int64 index into bdays of the session's trade date
    sess_holiday: np.ndarray  # bool: label is not a business day


def _build_calendar(start: dt.date, end: dt.date) -> _Calendar:
    td_cal = mcal.get_calendar("CME_TradeDate")
    wide = td_cal.schedule(dt.date(start.year - 2, 1, 1), dt.date(end.year + 3, 1, 31))
    bdays = _to_day(wide.index)
    lo, hi = start - dt.timedelta(days=10), end + dt.timedelta(days=10)
    metals = mcal.get_calendar("CMEGlobex_Metals").schedule(lo, hi)
    td = td_cal.schedule(lo, hi)
    missing = td.loc[~td.index.isin(metals.index)]
    sched = pd.concat(
        [metals[["market_open", "market_close"]], missing[["market_open", "market_close"]]]
    )
    sched = sched.sort_values("market_open")
    label = _to_day(sched.index)
    opn = _to_ns(sched["market_open"])
    cls = _to_ns(sched["market_close"])
    if np.any(opn[1:] < cls[:-1]):
        raise RuntimeError("overlapping calendar sessions")
    if np.any(opn % MIN_NS) or np.any(cls % MIN_NS):
        raise RuntimeError("calendar sessions not minute aligned")
    tdi = np.searchsorted(bdays, label, side="left")
    holiday = bdays[tdi] != label
    months = bdays.astype("datetime64[M]").astype(np.int64) + 1970 * 12
    return _Calendar(bdays, months, label, opn, cls, tdi, holiday)


def _third_last_bday(bdays: np.ndarray, year: int, month: int) -> int:
    """Index into ``bdays`` of the third-last business day of the month."""
    first = np.datetime64(f"{year:04d}-{month:02d}", "M").astype("datetime64[D]")
    nxt = (np.datetime64(f"{year:04d}-{month:02d}", "M") + 1).astype("datetime64[D]")
    i = int(np.searchsorted(bdays, nxt, side="left")) - 3
    if i < 0 or bdays[i] < first:
        raise RuntimeError(f"calendar does not cover {year}-{month:02d}")
    return i


# --------------------------------------------------------------------------- instruments


def raw_symbol(root: str, year: int, month: int) -> str:
    """Databento GLBX raw symbol with a one-digit year, e.g. ``MGCG4``."""
    return f"{root}{MONTH_CODES[month - 1]}{year % 10}"


@dataclass
class _Instruments:
    ids: np.ndarray  # uint32, sorted ascending
    symbols: list[str]
    kind: np.ndarray  # _KIND_*
    root: np.ndarray  # 0 main, 1 other
    active: np.ndarray  # bool (outrights)
    month_index: np.ndarray  # int64 year*12+month-1 of the (near) contract
    far_month_index: np.ndarray
    expiry_tdi: np.ndarray  # near leg
    expiry_ns: np.ndarray  # float, near leg expiry (for carry)
    far_expiry_ns: np.ndarray
    roll_center: np.ndarray  # float tdi; active outrights and spreads (near leg)


@dataclass(frozen=True)
class _Row:
    """One instrument while building the table."""

    id: int
    symbol: str
    kind: int
    root: int
    active: bool
    mi: int  # month index (year * 12 + month - 1) of the (near) contract
    far_mi: int
    exp_tdi: int
    exp_ns: float
    far_exp_ns: float
    roll: float


def _build_instruments(
    cal: _Calendar, start: dt.date, end: dt.date, roots: Sequence[str], seed: int
) -> _Instruments:
    """Outrights (and spreads of the main root) listed around ``start``..``end``.

    Instrument ids are a pure function of (role, contract month), so an instrument
    keeps its id across files, layouts, seeds and date ranges.
    """
    rows: list[_Row] = []
    for ri, root in enumerate(roots):
        params = _MAIN if ri == 0 else _OTHER
        actives: list[_Row] = []
        for year in range(start.year - 1, end.year + 3):
            for month in range(1, 13):
                is_active = month in ACTIVE_MONTHS
                if not is_active and params.serial_weight <= 0:
                    continue
                mi = year * 12 + month - 1
                exp_i = _third_last_bday(cal.bdays, year, month)
                exp_day_ns = np.datetime64(cal.bdays[exp_i], "ns").astype(np.int64)
                exp_ns = float(exp_day_ns + 17 * 3600 * 10**9)
                roll = np.nan
                if is_active:
                    prev_month = np.datetime64(f"{year:04d}-{month:02d}", "M") - 1
                    anchor = prev_month.astype("datetime64[D]") + (_ROLL_DAY - 1)
                    jitter = int(np.random.default_rng([seed, 11, ri, mi]).integers(-2, 2))
                    roll = float(np.searchsorted(cal.bdays, anchor, side="left") + jitter) + 0.5
                row = _Row(
                    id=100_000 * (ri + 1) + mi,
                    symbol=raw_symbol(root, year, month),
                    kind=_KIND_OUTRIGHT,
                    root=ri,
                    active=is_active,
                    mi=mi,
                    far_mi=mi,
                    exp_tdi=exp_i,
                    exp_ns=exp_ns,
                    far_exp_ns=exp_ns,
                    roll=roll,
                )
                rows.append(row)
                if is_active:
                    actives.append(row)
        if params.spread_peak > 0:
            for near, far in zip(actives, actives[1:], strict=False):
                rows.append(
                    replace(
                        near,
                        id=1_000_000 * (ri + 1) + near.mi * 16 + (far.mi - near.mi),
                        symbol=f"{near.symbol}-{far.symbol}",
                        kind=_KIND_SPREAD,
                        active=False,
                        far_mi=far.mi,
                        far_exp_ns=far.exp_ns,
                    )
                )
    rows.sort(key=lambda r: r.id)
    return _Instruments(
        ids=np.array([r.id for r in rows], dtype=np.uint32),
        symbols=[r.symbol for r in rows],
        kind=np.array([r.kind for r in rows], dtype=np.int8),
        root=np.array([r.root for r in rows], dtype=np.int8),
        active=np.array([r.active for r in rows], dtype=bool),
        month_index=np.array([r.mi for r in rows], dtype=np.int64),
        far_month_index=np.array([r.far_mi for r in rows], dtype=np.int64),
        expiry_tdi=np.array([r.exp_tdi for r in rows], dtype=np.int64),
        expiry_ns=np.array([r.exp_ns for r in rows], dtype=np.float64),
        far_expiry_ns=np.array([r.far_exp_ns for r in rows], dtype=np.float64),
        roll_center=np.array([r.roll for r in rows], dtype=np.float64),
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0))))


def _weights(cal: _Calendar, ins: _Instruments, tdu: np.ndarray) -> np.ndarray:
    """Share of the root's daily volume per (trade date in ``tdu``, instrument)."""
    t = tdu.astype(np.float64)[:, None]
    mi_t = cal.bday_month[tdu][:, None]
    w = np.zeros((len(tdu), len(ins.ids)))
    for ri, params in enumerate((_MAIN, _OTHER)):
        in_root = ins.root == ri
        act = np.flatnonzero(in_root & ins.active)
        if act.size == 0:
            continue
        act = act[np.argsort(ins.month_index[act], kind="stable")]
        r = ins.roll_center[act]
        x = _sigmoid((t - r[None, :]) / _ROLL_WIDTH)  # migrated away from k
        x_prev = np.concatenate([np.ones((len(tdu), 1)), x[:, :-1]], axis=1)
        share = x_prev * (1.0 - x)
        front = np.searchsorted(r, tdu.astype(np.float64), side="right")
        dist = np.arange(act.size)[None, :] - front[:, None]
        base = np.where(
            dist > 0,
            params.deferred_weight * params.deferred_decay ** np.maximum(dist - 1, 0),
            np.where(dist < 0, params.expiring_weight, 0.0),
        )
        alive = (tdu[:, None] <= ins.expiry_tdi[act][None, :]) & (
            ins.month_index[act][None, :] - mi_t <= params.horizon_months
        )
        w[:, act] = np.where(alive, share + base, 0.0)

        ser = np.flatnonzero(in_root & ~ins.active & (ins.kind == _KIND_OUTRIGHT))
        if ser.size:
            ahead = ins.month_index[ser][None, :] - mi_t
            alive = (tdu[:, None] <= ins.expiry_tdi[ser][None, :]) & (ahead >= 0) & (ahead <= 2)
            w[:, ser] = np.where(alive, params.serial_weight, 0.0)

        spr = np.flatnonzero(in_root & (ins.kind == _KIND_SPREAD))
        if spr.size:
            rc = ins.roll_center[spr][None, :]
            bell = params.spread_peak * np.exp(-(((t - rc) / 3.0) ** 2))
            alive = (
                (tdu[:, None] <= ins.expiry_tdi[spr][None, :])
                & (t >= rc - 45.0)
                & (ins.far_month_index[spr][None, :] - mi_t <= params.horizon_months)
            )
            w[:, spr] = np.where(alive, params.spread_base + bell, 0.0)
    return w


# --------------------------------------------------------------------------- model


def _intraday_profile() -> np.ndarray:
    """Relative activity per Chicago minute of day (1440 values), mean 1 over a session."""
    m = np.arange(1440)
    prof = np.full(1440, 0.35)  # Asia
    prof[(m >= 17 * 60) & (m < 19 * 60)] = 0.55  # Sunday/evening open
    prof[(m >= 2 * 60) & (m < 7 * 60 + 20)] = 0.9  # London
    prof[(m >= 7 * 60 + 20) & (m < 13 * 60 + 30)] = 2.6  # COMEX day session
    prof[(m >= 13 * 60 + 30) & (m < 16 * 60)] = 0.6
    prof[(m >= 16 * 60) & (m < 17 * 60)] = 0.0  # halt
    session = np.r_[17 * 60 : 1440, 0 : 16 * 60]
    return prof / prof[session].mean()


_PROFILE = _intraday_profile()
_SESSION_MINUTES = 23 * 60


def _gold_level(year_frac: float) -> float:
    years = sorted(_GOLD_LEVEL)
    y = min(max(year_frac, years[0]), years[-1])
    return float(np.interp(y, years, [_GOLD_LEVEL[k] for k in years]))


@dataclass
class _ChunkResult:
    records: np.ndarray  # OHLCV_DTYPE, sorted by (ts_event, instrument_id)
    tdu: np.ndarray  # trade date indices in the chunk
    cand: np.ndarray  # instrument positions (columns of day_volume)
    day_volume: np.ndarray  # [len(tdu), len(cand)] summed volume per trade date


class _Generator:
    def __init__(
        self, start: dt.date, end: dt.date, seed: int, symbol: str, volume_scale: float = 1.0
    ) -> None:
        self.start, self.end, self.seed = start, end, seed
        other = "GC" if symbol != "GC" else "SI"
        self.roots = (symbol, other)
        self.cal = _build_calendar(start, end)
        self.ins = _build_instruments(self.cal, start, end, self.roots, seed)
        years = self.cal.bdays.astype("datetime64[Y]").astype(np.int64) + 1970
        vol = np.empty((2, len(self.cal.bdays)))
        for ri, params in enumerate((_MAIN, _OTHER)):
            noise = np.random.default_rng([seed, 2, ri]).standard_normal(len(self.cal.bdays))
            vol[ri] = (
                params.daily_volume_2010
                * params.volume_growth ** (years - 2010).clip(-5, None)
                * np.exp(0.35 * noise - 0.06)
            )
        self.daily_volume = vol * volume_scale
        self.rng = np.random.default_rng([seed, 1])
        self.log_spot = float(
            np.log(_gold_level(start.year + (start.timetuple().tm_yday - 1) / 365.25))
        )
        self.log_spot += 0.02 * float(self.rng.standard_normal())

    def chunk(self, lo_ns: int, hi_ns: int) -> _ChunkResult:
        """All bars with ts_event in [lo_ns, hi_ns)."""
        cal, ins, rng = self.cal, self.ins, self.rng
        sel = np.flatnonzero((cal.sess_open < hi_ns) & (cal.sess_close > lo_ns))
        s_lo = np.maximum(cal.sess_open[sel], lo_ns)
        s_hi = np.minimum(cal.sess_close[sel], hi_ns)
        n_per = np.maximum((s_hi - s_lo) // MIN_NS, 0)
        n_min = int(n_per.sum())
        empty = _ChunkResult(
            np.empty(0, OHLCV_DTYPE), np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, 0))
        )
        if n_min == 0:
            return empty
        sess = np.repeat(np.arange(sel.size), n_per)
        offs = np.arange(n_min) - np.repeat(np.cumsum(n_per) - n_per, n_per)
        ts = s_lo[sess] + offs * MIN_NS
        since_open = (ts - cal.sess_open[sel][sess]) // MIN_NS
        ct_minute = (17 * 60 + since_open) % 1440
        tdi = cal.sess_tdi[sel][sess]
        prof = _PROFILE[ct_minute] * np.where(cal.sess_holiday[sel][sess], _HOLIDAY_FACTOR, 1.0)
        tdu, first_idx, td_pos = np.unique(tdi, return_index=True, return_inverse=True)

        w_all = _weights(cal, ins, tdu)
        cand = np.flatnonzero(w_all.max(axis=0) > 0)  # ascending instrument id
        w = w_all[:, cand]
        cand_root = ins.root[cand]
        day_vol = self.daily_volume[cand_root[None, :], tdu[:, None]] * w  # [n_td, n_cand]
        # expected contracts per minute and instrument
        contracts = day_vol[td_pos] * (prof / _SESSION_MINUTES)[:, None]
        p_trade = -np.expm1(-contracts / _TRADE_SIZE)
        mask = rng.random(contracts.shape) < p_trade
        # the session's first minute in the chunk always trades the main root's front
        main_out = (cand_root == 0) & (ins.kind[cand] == _KIND_OUTRIGHT)
        front_col = np.argmax(np.where(main_out[None, :], w, -1.0), axis=1)
        mask[first_idx, front_col] = True
        rows, cols = np.nonzero(mask)  # row-major: sorted by (minute, instrument id)

        # spot: log random walk per session minute, gaps at session starts
        eps = rng.standard_normal(n_min) * _SIGMA_MIN
        eps[ts == cal.sess_open[sel][sess]] *= 6.0
        mid_year = 1970 + (lo_ns + hi_ns) / 2 / (365.2425 * DAY_NS)
        pull = (np.log(_gold_level(mid_year)) - self.log_spot) / (n_min * 6.0)
        log_s = self.log_spot + np.cumsum(eps + pull)
        log_prev = np.concatenate([[self.log_spot], log_s[:-1]])
        self.log_spot = float(log_s[-1])

        n = rows.size
        pos = cand[cols]
        bar_ts = ts[rows]
        is_spread = ins.kind[pos] == _KIND_SPREAD
        mte_near = (ins.expiry_ns[pos] - bar_ts) / MONTH_NS
        mte_far = (ins.far_expiry_ns[pos] - bar_ts) / MONTH_NS
        factor = np.where(
            is_spread, _CARRY_PER_MONTH * (mte_near - mte_far), 1.0 + _CARRY_PER_MONTH * mte_near
        )
        noise = rng.standard_normal((2, n)) * 0.5
        close_t = np.rint(np.exp(log_s[rows]) * factor / TICK + noise[0]).astype(np.int64)
        open_t = np.rint(np.exp(log_prev[rows]) * factor / TICK + noise[1]).astype(np.int64)
        exp_contracts = contracts[rows, cols]
        volume = 1 + rng.poisson(exp_contracts * 0.9)
        ext = rng.poisson(np.broadcast_to(0.25 * np.sqrt(volume), (2, n)))
        high_t = np.maximum(open_t, close_t) + ext[0]
        low_t = np.minimum(open_t, close_t) - ext[1]
        single = volume == 1  # one trade: one price
        open_t = np.where(single, close_t, open_t)
        high_t = np.where(single, close_t, high_t)
        low_t = np.where(single, close_t, low_t)
        outright = ~is_spread
        low_t = np.where(outright, np.maximum(low_t, 1), low_t)
        open_t = np.where(outright, np.maximum(open_t, low_t), open_t)
        close_t = np.where(outright, np.maximum(close_t, low_t), close_t)
        high_t = np.maximum(high_t, np.maximum(open_t, close_t))

        rec = np.empty(n, dtype=OHLCV_DTYPE)
        rec["length"] = OHLCV_LENGTH_WORDS
        rec["rtype"] = RTYPE_OHLCV_1M
        rec["publisher_id"] = PUBLISHER_GLBX
        rec["instrument_id"] = ins.ids[pos]
        rec["ts_event"] = bar_ts
        rec["open"] = open_t * TICK_FIXED
        rec["high"] = high_t * TICK_FIXED
        rec["low"] = low_t * TICK_FIXED
        rec["close"] = close_t * TICK_FIXED
        rec["volume"] = volume

        day_volume = np.bincount(
            td_pos[rows] * cand.size + cols, weights=volume, minlength=tdu.size * cand.size
        ).reshape(tdu.size, cand.size)
        return _ChunkResult(rec, tdu, cand, day_volume)


# --------------------------------------------------------------------------- files


def _file_name(stem: str, compress: str) -> str:
    prefix = DATASET.lower().replace(".", "-")
    return f"{prefix}-{stem}.{SCHEMA}.dbn" + (".zst" if compress == "zst" else "")


def _day_ns(day: dt.date) -> int:
    return int(np.datetime64(day, "D").astype("datetime64[ns]").astype(np.int64))


def _ns_day(ns: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=int(ns // DAY_NS))


class _Spans:
    """First/last UTC day with records per instrument id (for metadata mappings)."""

    def __init__(self) -> None:
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}

    def add(self, rec: np.ndarray) -> None:
        if rec.size == 0:
            return
        ids = rec["instrument_id"]
        days = (rec["ts_event"] // DAY_NS).astype(np.int64)
        uniq, first = np.unique(ids, return_index=True)
        _, last_rev = np.unique(ids[::-1], return_index=True)
        last = ids.size - 1 - last_rev
        for i, f, la in zip(uniq.tolist(), days[first].tolist(), days[last].tolist(), strict=True):
            self.first[i] = min(self.first.get(i, f), f)
            self.last[i] = max(self.last.get(i, la), la)

    def mappings(self, symbol_of: dict[int, str]) -> list[SymbolInterval]:
        epoch = dt.date(1970, 1, 1)
        return [
            SymbolInterval(
                raw_symbol=symbol_of[i],
                instrument_id=i,
                start_date=epoch + dt.timedelta(days=self.first[i]),
                end_date=epoch + dt.timedelta(days=self.last[i] + 1),
            )
            for i in sorted(self.first)
        ]


def _month_bounds(start_ns: int, end_ns: int) -> list[tuple[int, int, str]]:
    out = []
    m = np.datetime64(_ns_day(start_ns), "M")
    while True:
        lo = int(m.astype("datetime64[ns]").astype(np.int64))
        hi = int((m + 1).astype("datetime64[ns]").astype(np.int64))
        if lo >= end_ns:
            break
        out.append((max(lo, start_ns), min(hi, end_ns), str(m).replace("-", "")))
        m = m + 1
    return out


def generate(
    out_dir: Path,
    start: dt.date,
    end: dt.date,
    seed: int,
    layout: str = "single",
    compress: str = "zst",
    symbol: str = "MGC",
    volume_scale: float = 1.0,
) -> SynthReport:
    """Write synthetic ``GLBX.MDP3`` ``ohlcv-1m`` DBN files covering UTC days
    ``start``..``end`` (inclusive) into ``out_dir`` and report what was written.

    ``volume_scale`` multiplies every instrument's daily volume (more minutes trade:
    denser files; 1.0 is the default market model)."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if compress not in COMPRESSIONS:
        raise ValueError(f"compress must be one of {COMPRESSIONS}, got {compress!r}")
    if not symbol.isalnum() or not symbol.isupper():
        raise ValueError(f"symbol must be an upper-case root like MGC, got {symbol!r}")
    if not 0 < volume_scale <= 100:
        raise ValueError(f"volume_scale must be in (0, 100], got {volume_scale!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    gen = _Generator(start, end, seed, symbol, volume_scale)
    ins = gen.ins
    symbol_of = dict(zip(ins.ids.tolist(), ins.symbols, strict=True))
    start_ns = _day_ns(start)
    end_ns = _day_ns(end + dt.timedelta(days=1))

    report = SynthReport()
    all_ids: set[int] = set()
    n_td = len(gen.cal.bdays)
    main_out = np.flatnonzero((ins.root == 0) & (ins.kind == _KIND_OUTRIGHT))
    main_col = np.full(len(ins.ids), -1)
    main_col[main_out] = np.arange(main_out.size)
    td_volume = np.zeros((n_td, main_out.size))

    single_chunks: list[np.ndarray] = []
    single_spans = _Spans()

    def write(name: str, chunks: list[np.ndarray], spans: _Spans, lo: int, hi: int) -> None:
        path = out_dir / name
        write_records(
            path,
            chunks,
            mappings=spans.mappings(symbol_of),
            start_ns=lo,
            end_ns=hi,
            dataset=DATASET,
            schema=SCHEMA,
            stype_in="parent",
            symbols=[f"{symbol}.FUT"],
            compress=compress == "zst",
        )
        report.files.append(path)

    for lo, hi, month_stem in _month_bounds(start_ns, end_ns):
        res = gen.chunk(lo, hi)
        rec = res.records
        report.records += int(rec.size)
        all_ids.update(np.unique(rec["instrument_id"]).tolist())
        if res.cand.size:
            keep = main_col[res.cand] >= 0
            td_volume[np.ix_(res.tdu, main_col[res.cand[keep]])] += res.day_volume[:, keep]

        if layout == "single":
            single_chunks.append(rec)
            single_spans.add(rec)
        elif layout == "monthly":
            spans = _Spans()
            spans.add(rec)
            write(_file_name(month_stem, compress), [rec], spans, lo, hi)
        else:  # daily: one file per UTC day with records
            days = rec["ts_event"] // DAY_NS
            cuts = np.flatnonzero(np.diff(days)) + 1
            for part in np.split(rec, cuts):
                if part.size == 0:
                    continue
                day_lo = int(part["ts_event"][0] // DAY_NS * DAY_NS)
                spans = _Spans()
                spans.add(part)
                stem = _ns_day(day_lo).strftime("%Y%m%d")
                write(_file_name(stem, compress), [part], spans, day_lo, day_lo + DAY_NS)

    if layout == "single":
        stem = f"{start:%Y%m%d}-{end:%Y%m%d}"
        write(_file_name(stem, compress), single_chunks, single_spans, start_ns, end_ns)

    # front contract by daily volume per trade date in [start, end]
    bdays = gen.cal.bdays
    in_range = np.flatnonzero(
        (bdays >= np.datetime64(start, "D")) & (bdays <= np.datetime64(end, "D"))
    )
    traded = in_range[td_volume[in_range].sum(axis=1) > 0]
    if traded.size:
        front = main_out[np.argmax(td_volume[traded], axis=1)]
        change = np.flatnonzero(front[1:] != front[:-1]) + 1
        report.rolls = [
            (
                bdays[traded[i]].astype(dt.date),
                ins.symbols[front[i - 1]],
                ins.symbols[front[i]],
            )
            for i in change
        ]
    report.instruments = len(all_ids)
    return report


# --------------------------------------------------------------------------- CLI


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {value!r}") from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``synth`` flags to ``parser``."""
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--start", type=_date, required=True, help="first UTC day, YYYY-MM-DD")
    parser.add_argument(
        "--end", type=_date, required=True, help="last UTC day (inclusive), YYYY-MM-DD"
    )
    parser.add_argument("--seed", type=int, default=7, help="RNG seed (default 7)")
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="single",
        help="one file, one per UTC day, or one per UTC month (default single)",
    )
    parser.add_argument(
        "--compress", choices=COMPRESSIONS, default="zst", help="zstd or plain DBN (default zst)"
    )
    parser.add_argument("--symbol", default="MGC", help="futures root (default MGC)")
    parser.add_argument(
        "--volume-scale",
        type=float,
        default=1.0,
        help="multiply every daily volume: denser files (default 1.0; the benchmark uses more)",
    )


def print_report(report: SynthReport, out: TextIO | None = None) -> None:
    """Print what :func:`generate` wrote (files, records, instruments, rolls)."""
    stream = sys.stdout if out is None else out
    files = report.files
    lines = [f"files: {len(files)}"]
    if len(files) <= 3:
        lines += [f"  {f}" for f in files]
    else:
        lines += [f"  {files[0]}", f"  ... ({len(files) - 2} more)", f"  {files[-1]}"]
    lines.append(f"records: {report.records}")
    lines.append(f"instruments: {report.instruments}")
    lines.append(f"rolls: {len(report.rolls)} (front contract by daily volume)")
    lines += [f"  {day.isoformat()} {src} -> {dst}" for day, src, dst in report.rolls]
    print("\n".join(lines), file=stream)


def run(args: argparse.Namespace) -> int:
    """Run ``synth`` from parsed arguments, print the report; returns the exit code."""
    try:
        report = generate(
            args.out,
            args.start,
            args.end,
            args.seed,
            layout=args.layout,
            compress=args.compress,
            symbol=args.symbol,
            volume_scale=args.volume_scale,
        )
    except ValueError as exc:
        print(f"synth: error: {exc}", file=sys.stderr)
        return 2
    print_report(report)
    return 0

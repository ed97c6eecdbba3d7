"""dbn_backfill.sampledata.synth: sample MGC files that look like a Databento GLBX.MDP3 download."""

from __future__ import annotations

import argparse
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import databento as db
import numpy as np
import pandas as pd
import pandas_market_calendars as mcal
import pytest
from databento.common.symbology import InstrumentMap

from dbn_backfill.sampledata.synth import SynthReport, add_arguments, generate, raw_symbol, run

MIN_NS = 60 * 1_000_000_000
DAY_NS = 1440 * MIN_NS
TICK = 100_000_000
ROOT_RE = re.compile(r"^MGC[FGHJKMNQUVXZ]\d$")
ACTIVE_RE = re.compile(r"^MGC[GJMQVZ]\d$")
SPREAD_RE = re.compile(r"^MGC[FGHJKMNQUVXZ]\d-MGC[FGHJKMNQUVXZ]\d$")
GC_RE = re.compile(r"^GC[FGHJKMNQUVXZ]\d$")
CODES = "FGHJKMNQUVXZ"


@dataclass
class Loaded:
    path: Path
    store: db.DBNStore
    arr: np.ndarray
    ts: np.ndarray  # int64 ns
    symbols: np.ndarray  # str, resolved through the metadata mappings


def load(path: Path) -> Loaded:
    store = db.DBNStore.from_file(path)
    arr = store.to_ndarray()
    ts = arr["ts_event"].astype(np.int64)
    imap = InstrumentMap()
    imap.insert_metadata(store.metadata)
    dates = ts.astype("datetime64[ns]").astype("datetime64[D]")
    syms = imap.resolve_many(arr["instrument_id"].astype(np.uint64), dates)
    assert not any(s is None for s in syms), "a record does not resolve"
    return Loaded(path, store, arr, ts, syms.astype(str))


def utc_ns(day: dt.date) -> int:
    return int(np.datetime64(day, "ns").astype(np.int64))


def sessions(start: dt.date, end: dt.date) -> tuple[np.ndarray, np.ndarray]:
    """CME Globex metals sessions (plus any CME_TradeDate session they lack)."""
    lo, hi = start - dt.timedelta(days=7), end + dt.timedelta(days=7)
    met = mcal.get_calendar("CMEGlobex_Metals").schedule(lo, hi)
    td = mcal.get_calendar("CME_TradeDate").schedule(lo, hi)
    sched = pd.concat([met, td.loc[~td.index.isin(met.index)]]).sort_values("market_open")

    def ns(col: pd.Series) -> np.ndarray:
        return np.asarray(pd.DatetimeIndex(col).as_unit("ns").asi8)

    return ns(sched["market_open"]), ns(sched["market_close"])


def business_days(start: dt.date, end: dt.date) -> np.ndarray:
    idx = mcal.get_calendar("CME_TradeDate").schedule(start, end).index
    return np.asarray(pd.DatetimeIndex(idx).values.astype("datetime64[D]"))


def trade_dates(ts: np.ndarray) -> np.ndarray:
    """Chicago time + 7 h -> date; a non-business date moves to the next business day."""
    local = pd.DatetimeIndex(ts.astype("datetime64[ns]")).tz_localize("UTC").tz_convert(
        "America/Chicago"
    ) + pd.Timedelta(hours=7)
    days = local.tz_localize(None).values.astype("datetime64[D]")
    lo, hi = days.min().astype(dt.date), days.max().astype(dt.date)
    bd = business_days(lo, hi + dt.timedelta(days=14))
    return bd[np.searchsorted(bd, days, side="left")]


def daily_front(data: Loaded) -> pd.Series:
    """Root outright with the most volume per trade date."""
    mask = np.array([bool(ROOT_RE.match(s)) for s in data.symbols])
    df = pd.DataFrame(
        {
            "td": trade_dates(data.ts[mask]),
            "sym": data.symbols[mask],
            "vol": data.arr["volume"][mask].astype(np.int64),
        }
    )
    vol = df.groupby(["td", "sym"])["vol"].sum().unstack(fill_value=0)
    return vol.idxmax(axis=1)


# ------------------------------------------------------------------ fixtures

SEVEN = (dt.date(2024, 1, 1), dt.date(2024, 7, 31))


@pytest.fixture(scope="module")
def seven(tmp_path_factory: pytest.TempPathFactory) -> tuple[SynthReport, Loaded]:
    out = tmp_path_factory.mktemp("seven")
    report = generate(out, *SEVEN, seed=7)
    assert len(report.files) == 1
    return report, load(report.files[0])


@pytest.fixture(scope="module")
def holidays(tmp_path_factory: pytest.TempPathFactory) -> tuple[SynthReport, Loaded]:
    """Thanksgiving, DST end, Christmas, New Year, MLK; monthly plain files."""
    out = tmp_path_factory.mktemp("holidays")
    report = generate(
        out, dt.date(2022, 10, 28), dt.date(2023, 1, 20), seed=3, layout="monthly", compress="plain"
    )
    return report, report_concat(report)


def report_concat(report: SynthReport) -> Loaded:
    parts = [load(p) for p in report.files]
    return Loaded(
        report.files[0],
        parts[0].store,
        np.concatenate([p.arr for p in parts]),
        np.concatenate([p.ts for p in parts]),
        np.concatenate([p.symbols for p in parts]),
    )


# ------------------------------------------------------------------ tests


def test_file_looks_like_a_databento_download(seven: tuple[SynthReport, Loaded]) -> None:
    report, data = seven
    assert data.path.name == "glbx-mdp3-20240101-20240731.ohlcv-1m.dbn.zst"
    assert data.path.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    md = data.store.metadata
    assert md.dataset == "GLBX.MDP3"
    assert str(md.schema) == "ohlcv-1m"
    assert str(md.stype_in) == "parent"
    assert str(md.stype_out) == "instrument_id"
    assert md.symbols == ["MGC.FUT"]
    assert md.start == utc_ns(SEVEN[0])
    assert md.end == utc_ns(SEVEN[1] + dt.timedelta(days=1))
    arr = data.arr
    assert (arr["rtype"] == 33).all() and (arr["length"] == 14).all()
    assert (arr["publisher_id"] == 1).all()
    assert report.records == len(arr)
    assert report.instruments == len(np.unique(arr["instrument_id"]))
    assert 300_000 < len(arr) < 1_500_000


def test_records_sorted_unique_and_inside_file_range(seven: tuple[SynthReport, Loaded]) -> None:
    _, data = seven
    md = data.store.metadata
    ts, ids = data.ts, data.arr["instrument_id"].astype(np.int64)
    assert ((ts >= md.start) & (ts < md.end)).all()
    dts, dids = np.diff(ts), np.diff(ids)
    assert ((dts > 0) | ((dts == 0) & (dids > 0))).all()  # (ts, id) strictly increasing


def test_mappings_are_per_instrument_date_intervals(seven: tuple[SynthReport, Loaded]) -> None:
    _, data = seven
    ids = data.arr["instrument_id"]
    mapped: dict[int, str] = {}
    for raw, intervals in data.store.metadata.mappings.items():
        for iv in intervals:
            mapped[int(iv["symbol"])] = raw
            first = data.ts[ids == int(iv["symbol"])].min() // DAY_NS
            last = data.ts[ids == int(iv["symbol"])].max() // DAY_NS
            assert iv["start_date"] == dt.date(1970, 1, 1) + dt.timedelta(days=int(first))
            assert iv["end_date"] == dt.date(1970, 1, 1) + dt.timedelta(days=int(last) + 1)
    assert set(mapped) == set(np.unique(ids).tolist())
    # one raw symbol per instrument id, stable
    pairs = set(zip(ids.tolist(), data.symbols.tolist(), strict=True))
    assert len(pairs) == len(mapped)


def test_bars_inside_sessions_and_minute_aligned(seven: tuple[SynthReport, Loaded]) -> None:
    _, data = seven
    assert (data.ts % MIN_NS == 0).all()
    opn, cls = sessions(*SEVEN)
    i = np.searchsorted(opn, data.ts, side="right") - 1
    assert (i >= 0).all()
    assert (data.ts + MIN_NS <= cls[i]).all(), "bar outside a Globex metals session"
    # the daily halt 16:00-17:00 Chicago is empty, across the DST change in March
    local = pd.DatetimeIndex(data.ts.astype("datetime64[ns]")).tz_localize("UTC")
    assert not (local.tz_convert("America/Chicago").hour == 16).any()
    assert not (local.tz_convert("America/Chicago").day_of_week == 5).any()  # Saturday


def test_every_business_day_has_root_outrights(
    seven: tuple[SynthReport, Loaded], holidays: tuple[SynthReport, Loaded]
) -> None:
    for (start, end), data in [
        (SEVEN, seven[1]),
        ((dt.date(2022, 10, 28), dt.date(2023, 1, 20)), holidays[1]),
    ]:
        mask = np.array([bool(ROOT_RE.match(s)) for s in data.symbols])
        have = set(trade_dates(data.ts[mask]).tolist())
        need = business_days(start, end)
        missing = [d for d in need.tolist() if d not in have]
        assert not missing, f"business days without {missing}"


def test_holiday_files_in_sessions(holidays: tuple[SynthReport, Loaded]) -> None:
    report, data = holidays
    assert [p.name for p in report.files] == [
        "glbx-mdp3-202210.ohlcv-1m.dbn",
        "glbx-mdp3-202211.ohlcv-1m.dbn",
        "glbx-mdp3-202212.ohlcv-1m.dbn",
        "glbx-mdp3-202301.ohlcv-1m.dbn",
    ]
    opn, cls = sessions(dt.date(2022, 10, 28), dt.date(2023, 1, 20))
    i = np.searchsorted(opn, data.ts, side="right") - 1
    assert (data.ts + MIN_NS <= cls[i]).all()
    days = set(data.ts.astype("datetime64[ns]").astype("datetime64[D]").astype(dt.date).tolist())
    assert dt.date(2022, 12, 26) in days  # Christmas (observed) Monday: Globex opens 17:00 CT
    # nothing on Christmas Day / New Year's Day before the evening reopen
    local = pd.DatetimeIndex(data.ts.astype("datetime64[ns]")).tz_localize("UTC")
    local = local.tz_convert("America/Chicago")
    assert not ((local.date == dt.date(2022, 12, 25)) & (local.hour < 17)).any()


def test_front_rolls_every_active_cycle(seven: tuple[SynthReport, Loaded]) -> None:
    report, data = seven
    front = daily_front(data)
    assert all(ACTIVE_RE.match(s) for s in front), "front must be an active month"
    changes = [
        (td.astype(dt.date) if isinstance(td, np.datetime64) else pd.Timestamp(td).date(), a, b)
        for td, a, b in zip(front.index[1:], front.values[:-1], front.values[1:], strict=True)
        if a != b
    ]
    assert [(a, b) for _, a, b in changes] == [
        ("MGCG4", "MGCJ4"),
        ("MGCJ4", "MGCM4"),
        ("MGCM4", "MGCQ4"),
        ("MGCQ4", "MGCV4"),
    ]
    for day, src, _ in changes:
        contract_month = CODES.index(src[3]) + 1
        assert day.month == contract_month - 1, "roll in the month before the contract month"
        assert 18 <= day.day <= 31
    assert report.rolls == changes


def test_volume_migrates_over_several_sessions(seven: tuple[SynthReport, Loaded]) -> None:
    _, data = seven
    mask = np.isin(data.symbols, ["MGCG4", "MGCJ4"])
    df = pd.DataFrame(
        {
            "td": trade_dates(data.ts[mask]),
            "sym": data.symbols[mask],
            "vol": data.arr["volume"][mask],
        }
    )
    vol = df.groupby(["td", "sym"])["vol"].sum().unstack(fill_value=0).astype(float)
    share = vol["MGCJ4"] / (vol["MGCG4"] + vol["MGCJ4"])
    mixed = share[(share > 0.1) & (share < 0.9)]
    assert 2 <= len(mixed) <= 8


def test_contract_cycle_thin_and_sparse(seven: tuple[SynthReport, Loaded]) -> None:
    _, data = seven
    syms = set(data.symbols.tolist())
    # serial months trade thin, back months sparse, all with one-digit years
    assert {"MGCH4", "MGCK4", "MGCN4"} <= syms
    assert {"MGCZ4", "MGCG5"} <= syms
    counts = pd.Series(data.symbols).value_counts()
    bars_per_day = counts / len(business_days(*SEVEN))
    assert bars_per_day["MGCM4"] > 300
    assert bars_per_day["MGCK4"] < bars_per_day["MGCM4"] / 10
    # an expired contract has no bars after its last trade date (third-last business day)
    last_ns = data.ts[data.symbols == "MGCG4"].max()
    last_g4 = last_ns.astype("datetime64[ns]").astype("datetime64[D]").astype(dt.date)
    assert last_g4 <= dt.date(2024, 2, 27)


def test_spreads_and_other_root_present(seven: tuple[SynthReport, Loaded]) -> None:
    _, data = seven
    syms = data.symbols
    spread = np.array([bool(SPREAD_RE.match(s)) for s in syms])
    gc = np.array([bool(GC_RE.match(s)) for s in syms])
    assert spread.sum() > 1000 and "MGCG4-MGCJ4" in set(syms[spread].tolist())
    assert gc.sum() > 10_000
    assert ((spread | gc) | np.array([bool(ROOT_RE.match(s)) for s in syms])).all()
    assert (data.arr["close"][spread] <= 0).any()  # spreads may be zero or negative


def test_prices_valid(seven: tuple[SynthReport, Loaded]) -> None:
    _, data = seven
    a = data.arr
    o, h, low, c = (a[k].astype(np.int64) for k in ("open", "high", "low", "close"))
    assert (h >= np.maximum(np.maximum(o, c), low)).all()
    assert (low <= np.minimum(o, c)).all()
    for x in (o, h, low, c):
        assert (x % TICK == 0).all()
    outright = np.array([not SPREAD_RE.match(s) for s in data.symbols])
    assert (low[outright] > 0).all()
    assert (a["volume"] >= 1).all()
    gold = c[outright] / 1e9
    assert gold.min() > 1000 and gold.max() < 10_000


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    start, end = dt.date(2024, 2, 1), dt.date(2024, 3, 15)
    a = generate(tmp_path / "a", start, end, seed=11)
    b = generate(tmp_path / "b", start, end, seed=11)
    c = generate(tmp_path / "c", start, end, seed=12)
    assert a.files[0].read_bytes() == b.files[0].read_bytes()
    assert a.files[0].read_bytes() != c.files[0].read_bytes()
    assert a.records == b.records and a.rolls == b.rolls


def test_daily_layout(tmp_path: Path, seven: tuple[SynthReport, Loaded]) -> None:
    start, end = dt.date(2024, 2, 28), dt.date(2024, 3, 4)  # leap day, month end, weekend
    report = generate(tmp_path, start, end, seed=7, layout="daily", compress="plain")
    names = [p.name for p in report.files]
    assert names == [
        f"glbx-mdp3-{d}.ohlcv-1m.dbn"
        for d in ("20240228", "20240229", "20240301", "20240303", "20240304")
    ]  # Saturday has no trading, so no file
    parts = []
    for path in report.files:
        data = load(path)
        assert path.read_bytes()[:3] == b"DBN"
        day = dt.datetime.strptime(path.name[10:18], "%Y%m%d").date()
        md = data.store.metadata
        assert (md.start, md.end) == (utc_ns(day), utc_ns(day + dt.timedelta(days=1)))
        assert ((data.ts >= md.start) & (data.ts < md.end)).all()
        ids = set(np.unique(data.arr["instrument_id"]).tolist())
        mapped = {int(iv["symbol"]) for ivs in md.mappings.values() for iv in ivs}
        assert mapped == ids  # only that day's instruments
        for ivs in md.mappings.values():
            for iv in ivs:
                assert (iv["start_date"], iv["end_date"]) == (day, day + dt.timedelta(days=1))
        parts.append(data)
    assert report.records == sum(len(p.arr) for p in parts)

    # the same records as the single-file layout; ids stable across ranges
    single = load(generate(tmp_path / "single", start, end, seed=7).files[0])
    np.testing.assert_array_equal(np.concatenate([p.arr for p in parts]), single.arr)
    ids_seven = dict(
        zip(seven[1].symbols.tolist(), seven[1].arr["instrument_id"].tolist(), strict=True)
    )
    for p in parts:
        for s, i in zip(p.symbols.tolist(), p.arr["instrument_id"].tolist(), strict=True):
            assert ids_seven.get(s, i) == i


def test_monthly_layout_ranges(holidays: tuple[SynthReport, Loaded]) -> None:
    report, _ = holidays
    bounds = [
        (dt.date(2022, 10, 28), dt.date(2022, 11, 1)),
        (dt.date(2022, 11, 1), dt.date(2022, 12, 1)),
        (dt.date(2022, 12, 1), dt.date(2023, 1, 1)),
        (dt.date(2023, 1, 1), dt.date(2023, 1, 21)),
    ]
    for path, (lo, hi) in zip(report.files, bounds, strict=True):
        data = load(path)
        md = data.store.metadata
        assert (md.start, md.end) == (utc_ns(lo), utc_ns(hi))
        assert ((data.ts >= md.start) & (data.ts < md.end)).all()


def test_one_digit_years_wrap() -> None:
    assert raw_symbol("MGC", 2024, 2) == "MGCG4"
    assert raw_symbol("MGC", 2014, 2) == "MGCG4"
    assert raw_symbol("MGC", 2020, 12) == "MGCZ0"


def test_decade_boundary(tmp_path: Path) -> None:
    report = generate(tmp_path, dt.date(2019, 11, 20), dt.date(2019, 12, 10), seed=5)
    data = load(report.files[0])
    syms = set(data.symbols.tolist())
    assert {"MGCZ9", "MGCG0"} <= syms
    (day, src, dst), *_ = report.rolls
    assert (src, dst) == ("MGCZ9", "MGCG0")
    assert dt.date(2019, 11, 18) <= day <= dt.date(2019, 11, 29)


def test_other_symbol(tmp_path: Path) -> None:
    report = generate(tmp_path, dt.date(2024, 5, 6), dt.date(2024, 5, 10), seed=1, symbol="GC")
    data = load(report.files[0])
    assert data.store.metadata.symbols == ["GC.FUT"]
    syms = set(data.symbols.tolist())
    assert "GCM4" in syms and "GCM4-GCQ4" in syms
    assert any(s.startswith("SI") for s in syms)


def test_cli_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--out", str(tmp_path), "--start", "2024-03-01", "--end", "2024-03-08"]
    )
    assert (args.layout, args.compress, args.symbol, args.seed) == ("single", "zst", "MGC", 7)
    assert run(args) == 0
    out = capsys.readouterr().out
    assert "glbx-mdp3-20240301-20240308.ohlcv-1m.dbn.zst" in out
    assert re.search(r"records: \d+", out) and "instruments:" in out and "rolls:" in out

    bad = parser.parse_args(
        ["--out", str(tmp_path), "--start", "2024-03-08", "--end", "2024-03-01"]
    )
    assert run(bad) == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", "x", "--start", "2024-13-01", "--end", "2024-03-01"])


def test_the_report_names_the_first_and_last_file_of_a_long_list():
    import io

    from dbn_backfill.sampledata.synth import SynthReport, print_report

    files = [Path(f"d/glbx-mdp3-202401{d:02d}.ohlcv-1m.dbn.zst") for d in range(1, 31)]
    out = io.StringIO()
    print_report(SynthReport(files, 10, 2, [(dt.date(2024, 1, 29), "MGCG4", "MGCJ4")]), out)
    lines = out.getvalue().splitlines()
    assert lines[:4] == [
        "files: 30",
        f"  {files[0]}",
        "  ... (28 more)",
        f"  {files[-1]}",
    ]
    assert lines[4:] == [
        "records: 10",
        "instruments: 2",
        "rolls: 1 (front contract by daily volume)",
        "  2024-01-29 MGCG4 -> MGCJ4",
    ]

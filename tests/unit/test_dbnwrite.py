"""dbn_backfill.sampledata.dbnwrite: real DBN bytes that Databento's own readers decode."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import databento as db
import databento_dbn
import numpy as np
import pytest
from databento.common.symbology import InstrumentMap

from dbn_backfill.sampledata.dbnwrite import OHLCV_DTYPE, SymbolInterval, write_ohlcv_dbn

NS = 1_000_000_000
DAY0 = dt.date(2024, 1, 2)
START_NS = int(np.datetime64(DAY0, "ns").astype(np.int64))
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _columns(n: int = 5) -> dict[str, np.ndarray]:
    ts = START_NS + np.arange(n, dtype=np.int64) * 60 * NS
    ids = np.array([101, 202] * n, dtype=np.uint32)[:n]
    base = np.arange(n, dtype=np.int64) * 100_000_000
    return {
        "instrument_id": ids,
        "ts_event": ts,
        "open": 2_000_000_000_000 + base,
        "high": 2_000_500_000_000 + base,
        "low": -1_200_000_000 - base,  # negative prices (spreads) must survive
        "close": 2_000_100_000_000 + base,
        "volume": np.arange(1, n + 1, dtype=np.uint64) * 3,
    }


MAPPINGS = [
    SymbolInterval("MGCG4", 101, DAY0, DAY0 + dt.timedelta(days=1)),
    SymbolInterval("MGCG4-MGCJ4", 202, DAY0, DAY0 + dt.timedelta(days=1)),
]


def _write(path: Path, **kw: object) -> dict[str, np.ndarray]:
    cols = _columns()
    args: dict[str, object] = {
        "mappings": MAPPINGS,
        "start_ns": START_NS,
        "end_ns": START_NS + 86_400 * NS,
    }
    args.update(kw)
    write_ohlcv_dbn(path, **cols, **args)  # type: ignore[arg-type]
    return cols


@pytest.mark.parametrize(
    ("name", "compress", "zstd"),
    [
        ("a.ohlcv-1m.dbn.zst", None, True),
        ("a.ohlcv-1m.dbn", None, False),
        ("a.ohlcv-1m.dbn", True, True),
        ("a.ohlcv-1m.dbn.zst", False, False),
    ],
)
def test_round_trip(tmp_path: Path, name: str, compress: bool | None, zstd: bool) -> None:
    path = tmp_path / name
    cols = _write(path, compress=compress)
    head = path.read_bytes()[:4]
    assert head == ZSTD_MAGIC if zstd else head[:3] == b"DBN"

    store = db.DBNStore.from_file(path)
    assert store.compression == (db.Compression.ZSTD if zstd else db.Compression.NONE)
    arr = store.to_ndarray()
    assert len(arr) == 5
    assert (arr["length"] == 14).all()  # 56 bytes in 4-byte words
    assert (arr["rtype"] == 33).all()
    assert (arr["publisher_id"] == 1).all()
    for name_ in ("instrument_id", "ts_event", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(arr[name_].astype(np.int64), cols[name_].astype(np.int64))

    md = store.metadata
    assert md.version == 3
    assert md.dataset == "GLBX.MDP3"
    assert str(md.schema) == "ohlcv-1m"
    assert str(md.stype_in) == "parent"
    assert str(md.stype_out) == "instrument_id"
    assert md.symbols == ["MGC.FUT"]
    assert md.start == START_NS
    assert md.end == START_NS + 86_400 * NS
    assert not md.ts_out

    # the record iterator dispatches on rtype: real OHLCVMsg objects
    msgs = list(store)
    assert all(isinstance(m, databento_dbn.OHLCVMsg) for m in msgs)
    first = msgs[0]
    assert isinstance(first, databento_dbn.OHLCVMsg)
    assert first.pretty_open == pytest.approx(2000.0)
    assert first.pretty_low == pytest.approx(-1.2)


def test_record_bytes_match_databento_encoder(tmp_path: Path) -> None:
    path = tmp_path / "b.dbn"
    cols = _write(path)
    raw = path.read_bytes()
    body = raw[len(raw) - 5 * OHLCV_DTYPE.itemsize :]
    for i in range(5):
        msg = databento_dbn.OHLCVMsg(
            33,
            1,
            int(cols["instrument_id"][i]),
            int(cols["ts_event"][i]),
            int(cols["open"][i]),
            int(cols["high"][i]),
            int(cols["low"][i]),
            int(cols["close"][i]),
            int(cols["volume"][i]),
        )
        assert body[i * 56 : (i + 1) * 56] == bytes(msg)


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # databento's own to_df on pandas 3
def test_mappings_resolve_through_instrument_map(tmp_path: Path) -> None:
    path = tmp_path / "c.dbn.zst"
    d14, d24 = dt.date(2014, 1, 2), dt.date(2024, 1, 2)
    mappings = [
        *MAPPINGS,
        # one-digit years wrap: the same raw symbol, another instrument, a decade earlier
        SymbolInterval("MGCG4", 99, d14, d14 + dt.timedelta(days=30)),
    ]
    _write(path, mappings=mappings)
    store = db.DBNStore.from_file(path)
    md = store.metadata
    assert set(md.mappings) == {"MGCG4", "MGCG4-MGCJ4"}
    assert [i["symbol"] for i in md.mappings["MGCG4"]] == ["99", "101"]  # sorted, both kept

    imap = InstrumentMap()
    imap.insert_metadata(md)
    assert imap.resolve(101, d24) == "MGCG4"
    assert imap.resolve(202, d24) == "MGCG4-MGCJ4"
    assert imap.resolve(99, d14 + dt.timedelta(days=29)) == "MGCG4"
    assert imap.resolve(99, d14 + dt.timedelta(days=30)) is None  # end is exclusive
    assert imap.resolve(101, d24 + dt.timedelta(days=1)) is None

    arr = store.to_ndarray()
    dates = arr["ts_event"].astype("datetime64[ns]").astype("datetime64[D]")
    syms = imap.resolve_many(arr["instrument_id"].astype(np.uint64), dates)
    assert list(syms) == ["MGCG4", "MGCG4-MGCJ4"] * 2 + ["MGCG4"]
    # databento's DataFrame symbol column uses the same mappings
    df = store.to_df(map_symbols=True)
    assert list(df["symbol"]) == list(syms)


@pytest.mark.parametrize("rtype", [32, 34, 35])
def test_rtype_override_is_visible(tmp_path: Path, rtype: int) -> None:
    path = tmp_path / "bad.dbn.zst"
    _write(path, rtype=rtype)
    store = db.DBNStore.from_file(path)
    assert str(store.metadata.schema) == "ohlcv-1m"  # the metadata still says 1m
    assert (store.to_ndarray()["rtype"] == rtype).all()
    assert {int(m.rtype) for m in store} == {rtype}


def test_schema_and_symbols_are_metadata_only(tmp_path: Path) -> None:
    path = tmp_path / "h.dbn"
    _write(path, schema="ohlcv-1h", symbols=["GC.FUT", "MGC.FUT"], stype_in="parent")
    store = db.DBNStore.from_file(path)
    assert str(store.metadata.schema) == "ohlcv-1h"
    assert store.metadata.symbols == ["GC.FUT", "MGC.FUT"]
    assert (store.to_ndarray()["rtype"] == 33).all()


def test_end_none_and_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "e.dbn.zst"
    e = np.empty(0, dtype=np.int64)
    write_ohlcv_dbn(
        path,
        instrument_id=e.astype(np.uint32),
        ts_event=e,
        open=e,
        high=e,
        low=e,
        close=e,
        volume=e.astype(np.uint64),
        mappings=[],
        start_ns=START_NS,
        end_ns=None,
    )
    store = db.DBNStore.from_file(path)
    assert store.metadata.end is None
    assert store.metadata.mappings == {}
    assert len(store.to_ndarray()) == 0


def test_atomic_write_and_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "f.dbn.zst"
    _write(path)
    first = path.read_bytes()
    _write(path)  # overwrite in place: same bytes (deterministic), no temp leftovers
    assert path.read_bytes() == first
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.dbn.zst"]

    bad = _columns()
    bad["volume"] = bad["volume"][:-1]
    with pytest.raises(ValueError, match="volume"):
        write_ohlcv_dbn(path, **bad, mappings=MAPPINGS, start_ns=START_NS, end_ns=None)  # type: ignore[arg-type]
    assert path.read_bytes() == first

    with pytest.raises(ValueError, match="overlapping"):
        _write(
            tmp_path / "g.dbn",
            mappings=[*MAPPINGS, SymbolInterval("MGCG4", 7, DAY0, DAY0 + dt.timedelta(days=2))],
        )
    assert not (tmp_path / "g.dbn").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

"""``chunks/build.py`` on small hand-built records: the front contract and its bars,
the rules that fail a chunk (with a message naming the record), the content hash,
and one batch written as the merge reads it."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dbn_backfill.chunks.build import (
    build_batch,
    chunk_errors,
    content_hash,
    read_decoded,
    repeated,
    select_bars,
)
from dbn_backfill.chunks.grid import Chunk
from dbn_backfill.sources.decode import DECODED_SCHEMA
from dbn_backfill.symbols import root_of

D = dt.date
P = 1_000_000_000  # fixed-point 1.0
DAYS = [D(2024, 1, 2), D(2024, 1, 3), D(2024, 1, 4)]
CHUNKS = [Chunk(d, d) for d in DAYS]


def ts(day: dt.date, minute: int = 0) -> int:
    """``ts_event`` (ns) of ``day`` 14:30 UTC + ``minute``: inside ``day``'s session."""
    return int((pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=14, minutes=30 + minute)).value)


def record(day, raw="MGCG4", iid=1, minute=0, volume=10, source="/dbn/a.dbn", **prices) -> dict:
    px = {"open": 2000 * P, "high": 2001 * P, "low": 1999 * P, "close": 2000 * P, **prices}
    return {
        "source": source,
        "instrument_id": iid,
        "ts_event": ts(day, minute),
        **px,
        "volume": volume,
        "raw_symbol": raw,
        "trade_date": day,
        "root": root_of(raw) if raw else None,
    }


def frame_of(records: list[dict]) -> pd.DataFrame:
    """Records as the build reads them (``read_decoded``) with their chunk position."""
    frame = pd.DataFrame(records).drop(columns="root")
    frame["volume"] = frame["volume"].astype("uint64")
    frame["source"] = frame["source"].astype("category")
    frame["raw_symbol"] = frame["raw_symbol"].astype("category")
    frame["trade_date"] = pd.to_datetime(frame["trade_date"]).values.astype("datetime64[D]")
    frame["chunk"] = [DAYS.index(r["trade_date"]) for r in records]
    return frame


# --- selection -----------------------------------------------------------------------


def test_front_contract_by_volume_then_expiry_with_its_bars_only():
    records = [
        # day 0: a volume tie, the earlier expiry (G4) wins; J4's bars are not kept
        record(DAYS[0], "MGCG4", 1, minute=1, volume=20),
        record(DAYS[0], "MGCG4", 1, minute=0, volume=10, open=2000 * P + P // 4),
        record(DAYS[0], "MGCJ4", 2, minute=0, volume=30),
        # day 1: J4 has more volume than G4 (through two ids resolving to it)
        record(DAYS[1], "MGCJ4", 2, volume=25),
        record(DAYS[1], "MGCJ4", 7, minute=1, volume=15),
        record(DAYS[1], "MGCG4", 1, volume=30),
    ]
    bars, selection = select_bars(frame_of(records), "MGC")
    picks = selection.assign(day=pd.to_datetime(selection["trade_date"]).dt.date).set_index("day")
    assert picks["source_symbol"].to_dict() == {DAYS[0]: "MGCG4", DAYS[1]: "MGCJ4"}
    assert picks["runner_up"].to_dict() == {DAYS[0]: "MGCJ4", DAYS[1]: "MGCG4"}
    assert picks["volume"].to_dict() == {DAYS[0]: 30, DAYS[1]: 40}
    assert picks.loc[DAYS[1], "instrument_id"] == 2  # the id carrying most of the volume
    assert bars["source_symbol"].tolist() == ["MGCG4", "MGCG4", "MGCJ4", "MGCJ4"]
    assert bars["ts_utc"].is_monotonic_increasing
    first = bars.iloc[0]
    assert first["ts_utc"] == pd.Timestamp(ts(DAYS[0]), unit="ns", tz="UTC")
    assert (first["open"], first["high"], first["volume"]) == (2000.25, 2001.0, 10)
    assert set(bars["symbol"]) == {"MGC"}
    assert bars["chunk"].tolist() == [0, 0, 1, 1]


def test_repeated_marks_every_row_of_a_repeated_key():
    iid = np.array([1, 1, 2, 1, 3], dtype="int64")
    stamp = np.array([5, 6, 5, 5, 5], dtype="int64")
    assert repeated(iid, stamp).tolist() == [True, False, False, True, False]
    assert repeated(np.array([1]), np.array([1])).tolist() == [False]


# --- rules that fail a chunk ----------------------------------------------------------


def test_invalid_record_fails_its_chunk_naming_the_first_record():
    records = [
        record(DAYS[0]),
        record(DAYS[1], minute=2, high=1000 * P),  # high < open: invalid, second in time
        record(DAYS[1], minute=1, source="/dbn/b.dbn", high=1500 * P),  # the first invalid
        record(DAYS[2]),
    ]
    errors = chunk_errors(frame_of(records), CHUNKS)
    assert list(errors) == [1]
    message = errors[1]
    assert message.startswith(
        f"chunk {CHUNKS[1].chunk_id}: 2 invalid outright records (contract section 4)"
    )
    assert (
        f"file /dbn/b.dbn, instrument_id 1, raw symbol MGCG4, ts_event {ts(DAYS[1], 1)}" in message
    )
    assert "high 1500.0" in message and "high < max(open, close, low)" in message


def test_unmapped_record_fails_its_chunk():
    records = [record(DAYS[0]), record(DAYS[1], raw=None, iid=99)]
    errors = chunk_errors(frame_of(records), CHUNKS)
    assert list(errors) == [1]
    assert "no symbol mapping on their UTC date (contract section 2)" in errors[1]
    assert "instrument_id 99" in errors[1]


def test_identical_duplicates_pass_conflicting_ones_fail():
    records = [
        record(DAYS[0], source="/dbn/a.dbn"),
        record(DAYS[0], source="/dbn/b.dbn"),  # identical bar from an overlapping file
        record(DAYS[1], source="/dbn/a.dbn"),
        record(DAYS[1], source="/dbn/b.dbn", volume=11),  # same key, other volume
    ]
    errors = chunk_errors(frame_of(records), CHUNKS)
    assert list(errors) == [1]
    assert "conflicting duplicate records" in errors[1]
    assert "/dbn/a.dbn" in errors[1] and "/dbn/b.dbn" in errors[1]


def test_content_hash_follows_bars_and_selection():
    bars, selection = select_bars(frame_of([record(DAYS[0]), record(DAYS[0], minute=1)]), "MGC")
    bars = bars.drop(columns="chunk")
    same = content_hash(bars.copy(), selection.copy())
    assert content_hash(bars, selection) == same
    assert content_hash(bars.assign(close=bars["close"] + 0.25), selection) != same
    assert content_hash(bars, selection.assign(volume=selection["volume"] + 1)) != same
    assert content_hash(bars.iloc[:1], selection) != same


# --- a whole batch --------------------------------------------------------------------


def test_batch_writes_a_row_group_per_valid_chunk_and_reports_the_broken_one(tmp_path):
    records = [
        record(DAYS[0]),
        record(DAYS[0], minute=1),
        record(DAYS[1]),
        record(DAYS[1], minute=3, low=2500 * P),  # low > close: breaks chunk 1
        record(DAYS[2], source="/dbn/c.dbn"),
    ]
    decoded = tmp_path / "decoded.parquet"
    pq.write_table(pa.Table.from_pylist(records, schema=DECODED_SCHEMA), decoded)
    out = {k: tmp_path / f"b.{k}" for k in ("bars.parquet", "selection.parquet", "manifest.json")}
    manifest = build_batch(
        [decoded],
        "b0",
        CHUNKS,
        out["bars.parquet"],
        out["selection.parquet"],
        out["manifest.json"],
        "MGC",
    )
    assert [c.status for c in manifest.chunks] == ["ok", "failed", "ok"]
    ok0, bad, ok2 = manifest.chunks
    assert (ok0.rows, ok0.row_group, ok2.rows, ok2.row_group) == (2, 0, 1, 1)
    assert ok2.sources == ["/dbn/c.dbn"] and ok0.days_present == [str(DAYS[0])]
    assert bad.rows == 0 and bad.row_group is None and bad.content_hash == ""
    assert bad.error is not None and "low > min(open, close)" in bad.error
    assert f"ts_event {ts(DAYS[1], 3)}" in bad.error
    assert bad.last_ts_event == str(pd.Timestamp(ts(DAYS[1]), unit="ns", tz="UTC"))
    bars = pq.ParquetFile(out["bars.parquet"])
    assert bars.num_row_groups == 2
    assert [bars.metadata.row_group(i).num_rows for i in range(2)] == [2, 1]
    selection = pq.read_table(out["selection.parquet"]).to_pylist()
    assert [(r["trade_date"], r["chunk_id"]) for r in selection] == [
        (DAYS[0], CHUNKS[0].chunk_id),
        (DAYS[2], CHUNKS[2].chunk_id),
    ]
    assert json.loads(out["manifest.json"].read_text())["chunks"][1]["status"] == "failed"


@pytest.mark.parametrize("broken", [0, 2])
def test_a_broken_chunk_leaves_its_siblings_unchanged(tmp_path, broken):
    """A sibling's content hash is the same whether or not another chunk broke."""
    good = [record(d, minute=m) for d in DAYS for m in (0, 1)]
    bad = [*good, record(DAYS[broken], minute=5, open=0)]

    def hashes(records, name):
        decoded = tmp_path / f"{name}.parquet"
        pq.write_table(pa.Table.from_pylist(records, schema=DECODED_SCHEMA), decoded)
        m = build_batch(
            [decoded],
            name,
            CHUNKS,
            tmp_path / f"{name}.bars.parquet",
            tmp_path / f"{name}.sel.parquet",
            tmp_path / f"{name}.json",
            "MGC",
        )
        return [c.content_hash if c.status == "ok" else None for c in m.chunks]

    clean, with_bad = hashes(good, "clean"), hashes(bad, "bad")
    assert with_bad[broken] is None
    assert [h for i, h in enumerate(with_bad) if i != broken] == [
        h for i, h in enumerate(clean) if i != broken
    ]


def test_a_root_reads_its_own_rows_and_the_unresolved_ones_of_its_files(tmp_path):
    """Decoded groups hold every root: a root's build takes its outrights, and the
    unresolved records of the files that name it (those of another root's file are not
    its: they fail that root's chunks, not this one's)."""
    records = [
        record(DAYS[0]),
        record(DAYS[0], raw="GCG4", iid=2),
        record(DAYS[0], raw=None, iid=3, minute=1, source="/dbn/a.dbn"),
        record(DAYS[0], raw=None, iid=4, minute=2, source="/dbn/gc-only.dbn"),
    ]
    decoded = tmp_path / "decoded.parquet"
    pq.write_table(pa.Table.from_pylist(records, schema=DECODED_SCHEMA), decoded)
    mgc = read_decoded([decoded], DAYS[0], DAYS[0], "MGC", {"/dbn/a.dbn"})
    assert sorted(mgc["instrument_id"].tolist()) == [1, 3]
    assert "root" not in mgc.columns
    gc = read_decoded([decoded], DAYS[0], DAYS[0], "GC", {"/dbn/a.dbn", "/dbn/gc-only.dbn"})
    assert sorted(gc["instrument_id"].tolist()) == [2, 3, 4]

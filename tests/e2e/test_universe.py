"""Many roots in one run and one database (contract section 11), on real DBN bytes
(the synthetic daily files hold MGC and GC, as Databento's parent downloads of two
roots would) through real Snakemake runs of the CLI."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import databento as db
import duckdb
import numpy as np
import pandas as pd
import pytest
from conftest import Run, calendar_once, read_table

from dbn_backfill.sampledata.dbnwrite import SymbolInterval, write_ohlcv_dbn
from dbn_backfill.sampledata.synth import generate
from dbn_backfill.symbols import root_of

pytestmark = pytest.mark.slow

START, END = dt.date(2024, 1, 2), dt.date(2024, 1, 31)
#: a business day of the range, inside the chunk grid's chunk_20240119_20240125
GAP_DAY = dt.date(2024, 1, 24)


@pytest.fixture(scope="module")
def daily(tmp_path_factory) -> Path:
    """Synthetic daily files of MGC and GC (each file requested as MGC.FUT, as the
    generator writes them), 2024-01-01..2024-02-01 UTC."""
    out = tmp_path_factory.mktemp("universe") / "dbn"
    generate(out, dt.date(2024, 1, 1), dt.date(2024, 2, 1), seed=11, layout="daily")
    return out


def setup(tmp_path: Path, daily: Path, symbol: str, **kw) -> Run:
    dbn = tmp_path / "dbn"
    if not dbn.exists():
        shutil.copytree(daily, dbn)
    return Run(root=tmp_path, dbn=dbn, symbol=symbol, start=START, end=END, **kw)


def day_file(folder: Path, day: dt.date) -> Path:
    """The daily file holding the bars of trade date ``day``'s day session."""
    (path,) = folder.rglob(f"*{day:%Y%m%d}.ohlcv-1m.dbn.zst")
    return path


def rewrite(path: Path, keep=None, change=None) -> None:
    """Rewrite a DBN file with its own header, keeping the records ``keep`` selects and
    applying ``change`` (both take the records and their raw symbols)."""
    store = db.DBNStore.from_file(path)
    meta = store.metadata
    records = store.to_ndarray()
    imap = db.common.symbology.InstrumentMap()
    imap.insert_metadata(meta)
    days = records["ts_event"].astype("datetime64[ns]").astype("datetime64[D]")
    raw = np.array(
        [
            imap.resolve(int(i), pd.Timestamp(d).date())
            for i, d in zip(records["instrument_id"], days, strict=True)
        ]
    )
    mask = keep(records, raw) if keep else np.ones(len(records), dtype=bool)
    records, raw = records[mask].copy(), raw[mask]
    if change:
        change(records, raw)
    mappings = [
        SymbolInterval(symbol, int(iv["symbol"]), iv["start_date"], iv["end_date"])
        for symbol, intervals in meta.mappings.items()
        for iv in intervals
    ]
    write_ohlcv_dbn(
        path,
        instrument_id=records["instrument_id"],
        ts_event=records["ts_event"],
        open=records["open"],
        high=records["high"],
        low=records["low"],
        close=records["close"],
        volume=records["volume"],
        mappings=mappings,
        start_ns=int(meta.start),
        end_ns=int(meta.end),
        symbols=tuple(meta.symbols),
    )


def rows_of(run_db: Path, root: str) -> pd.DataFrame:
    table = read_table(run_db)
    return table[table["symbol"] == root].reset_index(drop=True)


def lineage(run_db: Path, root: str) -> dict[str, list]:
    """The lineage of ``root`` that does not depend on when or by which run."""
    con = duckdb.connect(str(run_db), read_only=True)
    try:
        return {
            "days": con.execute(
                "SELECT * FROM bars_1m_trade_dates WHERE symbol = ? ORDER BY ALL", [root]
            ).fetchall(),
            "chunks": con.execute(
                "SELECT chunk_id, chunk_start, chunk_end, rows, content_hash "
                "FROM bars_1m_chunks WHERE symbol = ? ORDER BY ALL",
                [root],
            ).fetchall(),
            "sources": con.execute(
                "SELECT * FROM bars_1m_chunk_sources WHERE symbol = ? ORDER BY ALL", [root]
            ).fetchall(),
        }
    finally:
        con.close()


def test_two_roots_in_one_run_equal_two_single_root_runs(tmp_path, daily):
    both = setup(tmp_path / "both", daily, "MGC,GC")
    both.run(check=True)
    for root in ("MGC", "GC"):
        single = Run(root=tmp_path / root, dbn=both.dbn, symbol=root, start=START, end=END)
        single.root.mkdir()
        single.run(check=True)
        mine = rows_of(both.db, root)
        assert len(mine) > 1000
        pd.testing.assert_frame_equal(mine, rows_of(single.db, root))
        assert lineage(both.db, root) == lineage(single.db, root)
        assert set(both.checkpoints(root)) == set(single.checkpoints(root))
        assert all(c["status"] == "done" for c in both.checkpoints(root).values())
    # every file decoded once for both roots: one decode log per group, shared
    logs = sorted((both.workdir / "logs" / "decode_sources").glob("*.log"))
    decoded = sorted((both.workdir / "results" / "decoded").glob("*.parquet"))
    assert logs and len(logs) == len(decoded)
    # a rerun commits nothing
    again = both.run(check=True)
    assert "committed 0," in again.stderr


def test_a_root_no_file_holds_stops_naming_the_roots_held(tmp_path, daily):
    run = setup(tmp_path, daily, "MGC,SI")
    proc = run.run(check=False)
    assert "no outright of SI in the files; they hold GC, MGC" in proc.stderr
    assert not run.db.exists()


def test_one_root_missing_a_day_stops_every_root_before_any_write(tmp_path, daily):
    run = setup(tmp_path, daily, "MGC,GC")

    def not_gc_on_the_day(records, raw):
        trade_dates = calendar_once().trade_dates(records["ts_event"].astype("int64"))
        on_day = trade_dates == np.datetime64(GAP_DAY)
        return ~(on_day & np.array([root_of(s) == "GC" for s in raw]))

    for day in (GAP_DAY - dt.timedelta(days=1), GAP_DAY):  # the session spans two UTC days
        rewrite(day_file(run.dbn, day), keep=not_gc_on_the_day)
    proc = run.run(check=False)
    assert f"outright GC bars (contract section 5): {GAP_DAY}" in proc.stderr
    assert "Nothing was written" in proc.stderr
    if run.db.exists():
        con = duckdb.connect(str(run.db), read_only=True)
        assert con.execute("SELECT count(*) FROM bars_1m").fetchone() == (0,)
        con.close()
    # listed as GC's gap only, the run completes; MGC still has that day
    run.run("--expected-gaps", f"GC:{GAP_DAY}", check=True)
    table = read_table(run.db)
    assert set(table["symbol"]) == {"MGC", "GC"}
    con = duckdb.connect(str(run.db), read_only=True)
    have = {
        r[0]
        for r in con.execute(
            "SELECT symbol FROM bars_1m_trade_dates WHERE trade_date = ?", [GAP_DAY]
        ).fetchall()
    }
    con.close()
    assert have == {"MGC"}


def test_a_bad_gc_record_fails_only_its_chunk(tmp_path, daily):
    run = setup(tmp_path, daily, "MGC,GC")

    def break_one_gc_bar(records, raw):
        i = int(np.flatnonzero([root_of(s) == "GC" for s in raw])[10])
        records["high"][i] = records["low"][i] - 1_000_000_000  # high below low

    rewrite(day_file(run.dbn, GAP_DAY), change=break_one_gc_bar)
    proc = run.run(check=False)
    assert "GC chunk_20240119_20240125" in proc.stderr
    assert "contract section 4" in proc.stderr
    mgc, gc = run.checkpoints("MGC"), run.checkpoints("GC")
    assert {c["status"] for c in mgc.values()} == {"done"}
    assert gc["chunk_20240119_20240125"]["status"] == "failed"
    assert {c["status"] for k, c in gc.items() if k != "chunk_20240119_20240125"} == {"done"}
    table = read_table(run.db)
    gc_days = pd.to_datetime(table[table["symbol"] == "GC"]["ts_utc"]).dt.date
    assert len(table[table["symbol"] == "MGC"]) > 1000 and len(gc_days) > 1000
    # the next run stops at once, naming the root's chunk, until --retry-failed
    again = run.run(check=False)
    assert "retry_failed is off: GC chunk_20240119_20240125" in again.stderr


def test_single_root_runs_sharing_a_checkpoint_folder_keep_each_others_files(tmp_path, daily):
    mgc = setup(tmp_path, daily, "MGC")
    mgc.run(check=True)
    folder = mgc.checkpoint_folder("MGC")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}
    gc = mgc.with_(symbol="GC")
    gc.run(check=True)
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}
    assert after == before
    assert set(gc.checkpoints("GC")) == set(mgc.checkpoints("MGC"))
    assert set(read_table(mgc.db)["symbol"]) == {"MGC", "GC"}


def test_legacy_top_level_checkpoints_move_under_their_root_without_redo(tmp_path, daily):
    run = setup(tmp_path, daily, "MGC")
    run.run(check=True)
    folder = run.checkpoint_folder("MGC")
    original = {p.name: p.read_bytes() for p in folder.iterdir()}
    con = duckdb.connect(str(run.db), read_only=True)
    committed = con.execute(
        "SELECT chunk_id, committed_at FROM bars_1m_chunks ORDER BY 1"
    ).fetchall()
    con.close()
    for p in folder.iterdir():  # the earlier layout: checkpoint/chunk_*.json
        p.rename(run.checkpoint / p.name)
    folder.rmdir()
    proc = run.run(check=True)
    assert "committed 0," in proc.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == original
    assert not list(run.checkpoint.glob("chunk_*.json"))
    con = duckdb.connect(str(run.db), read_only=True)
    assert (
        con.execute("SELECT chunk_id, committed_at FROM bars_1m_chunks ORDER BY 1").fetchall()
        == committed
    )
    con.close()
    # a top-level checkpoint that names no root stops the run, naming it
    (run.checkpoint / "chunk_20240102_20240103.json").write_text(json.dumps({"status": "done"}))
    proc = run.run(check=False)
    assert "chunk_20240102_20240103.json names no root" in proc.stderr


def test_a_checkpoint_of_a_span_no_longer_planned_is_replaced(tmp_path, daily):
    run = setup(tmp_path, daily, "MGC", chunk_days=5).with_(end=dt.date(2024, 1, 23))
    run.run(check=True)
    assert "chunk_20240119_20240123" in run.checkpoints()  # the last chunk, clipped
    longer = run.with_(end=END)
    longer.run(check=True)
    states = longer.checkpoints()
    assert "chunk_20240119_20240123" not in states
    assert states["chunk_20240119_20240125"]["status"] == "done"
    assert all(s["status"] == "done" for s in states.values())
    con = duckdb.connect(str(run.db), read_only=True)
    chunks = [
        r[0] for r in con.execute("SELECT chunk_id FROM bars_1m_chunks ORDER BY 1").fetchall()
    ]
    con.close()
    assert sorted(states) == chunks

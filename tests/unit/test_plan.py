"""The parse-time plan (planning/plan.py) on small real DBN files: which files name
which roots, which decode groups each root's batches read, the chunk grid, the stops
before any work, and the checkpoint folders of a universe."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from conftest import day_bars, write_bars

from dbn_backfill.artifacts import Checkpoint, ChunkStatus, ErrorKind
from dbn_backfill.config import from_mapping
from dbn_backfill.errors import CheckpointError, ConfigError, SourceError
from dbn_backfill.planning.plan import check_failed, describe_chunks, make_plan
from dbn_backfill.sampledata.dbnwrite import SymbolInterval
from dbn_backfill.store import checkpoints

D = dt.date


def write_root(path: Path, raw: str, iid: int, days: list[dt.date], root: str) -> Path:
    bars = [b for d in days for b in day_bars(raw, iid, d)]
    mappings = [SymbolInterval(raw, iid, days[0], days[-1] + dt.timedelta(days=1))]
    return write_bars(path, bars, mappings=mappings, symbols=(f"{root}.FUT",))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """MGC in Q4 2023 and Q1 2024; GC only in Q1 2024."""
    dbn = tmp_path / "dbn"
    write_root(dbn / "MGC" / "a.dbn.zst", "MGCG4", 1, [D(2023, 12, 28), D(2023, 12, 29)], "MGC")
    write_root(dbn / "MGC" / "b.dbn.zst", "MGCG4", 1, [D(2024, 1, 2), D(2024, 1, 3)], "MGC")
    write_root(dbn / "GC" / "c.dbn.zst", "GCG4", 2, [D(2024, 1, 2), D(2024, 1, 3)], "GC")
    return dbn


def config(tmp_path: Path, dbn: Path, **kw) -> dict:
    return {
        "dbn": str(dbn),
        "db": str(tmp_path / "x.duckdb"),
        "symbol": "[MGC,GC]",
        "start": "2023-12-28",
        "end": "2024-01-03",
        "chunk_days": 2,
        "checkpoint": str(tmp_path / "ckpt"),
        **kw,
    }


def test_files_name_their_roots_and_each_root_reads_only_its_groups(tmp_path, folder):
    plan = make_plan(config(tmp_path, folder))
    assert plan.roots == ("MGC", "GC")
    assert [Path(p).name for p in plan.files_of("GC")] == ["c.dbn.zst"]
    assert [Path(p).name for p in plan.files_of("MGC")] == ["a.dbn.zst", "b.dbn.zst"]
    (batch,) = plan.batches  # chunks_per_job 100: one batch
    assert plan.groups_for("MGC", batch) == ["2023Q4", "2024Q1"]
    assert plan.groups_for("GC", batch) == ["2024Q1"]  # GC's batch never reads 2023Q4
    assert plan.used_groups() == ["2023Q4", "2024Q1"]
    only_gc = make_plan(config(tmp_path, folder, symbol="GC"))
    assert only_gc.used_groups() == ["2024Q1"]  # a group naming no run root: not decoded


def test_the_chunk_grid_is_the_same_for_every_root(tmp_path, folder):
    plan = make_plan(config(tmp_path, folder))
    ids = plan.chunk_ids()
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    text = describe_chunks(plan)
    assert "roots MGC, GC" in text and all(i in text for i in ids)


def test_a_root_no_file_names_stops_naming_the_roots_held(tmp_path, folder):
    with pytest.raises(SourceError, match="no outright of SI in the files; they hold GC, MGC"):
        make_plan(config(tmp_path, folder, symbol="[MGC,SI]"))


@pytest.mark.parametrize(
    ("symbol", "message"),
    [("[MGC,MGC]", "names MGC twice"), ("mgc", "upper-case root"), ("[]", "is empty"),
     ("TOOLONGX", "1-6 letters")],
)  # fmt: skip
def test_bad_roots_are_refused(tmp_path, folder, symbol, message):
    with pytest.raises(ConfigError, match=message):
        from_mapping(config(tmp_path, folder, symbol=symbol))


def test_gaps_of_every_root_and_of_one(tmp_path, folder):
    cfg = from_mapping(
        config(tmp_path, folder, expected_gaps='["2024-01-02","GC:2024-01-03","SI:2024-01-03"]')
    )
    assert cfg.for_root("MGC").expected_gaps == (D(2024, 1, 2),)
    assert cfg.for_root("GC").expected_gaps == (D(2024, 1, 2), D(2024, 1, 3))
    assert cfg.for_root("GC").symbol == "GC"
    with pytest.raises(ValueError, match="use for_root"):
        _ = cfg.symbol
    with pytest.raises(ConfigError, match="neither DATE nor ROOT:DATE"):
        from_mapping(config(tmp_path, folder, expected_gaps="gc:2024-01-03"))


def test_a_failed_chunk_of_one_root_stops_the_next_run_naming_the_root(tmp_path, folder):
    plan = make_plan(config(tmp_path, folder))
    chunk = plan.batches[0].chunks[0]
    state = Checkpoint.create(chunk.chunk_id, str(chunk.first), str(chunk.last), "GC", [])
    state = state.start(source=[], retry_failed=False).fail("bad row", ErrorKind.DATA)
    checkpoints.write(plan.layout.checkpoint_dir("GC"), state)
    with pytest.raises(CheckpointError, match=f"retry_failed is off: GC {chunk.chunk_id}: bad row"):
        check_failed(plan)
    retry = make_plan(config(tmp_path, folder, retry_failed="true"))
    check_failed(retry)  # no stop with the flag
    assert checkpoints.read(plan.layout.checkpoint_dir("MGC"), chunk.chunk_id) is None


def test_legacy_checkpoints_move_under_their_root_unchanged(tmp_path):
    root = tmp_path / "ckpt"
    root.mkdir()
    done = {"chunk_id": "chunk_20240102_20240103", "chunk_start": "2024-01-02",
            "chunk_end": "2024-01-03", "symbol": "MGC", "status": "done", "rows_written": 3,
            "started_at": "2024-01-04T00:00:00", "finished_at": "2024-01-04T00:00:01"}  # fmt: skip
    text = json.dumps(done)
    (root / "chunk_20240102_20240103.json").write_text(text)
    (root / "chunk_20240104_20240105.json").write_text(json.dumps({**done, "symbol": "GC"}))
    assert checkpoints.adopt_legacy(root, "MGC") == ["chunk_20240102_20240103"]
    assert (root / "MGC" / "chunk_20240102_20240103.json").read_text() == text
    assert (root / "chunk_20240104_20240105.json").exists()  # GC's: its own run moves it
    state = checkpoints.read(root / "MGC", "chunk_20240102_20240103")
    assert state is not None and state.status == ChunkStatus.DONE
    (root / "chunk_20240106_20240107.json").write_text(json.dumps({"status": "done"}))
    with pytest.raises(CheckpointError, match="chunk_20240106_20240107.json names no root"):
        checkpoints.adopt_legacy(root, "MGC")


def test_checkpoints_of_spans_no_longer_planned_are_dropped(tmp_path):
    folder = tmp_path / "MGC"
    folder.mkdir()
    for name in ("chunk_20240102_20240103", "chunk_20240104_20240104", "chunk_20240301_20240302"):
        (folder / f"{name}.json").write_text("{}")
    planned = {"chunk_20240102_20240103", "chunk_20240104_20240105"}
    dropped = checkpoints.drop_stale(folder, planned, D(2024, 1, 2), D(2024, 1, 31))
    assert dropped == ["chunk_20240104_20240104"]  # outside the range: left alone
    assert sorted(p.stem for p in folder.iterdir()) == [
        "chunk_20240102_20240103",
        "chunk_20240301_20240302",
    ]

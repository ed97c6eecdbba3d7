"""The files between steps: JSON round trips, and checkpoint files byte for byte as
earlier versions wrote them (old files keep loading, new files read the same)."""

from __future__ import annotations

import json

import pytest

from dbn_backfill.artifacts import (
    CHECKPOINT_STATUSES,
    ERROR_KINDS,
    BatchManifest,
    Checkpoint,
    ChunkResult,
    ChunkStatus,
    DecodeSummary,
    ErrorKind,
    FileSummary,
    GateResult,
    GatesReport,
    MergeReport,
    SpotCounts,
    write_json,
)
from dbn_backfill.store import checkpoints

#: A ``done`` checkpoint file exactly as the code before the state machine wrote it.
DONE_FILE = """{
 "chunk_end": "2024-01-08",
 "chunk_id": "chunk_20240102_20240108",
 "chunk_start": "2024-01-02",
 "content_hash": "abababababababababababababababababababababababababababababababab",
 "error": null,
 "error_kind": null,
 "finished_at": "2024-03-01T10:00:01.250000+00:00",
 "last_ts_event": null,
 "rows_written": 4140,
 "run_id": "20240301T100000Z-1234",
 "source": [
  "/d/a.dbn.zst"
 ],
 "started_at": "2024-03-01T10:00:00.000+00:00",
 "status": "done",
 "symbol": "MGC"
}"""

#: A ``failed`` (environment) checkpoint file as the code before the state machine wrote it.
FAILED_FILE = """{
 "chunk_end": "2024-01-08",
 "chunk_id": "chunk_20240102_20240108",
 "chunk_start": "2024-01-02",
 "content_hash": null,
 "error": "TransactionException: Failed to commit: Could not write file \\"x.wal\\": No space left on device",
 "error_kind": "environment",
 "finished_at": "2024-03-01T10:00:02.000+00:00",
 "last_ts_event": null,
 "rows_written": 0,
 "run_id": null,
 "source": [
  "/d/a.dbn.zst"
 ],
 "started_at": "2024-03-01T10:00:00.000+00:00",
 "status": "failed",
 "symbol": "MGC"
}"""


def test_enum_values_are_the_strings_on_disk():
    assert CHECKPOINT_STATUSES == ("pending", "in_progress", "done", "failed")
    assert ERROR_KINDS == ("data", "environment")
    assert [s.value for s in ChunkStatus] == list(CHECKPOINT_STATUSES)
    assert [k.value for k in ErrorKind] == list(ERROR_KINDS)


@pytest.mark.parametrize("text", [DONE_FILE, FAILED_FILE], ids=["done", "failed"])
def test_checkpoint_files_are_rewritten_byte_for_byte(tmp_path, text):
    (tmp_path / "chunk_20240102_20240108.json").write_text(text)
    state = checkpoints.read(tmp_path, "chunk_20240102_20240108")
    assert state is not None
    checkpoints.write(tmp_path, state)
    assert (tmp_path / "chunk_20240102_20240108.json").read_text() == text


def test_checkpoint_values_are_plain_after_reading():
    state = Checkpoint.from_json(json.loads(FAILED_FILE))
    assert state.status is ChunkStatus.FAILED and state.error_kind is ErrorKind.ENVIRONMENT
    assert state.source == ("/d/a.dbn.zst",)
    data = state.to_json()
    assert type(data["status"]) is str and type(data["error_kind"]) is str
    assert data["source"] == ["/d/a.dbn.zst"]
    assert list(data) == [  # the order `status --json` prints them in
        "chunk_id",
        "chunk_start",
        "chunk_end",
        "symbol",
        "status",
        "rows_written",
        "started_at",
        "finished_at",
        "source",
        "error",
        "content_hash",
        "run_id",
        "last_ts_event",
        "error_kind",
    ]


def test_old_checkpoint_without_error_kind_loads_and_counts_as_data():
    old = json.loads(FAILED_FILE)
    del old["error_kind"]
    old["unknown_future_key"] = 1  # unknown keys are ignored
    state = Checkpoint.from_json(old)
    assert state.error_kind is None
    assert state.failure_kind is ErrorKind.DATA
    assert state.to_json()["error_kind"] is None  # written back as it was read


def test_error_kind_is_written_for_failed_chunks_only():
    state = Checkpoint(
        "c", "2024-01-02", "2024-01-08", "MGC", status="done", error_kind="environment"
    )  # type: ignore[arg-type]
    assert state.to_json()["error_kind"] is None
    assert state.failure_kind is None


def test_manifest_and_decode_summary_round_trip(tmp_path):
    chunk = ChunkResult(
        chunk_id="chunk_20240102_20240102",
        chunk_start="2024-01-02",
        chunk_end="2024-01-02",
        status="failed",
        rows=0,
        content_hash="",
        days_present=["2024-01-02"],
        sources=["/d/a.dbn"],
        error="chunk x: bad",
        last_ts_event="2024-01-02 14:30:00+00:00",
    )
    manifest = BatchManifest("b0001", [chunk])
    manifest.write(tmp_path / "m.json")
    assert BatchManifest.read(tmp_path / "m.json") == manifest
    summary = DecodeSummary("2024Q1", [FileSummary("/d/a.dbn", 10, "ff", 2, records=5)])
    summary.write(tmp_path / "d.json")
    data = json.loads((tmp_path / "d.json").read_text())
    data["files"][0]["added_later"] = True  # a newer writer's extra key
    (tmp_path / "d.json").write_text(json.dumps(data))
    assert DecodeSummary.read(tmp_path / "d.json") == summary


def test_reports_round_trip(tmp_path):
    merge = MergeReport(
        "r1", committed=["a"], skipped=["b"], failed=["c"], rows_inserted=7, seconds=1.2345
    )
    merge.write(tmp_path / "merge.json")
    data = json.loads((tmp_path / "merge.json").read_text())
    assert (data["chunks_committed"], data["chunks_skipped"], data["chunks_failed"]) == (1, 1, 1)
    back = MergeReport.read(tmp_path / "merge.json")
    assert (back.committed, back.skipped, back.failed, back.rows_inserted) == (
        ["a"],
        ["b"],
        ["c"],
        7,
    )
    assert back.seconds == 1.234
    gates = GatesReport(
        "r1", "/db", [GateResult("unique", True, "0 repeats"), GateResult("spot", False, "x")]
    )
    gates.write(tmp_path / "gates.json")
    assert json.loads((tmp_path / "gates.json").read_text())["passed"] is False
    assert GatesReport.read(tmp_path / "gates.json") == gates
    spot = SpotCounts(
        "r1", days={"2024-01-02": {"MGCG4": 3}}, files=["/d/a"], cached=[], seconds=0.5
    )
    spot.write(tmp_path / "spot.json")
    assert SpotCounts.read(tmp_path / "spot.json") == spot


def test_write_json_replaces_atomically(tmp_path):
    target = tmp_path / "sub" / "x.json"
    write_json(target, {"a": 1})
    write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]

"""The checkpoint state machine (contract section 8) and its store: every legal and
illegal transition, what each keeps and clears, and how a transition reaches the disk."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from dbn_backfill.artifacts import Checkpoint, ChunkStatus, ErrorKind
from dbn_backfill.errors import BackfillError, CheckpointError, CheckpointTransitionError
from dbn_backfill.store import checkpoints

CHUNK = "chunk_20240102_20240108"
T0, T1, T2 = (
    "2024-03-01T10:00:00.000+00:00",
    "2024-03-01T10:00:01.000+00:00",
    "2024-03-02T09:00:00.000+00:00",
)
OLD_SOURCES = ("/dbn/a.dbn.zst",)
NEW_SOURCES = ("/dbn/a.dbn.zst", "/dbn/b.dbn.zst")


def fresh() -> Checkpoint:
    return Checkpoint.create(CHUNK, "2024-01-02", "2024-01-08", "MGC", list(OLD_SOURCES))


def in_progress() -> Checkpoint:
    return fresh().start(source=OLD_SOURCES, retry_failed=False, at=T0)


def done() -> Checkpoint:
    return in_progress().commit(rows=120, content_hash="h1", run_id="run1", at=T1)


def failed(kind: ErrorKind | None) -> Checkpoint:
    """A failed chunk; ``kind`` None: a file written before ``error_kind`` existed."""
    state = in_progress().fail("BackfillError: boom", ErrorKind.DATA, at=T1)
    return dataclasses.replace(state, error_kind=kind)


STATES = {
    "pending": fresh,
    "in_progress": in_progress,
    "done": done,
    "failed data": lambda: failed(ErrorKind.DATA),
    "failed environment": lambda: failed(ErrorKind.ENVIRONMENT),
    "failed, old file without error_kind": lambda: failed(None),
}


def test_create_is_pending_with_the_sources():
    state = fresh()
    assert state.status == ChunkStatus.PENDING
    assert state.source == OLD_SOURCES
    assert (state.rows_written, state.started_at, state.finished_at, state.error) == (
        0,
        None,
        None,
        None,
    )


# --- start ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["pending", "in_progress", "done", "failed environment"]
)  # in_progress: a killed run; done: the content changed
def test_start_without_retry_flag(name):
    before = STATES[name]()
    after = before.start(source=NEW_SOURCES, retry_failed=False, at=T2)
    assert after.status == ChunkStatus.IN_PROGRESS
    assert after.started_at == T2
    assert after.source == NEW_SOURCES
    assert (after.finished_at, after.error, after.error_kind, after.rows_written) == (
        None,
        None,
        None,
        0,
    )
    # what an earlier commit recorded stays until this one commits
    assert (after.content_hash, after.run_id) == (before.content_hash, before.run_id)


@pytest.mark.parametrize("name", ["failed data", "failed, old file without error_kind"])
def test_start_of_a_data_failure_needs_retry_failed(name):
    before = STATES[name]()
    with pytest.raises(CheckpointTransitionError) as err:
        before.start(source=NEW_SOURCES, retry_failed=False, at=T2)
    assert err.value.chunk_id == CHUNK
    assert err.value.transition == "start"
    assert err.value.status == "failed"
    assert "retry_failed" in str(err.value) and "boom" in str(err.value)
    assert isinstance(err.value, CheckpointError) and isinstance(err.value, BackfillError)
    after = before.start(source=NEW_SOURCES, retry_failed=True, at=T2)
    assert after.status == ChunkStatus.IN_PROGRESS and after.error is None


# --- commit, fail ----------------------------------------------------------------------


def test_commit_from_in_progress():
    after = in_progress().commit(rows=120, content_hash="h1", run_id="run1", at=T1)
    assert after.status == ChunkStatus.DONE
    assert (after.rows_written, after.content_hash, after.run_id) == (120, "h1", "run1")
    assert (after.started_at, after.finished_at) == (T0, T1)
    assert after.to_json()["error_kind"] is None


@pytest.mark.parametrize("name", [n for n in STATES if n != "in_progress"])
def test_commit_only_from_in_progress(name):
    with pytest.raises(CheckpointTransitionError, match="cannot commit"):
        STATES[name]().commit(rows=1, content_hash="h", run_id="r", at=T2)


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_fail_from_in_progress(kind):
    after = in_progress().fail("IOException: disk", kind, at=T1)
    assert after.status == ChunkStatus.FAILED
    assert (after.error, after.error_kind, after.failure_kind) == ("IOException: disk", kind, kind)
    assert (after.started_at, after.finished_at, after.rows_written) == (T0, T1, 0)


@pytest.mark.parametrize("name", [n for n in STATES if n != "in_progress"])
def test_fail_only_from_in_progress(name):
    with pytest.raises(CheckpointTransitionError, match="cannot fail"):
        STATES[name]().fail("x", ErrorKind.ENVIRONMENT, at=T2)


def test_fail_refuses_an_unknown_kind():
    with pytest.raises(ValueError):
        in_progress().fail("x", "disk", at=T2)  # type: ignore[arg-type]


# --- reject (the build found the data broken) ------------------------------------------


@pytest.mark.parametrize("name", list(STATES))
def test_reject_from_any_state_is_a_data_failure(name):
    before = STATES[name]()
    after = before.reject(
        "chunk x: 1 invalid", source=NEW_SOURCES, last_ts_event="2024-01-02 14:30:00+00:00", at=T2
    )
    assert after.status == ChunkStatus.FAILED and after.failure_kind == ErrorKind.DATA
    assert (after.error, after.finished_at, after.source) == ("chunk x: 1 invalid", T2, NEW_SOURCES)
    assert after.last_ts_event == "2024-01-02 14:30:00+00:00"
    # an earlier commit's figures stay: the database still holds it
    assert (after.rows_written, after.started_at, after.content_hash, after.run_id) == (
        before.rows_written,
        before.started_at,
        before.content_hash,
        before.run_id,
    )


# --- repair (the database says committed) ----------------------------------------------


@pytest.mark.parametrize("name", [n for n in STATES if n != "done"])
def test_repair_to_done_from_the_lineage(name):
    before = STATES[name]()
    after = before.repair(rows=99, content_hash="h9", committed_at=T2)
    assert after.status == ChunkStatus.DONE
    assert (after.rows_written, after.content_hash, after.finished_at) == (99, "h9", T2)
    assert after.error is None and after.to_json()["error_kind"] is None
    assert after.started_at == (before.started_at or T2)
    assert (after.run_id, after.source) == (before.run_id, before.source)


def test_repair_of_a_done_chunk_is_illegal():
    with pytest.raises(CheckpointTransitionError, match="cannot repair"):
        done().repair(rows=1, content_hash="h", committed_at=T2)


def test_a_checkpoint_cannot_be_mutated():
    state = fresh()
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.status = ChunkStatus.DONE  # type: ignore[misc]


def test_unknown_status_or_kind_is_refused():
    with pytest.raises(ValueError, match="status"):
        Checkpoint(CHUNK, "2024-01-02", "2024-01-08", "MGC", status="finished")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="error_kind"):
        Checkpoint(CHUNK, "2024-01-02", "2024-01-08", "MGC", status="failed", error_kind="disk")  # type: ignore[arg-type]


# --- the store --------------------------------------------------------------------------


def test_a_transition_writes_the_new_state_atomically(tmp_path):
    state = checkpoints.load_or_create(tmp_path, fresh())
    assert checkpoints.read(tmp_path, CHUNK) == state
    state = checkpoints.transition(
        tmp_path, state, lambda s: s.start(source=NEW_SOURCES, retry_failed=False, at=T0)
    )
    on_disk = checkpoints.read(tmp_path, CHUNK)
    assert on_disk == state and on_disk is not None and on_disk.status == ChunkStatus.IN_PROGRESS
    assert [p.name for p in tmp_path.iterdir()] == [f"{CHUNK}.json"]  # no temporary left


def test_an_illegal_transition_writes_nothing(tmp_path):
    state = checkpoints.load_or_create(tmp_path, fresh())
    before = checkpoints.path_for(tmp_path, CHUNK).read_bytes()
    with pytest.raises(CheckpointTransitionError):
        checkpoints.transition(
            tmp_path, state, lambda s: s.commit(rows=1, content_hash="h", run_id="r", at=T1)
        )
    assert checkpoints.path_for(tmp_path, CHUNK).read_bytes() == before


def test_load_or_create_keeps_an_existing_file(tmp_path):
    checkpoints.write(tmp_path, done())
    assert checkpoints.load_or_create(tmp_path, fresh()) == done()


@pytest.mark.parametrize(
    "text",
    ["{not json", '{"chunk_id": "x"}', json.dumps({**done().to_json(), "status": "finished"})],
)
def test_read_of_a_missing_or_unreadable_file_is_none(tmp_path, text):
    assert checkpoints.read(tmp_path, CHUNK) is None
    checkpoints.path_for(tmp_path, CHUNK).write_text(text)
    assert checkpoints.read(tmp_path, CHUNK) is None


def test_path_for():
    assert checkpoints.path_for(Path("/ck"), CHUNK) == Path(f"/ck/{CHUNK}.json")


def test_failed_lists_by_kind_old_files_counting_as_data(tmp_path):
    states = {
        "chunk_a": failed(ErrorKind.DATA),
        "chunk_b": failed(ErrorKind.ENVIRONMENT),
        "chunk_c": done(),
        "chunk_d": failed(None),
    }
    for chunk_id, state in states.items():
        checkpoints.write(tmp_path, dataclasses.replace(state, chunk_id=chunk_id))
    old = json.loads(checkpoints.path_for(tmp_path, "chunk_d").read_text())
    del old["error_kind"]  # as written before the field existed
    checkpoints.path_for(tmp_path, "chunk_d").write_text(json.dumps(old))
    ids = ["chunk_a", "chunk_b", "chunk_c", "chunk_d", "chunk_missing"]
    boom = "BackfillError: boom"
    assert checkpoints.failed(tmp_path, ids) == [
        ("chunk_a", boom),
        ("chunk_b", boom),
        ("chunk_d", boom),
    ]
    assert checkpoints.failed(tmp_path, ids, kind="data") == [("chunk_a", boom), ("chunk_d", boom)]
    assert checkpoints.failed(tmp_path, ids, kind="environment") == [("chunk_b", boom)]

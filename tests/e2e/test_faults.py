"""The faults a laptop meets, on the real workflow: a full disk while merging, the
database held open by a notebook, read-only files and folders, SIGTERM / Ctrl-C and
SIGKILL during the merge. Each stops cleanly and the same command then finishes.

The tests that need a small or read-only file system mount one (tmpfs, a read-only
bind mount) or set ``chattr +i``, which needs root, as CI has; where that is
impossible they are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import Run, content_hash, db_hash, read_table, run_output

from dbn_backfill.runtime.faults import SLOW_MERGE_ENV
from dbn_backfill.sampledata.synth import generate

D = dt.date
START, END = D(2024, 1, 2), D(2024, 2, 29)
#: one trade date per chunk: 41 chunks, so the merge lasts long enough to be hit
ARGS = ("--chunks-per-job", "50")
#: seconds the merge sleeps inside each chunk's transaction (41 chunks: ~4 s of merge)
SLOW = {SLOW_MERGE_ENV: "0.1"}
JOBS = ("decode_sources", "build_chunks", "merge_chunks", "spot_check", "check_gates")


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "dbn"
    generate(out, D(2024, 1, 1), D(2024, 2, 29), seed=11, layout="daily")
    return out


@pytest.fixture(scope="module")
def reference(sample, tmp_path_factory) -> tuple[Run, str]:
    """A clean run of the same backfill: the table every faulted run must end with."""
    run = Run(tmp_path_factory.mktemp("clean"), sample, "MGC", START, END, chunk_days=1)
    run.run(*ARGS, check=True)
    return run, content_hash(run.db)


def fresh_run(sample: Path, tmp_path: Path, **kw) -> Run:
    return Run(tmp_path, sample, "MGC", START, END, chunk_days=1, **kw)


def copy_of(reference: tuple[Run, str], tmp_path: Path) -> Run:
    """A committed backfill (database, checkpoints, work dir) in ``tmp_path``."""
    run = reference[0].with_(root=tmp_path)
    shutil.copy(reference[0].db, run.db)
    shutil.copytree(reference[0].checkpoint, run.checkpoint)
    shutil.copytree(reference[0].workdir, run.workdir)
    return run


# --- helpers ---------------------------------------------------------------------------


def start(run: Run, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start the backfill in its own process group, output to files (a pipe could fill
    up and stall it while the test waits)."""
    out = open(run.root / "run.out", "w")  # noqa: SIM115 - closed by finish()
    return subprocess.Popen(
        [sys.executable, "-m", "dbn_backfill.cli", *run.args(*ARGS)],
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
        start_new_session=True,
    )


def finish(run: Run, proc: subprocess.Popen[str], timeout: int = 300) -> str:
    proc.wait(timeout=timeout)
    return (run.root / "run.out").read_text()


def wait_for_first_done(run: Run, proc: subprocess.Popen[str], timeout: float = 180) -> None:
    """Poll the checkpoint folder until a chunk is ``done`` (the merge is under way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(s["status"] == "done" for s in run.checkpoints().values()):
            return
        if proc.poll() is not None:
            pytest.fail("the run ended before any chunk was done:\n" + finish(run, proc)[-4000:])
        time.sleep(0.02)
    pytest.fail("no chunk checkpoint became done in time")


def chunk_bounds(chunk_id: str) -> tuple[D, D]:
    _, first, last = chunk_id.split("_")
    return dt.datetime.strptime(first, "%Y%m%d").date(), dt.datetime.strptime(last, "%Y%m%d").date()


def assert_committed_intact(run: Run, reference: tuple[Run, str], calendar) -> set[str]:
    """The checkpoints say exactly what the database holds, and what it holds is the
    clean run's rows of those chunks; returns the ``done`` chunks."""
    states = run.checkpoints()
    assert "in_progress" not in {s["status"] for s in states.values()}, states
    done = {cid for cid, s in states.items() if s["status"] == "done"}
    chunks = read_table(run.db, "bars_1m_chunks")
    assert set(chunks["chunk_id"]) == done
    ref_chunks = read_table(reference[0].db, "bars_1m_chunks")
    lineage = ["chunk_id", "chunk_start", "chunk_end", "rows", "content_hash"]
    pd.testing.assert_frame_equal(
        chunks[lineage].sort_values("chunk_id").reset_index(drop=True),
        ref_chunks[ref_chunks["chunk_id"].isin(done)][lineage]
        .sort_values("chunk_id")
        .reset_index(drop=True),
    )
    ref = reference[0].rows()
    keep = pd.Series(False, index=ref.index)
    for chunk_id in done:
        lo, hi = calendar.session_bounds_utc(*chunk_bounds(chunk_id))
        keep |= (ref["ts_utc"] >= lo) & (ref["ts_utc"] < hi)
    pd.testing.assert_frame_equal(run.rows(), ref[keep].reset_index(drop=True))
    return done


def assert_resumes(run: Run, reference: tuple[Run, str], done_before: dict[str, dict]) -> None:
    """The same command, no flag, finishes to the clean table; done chunks are not redone."""
    run.run(*ARGS, check=True)
    assert content_hash(run.db) == reference[1]
    states = run.checkpoints()
    assert states and all(s["status"] == "done" for s in states.values())
    for chunk_id, state in done_before.items():
        assert states[chunk_id]["finished_at"] == state["finished_at"], chunk_id


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder``: its bytes and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_no_job_ran(text: str) -> None:
    for job in JOBS:
        assert f"rule {job}" not in text, f"job {job} ran:\n{text[-3000:]}"


def sh(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True)


def need_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"{what} needs root (this run is uid {os.geteuid()})")


# --- 1. disk full while merging ---------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path) -> Iterator[Path]:
    """A 64 MiB tmpfs for the database, unmounted at the end."""
    need_root("mounting a small file system")
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = sh("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        if sh("umount", str(mnt)).returncode != 0:
            sh("umount", "-l", str(mnt))


def fill(mnt: Path) -> Path:
    """Write a filler file until ``mnt`` (a mount point, checked) has no space left."""
    assert os.path.ismount(mnt), f"{mnt} is not a mount point: refusing to fill it"
    stat = os.statvfs(mnt)
    budget = stat.f_bavail * stat.f_frsize + (1 << 20)  # never more than the fs holds
    filler = mnt / "filler"
    block = b"\0" * (1 << 16)
    with open(filler, "wb", buffering=0) as handle:
        try:
            while budget > 0:
                handle.write(block)
                budget -= len(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    assert os.statvfs(mnt).f_bavail == 0, "the file system is not full"
    return filler


def test_disk_full_while_merging(sample, reference, tmp_path, small_fs, calendar):
    run = fresh_run(sample, tmp_path, db_path=small_fs / "bars.duckdb")
    proc = start(run, SLOW)
    wait_for_first_done(run, proc)
    filler = fill(small_fs)
    text = finish(run, proc)
    assert proc.returncode != 0, text[-3000:]
    assert "No space left on device" in text
    assert "no --retry-failed needed" in text
    failed = {k: v for k, v in run.checkpoints().items() if v["status"] == "failed"}
    assert len(failed) == 1, failed
    (state,) = failed.values()
    assert "No space left on device" in state["error"]
    assert state["error_kind"] == "environment"
    filler.unlink()  # space freed
    done = assert_committed_intact(run, reference, calendar)
    assert done, "no chunk was committed before the disk filled"
    done_before = {k: v for k, v in run.checkpoints().items() if k in done}
    assert_resumes(run, reference, done_before)


# --- 2. the database held open by another process --------------------------------------


HOLDER = "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('open', flush=True); sys.stdin.read()"


def test_database_held_open_by_another_process(reference, tmp_path):
    run = copy_of(reference, tmp_path)
    shutil.rmtree(run.workdir)  # a fresh work dir: any work would decode first
    before, checkpoints_before = db_hash(run.db), snapshot(run.checkpoint)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run.db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        bytes_before = file_hash(run.db)
        proc = run.run(*ARGS, check=False)
        text = proc.stdout + proc.stderr
        assert f"database {run.db} is open in process {holder.pid}" in text, text[-3000:]
        assert "Nothing was changed" in text
        assert_no_job_ran(run_output(proc))
        assert file_hash(run.db) == bytes_before
        assert snapshot(run.checkpoint) == checkpoints_before  # no checkpoint written
    finally:
        holder.communicate("", timeout=60)
    assert db_hash(run.db) == before
    run.run(*ARGS, check=True)  # once it is closed, the same command runs
    assert content_hash(run.db) == reference[1]


# --- 3. read-only database file, checkpoint folder, work directory ---------------------


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[str]:
    """Make ``path`` (a file or a whole folder) unwritable for root too: ``chattr +i``
    (recursively for a folder), else a read-only bind mount. Yields how."""
    need_root("making a path read-only for root (chattr +i, mount)")
    flags = ["-R"] if path.is_dir() else []
    if sh("chattr", *flags, "+i", str(path)).returncode == 0:
        try:
            if not writable(path):
                yield "chattr +i"
                return
        finally:
            sh("chattr", *flags, "-i", str(path))
    if sh("mount", "--bind", str(path), str(path)).returncode != 0:
        pytest.skip(f"neither chattr +i nor a bind mount works on {path}")
    try:
        if sh("mount", "-o", "remount,ro,bind", str(path)).returncode != 0 or writable(path):
            pytest.skip(f"cannot make {path} read-only here")
        yield "read-only bind mount"
    finally:
        if sh("umount", str(path)).returncode != 0:
            sh("umount", "-l", str(path))


def writable(path: Path) -> bool:
    try:
        if path.is_dir():
            probe = path / ".probe"
            probe.write_bytes(b"")
            probe.unlink()
        else:
            with open(path, "r+b"):
                pass
    except OSError:
        return False
    return True


@pytest.mark.parametrize("what", ["db_file", "checkpoint_dir", "workdir"])
def test_read_only_location_is_refused_before_any_work(reference, tmp_path, what):
    run = copy_of(reference, tmp_path)
    target = {"db_file": run.db, "checkpoint_dir": run.checkpoint, "workdir": run.workdir}[what]
    expected = {
        "db_file": f"db {run.db}: the database file is not writable",
        "checkpoint_dir": f"checkpoint directory {run.checkpoint} is not writable",
        "workdir": f"work directory {run.workdir} is not writable",
    }[what]
    before, checkpoints_before = db_hash(run.db), snapshot(run.checkpoint)
    with read_only(target) as how:
        proc = run.run(*ARGS, check=False)
    text = proc.stdout + proc.stderr
    assert expected in text, f"({how})\n{text[-3000:]}"
    assert_no_job_ran(run_output(proc))
    assert db_hash(run.db) == before
    assert snapshot(run.checkpoint) == checkpoints_before


# --- 4. SIGTERM or Ctrl-C during the merge ----------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_during_merge_rolls_back_and_resumes(sample, reference, tmp_path, sig, calendar):
    run = fresh_run(sample, tmp_path)
    proc = start(run, SLOW)
    wait_for_first_done(run, proc)
    os.killpg(proc.pid, sig)  # the whole process group, as Ctrl-C or a session end sends
    text = finish(run, proc)
    assert proc.returncode == 128 + sig, text[-3000:]
    name = sig.name
    # the console: one line, what was committed and the command that resumes
    last = text.splitlines()[-1]
    assert last.startswith(f"dbn-backfill: interrupted by {name}: "), text[-3000:]
    assert "chunks committed by this run" in last and "resume with: dbn-backfill --db" in last
    assert sum("interrupted" in line for line in text.splitlines()) == 1, text[-3000:]
    # the merge's own account is in the run log
    (log,) = (run.workdir / "logs" / "runs").glob("*.log")
    assert f"interrupted by {name} during merge_chunks;" in log.read_text()
    states = run.checkpoints()
    failed = {k: v for k, v in states.items() if v["status"] == "failed"}
    assert len(failed) <= 1, failed  # the chunk in flight, if the signal came inside one
    for state in failed.values():
        assert f"interrupted by {name}" in state["error"]
        assert state["error_kind"] == "environment"
    done = assert_committed_intact(run, reference, calendar)
    assert 0 < len(done) < len(states), "the signal did not land during the merge"
    assert_resumes(run, reference, {k: v for k, v in states.items() if k in done})


# --- 5. SIGKILL during the merge ----------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_during_merge_then_resume(sample, reference, tmp_path, seed):
    run = fresh_run(sample, tmp_path)
    proc = start(run, SLOW)
    wait_for_first_done(run, proc)
    time.sleep(random.Random(seed).uniform(0.0, 3.0))
    os.killpg(proc.pid, signal.SIGKILL)
    text = finish(run, proc)
    assert proc.returncode == -signal.SIGKILL, "the run had ended before the kill:\n" + text
    states = run.checkpoints()
    done_before = {k: v for k, v in states.items() if v["status"] == "done"}
    assert len(done_before) < len(states), "the kill did not land during the merge"
    assert_resumes(run, reference, done_before)

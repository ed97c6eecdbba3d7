"""``dbn-backfill status`` on real backfills: exit 0 when all is well, 1 with the reason
after a failed chunk, an interrupted run, a failed gate or a run killed before its
gates; ``--json`` says the same; nothing is written, even to read-only files."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from conftest import Bar, Run, business_days, day_bars, write_bars

from dbn_backfill.runtime.faults import KILL_ENV, SLOW_MERGE_ENV
from dbn_backfill.views import status as status_module

D = dt.date
START, END = D(2024, 2, 5), D(2024, 2, 16)
BAD_DAY = D(2024, 2, 14)
BAD_CHUNK = "chunk_20240209_20240215"
BAD_DAY_TS = pd.Timestamp(f"{BAD_DAY} 18:00", tz="UTC")


def good_bars() -> list[Bar]:
    bars: list[Bar] = []
    for day in business_days(START, END):
        big, small = ("MGCJ4", "MGCM4") if day < BAD_DAY else ("MGCM4", "MGCJ4")
        bars += day_bars(big, 2 if big == "MGCJ4" else 3, day, n=4, volume=30)
        bars += day_bars(small, 2 if small == "MGCJ4" else 3, day, n=2, volume=5)
    return bars


@pytest.fixture(scope="module")
def committed(tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("committed")
    write_bars(root / "dbn" / "good.dbn.zst", good_bars())
    run = Run(root, root / "dbn", "MGC", START, END, chunk_days=5)
    run.run(check=True)
    return run


def copy_of(run: Run, root: Path) -> Run:
    """A copy of a backfill (sources, database, checkpoints, work directory) in ``root``."""
    for name in ("dbn", "checkpoints", "work"):
        if (run.root / name).exists():
            shutil.copytree(run.root / name, root / name)
    if run.db.exists():
        shutil.copy(run.db, root / run.db.name)
    return run.with_(root=root, dbn=root / "dbn")


@pytest.fixture
def fresh(committed, tmp_path) -> Run:
    return copy_of(committed, tmp_path)


def status(run: Run, *extra: str, workdir: bool = True) -> subprocess.CompletedProcess[str]:
    args = ["--db", str(run.db), "--checkpoint", str(run.checkpoint)]
    if workdir:
        args += ["--workdir", str(run.workdir)]
    return subprocess.run(
        [sys.executable, "-m", "dbn_backfill.cli", "status", *args, *extra],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=run.root,
    )


def status_json(run: Run) -> tuple[int, dict]:
    """The exit status and the root's object of ``status --json`` (one per root under
    ``roots``; a script reading one root picks it there)."""
    proc = status(run, "--json")
    js = json.loads(proc.stdout)
    assert js["symbols"] == ["MGC"] and list(js["roots"]) == ["MGC"], js
    root = js["roots"]["MGC"]
    assert js["ok"] is root["ok"] and js["attention"] == [f"MGC: {a}" for a in root["attention"]]
    return proc.returncode, root


def table_facts(db: Path) -> tuple[int, str, str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        (rows,) = con.execute("SELECT count(*) FROM bars_1m").fetchone()
        first, last = con.execute(
            "SELECT min(trade_date), max(trade_date) FROM bars_1m_trade_dates"
        ).fetchone()
        (chunks,) = con.execute("SELECT count(*) FROM bars_1m_chunks").fetchone()
    finally:
        con.close()
    return rows, str(first), str(last), chunks


def test_clean_run_is_ok_and_json_matches(committed):
    proc = status(committed)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    rows, first, last, chunks = table_facts(committed.db)
    n = len(committed.checkpoints())
    assert n == chunks and BAD_CHUNK in committed.checkpoints()
    assert ": OK" in text.splitlines()[0]
    assert f"chunks: {n} done, 0 failed, 0 in_progress, 0 pending" in text
    assert f"trade dates {first} .. {last}" in text and f"{rows:,} rows in {chunks} chunks" in text
    assert "business days without bars in that span: none" in text
    assert f"merge: committed {chunks}, skipped 0, failed 0, {rows:,} rows" in text
    assert "gates: passed (8/8)" in text and "needs attention" not in text

    code, js = status_json(committed)
    assert code == 0
    assert js["ok"] is True and js["attention"] == [] and js["symbol"] == "MGC"
    assert js["chunks"]["counts"] == {"done": n}
    assert js["chunks"]["failed"] == js["chunks"]["in_progress"] == js["chunks"]["pending"] == []
    db = js["database"]
    assert (db["rows"], db["first_trade_date"], db["last_trade_date"], db["chunks"]) == (
        rows, first, last, chunks,
    )  # fmt: skip
    assert db["missing_business_days"] == [] and db["trade_dates"] == len(business_days(START, END))
    (run_dir,) = (committed.workdir / "results" / "MGC" / "runs").iterdir()
    last_run = js["last_run"]
    assert last_run["run_id"] == run_dir.name and last_run["range"] == [str(START), str(END)]
    assert last_run["merge"]["chunks_committed"] == chunks
    assert last_run["merge"]["rows_inserted"] == rows
    assert last_run["gates"]["passed"] is True and len(last_run["gates"]["gates"]) == 8


def snapshot(*folders: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under ``folders``: bytes, modification time, mode (and the listing)."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            info = path.lstat()
            out[str(path)] = (
                path.read_bytes() if path.is_file() else b"",
                info.st_mtime_ns,
                info.st_mode,
            )
    return out


def make_read_only(*paths: Path) -> None:
    for top in paths:
        for path in [top, *top.rglob("*")] if top.is_dir() else [top]:
            mode = path.stat().st_mode
            path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def make_writable(*paths: Path) -> None:
    for top in paths:
        for path in [top, *top.rglob("*")] if top.is_dir() else [top]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_status_writes_nothing_and_works_on_read_only_files(committed, tmp_path):
    """The database file, its folder, the checkpoints and the work directory are made
    read-only (enforced by the kernel for a non-root user; for root, which may write
    anyway, the byte-identical comparison below is what proves it)."""
    run = copy_of(committed, tmp_path / "copy")
    # a checkpoint left in_progress, so the status has something to say
    state = json.loads((run.checkpoint_folder() / f"{BAD_CHUNK}.json").read_text())
    state.update(status="in_progress", started_at="2024-02-20T10:00:00+00:00")
    (run.checkpoint_folder() / f"{BAD_CHUNK}.json").write_text(json.dumps(state))
    guarded = (run.db.parent, run.checkpoint, run.workdir)
    make_read_only(run.db, run.checkpoint, run.workdir)
    run.db.parent.chmod(0o555)
    try:
        before = snapshot(*guarded)
        assert not os.access(run.db, os.W_OK) or os.geteuid() == 0
        text = status(run)
        js = status_json(run)
        after = snapshot(*guarded)
    finally:
        run.db.parent.chmod(0o755)
        make_writable(run.db, run.checkpoint, run.workdir)
    assert text.returncode == 1, text.stdout + text.stderr
    assert js[0] == 1 and js[1]["chunks"]["in_progress"][0]["chunk_id"] == BAD_CHUNK
    assert js[1]["database"]["rows"] == table_facts(run.db)[0]
    assert after == before, "status changed a file"


def test_status_opens_the_database_read_only_and_writes_no_file(committed, monkeypatch):
    """In-process: every DuckDB connection is read-only and Python opens no file for
    writing (audit hook on ``open``)."""
    import duckdb as real

    connections = []
    original = real.connect

    def spy(database=":memory:", read_only=False, **kw):
        connections.append((str(database), read_only))
        return original(database, read_only=read_only, **kw)

    monkeypatch.setattr(real, "connect", spy)
    writes: list[str] = []
    active = [True]

    def hook(event, args):
        if active[0] and event == "open" and len(args) >= 3:
            path, mode, flags = args[0], args[1], args[2]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            )
            if writing:
                writes.append(str(path))

    sys.addaudithook(hook)
    try:
        result = status_module.collect(
            committed.db, committed.checkpoint, workdir=committed.workdir
        )
        status_module.format_text(result)
    finally:
        active[0] = False
    assert result["ok"] is True
    assert connections and all(ro for _, ro in connections), connections
    assert writes == []


def test_failed_chunk_needs_attention(fresh):
    write_bars(fresh.dbn / "bad.dbn", [Bar("MGCJ4", 2, BAD_DAY_TS, high=1990.0, low=1999.0)])
    fresh.run(check=False)
    proc = status(fresh)
    assert proc.returncode == 1, proc.stdout
    text = proc.stdout
    assert "NEEDS ATTENTION" in text.splitlines()[0]
    assert "1 failed" in text and f"failed {BAD_CHUNK}:" in text
    assert "high < max(open, close, low)" in text and "bad.dbn" in text
    code, js = status_json(fresh)
    assert code == 1 and js["ok"] is False
    (failed,) = js["chunks"]["failed"]
    assert failed["chunk_id"] == BAD_CHUNK and "high < max(open, close, low)" in failed["error"]
    assert any(a.startswith(f"chunk {BAD_CHUNK} failed:") for a in js["attention"])
    # the merge stopped on the failed chunk: no merge report for that run
    assert js["last_run"]["merge"] is None
    assert any("has no merge report" in a for a in js["attention"])


def test_interrupted_run_needs_attention_until_resumed(committed, tmp_path):
    run = Run(tmp_path, committed.dbn, "MGC", START, END, chunk_days=5)
    killed = run.run(env={KILL_ENV: "merge_in_transaction"})
    assert killed.returncode != 0
    proc = status(run)
    assert proc.returncode == 1, proc.stdout
    assert "in_progress" in proc.stdout and "a run was interrupted" in proc.stdout
    code, js = status_json(run)
    assert code == 1 and [p["chunk_id"] for p in js["chunks"]["in_progress"]]
    assert js["database"]["chunks"] == 1  # the first chunk committed before the kill
    run.run(check=True)  # the same command resumes
    assert status(run).returncode == 0


def test_merge_report_without_gates_report_needs_attention(fresh):
    killed = fresh.run(env={KILL_ENV: "gates"})
    assert killed.returncode != 0
    proc = status(fresh)
    assert proc.returncode == 1, proc.stdout
    assert "has a merge report but no gates report" in proc.stdout
    code, js = status_json(fresh)
    merge = js["last_run"]["merge"]
    assert merge["chunks_skipped"] == len(fresh.checkpoints()) and merge["chunks_committed"] == 0
    assert code == 1 and js["last_run"]["gates"] is None


def test_failed_gate_needs_attention(fresh):
    con = duckdb.connect(str(fresh.db))
    con.execute(
        "UPDATE bars_1m SET high = low - 1 WHERE ts_utc = (SELECT max(ts_utc) FROM bars_1m)"
    )
    con.close()
    proc = fresh.run(check=False)
    assert "honesty gates failed" in proc.stderr
    text = status(fresh)
    assert text.returncode == 1, text.stdout
    assert "gates: FAILED (7/8" in text.stdout
    assert "FAIL every row satisfies section 4: 1 rows break section 4" in text.stdout
    code, js = status_json(fresh)
    assert code == 1 and js["last_run"]["gates"]["passed"] is False
    assert any("gate failed in run" in a and "section 4" in a for a in js["attention"])


def test_a_running_backfill_is_not_an_interrupted_one(fresh):
    state = json.loads((fresh.checkpoint_folder() / f"{BAD_CHUNK}.json").read_text())
    state.update(status="in_progress", started_at="2024-02-20T10:00:00+00:00")
    (fresh.checkpoint_folder() / f"{BAD_CHUNK}.json").write_text(json.dumps(state))
    lock = open(fresh.db.with_name(fresh.db.name + ".lock"), "a+")  # noqa: SIM115
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("pid 1 since now: test")
        lock.flush()
        proc = status(fresh)
        code, js = status_json(fresh)
    finally:
        lock.close()
    assert proc.returncode == 0, proc.stdout
    assert "running now: pid 1 since now: test" in proc.stdout
    assert "a backfill is running" in proc.stdout and js["running"]
    after = status(fresh)  # the lock is gone: that in_progress chunk was interrupted
    assert after.returncode == 1 and "a run was interrupted" in after.stdout


def test_missing_database_is_an_error(tmp_path):
    run = Run(tmp_path, tmp_path / "dbn", "MGC", START, END)
    (tmp_path / "checkpoints").mkdir()
    proc = status(run, workdir=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_status_during_a_first_run_says_it_is_going_with_its_progress(committed, tmp_path):
    """The first run of a database: no database file yet, then chunks committed one by
    one (a slow merge): status says a run is going, how far it is, and exits 0."""
    run = Run(tmp_path, committed.dbn, "MGC", START, END, chunk_days=1)
    proc = run.popen(env={SLOW_MERGE_ENV: "1.5"})
    try:
        seen: list[subprocess.CompletedProcess[str]] = []
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            if run.db.with_name(run.db.name + ".lock").exists():
                seen.append(status(run))
                if (
                    "of 10 chunks committed" in seen[-1].stdout
                    and " 0 of 10" not in seen[-1].stdout
                ):
                    break
            time.sleep(0.5)
        assert seen, "the run never took its lock"
        for result in seen:
            assert result.returncode == 0, result.stdout + result.stderr
            assert "running now:" in result.stdout, result.stdout
        assert any("of 10 chunks committed" in r.stdout for r in seen), seen[-1].stdout
    finally:
        proc.communicate(timeout=300)
    assert status(run).returncode == 0


def test_after_a_failed_run_status_shows_the_error_and_the_command(fresh):
    write_bars(fresh.dbn / "bad.dbn", [Bar("MGCJ4", 2, BAD_DAY_TS, high=1990.0, low=1999.0)])
    fresh.run(check=False)
    proc = status(fresh)
    assert proc.returncode == 1, proc.stdout
    assert (
        "next: fix the file named above, then rerun the same command with --retry-failed"
        in proc.stdout
    )
    assert "merge_chunks stopped: ChunksFailed" in proc.stdout  # the run's own error line

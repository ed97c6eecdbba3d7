"""Crash and resume, concurrency, and gates that bite: the real workflow, killed and tampered."""

from __future__ import annotations

import datetime as dt
import fcntl
import random
import shutil
import signal
import time
from pathlib import Path

import duckdb
import pytest
from conftest import Run, content_hash, db_hash

from dbn_backfill.config import from_mapping
from dbn_backfill.gates.checks import run_gates
from dbn_backfill.runtime.faults import KILL_ENV, POINTS, SLOW_MERGE_ENV
from dbn_backfill.sampledata.synth import generate
from dbn_backfill.sources.dbn_files import find_sources
from dbn_backfill.sources.index import scan

D = dt.date
START, END = D(2024, 1, 2), D(2024, 2, 29)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "dbn"
    generate(out, D(2024, 1, 1), D(2024, 2, 29), seed=11, layout="daily")
    return out


@pytest.fixture(scope="module")
def reference(sample, tmp_path_factory) -> tuple[Run, str]:
    run = Run(tmp_path_factory.mktemp("clean"), sample, "MGC", START, END, chunk_days=5)
    run.run("--chunks-per-job", "3", check=True)
    return run, content_hash(run.db)


def fresh_run(sample: Path, tmp_path: Path) -> Run:
    return Run(tmp_path, sample, "MGC", START, END, chunk_days=5)


@pytest.mark.parametrize("point", POINTS)
def test_kill_at_a_named_point_then_resume(sample, reference, tmp_path, point):
    run = fresh_run(sample, tmp_path)
    killed = run.run("--chunks-per-job", "3", env={KILL_ENV: point})
    assert killed.returncode != 0, f"the run was not killed at {point}"
    assert "summary (OK)" not in killed.stderr
    done_before = {k: v for k, v in run.checkpoints().items() if v["status"] == "done"}
    resumed = run.run("--chunks-per-job", "3", check=True)  # same command, no flag, no cleanup
    assert content_hash(run.db) == reference[1]
    states = run.checkpoints()
    assert states and all(s["status"] == "done" for s in states.values())
    for chunk_id, state in done_before.items():  # not redone: same commit time
        assert states[chunk_id]["finished_at"] == state["finished_at"]
    assert "LockException" not in resumed.stderr


def test_kill_at_random_times_then_resume(sample, reference, tmp_path):
    rng = random.Random(20261126)
    run = fresh_run(sample, tmp_path)
    for _ in range(3):
        proc = run.popen("--chunks-per-job", "3")
        time.sleep(rng.uniform(0.5, 6.0))
        try:
            import os

            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate(timeout=60)
    run.run("--chunks-per-job", "3", check=True)
    assert content_hash(run.db) == reference[1]
    assert all(s["status"] == "done" for s in run.checkpoints().values())


def lock_is_held(path: Path) -> bool:
    if not path.exists():
        return False
    with open(path) as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def test_second_run_is_refused_while_one_runs(sample, reference, tmp_path):
    run = fresh_run(sample, tmp_path)
    # a merge slow enough that the first run still holds its locks while the others
    # start (a fast machine could otherwise finish it first)
    first = run.popen("--chunks-per-job", "3", env={SLOW_MERGE_ENV: "1.0"})
    deadline = time.time() + 60
    while not lock_is_held(run.workdir / ".dbn-backfill.lock") and time.time() < deadline:
        time.sleep(0.05)
    same_db_other_workdir = run.with_(root=tmp_path / "other")
    same_db_other_workdir.root.mkdir()
    second = same_db_other_workdir.with_(db_path=run.db).run("--chunks-per-job", "3", check=False)
    assert "another backfill is running on database" in second.stderr
    third = run.with_(db_path=tmp_path / "other.duckdb").run("--chunks-per-job", "3", check=False)
    assert "another backfill is running on work directory" in third.stderr
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    assert content_hash(run.db) == reference[1]
    con = duckdb.connect(str(run.db), read_only=True)  # readers are fine once no merge runs
    assert con.execute("SELECT count(*) FROM bars_1m").fetchall()[0][0] > 0
    con.close()


def tampered(reference: tuple[Run, str], tmp_path: Path, sql: str) -> Path:
    db = tmp_path / "tampered.duckdb"
    shutil.copy(reference[0].db, db)
    con = duckdb.connect(str(db))
    con.execute("SET TimeZone='UTC'").fetchall()
    for statement in sql.split(";"):
        if statement.strip():
            con.execute(statement).fetchall()
    con.close()
    return db


def gate_results(db: Path, run: Run, calendar, seed: str = "t") -> dict[str, tuple[bool, str]]:
    """gate -> (passed, detail) on ``db``, as run ``seed`` (default: a run that committed
    nothing, as a no-op rerun)."""
    cfg = from_mapping({"dbn": run.dbn, "db": db, "symbol": "MGC", "start": START, "end": END,
                        "chunk_days": 3, "checkpoint": run.checkpoint})  # fmt: skip
    results = run_gates(
        cfg=cfg,
        calendar=calendar,
        sources=scan(find_sources(run.dbn), None, write=False),
        seed=seed,
    )
    return {r.name: (r.passed, r.detail) for r in results}


def gates_on(db: Path, run: Run, calendar) -> dict[str, str]:
    return {n: d for n, (ok, d) in gate_results(db, run, calendar).items() if not ok}


def test_gates_pass_on_a_clean_table(reference, calendar):
    assert gates_on(reference[0].db, reference[0], calendar) == {}


@pytest.mark.parametrize(
    ("sql", "gate", "found"),
    [
        (
            "UPDATE bars_1m SET source_symbol = 'MGCM4' WHERE ts_utc = "
            "(SELECT min(ts_utc) FROM bars_1m WHERE ts_utc > '2024-01-10 15:00+00')",
            "one source_symbol per (symbol, trade date)",
            "2024-01-10",
        ),
        (
            "UPDATE bars_1m SET high = low - 1 WHERE ts_utc = (SELECT min(ts_utc) FROM bars_1m)",
            "every row satisfies section 4",
            "1 rows break section 4",
        ),
        (
            "DELETE FROM bars_1m WHERE ts_utc >= '2024-01-22 00:00+00' AND ts_utc < '2024-01-22 22:00+00';"
            "DELETE FROM bars_1m WHERE ts_utc >= '2024-01-21 22:00+00' AND ts_utc < '2024-01-22 23:00+00'",
            "completeness of [start, end]",
            "2024-01-22",
        ),
        (
            "CREATE TABLE copy AS SELECT * FROM bars_1m; DROP TABLE bars_1m;"
            "CREATE TABLE bars_1m AS SELECT * FROM copy; DROP TABLE copy;"
            "INSERT INTO bars_1m SELECT * FROM bars_1m ORDER BY ts_utc LIMIT 1",
            "no duplicate (symbol, ts_utc)",
            "duplicated",
        ),
        (
            "DELETE FROM bars_1m WHERE minute(ts_utc) = 7 AND hour(ts_utc) = 15",  # every day
            "spot-check against DBN",
            "mismatch",
        ),
        (
            "UPDATE bars_1m SET close = 'NaN'::DOUBLE WHERE ts_utc = (SELECT max(ts_utc) FROM bars_1m)",
            "every row satisfies section 4",
            "1 rows break section 4",
        ),
        (
            "UPDATE bars_1m SET high = 'inf'::DOUBLE WHERE ts_utc = (SELECT max(ts_utc) FROM bars_1m)",
            "every row satisfies section 4",
            "1 rows break section 4",
        ),
        (
            # a bar planted by hand half a minute after the first one (no run wrote it)
            "INSERT INTO bars_1m SELECT ts_utc + INTERVAL 30 SECOND, symbol, source_symbol, "
            "open, high, low, close, volume FROM bars_1m ORDER BY ts_utc LIMIT 1",
            "every row satisfies section 4",
            "1 rows break section 4",
        ),
    ],
    ids=[
        "two_sources_one_day",
        "high_below_low",
        "deleted_day",
        "duplicate_without_key",
        "lost_bar",
        "nan_close",
        "infinite_high",
        "planted_off_minute_row",
    ],
)
def test_gates_bite(reference, tmp_path, calendar, sql, gate, found):
    failed = gates_on(tampered(reference, tmp_path, sql), reference[0], calendar)
    assert gate in failed, failed
    assert found in failed[gate]


def free_minute(db: Path, day: str) -> str:
    """A minute of UTC day ``day`` without a bar, in the daily break (22:00 to 22:59 UTC
    in winter: 16:00 to 17:00 Chicago, still the trade date ``day``)."""
    con = duckdb.connect(str(db), read_only=True)
    con.execute("SET TimeZone='UTC'").fetchall()
    ts = con.execute(
        "SELECT min(t) FROM generate_series(?::TIMESTAMPTZ + INTERVAL 22 HOUR, "
        "?::TIMESTAMPTZ + INTERVAL 22 HOUR + INTERVAL 59 MINUTE, INTERVAL 1 MINUTE) g(t) "
        "WHERE t NOT IN (SELECT ts_utc FROM bars_1m)",
        [day, day],
    ).fetchall()[0][0]
    con.close()
    assert ts is not None, f"no free minute on {day}"
    return str(ts)


def test_a_no_op_rerun_scans_no_trade_date_of_a_clean_table(reference, calendar):
    results = gate_results(reference[0].db, reference[0], calendar)
    assert all(ok for ok, _ in results.values()), results
    ok, detail = results["one source_symbol per (symbol, trade date)"]
    assert "the 0 chunks this run committed scanned" in detail, detail
    assert "primary key (symbol, ts_utc) in place" in results["no duplicate (symbol, ts_utc)"][1]


def test_the_run_that_committed_the_chunks_scans_their_trade_dates(reference, calendar):
    con = duckdb.connect(str(reference[0].db), read_only=True)
    run_id, chunks = con.execute(
        "SELECT min(run_id), count(*) FROM bars_1m_chunks WHERE symbol = 'MGC'"
    ).fetchall()[0]
    con.close()
    results = gate_results(reference[0].db, reference[0], calendar, seed=run_id)
    assert all(ok for ok, _ in results.values()), results
    detail = results["one source_symbol per (symbol, trade date)"][1]
    assert f"the {chunks} chunks this run committed scanned" in detail, detail


def test_a_row_planted_outside_this_run_is_still_caught(reference, tmp_path, calendar):
    """A valid-looking bar of another contract planted by hand on an old trade date: no
    chunk of the run covers it, the rows per contract no longer match the lineage, so
    every trade date is scanned and the day's second source fails the gate."""
    at = free_minute(reference[0].db, "2024-01-10 00:00+00")
    db = tampered(
        reference,
        tmp_path,
        "INSERT INTO bars_1m SELECT TIMESTAMPTZ '" + at + "', symbol, 'MGCM4', open, high, "
        "low, close, volume FROM bars_1m ORDER BY ts_utc LIMIT 1",
    )
    results = gate_results(db, reference[0], calendar)
    ok, detail = results["one source_symbol per (symbol, trade date)"]
    assert not ok and "2024-01-10" in detail and "every trade date scanned" in detail, detail
    assert results["every row satisfies section 4"][0]  # the planted bar itself is valid


def test_a_tampered_table_fails_the_next_run_loudly(reference, tmp_path):
    run = reference[0].with_(root=tmp_path)
    shutil.copytree(reference[0].workdir, run.workdir)
    shutil.copytree(reference[0].checkpoint, run.checkpoint)
    shutil.copy(
        tampered(
            reference,
            tmp_path,
            "UPDATE bars_1m SET high = low - 1 WHERE ts_utc = (SELECT max(ts_utc) FROM bars_1m)",
        ),
        run.db,
    )
    before = db_hash(run.db)
    proc = run.run("--chunks-per-job", "3", check=False)
    assert "honesty gates failed" in proc.stderr and "break section 4" in proc.stderr
    assert db_hash(run.db) == before

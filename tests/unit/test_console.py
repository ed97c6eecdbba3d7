"""The run console: what a person sees of Snakemake's output (real captured output,
tests/data/console/README.md), the checkpoint counter, the live bar."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest

from dbn_backfill.views.console import (
    EVERY_ENV,
    CheckpointWatch,
    RunConsole,
    every_from_env,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "console"
START, END = dt.date(2024, 1, 2), dt.date(2024, 2, 28)


def replay(name: str, **kw) -> tuple[list[str], str, RunConsole]:
    """Feed a captured output to a console; returns (console lines, log text, console)."""
    out, log = io.StringIO(), io.StringIO()
    console = RunConsole(out, log, None, roots=2, every=3600.0, **kw)
    for line in (DATA / name).read_text().splitlines():
        console.feed(line)
    return out.getvalue().splitlines(), log.getvalue(), console


def test_a_run_shows_its_start_and_summary_only():
    shown, log, _ = replay("success.txt")
    assert shown[0].startswith("dbn-backfill run ") and shown[1].startswith("settings: ")
    assert shown[2].startswith("dbn-backfill summary (OK)")
    assert len(shown) == 5, shown
    # Snakemake's job chatter went to the log, whole
    assert "localrule decode_sources:" in log and "7 of 7 steps (100%) done" in log
    assert log.count("\n") == len((DATA / "success.txt").read_text().splitlines())
    assert not any("rule " in s or "INFO" in s or "gate " in s for s in shown), shown


def test_verbose_shows_every_line():
    shown, _, _ = replay("success.txt", verbose=True)
    assert shown == (DATA / "success.txt").read_text().splitlines()


def test_a_failed_chunk_is_shown_once_by_the_summary():
    shown, _, console = replay("chunk-failed.txt")
    text = "\n".join(shown)
    assert text.count("high < max(open, close, low)") == 1, text
    assert "Traceback" not in text and "^^^" not in text and "Logfile" not in text
    assert console.summary_seen and len(shown) <= 10, shown
    console.finish(1, Path("run.log"), "dbn-backfill --db x")
    assert console.out.getvalue().splitlines() == shown  # the summary said it all


def test_a_refused_run_shows_the_error_once_and_the_command_with_the_flag():
    shown, _, console = replay("refused.txt")
    assert len(shown) == 1 and shown[0].startswith("CheckpointError: 1 chunks failed")
    console.finish(1, Path("/w/logs/runs/r.log"), "dbn-backfill --db x")
    after = console.out.getvalue().splitlines()[1:]
    assert after == [
        "next: fix what the error says, then rerun: dbn-backfill --db x --retry-failed",
        "Snakemake's output and every job's log lines: /w/logs/runs/r.log",
    ]


def test_a_job_error_is_shown_once_and_its_traceback_is_not():
    out, log = io.StringIO(), io.StringIO()
    console = RunConsole(out, log, None, roots=1, every=3600.0)
    record = "2026-12-06 00:14:25,639 ERROR dbn_backfill.check_gates: check_gates stopped: boom"
    for line in [record, "Traceback (most recent call last):", '  File "x.py", line 1',
                 "             ^^^^", "dbn_backfill.errors.GateError: boom", "",
                 "Error in rule check_gates:", "Logfile logs/x.log:", "=" * 80,
                 record, "Traceback (most recent call last):", "GateError: boom", "=" * 80,
                 "Shutting down, this might take some time."]:  # fmt: skip
        console.feed(line)
    assert out.getvalue().splitlines() == ["error: check_gates stopped: boom"]


def write_checkpoint(folder: Path, chunk_id: str, status: str, run_id: str, rows: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    first, last = chunk_id.split("_")[1:]
    path = folder / f"{chunk_id}.json"
    path.write_text(
        json.dumps(
            {
                "chunk_id": chunk_id,
                "chunk_start": f"{first[:4]}-{first[4:6]}-{first[6:]}",
                "chunk_end": f"{last[:4]}-{last[4:6]}-{last[6:]}",
                "status": status,
                "run_id": run_id,
                "rows_written": rows,
                "source": [],
                "symbol": "MGC",
                "content_hash": None,
                "error": None,
                "error_kind": None,
                "started_at": None,
                "finished_at": None,
                "last_ts_event": None,
            }  # fmt: skip
        )
    )
    return path


def test_the_checkpoint_watch_counts_the_runs_span_and_its_own_commits(tmp_path):
    mgc, gc = tmp_path / "MGC", tmp_path / "GC"
    write_checkpoint(mgc, "chunk_20240102_20240105", "done", "old", 100)
    write_checkpoint(mgc, "chunk_20240108_20240112", "done", "r1", 200)
    write_checkpoint(mgc, "chunk_20231226_20231229", "done", "r1", 999)  # outside the span
    pending = write_checkpoint(gc, "chunk_20240102_20240105", "in_progress", "r1", 0)
    (gc / "chunk_20240108_20240112.json").write_text("{half")  # being written
    watch = CheckpointWatch([mgc, gc], "r1", START, END)
    t = watch.poll()
    assert (t.done, t.committed, t.rows) == (2, 1, 200)
    write_checkpoint(gc, "chunk_20240102_20240105", "done", "r1", 50)
    pending.touch()
    t = watch.poll()
    assert (t.done, t.committed, t.rows) == (3, 2, 250)


def test_progress_lines_come_every_few_seconds_from_the_checkpoints(tmp_path):
    write_checkpoint(tmp_path / "MGC", "chunk_20240102_20240105", "done", "r1", 1234)
    out = io.StringIO()
    watch = CheckpointWatch([tmp_path / "MGC"], "r1", START, END)
    console = RunConsole(out, io.StringIO(), watch, roots=1, every=0.0)
    console.feed("dbn-backfill run r1: MGC 2024-01-02..2024-02-28, 1 DBN files in 1 decode "
                 "groups, 8 chunks of 5 trading days in 1 build jobs per root, db x")  # fmt: skip
    console.feed("3 of 7 steps (43%) done")
    lines = [x for x in out.getvalue().splitlines() if x.startswith("progress: ")]
    assert lines and "1 of 8 chunks done, 1 committed by this run (1,234 rows)" in lines[-1]
    assert "step 3 of 7" in lines[-1]


def test_a_signal_mutes_the_console(tmp_path):
    out = io.StringIO()
    console = RunConsole(out, io.StringIO(), None, roots=1, every=3600.0)
    console.mute()
    for line in (DATA / "chunk-failed.txt").read_text().splitlines():
        console.feed(line)
    assert out.getvalue() == ""


def test_the_live_bar_follows_the_checkpoints(tmp_path):
    write_checkpoint(tmp_path / "MGC", "chunk_20240102_20240105", "done", "r1", 10)
    write_checkpoint(tmp_path / "MGC", "chunk_20240108_20240112", "done", "r1", 20)
    out = io.StringIO()
    watch = CheckpointWatch([tmp_path / "MGC"], "r1", START, END)
    console = RunConsole(out, io.StringIO(), watch, roots=1, live=True)
    assert console.bar is not None
    console.feed("dbn-backfill run r1: MGC 2024-01-02..2024-02-28, 1 DBN files in 1 decode "
                 "groups, 8 chunks of 5 trading days in 1 build jobs per root, db x")  # fmt: skip
    task = console.bar.progress.tasks[0]
    assert (task.completed, task.total, task.fields["extra"]) == (2, 8, "30 rows")
    console.feed("dbn-backfill summary (OK), run r1, MGC:")
    assert console.bar is None  # stopped: the summary is printed below it
    assert out.getvalue().splitlines()[-1] == "dbn-backfill summary (OK), run r1, MGC:"


def test_the_progress_interval_is_checked(monkeypatch):
    monkeypatch.setenv(EVERY_ENV, "0.5")
    assert every_from_env() == 0.5
    monkeypatch.setenv(EVERY_ENV, "soon")
    with pytest.raises(ValueError, match=f"{EVERY_ENV}='soon'"):
        every_from_env()

"""What a person sees of a ``dbn-backfill`` run (issue 21 item 2): a short console
(start, progress, each error once, the summary), Snakemake's job chatter in the run's
log file, a no-op that says so, one line on Ctrl-C with the command that resumes;
``--verbose`` and the Snakemake interface keep Snakemake's own output."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import PROJECT, Bar, Run, write_bars

from dbn_backfill.runtime.faults import SLOW_MERGE_ENV
from dbn_backfill.sampledata.synth import generate
from dbn_backfill.views.console import EVERY_ENV

START, END = dt.date(2024, 1, 2), dt.date(2024, 1, 19)
BAD_TS = pd.Timestamp("2024-01-10 18:00", tz="UTC")
RUN_LOG = re.compile(r"Snakemake's output and every job's log lines: (\S+\.log)$", re.M)


def lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return (proc.stdout + proc.stderr).splitlines()


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "dbn"
    generate(out, START, END, seed=5, layout="daily")
    return out


@pytest.fixture(scope="module")
def first(sample, tmp_path_factory) -> tuple[Run, subprocess.CompletedProcess[str]]:
    run = Run(tmp_path_factory.mktemp("first"), sample, "MGC", START, END, chunk_days=2)
    return run, run.run(check=True)


def copy_of(run: Run, tmp_path: Path) -> Run:
    for name in ("checkpoints", "work"):
        shutil.copytree(run.root / name, tmp_path / name)
    shutil.copy(run.db, tmp_path / run.db.name)
    return run.with_(root=tmp_path)


def test_a_run_prints_a_short_console_and_logs_snakemakes_output(first):
    run, proc = first
    shown = lines(proc)
    assert len(shown) <= 15, "\n".join(shown)
    assert shown[0].startswith("dbn-backfill run ")
    assert any(s.startswith("dbn-backfill summary (OK)") for s in shown)
    text = "\n".join(shown)
    assert "rule " not in text and " INFO " not in text and "SNAKEMAKE" not in text, text
    match = RUN_LOG.search(text)
    assert match is not None, text
    log = Path(match.group(1)).read_text()
    assert Path(match.group(1)).parent == run.workdir / "logs" / "runs"
    for chatter in ("localrule decode_sources:", "localrule merge_chunks:", "steps (100%) done",
                    "INFO dbn_backfill.merge_chunks: start merge_chunks"):  # fmt: skip
        assert chatter in log, chatter


def test_a_rerun_with_nothing_new_says_so_in_at_most_10_lines(first, tmp_path):
    run = copy_of(first[0], tmp_path)
    proc = run.run(check=True)
    shown = lines(proc)
    assert len(shown) <= 10, "\n".join(shown)
    assert "nothing to do: every chunk was committed before" in proc.stderr


def test_verbose_shows_snakemakes_job_lines(first, tmp_path):
    run = copy_of(first[0], tmp_path)
    proc = run.run("--verbose", check=True)
    assert "localrule check_gates:" in proc.stderr and "steps (100%) done" in proc.stderr
    assert proc.stderr.count("dbn-backfill summary (OK)") == 1


def test_a_log_or_pipe_gets_a_progress_line_every_few_seconds(sample, tmp_path):
    run = Run(tmp_path, sample, "MGC", START, END, chunk_days=1)
    proc = run.run("--chunks-per-job", "50", env={SLOW_MERGE_ENV: "0.2", EVERY_ENV: "0.5"},
                   check=True)  # fmt: skip
    progress = [s for s in lines(proc) if s.startswith("progress: ")]
    assert len(progress) >= 3, proc.stderr
    counts = [
        re.search(r"(\d+) of (\d+) chunks done, \d+ committed by this run", p) for p in progress
    ]
    assert all(counts), progress
    done = [int(m.group(1)) for m in counts if m]
    assert done == sorted(done) and done[0] < done[-1], progress  # it moved, never back
    assert {m.group(2) for m in counts if m} == {"13"}, progress  # the business days


def test_a_bad_record_is_reported_once_with_the_command_to_type_next(first, tmp_path):
    run = copy_of(first[0], tmp_path).with_(dbn=tmp_path / "dbn")
    shutil.copytree(first[0].dbn, run.dbn)
    write_bars(run.dbn / "bad.dbn", [Bar("MGCG4", 2, BAD_TS, high=1990.0, low=1999.0)])
    proc = run.run(check=False)
    text = "\n".join(lines(proc))
    assert text.count("high < max(open, close, low)") == 1, text
    assert "bad.dbn" in text and "Traceback" not in text and "Logfile" not in text
    assert "rerun the same command with --retry-failed" in text
    assert len(lines(proc)) <= 12, text
    # the next run is refused before any job: the error once, the command with the flag
    again = run.run(check=False)
    text = "\n".join(lines(again))
    assert text.count("high < max(open, close, low)") == 1, text
    assert lines(again)[-2].startswith("next: ") and lines(again)[-2].endswith(
        f"--workdir {run.workdir} --retry-failed"
    ), text
    assert len(lines(again)) <= 4, text


def test_ctrl_c_prints_one_line_with_the_resume_command(sample, tmp_path):
    run = Run(tmp_path, sample, "MGC", START, END, chunk_days=1)
    out = open(tmp_path / "run.out", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbn_backfill.cli", *run.args("--chunks-per-job", "50")],
        stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, SLOW_MERGE_ENV: "0.3"},
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while not any(s["status"] == "done" for s in run.checkpoints().values()):
        assert proc.poll() is None and time.monotonic() < deadline, "no chunk was committed"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=120)
    out.close()
    shown = (tmp_path / "run.out").read_text().splitlines()
    assert proc.returncode == 128 + signal.SIGINT, shown
    said = [s for s in shown if "interrupted" in s]
    assert len(said) == 1 and said[0] == shown[-1], shown
    assert re.match(
        r"dbn-backfill: interrupted by SIGINT: \d+ chunks committed by this run", said[0]
    )
    assert said[0].endswith(
        "resume with: dbn-backfill " + " ".join(run.args("--chunks-per-job", "50"))
    )
    text = "\n".join(shown)
    assert "Traceback" not in text and " INFO " not in text and "summary" not in text, text
    assert len(shown) <= 6, text


def test_the_snakemake_interface_keeps_its_output_and_prints_the_summary(first, tmp_path):
    run = copy_of(first[0], tmp_path)
    config = {"dbn": run.dbn, "db": run.db, "symbol": "MGC", "start": START, "end": END,
              "chunk_days": 2, "checkpoint": run.checkpoint}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(PROJECT / "workflow" / "Snakefile"),
         "--directory", str(run.workdir), "--cores", "2",
         "--config", *(f"{k}={v}" for k, v in config.items())],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "localrule check_gates:" in proc.stderr
    assert proc.stderr.count("dbn-backfill summary (OK)") == 1
    assert "nothing to do" in proc.stderr


def test_a_terminal_gets_a_live_bar_that_leaves_the_summary(sample, tmp_path):
    import pty

    run = Run(tmp_path, sample, "MGC", START, END, chunk_days=1)
    main, side = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbn_backfill.cli", *run.args("--chunks-per-job", "50")],
        stdout=side, stderr=side, start_new_session=True,
        env={**os.environ, SLOW_MERGE_ENV: "0.1", "TERM": "xterm", "COLUMNS": "120"},
    )  # fmt: skip
    os.close(side)
    screen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal closed: the run ended
            break
        if not chunk:
            break
        screen += chunk
    os.close(main)
    assert proc.wait(timeout=60) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", screen.decode("utf-8", "replace"))
    bars = re.findall(r"chunks done\s.*?(\d+)/13 ([\d,]+) rows", text)
    assert bars and bars[-1][0] == "13", text[-3000:]  # the bar went to the end
    assert "progress: " not in text  # no progress lines on a terminal
    assert "dbn-backfill summary (OK)" in text and "localrule" not in text

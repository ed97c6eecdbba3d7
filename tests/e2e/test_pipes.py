"""Every command behaves in a pipe whose reader goes away (``dbn-backfill show | head
-1``): no BrokenPipeError traceback, a quiet exit. A view (show, status, report,
paths, synth) exits 141 (128 + SIGPIPE, what the shell reports for ``yes | head -1``);
the backfill finishes its run whatever happens to its output and exits with the run's
own status."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Run

from dbn_backfill.sampledata.synth import generate

pytestmark = pytest.mark.slow

START, END = dt.date(2024, 1, 2), dt.date(2024, 1, 12)
CLI = [sys.executable, "-m", "dbn_backfill.cli"]


def closed_after_one_line(cmd: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run ``cmd`` with stdout to a pipe the reader closes after one line (as ``| head
    -1`` does); returns (exit status, the line, stderr)."""
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy()
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline().decode()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=300), line, err


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("pipes")
    dbn = root / "dbn"
    generate(dbn, START, END, seed=3, layout="daily")
    run = Run(root, dbn, "MGC", START, END, chunk_days=2)
    run.run(check=True)
    return run


def views(run: Run) -> dict[str, list[str]]:
    db, ckpt, work = str(run.db), str(run.checkpoint), str(run.workdir)
    return {
        "show": ["show", "--db", db, "--rows", "50"],
        "status": ["status", "--db", db, "--checkpoint", ckpt, "--workdir", work],
        "status-json": ["status", "--db", db, "--checkpoint", ckpt, "--workdir", work, "--json"],
        "report": ["report", "--db", db, "--out", str(run.root / "r.html"), "--workdir", work],
        "paths": ["paths"],
        "synth": ["synth", "--out", str(run.root / "s"), "--start", "2024-01-02",
                  "--end", "2024-01-31", "--layout", "daily"],
    }  # fmt: skip


@pytest.mark.parametrize("name", ["show", "status", "status-json", "report", "paths", "synth"])
def test_a_view_in_a_closed_pipe_exits_quietly(backfilled, name):
    code, line, err = closed_after_one_line([*CLI, *views(backfilled)[name]], backfilled.root)
    assert line
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Broken pipe" not in err, err
    assert code in (0, 141), (code, err)


def test_the_backfill_in_a_closed_pipe_finishes_its_run_and_exits_quietly(backfilled, tmp_path):
    # the dry run prints Snakemake's plan on stdout: many lines
    code, line, err = closed_after_one_line([*CLI, *backfilled.args("--dry-run")], backfilled.root)
    assert line and code == 0, err[-3000:]
    assert "Traceback" not in err and "Broken pipe" not in err, err[-3000:]
    # a real run into a new database: its output cut, the run completes and says so
    fresh = backfilled.with_(root=tmp_path)
    code, line, err = closed_after_one_line([*CLI, *fresh.args()], tmp_path)
    assert code == 0, err[-3000:]
    assert "Traceback" not in err and "Broken pipe" not in err, err[-3000:]
    assert len(fresh.rows()) == len(backfilled.rows())

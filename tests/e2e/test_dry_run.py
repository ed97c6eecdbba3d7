"""A dry run (``dbn-backfill --dry-run``, ``snakemake -n``) creates and writes nothing
at all, yet lists the jobs a run would run; a missing database folder is created by
a real run of either interface, which says so in one line."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT, Run

from dbn_backfill.sampledata.synth import generate

pytestmark = pytest.mark.slow

START, END = dt.date(2024, 1, 2), dt.date(2024, 1, 12)


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes | None]]:
    """Every file and folder under ``root``: (size, mtime_ns, content of a file)."""
    seen = {}
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        body = path.read_bytes() if path.is_file() and not path.is_symlink() else None
        seen[str(path)] = (st.st_size if body is not None else 0, st.st_mtime_ns, body)
    return seen


def changes(before: dict, after: dict) -> list[str]:
    return sorted(
        [f"new {p}" for p in after.keys() - before.keys()]
        + [f"gone {p}" for p in before.keys() - after.keys()]
        + [f"changed {p}" for p in before.keys() & after.keys() if before[p] != after[p]]
    )


def snakemake(cwd: Path, *args: str, config: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(PROJECT / "workflow" / "Snakefile"),
         "--directory", str(cwd), "--cores", "2", *args,
         "--config", *(f"{k}={v}" for k, v in config.items())],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )  # fmt: skip


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dbn_backfill.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def flags(db: Path, dbn: Path, ckpt: Path) -> list[str]:
    return [
        "--db", str(db), "--dbn", str(dbn), "--symbol", "MGC", "--start", str(START),
        "--end", str(END), "--workers", "2", "--chunk-days", "5", "--checkpoint", str(ckpt),
    ]  # fmt: skip


def config(db: Path, dbn: Path, ckpt: Path) -> dict[str, str]:
    return {
        "dbn": str(dbn), "db": str(db), "symbol": "MGC", "start": str(START),
        "end": str(END), "chunk_days": "5", "checkpoint": str(ckpt),
    }  # fmt: skip


@pytest.fixture(scope="module")
def dbn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dry") / "dbn"
    generate(folder, START, END + dt.timedelta(days=8), seed=6, layout="daily")
    return folder


def test_a_dry_run_of_a_new_database_writes_nothing(dbn, tmp_path):
    project = tmp_path / "project"  # where a user runs snakemake -n (it exists)
    project.mkdir()
    db, ckpt = tmp_path / "data" / "f.duckdb", tmp_path / "ckpt"
    before = snapshot(tmp_path)
    proc = cli(*flags(db, dbn, ckpt), "--dry-run", cwd=project)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "decode_sources" in proc.stdout and "merge_chunks" in proc.stdout
    assert "This was a dry-run" in proc.stdout
    proc = snakemake(project, "-n", config=config(db, dbn, ckpt))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "decode_sources" in proc.stdout and "merge_chunks" in proc.stdout
    assert changes(before, snapshot(tmp_path)) == []


def test_a_dry_run_after_a_run_writes_nothing_and_sees_a_changed_file(dbn, tmp_path):
    run = Run(tmp_path / "run", tmp_path / "dbn", "MGC", START, END)
    run.root.mkdir()
    subprocess.run(["cp", "-a", str(dbn), str(run.dbn)], check=True)
    run.run(check=True)
    project = tmp_path / "project"
    project.mkdir()
    # the file of a day after the range goes: its decode group's content changed
    last = sorted(run.dbn.glob("*.dbn*"))[-1]
    assert "202401" in last.name and last.name > f"glbx-mdp3-{END:%Y%m%d}"
    last.unlink()
    before = snapshot(tmp_path)
    proc = run.run("--dry-run", check=True)
    assert "decode_sources" in proc.stdout, proc.stdout[-3000:]
    proc = snakemake(run.workdir, "-n", config=config(run.db, run.dbn, run.checkpoint))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "decode_sources" in proc.stdout, proc.stdout[-3000:]
    assert changes(before, snapshot(tmp_path)) == []


def test_a_real_run_creates_a_missing_database_folder_and_says_so(dbn, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    db = tmp_path / "cli" / "data" / "f.duckdb"
    proc = cli(*flags(db, dbn, tmp_path / "cli-ckpt"), cwd=project)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count(f"created folder {db.parent}") == 1, proc.stderr[-3000:]
    assert db.is_file()
    db = tmp_path / "smk" / "data" / "f.duckdb"
    proc = snakemake(project, config=config(db, dbn, tmp_path / "smk-ckpt"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count(f"created folder {db.parent}") == 1, proc.stderr[-3000:]
    assert db.is_file()

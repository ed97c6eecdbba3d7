"""``dbn-backfill --configfile backfill.yaml``: the keys of Snakemake's config, checked
by the same schema, paths relative to the file's folder, flags overriding the file; the
run record holds the effective settings."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dbn_backfill.sampledata.synth import generate

pytestmark = pytest.mark.slow

START, END = dt.date(2024, 1, 2), dt.date(2024, 1, 12)
CLI = [sys.executable, "-m", "dbn_backfill.cli"]

UNIVERSE = """\
# the universe of a cron line: dbn-backfill --configfile backfill.yaml
dbn: dbn                 # relative paths: against this file's folder
db: data/futures.duckdb
symbol: [MGC, GC]
start: 2024-01-02
end: 2024-01-12
chunk_days: 3
checkpoint: data/checkpoints
expected_gaps: ["2024-01-15", "GC:2024-01-16"]
spot_check_days: 2
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def settings(workdir: Path, root: str) -> dict:
    (record,) = sorted((workdir / "results" / root / "runs").glob("*/config.json"))[-1:]
    return json.loads(record.read_text())["config"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cron")
    generate(folder / "dbn", START, END, seed=4, layout="daily")
    (folder / "backfill.yaml").write_text(UNIVERSE)
    return folder


def test_a_config_file_alone_runs_a_universe_and_a_flag_overrides_it(project, tmp_path):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    proc = cli("--configfile", str(project / "backfill.yaml"), cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr[-4000:]
    work = project / "data" / "futures.duckdb.work"
    for root in ("MGC", "GC"):
        got = settings(work, root)
        assert got["symbol"] == root and got["chunk_days"] == 3
        assert got["db"] == str(project / "data" / "futures.duckdb")
        assert got["dbn"] == str(project / "dbn")
        assert got["checkpoint"] == str(project / "data" / "checkpoints")
        assert got["spot_check_days"] == 2
    assert "2024-01-15" in settings(work, "MGC")["expected_gaps"]
    assert "2024-01-16" not in settings(work, "MGC")["expected_gaps"]
    assert "2024-01-16" in settings(work, "GC")["expected_gaps"]
    assert not (elsewhere / "data").exists() and not list(elsewhere.iterdir())

    # a flag overrides the file's key (and only that one)
    proc = cli(
        "--configfile", str(project / "backfill.yaml"), "--symbol", "GC", "--chunk-days", "5",
        cwd=elsewhere,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = settings(work, "GC")
    assert got["chunk_days"] == 5 and got["spot_check_days"] == 2


def test_a_typo_or_a_missing_key_stops_naming_it(project, tmp_path):
    (project / "typo.yaml").write_text(UNIVERSE.replace("chunk_days:", "chunk_dayz:"))
    proc = cli("--configfile", str(project / "typo.yaml"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "chunk_dayz" in proc.stderr and "chunk_days" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    # without the typo'd line chunk_days is missing from both the file and the flags
    (project / "short.yaml").write_text(UNIVERSE.replace("chunk_days: 3\n", ""))
    proc = cli("--configfile", str(project / "short.yaml"), cwd=tmp_path)
    assert proc.returncode == 2 and "chunk_days" in proc.stderr, proc.stderr
    # ... and a flag completes it
    proc = cli("--configfile", str(project / "short.yaml"), "--chunk-days", "5", "--dry-run",
               cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    # a value of the wrong type stops naming the key, as Snakemake's schema check does
    (project / "bad.yaml").write_text(UNIVERSE.replace("chunk_days: 3", "chunk_days: three"))
    proc = cli("--configfile", str(project / "bad.yaml"), cwd=tmp_path)
    assert proc.returncode == 2 and "chunk_days" in proc.stderr, proc.stderr
    # without --configfile the flags stay required
    proc = cli("--db", "x.duckdb", cwd=tmp_path)
    assert proc.returncode == 2 and "--dbn" in proc.stderr, proc.stderr

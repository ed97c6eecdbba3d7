"""The wheel is the whole product: built, installed into a fresh venv outside the
checkout, run from a temporary directory, it writes the same table as the
editable install of the checkout, and every command the README shows works from it
(``show``, ``status``, ``report``, ``paths``, ``synth``, a dry run, and Snakemake's own
``backfill_report`` target and ``--report``)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import PROJECT, Run, content_hash, run_output

from dbn_backfill.sampledata.synth import generate

pytestmark = pytest.mark.slow

START, END = dt.date(2024, 1, 2), dt.date(2024, 1, 31)


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``bin/`` of a fresh venv holding the project's wheel (and the locked dependencies)."""
    base = tmp_path_factory.mktemp("wheel")
    sh(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(base),
            str(PROJECT),
        ]
    )
    (wheel,) = base.glob("dbn_backfill-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in (
        "dbn_backfill/workflow/Snakefile",
        "dbn_backfill/workflow/rules/merge.smk",
        "dbn_backfill/workflow/scripts/merge_chunks.py",
        "dbn_backfill/workflow/schemas/config.schema.yaml",
        "dbn_backfill/workflow/profiles/default/config.yaml",
        "dbn_backfill/workflow/profiles/slurm/config.yaml",
        "dbn_backfill/workflow/envs/backfill.yaml",
    ):
        assert shipped in names, f"{shipped} is not in {wheel.name}"
    venv = base / "venv"
    sh([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    sh([*pip, "-c", str(PROJECT / "requirements.lock"), str(wheel)])
    return venv / "bin"


def test_wheel_backfills_from_any_directory_like_the_checkout(installed, tmp_path):
    dbn = tmp_path / "dbn"
    generate(dbn, START, END, seed=5, layout="daily")
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    cmd = [
        str(installed / "dbn-backfill"),
        "--db", "mgc.duckdb", "--dbn", str(dbn), "--symbol", "MGC",
        "--start", str(START), "--end", str(END), "--workers", "2", "--chunk-days", "5",
        "--checkpoint", "ckpt",
    ]  # fmt: skip
    proc = sh(cmd, cwd=elsewhere, env=env)
    # the run log (Snakemake's output) names the installed workflow
    assert "site-packages/dbn_backfill/workflow/Snakefile" in run_output(proc)
    # the default work directory belongs to the database, not to the current directory
    assert (elsewhere / "mgc.duckdb.work" / "results" / "MGC").is_dir()
    assert not (elsewhere / ".snakemake").exists() and not (elsewhere / "results").exists()
    # status finds the run records in the default work directory by itself
    status = sh([str(installed / "dbn-backfill"), "status", "--db", "mgc.duckdb",
                 "--checkpoint", "ckpt"], cwd=elsewhere, env=env)  # fmt: skip
    assert "gates: passed (8/8)" in status.stdout, status.stdout
    where = sh([str(installed / "dbn-backfill"), "paths", "--snakefile"], cwd=elsewhere, env=env)
    assert str(PROJECT) not in where.stdout

    run_the_readme_commands(installed, elsewhere, dbn, env)

    checkout = Run(tmp_path / "checkout", dbn, "MGC", START, END, chunk_days=5)
    checkout.root.mkdir()
    checkout.run(check=True)
    assert content_hash(elsewhere / "mgc.duckdb") == content_hash(checkout.db)


def run_the_readme_commands(bin_: Path, here: Path, dbn: Path, env: dict[str, str]) -> None:
    """Every other command of the README, from the wheel, in ``here`` (which holds the
    backfill ``mgc.duckdb`` / ``ckpt`` of the test above)."""
    tool = str(bin_ / "dbn-backfill")

    def run(*cmd: str) -> subprocess.CompletedProcess[str]:
        return sh(list(cmd), cwd=here, env=env)

    assert "--configfile" in run(tool, "--help").stdout
    assert "MGC" in run(tool, "show", "--db", "mgc.duckdb").stdout
    run(tool, "report", "--db", "mgc.duckdb", "--checkpoint", "ckpt", "--out", "cli-report.html")
    assert (here / "cli-report.html").stat().st_size > 10_000
    assert "snakefile" in run(tool, "paths").stdout
    profiles = Path(run(tool, "paths", "--profiles").stdout.strip())
    assert (profiles / "default" / "config.yaml").is_file()
    run(tool, "synth", "--out", "synth", "--start", "2024-01-02", "--end", "2024-01-03",
        "--seed", "3")  # fmt: skip
    assert list((here / "synth").rglob("*.dbn*"))
    flags = [
        "--db", "mgc.duckdb", "--dbn", str(dbn), "--symbol", "MGC", "--start", str(START),
        "--end", str(END), "--workers", "2", "--chunk-days", "5", "--checkpoint", "ckpt",
    ]  # fmt: skip
    dry = run(tool, *flags, "--dry-run")
    assert "This was a dry-run" in dry.stdout, dry.stderr[-2000:]

    # Snakemake itself, on the installed Snakefile: the report target, then its report
    snakefile = run(tool, "paths", "--snakefile").stdout.strip()
    snakemake = [
        str(bin_ / "snakemake"), "--snakefile", snakefile,
        "--directory", str(here / "mgc.duckdb.work"), "--cores", "2",
    ]  # fmt: skip
    config = [
        "--config", f"dbn={dbn}", f"db={here / 'mgc.duckdb'}", "symbol=MGC",
        f"start={START}", f"end={END}", "chunk_days=5", f"checkpoint={here / 'ckpt'}",
    ]  # fmt: skip
    run(*snakemake, "backfill_report", *config)
    run(*snakemake, "--report", str(here / "report.html"), "backfill_report", *config)
    assert (here / "report.html").stat().st_size > 0

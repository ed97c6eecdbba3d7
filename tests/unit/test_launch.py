"""The Snakemake launcher imports installed executor plugins only for a profile or an
executor: a real plugin package that fails when imported proves which runs import it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dbn_backfill.runtime.launch import needs_plugins

PROBE = "snakemake_executor_plugin_probe"


@pytest.fixture
def probe_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose path holds an executor plugin that fails on import."""
    package = tmp_path / PROBE
    package.mkdir()
    (package / "__init__.py").write_text('raise RuntimeError("probe plugin imported")\n')
    env = {k: v for k, v in os.environ.items() if k != "SNAKEMAKE_PROFILE"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    return env


def run(module: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_plain_snakemake_imports_the_probe(probe_env):
    # the probe bites: Snakemake's own command line imports every installed plugin
    proc = run("snakemake", ["--version"], probe_env)
    assert proc.returncode != 0 and "probe plugin imported" in proc.stderr


def test_the_launcher_does_not_import_plugins_for_a_local_run(probe_env):
    proc = run("dbn_backfill.runtime.launch", ["--version"], probe_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()[0].isdigit()


def test_the_launcher_imports_plugins_for_a_profile(probe_env, tmp_path):
    proc = run("dbn_backfill.runtime.launch", ["--profile", str(tmp_path), "--version"], probe_env)
    assert proc.returncode != 0 and "probe plugin imported" in proc.stderr


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["--cores", "2", "--config", "a=b"], {}, False),
        (["--dry-run", "--directory", "d"], {}, False),
        (["--executor", "slurm"], {}, True),
        (["--executor=slurm"], {}, True),
        (["-e", "slurm"], {}, True),
        (["-eslurm"], {}, True),
        (["--profile", "p"], {}, True),
        (["--profile=p"], {}, True),
        (["--workflow-profile", "p"], {}, True),
        (["--cores", "1"], {"SNAKEMAKE_PROFILE": "slurm"}, True),
        (["--config", "--", "--profile"], {}, False),
    ],
)
def test_needs_plugins(argv, env, expected):
    assert needs_plugins(argv, env) is expected

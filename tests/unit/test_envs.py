"""The conda environments in envs/ pin what the project is tested with.

Every ``==`` pin of an ``envs/*.yaml`` equals requirements.lock (the project's pip
freeze), the Python version equals the one running the tests, and every runtime
dependency of pyproject.toml is pinned, so ``snakemake --sdm conda`` runs the jobs
with the same software as the virtualenv.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT

LOCK = PROJECT / "requirements.lock"
ENVS = sorted((PROJECT / "dbn_backfill" / "workflow" / "envs").glob("*.yaml"))


def normalize(name: str) -> str:
    """PEP 503 name: pandas_market_calendars == pandas-market-calendars."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    """The distribution name of a requirement (``name[extra]==1.0`` -> ``name``)."""
    found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    assert found, f"not a requirement: {spec!r}"
    return normalize(found.group(1))


def lock_pins() -> dict[str, str]:
    assert LOCK.is_file(), (
        f"{LOCK.name} is missing: create it with "
        "`.venv/bin/pip freeze --exclude-editable > requirements.lock`"
    )
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"{LOCK.name}: not an exact pin: {line!r}"
        pins[normalize(name)] = version.strip()
    return pins


def env_specs(path: Path) -> tuple[list[str], list[str]]:
    """(conda specs, pip specs) of a conda environment file."""
    env = yaml.safe_load(path.read_text())
    conda, pip = [], []
    for dep in env.get("dependencies") or []:
        if isinstance(dep, dict):
            pip += [str(s) for s in dep.get("pip") or []]
        else:
            conda.append(str(dep))
    return conda, pip


def project_dependencies() -> list[str]:
    pyproject = tomllib.loads((PROJECT / "pyproject.toml").read_text())
    return [requirement_name(d) for d in pyproject["project"]["dependencies"]]


def test_there_is_an_environment() -> None:
    assert ENVS, "no envs/*.yaml"


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_pip_pins_equal_the_lock(env: Path) -> None:
    locked = lock_pins()
    _, pip = env_specs(env)
    assert pip, f"{env.name} has no pip packages"
    for spec in pip:
        assert not spec.startswith("-"), f"{env.name}: pip option {spec!r} (not a pinned package)"
        name, sep, version = spec.partition("==")
        assert sep and re.fullmatch(r"[\w.+!-]+", version.strip()), (
            f"{env.name}: {spec!r} is not pinned with =="
        )
        key = requirement_name(name)
        assert key in locked, f"{env.name}: {key} is not in {LOCK.name}"
        assert version.strip() == locked[key], (
            f"{env.name}: {key}=={version.strip()} but {LOCK.name} has {locked[key]}"
        )


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_conda_pins_equal_the_lock_and_python(env: Path) -> None:
    locked = lock_pins()
    conda, _ = env_specs(env)
    python = [s for s in conda if requirement_name(s) == "python"]
    assert len(python) == 1, f"{env.name}: pin python exactly once, found {python}"
    want = f"{sys.version_info.major}.{sys.version_info.minor}"
    version = re.split(r"==?", python[0], maxsplit=1)[1:]
    assert version and version[0].strip() in (want, f"{want}.*"), (
        f"{env.name}: {python[0]} but the project runs on Python {want}"
    )
    for spec in conda:
        name = requirement_name(spec)
        parts = re.split(r"==?", spec, maxsplit=1)
        if name == "python" or len(parts) == 1 or name not in locked:
            continue
        assert parts[1].strip() == locked[name], f"{env.name}: {spec} but lock has {locked[name]}"


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_every_project_dependency_is_pinned(env: Path) -> None:
    conda, pip = env_specs(env)
    pinned = {requirement_name(s) for s in conda + pip if "=" in s}
    missing = [d for d in project_dependencies() if d not in pinned]
    assert not missing, f"{env.name} lacks pyproject dependencies {missing}"

"""Where the shipped workflow files are, found through :mod:`importlib.resources`.

The same for an editable install, a wheel and a pipx install: never computed from
the source tree.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def workflow_dir() -> Path:
    """The workflow inside the package: Snakefile, rules, scripts, schemas, envs, profiles."""
    return Path(str(importlib.resources.files("dbn_backfill") / "workflow"))


def snakefile() -> Path:
    """The shipped Snakefile."""
    return workflow_dir() / "Snakefile"


def profiles_dir() -> Path:
    """The shipped Snakemake profiles (``default``, ``slurm``)."""
    return workflow_dir() / "profiles"


def config_schema() -> Path:
    """The config schema: every key, its type and its default (the one place of defaults)."""
    return workflow_dir() / "schemas" / "config.schema.yaml"

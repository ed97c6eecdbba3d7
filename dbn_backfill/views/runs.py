"""The per-run records under ``<workdir>/results/<SYMBOL>/runs/<run_id>/``.

Every run of the workflow leaves there ``config.json`` (its effective settings and
the versions of the key packages, written when the run starts), ``merge.json``
(written by the merge when it finished) and ``gates.json`` (written by the gates).
This module finds them and reads them; it imports nothing heavy, so the Snakefile
can use it at parse time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbn_backfill.config import BackfillConfig

#: Distributions whose versions a run records and the report shows.
KEY_PACKAGES = (
    "dbn-backfill",
    "databento",
    "databento-dbn",
    "duckdb",
    "pandas_market_calendars",
    "snakemake",
    "pyarrow",
    "pandas",
    "numpy",
    "matplotlib",
)


def package_versions() -> dict[str, str | None]:
    """Installed version of every :data:`KEY_PACKAGES` entry (None: not installed)."""
    out: dict[str, str | None] = {}
    for name in KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def runs_dir(workdir: Path, symbol: str) -> Path:
    """``<workdir>/results/<symbol>/runs``."""
    return Path(workdir) / "results" / symbol / "runs"


def config_json(cfg: BackfillConfig) -> dict[str, Any]:
    """The run's effective settings as JSON values (dates ISO, paths absolute)."""
    out: dict[str, Any] = {}
    for key, value in vars(cfg).items():
        if key == "extra":
            continue
        if isinstance(value, tuple):
            out[key] = [str(v) for v in value]
        elif isinstance(value, bool | int):
            out[key] = value
        else:
            out[key] = str(value)
    return out


def write_run_config(run_dir: Path, run_id: str, cfg: BackfillConfig) -> Path:
    """Write ``run_dir/config.json``: the run's settings and package versions (atomic)."""
    run_dir = Path(run_dir)
    snapshot = config_json(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "run_id": run_id,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": snapshot,
        "versions": package_versions(),
    }
    target = run_dir / "config.json"
    tmp = target.with_suffix(f".json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, target)
    return target


@dataclass(frozen=True)
class RunRecord:
    """What one run left in its folder (each part None when the file is absent).

    ``gates`` comes from ``gates.json``, or, when the gates failed (Snakemake removes
    the outputs of a failed job), from the same results the gates step keeps beside
    its log, ``<workdir>/logs/<SYMBOL>/check_gates/<run_id>.json``; ``gates_origin``
    says which file it was.
    """

    run_id: str
    path: Path
    config: dict[str, Any] | None
    merge: dict[str, Any] | None
    gates: dict[str, Any] | None
    gates_origin: Path | None = None

    @property
    def gates_failed(self) -> list[dict[str, Any]]:
        """The gates of ``gates.json`` that did not pass."""
        return [g for g in (self.gates or {}).get("gates", []) if not g.get("passed")]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "path": str(self.path),
            "config": self.config,
            "merge": self.merge,
            "gates": self.gates,
            "gates_origin": str(self.gates_origin) if self.gates_origin else None,
        }


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def gates_log(run_dir: Path) -> Path:
    """Where the gates step of the run in ``run_dir`` keeps its results beside its log."""
    run_dir = Path(run_dir)
    symbol, workdir = run_dir.parents[1].name, run_dir.parents[3]
    return workdir / "logs" / symbol / "check_gates" / f"{run_dir.name}.json"


def load_run(path: Path) -> RunRecord:
    """The records of the run folder ``path`` (``.../results/<SYMBOL>/runs/<run_id>``)."""
    path = Path(path)
    origin: Path | None = path / "gates.json"
    gates = _load(path / "gates.json")
    if gates is None:
        origin = gates_log(path)
        gates = _load(origin)
    return RunRecord(
        run_id=path.name,
        path=path,
        config=_load(path / "config.json"),
        merge=_load(path / "merge.json"),
        gates=gates,
        gates_origin=origin if gates is not None else None,
    )


def list_runs(workdir: Path, symbol: str) -> list[RunRecord]:
    """Every run folder of ``symbol`` under ``workdir``, oldest first.

    Runs are ordered by the folder's modification time (a file added to it, e.g. its
    gates report, touches it; runs on one work directory never overlap, they hold a
    lock), then by name (default run ids start with the UTC start time).
    """
    folder = runs_dir(workdir, symbol)
    if not folder.is_dir():
        return []
    dirs = [p for p in folder.iterdir() if p.is_dir()]
    dirs.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
    return [load_run(p) for p in dirs]


def latest_run(workdir: Path, symbol: str) -> RunRecord | None:
    """The most recent run of ``symbol`` under ``workdir`` (see :func:`list_runs`)."""
    runs = list_runs(workdir, symbol)
    return runs[-1] if runs else None


def latest_gates(workdir: Path, symbol: str) -> RunRecord | None:
    """The most recent run that has a gates report."""
    with_gates = [r for r in list_runs(workdir, symbol) if r.gates is not None]
    return with_gates[-1] if with_gates else None

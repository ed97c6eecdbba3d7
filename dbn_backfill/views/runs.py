"""The per-run records of a work directory (:meth:`dbn_backfill.layout.Layout.run_dir`).

Every run of the workflow leaves there ``config.json`` (its effective settings and
the versions of the key packages, written when the run starts), ``merge.json``
(written by the merge when it finished) and ``gates.json`` (written by the gates).
This module finds them and reads them, and gives the business-day calendar a run used;
it imports nothing heavy, so the Snakefile can use it at parse time.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbn_backfill.artifacts import write_json
from dbn_backfill.config import schema_defaults
from dbn_backfill.layout import Layout
from dbn_backfill.tradedate import Calendar, cme_calendar

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


def write_run_config(layout: Layout, run_id: str, cfg: BackfillConfig) -> Path:
    """Write the run's ``config.json`` (its settings and the package versions) into its
    run folder, atomically; returns the file."""
    payload = {
        "run_id": run_id,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": config_json(cfg),
        "versions": package_versions(),
    }
    target = layout.run_record(cfg.symbol, run_id, "config")
    write_json(target, payload)
    return target


@dataclass(frozen=True)
class RunRecord:
    """What one run left in its folder (each part None when the file is absent).

    ``gates`` comes from ``gates.json``, or, when the gates failed (Snakemake removes
    the outputs of a failed job), from the same results the gates step keeps beside
    its log (:meth:`~dbn_backfill.layout.Layout.gates_results_log`); ``gates_origin``
    says which file it was.
    """

    run_id: str
    path: Path
    config: dict[str, Any] | None
    merge: dict[str, Any] | None
    gates: dict[str, Any] | None
    gates_origin: Path | None = None
    gates_from_log: bool = False

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


def load_run(layout: Layout, symbol: str, run_id: str) -> RunRecord:
    """The records of run ``run_id`` of ``symbol`` in ``layout``'s work directory."""
    origin = layout.run_record(symbol, run_id, "gates")
    gates = _load(origin)
    from_log = gates is None
    if from_log:
        origin = layout.gates_results_log(symbol, run_id)
        gates = _load(origin)
    return RunRecord(
        run_id=run_id,
        path=layout.run_dir(symbol, run_id),
        config=_load(layout.run_record(symbol, run_id, "config")),
        merge=_load(layout.run_record(symbol, run_id, "merge")),
        gates=gates,
        gates_origin=origin if gates is not None else None,
        gates_from_log=from_log and gates is not None,
    )


def list_runs(workdir: Path, symbol: str) -> list[RunRecord]:
    """Every run folder of ``symbol`` under ``workdir``, oldest first.

    Runs are ordered by the folder's modification time (a file added to it, e.g. its
    gates report, touches it; runs on one work directory never overlap, they hold a
    lock), then by name (default run ids start with the UTC start time).
    """
    layout = Layout(Path(workdir))
    folder = layout.runs_dir(symbol)
    if not folder.is_dir():
        return []
    dirs = [p for p in folder.iterdir() if p.is_dir()]
    dirs.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
    return [load_run(layout, symbol, p.name) for p in dirs]


def latest_run(workdir: Path, symbol: str) -> RunRecord | None:
    """The most recent run of ``symbol`` under ``workdir`` (see :func:`list_runs`)."""
    runs = list_runs(workdir, symbol)
    return runs[-1] if runs else None


def latest_gates(workdir: Path, symbol: str) -> RunRecord | None:
    """The most recent run that has a gates report."""
    with_gates = [r for r in list_runs(workdir, symbol) if r.gates is not None]
    return with_gates[-1] if with_gates else None


def trade_calendar(config: dict[str, Any], workdir: Path | None, symbol: str) -> Calendar:
    """The run's business-day calendar (:func:`dbn_backfill.tradedate.cme_calendar`): the
    copy its plan saved in ``workdir`` when built from the run's settings, else built
    from the run's settings (or the schema's defaults)."""
    defaults = schema_defaults()

    def setting(key: str) -> str:
        return str(config.get(key) or defaults[key])

    saved = Layout(Path(workdir)).calendar_file if workdir is not None else None
    return cme_calendar(setting("calendar"), setting("session_tz"), setting("session_roll"), saved)

"""The per-run records of a work directory (:meth:`dbn_backfill.layout.Layout.run_dir`).

Every run of the workflow leaves there ``config.json`` (its effective settings and
the versions of the key packages, written when the run starts), ``merge.json``
(written by the merge when it finished) and ``gates.json`` (written by the gates).
This module finds them and reads them into typed records (:class:`RunRecord`: a
:class:`RunConfig`, a :class:`~dbn_backfill.artifacts.MergeReport` and a
:class:`~dbn_backfill.artifacts.GatesReport`), and gives the business-day calendar a
run used; it imports nothing heavy, so the Snakefile can use it at parse time.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from dbn_backfill.artifacts import GateResult, GatesReport, MergeReport, write_json
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
    """The run's effective settings as JSON values (dates ISO, paths absolute), keyed as
    the config schema is: ``symbol`` is the root (a run folder is one root's), or the
    list of roots of a settings object of several."""
    out: dict[str, Any] = {}
    for key, value in vars(cfg).items():
        if key == "extra":
            continue
        if key == "symbols":  # the config key `symbol`: one root, or a list of them
            out["symbol"] = value[0] if len(value) == 1 else list(value)
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
    record = RunConfig(
        run_id=run_id,
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        settings=config_json(cfg),
        versions=package_versions(),
    )
    target = layout.run_record(cfg.symbol, run_id, "config")
    write_json(target, record.to_json())
    return target


@dataclass(frozen=True)
class RunConfig:
    """A run's ``config.json``, as :func:`write_run_config` writes it.

    Attributes:
        run_id: the run id the file names (None in a file without it).
        started_at: when the run started (ISO, UTC; None in a file without it).
        settings: the run's effective settings (:func:`config_json`: JSON values, keys
            as in the config schema), read-only.
        versions: the installed version of each :data:`KEY_PACKAGES` entry when the
            run started (None: not installed), read-only.

    Older files may lack any part, or some settings: those read as None / empty.
    """

    run_id: str | None = None
    started_at: str | None = None
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    versions: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunConfig:
        """The record from the parsed JSON object ``data`` (missing parts tolerated).

        Raises:
            TypeError: ``data``, its ``config`` or its ``versions`` is not an object.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"a run config is a JSON object, not {type(data).__name__}")
        settings = data.get("config") or {}
        versions = data.get("versions") or {}
        if not isinstance(settings, Mapping) or not isinstance(versions, Mapping):
            raise TypeError("the config and versions of a run config are JSON objects")
        run_id, started = data.get("run_id"), data.get("started_at")
        return cls(
            run_id=str(run_id) if run_id is not None else None,
            started_at=str(started) if started is not None else None,
            settings=MappingProxyType(dict(settings)),
            versions=MappingProxyType(
                {str(k): (str(v) if v is not None else None) for k, v in versions.items()}
            ),
        )

    @classmethod
    def read(cls, path: Path) -> RunConfig:
        """Read ``path``.

        Raises:
            OSError: it cannot be read. ValueError: it is not JSON. TypeError: not a
            run config's shape.
        """
        return cls.from_json(json.loads(Path(path).read_text()))

    def to_json(self) -> dict[str, Any]:
        """The record as :func:`write_run_config` writes it."""
        return {
            "run_id": self.run_id,
            "started_at": self.started_at,
            "config": dict(self.settings),
            "versions": dict(self.versions),
        }

    def setting(self, key: str, default: Any = None) -> Any:
        """The setting ``key``, or ``default`` when the file does not hold it."""
        return self.settings.get(key, default)

    @property
    def span(self) -> tuple[Any, Any] | None:
        """``(start, end)`` of the run's range as recorded, None without settings."""
        if not self.settings:
            return None
        return (self.settings.get("start"), self.settings.get("end"))

    @property
    def expected_gaps(self) -> tuple[str, ...]:
        """The run's ``expected_gaps`` (ISO dates; empty when not recorded)."""
        gaps = self.settings.get("expected_gaps")
        return tuple(str(g) for g in gaps) if isinstance(gaps, list | tuple) else ()


@dataclass(frozen=True)
class RunRecord:
    """What one run left in its folder (each part None when the file is absent or
    unreadable).

    ``gates`` comes from ``gates.json``, or, when the gates failed (Snakemake removes
    the outputs of a failed job), from the same results the gates step keeps beside
    its log (:meth:`~dbn_backfill.layout.Layout.gates_results_log`); ``gates_origin``
    says which file it was, ``gates_from_log`` whether it was the log's.
    """

    run_id: str
    path: Path
    config: RunConfig | None
    merge: MergeReport | None
    gates: GatesReport | None
    gates_origin: Path | None = None
    gates_from_log: bool = False

    @property
    def started_at(self) -> str | None:
        """When the run started, from its ``config.json`` (None without it)."""
        return self.config.started_at if self.config is not None else None

    @property
    def gates_failed(self) -> list[GateResult]:
        """The gates that did not pass (empty without a gates report)."""
        return [g for g in self.gates.gates if not g.passed] if self.gates is not None else []

    def to_json(self) -> dict[str, Any]:
        """The record's parts as the JSON objects of their files."""
        gates = None
        if self.gates is not None:
            gates = {**asdict(self.gates), "passed": self.gates.passed}
        return {
            "run_id": self.run_id,
            "path": str(self.path),
            "config": self.config.to_json() if self.config is not None else None,
            "merge": self.merge.to_json() if self.merge is not None else None,
            "gates": gates,
            "gates_origin": str(self.gates_origin) if self.gates_origin else None,
        }


R = TypeVar("R")


def _read(reader: Callable[[Path], R], path: Path) -> R | None:
    """``reader(path)``, or None when the file is missing, unreadable or malformed."""
    try:
        return reader(path)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def load_run(layout: Layout, symbol: str, run_id: str) -> RunRecord:
    """The records of run ``run_id`` of ``symbol`` in ``layout``'s work directory.

    Returns a :class:`RunRecord` whose parts are None where a file is absent or
    unreadable; never raises for a missing or broken file.
    """
    origin = layout.run_record(symbol, run_id, "gates")
    gates = _read(GatesReport.read, origin)
    from_log = gates is None
    if from_log:
        origin = layout.gates_results_log(symbol, run_id)
        gates = _read(GatesReport.read, origin)
    return RunRecord(
        run_id=run_id,
        path=layout.run_dir(symbol, run_id),
        config=_read(RunConfig.read, layout.run_record(symbol, run_id, "config")),
        merge=_read(MergeReport.read, layout.run_record(symbol, run_id, "merge")),
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


def trade_calendar(config: RunConfig | None, workdir: Path | None, symbol: str) -> Calendar:
    """The business-day calendar of a run (:func:`dbn_backfill.tradedate.cme_calendar`).

    Args:
        config: the run's recorded settings (None: the schema's defaults).
        workdir: the work directory whose plan saved a copy of the calendar (used when
            it was built from the same settings); None: build it.
        symbol: the CME root.

    Returns:
        The calendar of ``calendar``, ``session_tz`` and ``session_roll``.
    """
    defaults = schema_defaults()

    def setting(key: str) -> str:
        value = config.setting(key) if config is not None else None
        return str(value or defaults[key])

    saved = Layout(Path(workdir)).calendar_file if workdir is not None else None
    return cme_calendar(setting("calendar"), setting("session_tz"), setting("session_roll"), saved)

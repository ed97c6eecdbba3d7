"""The one typed definition of every file that crosses a process boundary.

Each workflow step runs in its own process (or cluster job) and hands its results
to the next through files. Their shapes live here, used by the writer and the
reader alike:

==========================  ===============================  ======================
file                        written by                       read by
==========================  ===============================  ======================
:class:`DecodeSummary`      ``decode_sources``               ``merge_chunks``
:class:`BatchManifest`      ``build_chunks``                 ``merge_chunks``
:class:`Checkpoint`         ``merge_chunks``                 every run, ``status``
:class:`MergeReport`        ``merge_chunks``                 summary, ``status``
:class:`SpotCounts`         ``spot_check``                   ``check_gates``
:class:`GatesReport`        ``check_gates``                  summary, ``status``
==========================  ===============================  ======================

All are JSON, written atomically (a temporary file renamed over the target), so a
reader never sees half a file and a killed writer leaves the previous version.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

CHECKPOINT_STATUSES = ("pending", "in_progress", "done", "failed")
#: Why a ``failed`` chunk failed: its data broke a rule (a rerun needs ``retry_failed``),
#: or its environment failed it (disk full, I/O error, a signal: a rerun retries it).
ERROR_KINDS = ("data", "environment")


def write_json(path: Path, payload: Any) -> None:
    """Replace ``path`` with ``payload`` as JSON, atomically (write, rename).

    No fsync: after a power loss the database (the source of truth) repairs what a
    lost checkpoint or report would have said on the next run.
    """
    path = Path(path)
    text = json.dumps(payload, indent=1, sort_keys=True, default=str)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(text)
    os.replace(tmp, path)


def _from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """``cls(**data)`` keeping only the fields ``cls`` declares (older files may hold more)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class FileSummary:
    """What decoding one DBN file found; its path, size and sha256 go to the lineage."""

    path: str
    size: int
    sha256: str
    version: int
    records: int = 0
    outright: int = 0
    spread: int = 0
    other: int = 0
    unresolved: int = 0
    first_trade_date: str | None = None
    last_trade_date: str | None = None


@dataclass
class DecodeSummary:
    """``decoded/<group>.json``: every file of one decode group."""

    group: str
    files: list[FileSummary] = field(default_factory=list)

    def write(self, path: Path) -> None:
        write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> DecodeSummary:
        data = json.loads(Path(path).read_text())
        return cls(group=data["group"], files=[_from_dict(FileSummary, f) for f in data["files"]])


@dataclass
class ChunkResult:
    """One chunk as built: what the merge needs to commit it (or to mark it failed).

    ``row_group`` is the chunk's row group in the batch's bars parquet (None when the
    chunk has no rows). ``status`` is ``ok`` or ``failed`` (with ``error``).
    """

    chunk_id: str
    chunk_start: str
    chunk_end: str
    status: str
    rows: int
    content_hash: str
    days_present: list[str]
    sources: list[str]
    row_group: int | None = None
    error: str | None = None
    last_ts_event: str | None = None


@dataclass
class BatchManifest:
    """``batches/<batch>.manifest.json``: the chunks one build job wrote."""

    batch_id: str
    chunks: list[ChunkResult] = field(default_factory=list)

    def write(self, path: Path) -> None:
        write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> BatchManifest:
        data = json.loads(Path(path).read_text())
        return cls(
            batch_id=data["batch_id"], chunks=[_from_dict(ChunkResult, c) for c in data["chunks"]]
        )


@dataclass
class Checkpoint:
    """``<checkpoint>/chunk_YYYYMMDD_YYYYMMDD.json`` (contract section 8).

    ``done`` means committed to the database; the lineage table is the source of
    truth and a checkpoint mirrors it. ``error_kind`` (one of :data:`ERROR_KINDS`)
    says why a ``failed`` chunk failed; a file without it counts as ``data``.
    """

    chunk_id: str
    chunk_start: str
    chunk_end: str
    symbol: str
    status: str = "pending"
    rows_written: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    source: list[str] = field(default_factory=list)
    error: str | None = None
    content_hash: str | None = None
    run_id: str | None = None
    last_ts_event: str | None = None
    error_kind: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.status not in CHECKPOINT_STATUSES:
            raise ValueError(f"bad checkpoint status {self.status!r}")
        if self.error_kind is not None and self.error_kind not in ERROR_KINDS:
            raise ValueError(f"bad checkpoint error_kind {self.error_kind!r}")
        data = asdict(self)
        if self.status != "failed":
            data["error_kind"] = None  # meaningful for failed chunks only
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        return _from_dict(cls, data)


@dataclass
class MergeReport:
    """``runs/<run_id>/merge.json``: what one merge committed, skipped and failed."""

    run_id: str
    committed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    rows_inserted: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "chunks_committed": len(self.committed),
            "chunks_skipped": len(self.skipped),
            "chunks_failed": len(self.failed),
            "rows_inserted": self.rows_inserted,
            "seconds": round(self.seconds, 3),
            "committed": self.committed,
            "skipped": self.skipped,
            "failed": self.failed,
        }

    def write(self, path: Path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def read(cls, path: Path) -> MergeReport:
        data = json.loads(Path(path).read_text())
        return cls(
            run_id=data["run_id"],
            committed=list(data.get("committed", [])),
            skipped=list(data.get("skipped", [])),
            failed=list(data.get("failed", [])),
            rows_inserted=int(data.get("rows_inserted", 0)),
            seconds=float(data.get("seconds", 0.0)),
        )


@dataclass
class GateResult:
    """One honesty gate: its name, whether it passed, and what it found."""

    name: str
    passed: bool
    detail: str


@dataclass
class SpotCounts:
    """``runs/<run_id>/spot_check.json``: the spot-check's recount straight from the DBN
    files, which ``check_gates`` compares with the table.

    ``days``: for each sampled trade date (ISO), the distinct bars of every outright of
    the root in the DBN files (raw symbol -> count); ``files``: the files covering
    them; ``cached``: those whose counts came from the spot-check's per-file counts
    (:mod:`dbn_backfill.gates.spot`).
    """

    run_id: str
    days: dict[str, dict[str, int]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def write(self, path: Path) -> None:
        write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> SpotCounts:
        return _from_dict(cls, json.loads(Path(path).read_text()))


@dataclass
class GatesReport:
    """``runs/<run_id>/gates.json``: every gate of one run."""

    run_id: str
    db: str
    gates: list[GateResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def write(self, path: Path) -> None:
        write_json(path, {**asdict(self), "passed": self.passed})

    @classmethod
    def read(cls, path: Path) -> GatesReport:
        data = json.loads(Path(path).read_text())
        return cls(
            run_id=data["run_id"],
            db=data["db"],
            gates=[_from_dict(GateResult, g) for g in data["gates"]],
        )

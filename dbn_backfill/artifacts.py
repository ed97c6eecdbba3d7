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
:class:`CompleteMarker`     ``check_complete``               (Snakemake: its mtime)
:class:`MergeMarker`        ``merge_chunks`` (per batch)     ``merge_report``, plan
:class:`MergeReport`        ``merge_report``                 summary, ``status``
:class:`SpotCounts`         ``spot_check``                   ``check_gates``
:class:`GatesReport`        ``check_gates``                  summary, ``status``
==========================  ===============================  ======================

All are JSON, written atomically (a temporary file renamed over the target), so a
reader never sees half a file and a killed writer leaves the previous version.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dbn_backfill.errors import CheckpointTransitionError

T = TypeVar("T")


class ChunkStatus(enum.StrEnum):
    """A chunk's checkpoint status (contract section 8); the values are what the file holds."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    DONE = "done"  # committed to the database
    FAILED = "failed"


class ErrorKind(enum.StrEnum):
    """Why a ``failed`` chunk failed: its data broke a rule (a rerun needs ``retry_failed``),
    or its environment failed it (disk full, I/O error, a signal: a rerun retries it)."""

    DATA = "data"
    ENVIRONMENT = "environment"


CHECKPOINT_STATUSES = tuple(s.value for s in ChunkStatus)
ERROR_KINDS = tuple(k.value for k in ErrorKind)


def utc_now() -> str:
    """The current UTC time as the checkpoints write it (ISO 8601, milliseconds)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


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
    lineage_hash: str = ""  # of its selection and term structure rows (the merge's refresh)


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


@dataclass(frozen=True)
class Checkpoint:
    """``<checkpoint>/chunk_YYYYMMDD_YYYYMMDD.json`` (contract section 8): an immutable
    state of one chunk, changed only through its transitions, each returning the next
    state or raising :class:`~dbn_backfill.errors.CheckpointTransitionError`:

    ================  ========================================  =====================
    transition        from                                      to
    ================  ========================================  =====================
    :meth:`create`    (no file)                                 ``pending``
    :meth:`start`     ``pending``; ``in_progress`` (a killed    ``in_progress``
                      run); ``done`` (content changed);
                      ``failed`` only with ``retry_failed`` or
                      when its failure was ``environment``
    :meth:`commit`    ``in_progress``                           ``done``
    :meth:`fail`      ``in_progress`` (its transaction failed)  ``failed``
    :meth:`reject`    any (the build rejected its data)         ``failed`` (``data``)
    :meth:`repair`    ``pending``, ``in_progress``, ``failed``  ``done``
                      (the database says it is committed)
    ================  ========================================  =====================

    ``done`` means committed to the database; the lineage table is the source of
    truth and a checkpoint mirrors it. ``error_kind`` says why a ``failed`` chunk
    failed; a file without it counts as ``data`` (:attr:`failure_kind`).

    Raises (on construction):
        ValueError: an unknown ``status`` or ``error_kind``.
    """

    chunk_id: str
    chunk_start: str
    chunk_end: str
    symbol: str
    status: ChunkStatus = ChunkStatus.PENDING
    rows_written: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    source: tuple[str, ...] = ()
    error: str | None = None
    content_hash: str | None = None
    run_id: str | None = None
    last_ts_event: str | None = None
    error_kind: ErrorKind | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "status", ChunkStatus(self.status))
        except ValueError:
            raise ValueError(f"bad checkpoint status {self.status!r}") from None
        if self.error_kind is not None:
            try:
                object.__setattr__(self, "error_kind", ErrorKind(self.error_kind))
            except ValueError:
                raise ValueError(f"bad checkpoint error_kind {self.error_kind!r}") from None
        object.__setattr__(self, "source", tuple(self.source))

    @property
    def failure_kind(self) -> ErrorKind | None:
        """Why the chunk failed (``data`` for a file older than ``error_kind``), or None
        when it is not ``failed``."""
        if self.status != ChunkStatus.FAILED:
            return None
        return self.error_kind or ErrorKind.DATA

    # --- transitions ---------------------------------------------------------------

    @classmethod
    def create(
        cls, chunk_id: str, chunk_start: str, chunk_end: str, symbol: str, source: Iterable[str]
    ) -> Checkpoint:
        """The first state of a chunk that has no checkpoint file: ``pending``."""
        return cls(chunk_id, chunk_start, chunk_end, symbol, source=tuple(source))

    def start(
        self, *, source: Iterable[str], retry_failed: bool, at: str | None = None
    ) -> Checkpoint:
        """Its transaction begins: ``in_progress``, started ``at`` (default: now), with
        ``source`` (the chunk's DBN files now); rows, finish time and error cleared.

        Raises:
            CheckpointTransitionError: the chunk failed on its data (``error_kind``
                ``data``, or none recorded) and ``retry_failed`` is off.
        """
        if self.failure_kind == ErrorKind.DATA and not retry_failed:
            raise self._illegal(
                "start",
                f"it failed on its data and retry_failed is off (contract section 8): {self.error}",
            )
        return dataclasses.replace(
            self,
            status=ChunkStatus.IN_PROGRESS,
            started_at=at or utc_now(),
            finished_at=None,
            error=None,
            error_kind=None,
            source=tuple(source),
            rows_written=0,
        )

    def commit(self, *, rows: int, content_hash: str, run_id: str, at: str) -> Checkpoint:
        """Its transaction committed ``rows`` rows of ``content_hash`` ``at`` (the commit
        time the lineage holds) in run ``run_id``: ``done``.

        Raises:
            CheckpointTransitionError: the chunk is not ``in_progress``.
        """
        self._require("commit", ChunkStatus.IN_PROGRESS)
        return dataclasses.replace(
            self,
            status=ChunkStatus.DONE,
            rows_written=rows,
            finished_at=at,
            content_hash=content_hash,
            run_id=run_id,
        )

    def fail(self, error: str, kind: ErrorKind, *, at: str | None = None) -> Checkpoint:
        """Its transaction failed with ``error`` and rolled back: ``failed`` of ``kind``,
        finished ``at`` (default: now).

        Raises:
            CheckpointTransitionError: the chunk is not ``in_progress``.
        """
        self._require("fail", ChunkStatus.IN_PROGRESS)
        return dataclasses.replace(
            self,
            status=ChunkStatus.FAILED,
            error=error,
            error_kind=ErrorKind(kind),
            finished_at=at or utc_now(),
        )

    def reject(
        self,
        error: str | None,
        *,
        source: Iterable[str],
        last_ts_event: str | None,
        at: str | None = None,
    ) -> Checkpoint:
        """The build found the chunk's data broken (``error``), so nothing of it is
        committed: ``failed`` of kind ``data`` from any state, with ``source`` and the
        last good ``last_ts_event``; the rows, start time, content hash and run of an
        earlier commit stay (the database still holds that commit)."""
        return dataclasses.replace(
            self,
            status=ChunkStatus.FAILED,
            error=error,
            error_kind=ErrorKind.DATA,
            finished_at=at or utc_now(),
            last_ts_event=last_ts_event,
            source=tuple(source),
        )

    def repair(self, *, rows: int, content_hash: str, committed_at: str) -> Checkpoint:
        """The database holds this chunk committed (``rows`` rows of ``content_hash`` at
        ``committed_at``) but the checkpoint does not say so, e.g. a run killed between
        its commit and its checkpoint: ``done`` with the lineage's commit time, the
        start time kept (the commit time when there is none), the error cleared.

        Raises:
            CheckpointTransitionError: the checkpoint already says ``done``.
        """
        if self.status == ChunkStatus.DONE:
            raise self._illegal("repair", "it already says done")
        return dataclasses.replace(
            self,
            status=ChunkStatus.DONE,
            rows_written=rows,
            error=None,
            error_kind=None,
            finished_at=committed_at,
            started_at=self.started_at or committed_at,
            content_hash=content_hash,
        )

    def _require(self, transition: str, status: ChunkStatus) -> None:
        if self.status != status:
            raise self._illegal(transition, f"only a chunk {status} can {transition}")

    def _illegal(self, transition: str, why: str) -> CheckpointTransitionError:
        return CheckpointTransitionError(
            f"checkpoint {self.chunk_id}: cannot {transition} a chunk that is {self.status}: {why}",
            chunk_id=self.chunk_id,
            transition=transition,
            status=self.status.value,
        )

    # --- the file ------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The file's content: every field, ``error_kind`` only for a ``failed`` chunk."""
        data = asdict(self)
        data["status"] = self.status.value
        data["source"] = list(self.source)
        failed = self.status == ChunkStatus.FAILED
        data["error_kind"] = self.error_kind.value if failed and self.error_kind else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        """The checkpoint of a file's content (unknown keys are ignored).

        Raises:
            ValueError: an unknown ``status`` or ``error_kind``.
            TypeError: a required field is missing.
        """
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
class FailedChunk:
    """A chunk a merge did not commit because its data broke a rule (the build's error)."""

    chunk_id: str
    error: str


@dataclass
class MergeMarker:
    """``results/<ROOT>/merged/<batch>.json``: what one batch's merge left in the database.

    ``chunks`` maps every chunk of the batch the database holds after the merge (those
    it committed and those it found committed) to its content hash; ``committed`` (by
    run ``run_id``) and ``skipped`` split them; ``failed`` lists the chunks not
    committed. The plan removes a marker whose hashes the database does not hold, or
    that lists a failed chunk, so that its merge runs again (:mod:`dbn_backfill.store.batches`).
    """

    run_id: str
    root: str
    batch_id: str
    chunks: dict[str, str] = field(default_factory=dict)
    committed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[FailedChunk] = field(default_factory=list)
    rows_inserted: int = 0
    seconds: float = 0.0

    def write(self, path: Path) -> None:
        write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> MergeMarker:
        """Raises: OSError, ValueError (not JSON), KeyError (not a marker)."""
        data = json.loads(Path(path).read_text())
        return cls(
            run_id=str(data["run_id"]),
            root=str(data["root"]),
            batch_id=str(data["batch_id"]),
            chunks={str(k): str(v) for k, v in data["chunks"].items()},
            committed=[str(c) for c in data.get("committed", [])],
            skipped=[str(c) for c in data.get("skipped", [])],
            failed=[_from_dict(FailedChunk, f) for f in data.get("failed", [])],
            rows_inserted=int(data.get("rows_inserted", 0)),
            seconds=float(data.get("seconds", 0.0)),
        )


@dataclass
class CompleteMarker:
    """``results/complete.json``: the roots and range ``check_complete`` found complete,
    with each root's business-day count (for a person; Snakemake reads only its mtime)."""

    start: str
    end: str
    days: dict[str, int] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        write_json(path, asdict(self))


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

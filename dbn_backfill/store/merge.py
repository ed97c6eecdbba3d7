"""The single writer (the ``merge_chunks`` rule): commit chunks into DuckDB.

Before anything is written: the table shape (section 6) and completeness
(section 5) are checked over every chunk of the run. Then, per chunk in date
order and in one transaction: delete the symbol's rows of the chunk's trade-date
range (a ``ts_utc`` range, so DuckDB prunes by zone maps), insert the chunk,
check inserted == expected, write the lineage, commit, mark the checkpoint done.
A chunk whose content hash is already committed is skipped without writing.

Faults: a chunk whose transaction fails rolls back and its checkpoint says
``failed`` with the error and its ``error_kind``: ``environment`` for the machine's
faults (disk full, an I/O error, a read-only file), which the next run retries
without ``retry_failed``, ``data`` otherwise. SIGTERM and SIGINT only set a flag
while the merge runs: the chunk in flight rolls back (checkpoint ``failed``,
``environment``, "interrupted by ...") and the merge stops with :class:`Interrupted`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import logging
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dbn_backfill.artifacts import (
    BatchManifest,
    Checkpoint,
    ChunkResult,
    ChunkStatus,
    ErrorKind,
    FileSummary,
    MergeReport,
)
from dbn_backfill.config import BackfillConfig
from dbn_backfill.errors import BackfillError, ChunksFailed, CompletenessError, Interrupted
from dbn_backfill.layout import Layout
from dbn_backfill.runtime.faults import kill_point, slow_merge
from dbn_backfill.runtime.progress import Progress
from dbn_backfill.schema import SELECTION_SCHEMA, TERM_SCHEMA
from dbn_backfill.store import checkpoints
from dbn_backfill.store.database import connect, ensure_tables, first_row
from dbn_backfill.tradedate import Calendar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkInput:
    """A built chunk as the merge sees it: its manifest entry and where its bars are."""

    chunk_id: str
    first: dt.date
    last: dt.date
    bars: Path
    selection: Path
    manifest: ChunkResult
    terms: Path | None = None


def load_chunks(
    manifests: list[BatchManifest],
    bars: list[Path],
    selections: list[Path],
    terms: list[Path] | None = None,
) -> list[ChunkInput]:
    """Chunks of every batch, in date order.

    Args:
        manifests: the batches' manifests; bars, selections and terms: each batch's
            bars, selection and term structure parquet, in the same order (no terms:
            none is written).
    """
    out = []
    term_paths: list[Path | None] = list(terms) if terms is not None else [None] * len(bars)
    for manifest, bars_path, selection, term in zip(
        manifests, bars, selections, term_paths, strict=True
    ):
        for entry in manifest.chunks:
            out.append(
                ChunkInput(
                    chunk_id=entry.chunk_id,
                    first=dt.date.fromisoformat(entry.chunk_start),
                    last=dt.date.fromisoformat(entry.chunk_end),
                    bars=Path(bars_path),
                    selection=Path(selection),
                    manifest=entry,
                    terms=Path(term) if term is not None else None,
                )
            )
    return sorted(out, key=lambda c: c.first)


def check_complete(missing: dict[str, list[dt.date]], cfg: BackfillConfig) -> None:
    """Stop when a root of the run lacks a business day (contract sections 5 and 11).

    Args:
        missing: root -> its business days of ``[start, end]`` without outright bars,
            less its expected gaps (:func:`missing_days`).

    Raises:
        CompletenessError: naming every root with missing days, and the days.
    """
    lines = []
    for root, days in missing.items():
        if days:
            shown = ", ".join(str(d) for d in days[:20])
            more = f" and {len(days) - 20} more" if len(days) > 20 else ""
            lines.append(
                f"{len(days)} CME business days in [{cfg.start}, {cfg.end}] have no "
                f"outright {root} bars (contract section 5): {shown}{more}"
            )
    if lines:
        raise CompletenessError(
            "; ".join(lines) + ". An incomplete download? If a day is truly empty, list "
            "it in expected_gaps (DATE, or ROOT:DATE for one root). Nothing was written."
        )


def missing_days(
    chunks: list[ChunkInput],
    calendar: Calendar,
    start: dt.date,
    end: dt.date,
    expected_gaps: tuple[dt.date, ...],
) -> list[dt.date]:
    """Business days of ``[start, end]`` with no outright bar, less ``expected_gaps``."""
    present = {d for c in chunks for d in c.manifest.days_present}
    return [d for d in calendar.required_days(start, end, expected_gaps) if str(d) not in present]


def merge(
    *,
    cfg: BackfillConfig,
    chunks: list[ChunkInput],
    calendar: Calendar,
    sources: dict[str, FileSummary],
    run_id: str,
) -> MergeReport:
    """Commit every chunk; see the module docstring.

    Args:
        cfg: the run's settings (database, symbol, range, gaps, checkpoint folder).
        chunks: every chunk of the plan (:func:`load_chunks`).
        calendar: the CME business days.
        sources: decode summary of every DBN file, by path (for the lineage).
        run_id: names the run in the lineage and the checkpoints.

    Raises:
        SchemaMismatchError: ``bars_1m`` has another shape or ``db`` is not DuckDB.
        CompletenessError: a business day has no bars (nothing written).
        BackfillError: chunks failed (valid ones are committed), or a database
            error (that chunk rolled back, checkpoint failed, stop).
        Interrupted: SIGTERM or SIGINT (the chunk in flight rolled back).
        CheckpointTransitionError: a chunk failed on its data in an earlier run and
            ``cfg.retry_failed`` is off (the plan refuses such a run before any job).
    """
    db, symbol = cfg.db, cfg.symbol
    checkpoint_dir = Layout.of(cfg).checkpoint_dir(symbol)
    start, end, expected_gaps = cfg.start, cfg.end, cfg.expected_gaps
    started = time.monotonic()
    report = MergeReport(run_id=run_id)
    con = connect(db)
    # One thread: a chunk is a few thousand rows, where more threads cost more than
    # they give, and the other cores stay free for the build jobs. DuckDB's default
    # checkpoint threshold is kept: a larger one saved no time (the commits get cheaper,
    # the final checkpoint dearer) but held the whole table in memory (1 GB for 16 years).
    con.execute("SET threads = 1").fetchall()
    try:
        ensure_tables(con, db, calendar)
        check_complete({symbol: missing_days(chunks, calendar, start, end, expected_gaps)}, cfg)
        states = {
            chunk.chunk_id: checkpoints.load_or_create(checkpoint_dir, _pending(chunk, symbol))
            for chunk in chunks
        }
        committed = _committed_hashes(con, symbol)
        lineage = _committed_sources(con, symbol)
        dated = _dated(con, symbol)
        progress = Progress("merge", len(chunks), "chunks")
        store = _Store(
            symbol=symbol,
            calendar=calendar,
            checkpoint_dir=checkpoint_dir,
            sources=sources,
            run_id=run_id,
            retry_failed=cfg.retry_failed,
            committed=committed,
            dated=dated,
            lineage=lineage,
        )
        with _SIGNALS.catching():
            for done, chunk in enumerate(chunks, start=1):
                _SIGNALS.check()
                _merge_one(con, chunk, states[chunk.chunk_id], store, report)
                progress.update(done, _merge_figures(report))
        progress.finish(len(chunks), _merge_figures(report))
    except Interrupted as exc:
        raise Interrupted(
            f"interrupted by {exc.signal_name} during merge_chunks; "
            f"{len(report.committed)} chunks committed by this run "
            f"({len(report.skipped)} were committed before), any chunk in flight rolled back; "
            "rerun the same command to resume",
            exc.signal_name,
        ) from None
    finally:
        con.close()
        report.seconds = time.monotonic() - started
    if report.failed:
        failed = [
            (symbol, chunk.chunk_id, str(chunk.manifest.error))
            for chunk in chunks
            if chunk.chunk_id in report.failed
        ]
        raise ChunksFailed(
            f"{len(report.failed)} {symbol} chunks failed and were not committed "
            f"({len(report.committed)} valid chunks committed, {len(report.skipped)} already "
            "committed): " + " | ".join(f"{cid}: {err}" for _, cid, err in failed),
            failed,
        )
    return report


def _merge_figures(report: MergeReport) -> str:
    return (
        f"{len(report.committed)} committed ({report.rows_inserted:,} rows), "
        f"{len(report.skipped)} unchanged, {len(report.failed)} failed"
    )


def _pending(chunk: ChunkInput, symbol: str) -> Checkpoint:
    return Checkpoint.create(
        chunk.chunk_id, str(chunk.first), str(chunk.last), symbol, chunk.manifest.sources
    )


@dataclass(frozen=True)
class _Committed:
    """A chunk row of ``bars_1m_chunks``: what the database says is committed."""

    content_hash: str
    committed_at: dt.datetime
    rows: int
    first: dt.date
    last: dt.date
    lineage_hash: str | None = None


def _committed_hashes(con: duckdb.DuckDBPyConnection, symbol: str) -> dict[str, _Committed]:
    """Every committed chunk of ``symbol``. The merge holds the run lock and is the only
    writer, so it keeps this up to date itself as it commits."""
    rows = con.execute(
        "SELECT chunk_id, content_hash, committed_at, rows, chunk_start, chunk_end, "
        "lineage_hash FROM bars_1m_chunks WHERE symbol = ?",
        [symbol],
    ).fetchall()
    return {r[0]: _Committed(r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows}


def _committed_sources(
    con: duckdb.DuckDBPyConnection, symbol: str
) -> dict[str, list[tuple[str, str]]]:
    """``chunk_id -> [(path, sha256)]`` of the source lineage of every committed chunk."""
    out: dict[str, list[tuple[str, str]]] = {}
    for chunk_id, path, sha in con.execute(
        "SELECT chunk_id, path, sha256 FROM bars_1m_chunk_sources WHERE symbol = ?", [symbol]
    ).fetchall():
        out.setdefault(str(chunk_id), []).append((str(path), str(sha)))
    return out


@dataclass(frozen=True)
class _Store:
    """What every chunk's merge shares: the run's settings and the database's state as
    this single writer keeps it (committed chunks, trade dates with lineage)."""

    symbol: str
    calendar: Calendar
    checkpoint_dir: Path
    sources: dict[str, FileSummary]
    run_id: str
    retry_failed: bool
    committed: dict[str, _Committed]
    dated: set[dt.date]
    lineage: dict[str, list[tuple[str, str]]]


def _dated(con: duckdb.DuckDBPyConnection, symbol: str) -> set[dt.date]:
    """The trade dates ``bars_1m_trade_dates`` holds for ``symbol``."""
    rows = con.execute(
        "SELECT trade_date FROM bars_1m_trade_dates WHERE symbol = ?", [symbol]
    ).fetchall()
    return {r[0] for r in rows}


def _merge_one(
    con: duckdb.DuckDBPyConnection,
    chunk: ChunkInput,
    state: Checkpoint,
    store: _Store,
    report: MergeReport,
) -> None:
    """Commit, skip or fail one chunk; its checkpoint ``state`` moves by transitions.

    Raises:
        Interrupted: a signal arrived (the chunk rolled back, its checkpoint ``failed``).
        BackfillError: the chunk's transaction failed (rolled back, checkpoint ``failed``).
        CheckpointTransitionError: the chunk failed on its data before and
            ``retry_failed`` is off (the plan stops such a run before any job).
    """
    entry = chunk.manifest
    if entry.status != "ok":
        _reject(chunk, state, store, report)
        return
    previous = store.committed.get(chunk.chunk_id)
    if previous is not None and previous.content_hash == entry.content_hash:
        _skip(con, chunk, state, previous, store, report)
        return
    state = checkpoints.transition(
        store.checkpoint_dir,
        state,
        lambda s: s.start(source=entry.sources, retry_failed=store.retry_failed),
    )
    bounds = store.calendar.session_bounds_utc(chunk.first, chunk.last)
    try:
        done = _transaction(con, chunk, bounds, store, report)
    except Exception as exc:
        _roll_back(con, chunk, state, store, exc)
    _record_commit(chunk, state, done, store, report)


def _reject(chunk: ChunkInput, state: Checkpoint, store: _Store, report: MergeReport) -> None:
    """The build found the chunk's data broken: nothing of it is written, its checkpoint
    says ``failed`` (``data``) with the build's message."""
    entry = chunk.manifest
    report.failed.append(chunk.chunk_id)
    checkpoints.transition(
        store.checkpoint_dir,
        state,
        lambda s: s.reject(entry.error, source=entry.sources, last_ts_event=entry.last_ts_event),
    )
    log.error("chunk %s failed, not committed: %s", chunk.chunk_id, entry.error)


def _skip(
    con: duckdb.DuckDBPyConnection,
    chunk: ChunkInput,
    state: Checkpoint,
    previous: _Committed,
    store: _Store,
    report: MergeReport,
) -> None:
    """The chunk's content is committed already: no rows written, its source lineage
    and its selection lineage (roll rule, basis day, runner-up, term structure: a rule
    switch that keeps the chunk's bars) follow the build, and a checkpoint not saying
    ``done`` (a run killed between its commit and its checkpoint) is repaired from the
    lineage."""
    _refresh_sources(con, chunk, store.symbol, store.sources, store.lineage.get(chunk.chunk_id, []))
    if chunk.manifest.lineage_hash and previous.lineage_hash != chunk.manifest.lineage_hash:
        _refresh_selection(con, chunk, store.symbol)
        store.committed[chunk.chunk_id] = dataclasses.replace(
            previous, lineage_hash=chunk.manifest.lineage_hash
        )
    report.skipped.append(chunk.chunk_id)
    if state.status != ChunkStatus.DONE:
        checkpoints.transition(
            store.checkpoint_dir,
            state,
            lambda s: s.repair(
                rows=previous.rows,
                content_hash=chunk.manifest.content_hash,
                committed_at=previous.committed_at.isoformat(),
            ),
        )


@dataclass(frozen=True)
class _Commit:
    """What one chunk's committed transaction did."""

    at: dt.datetime
    rows: int
    replaced: list[str]  # committed chunks whose lineage it replaced (itself included)
    days: list[dt.date]  # its trade dates that had a lineage row before


def _transaction(
    con: duckdb.DuckDBPyConnection,
    chunk: ChunkInput,
    bounds: tuple[Any, Any],
    store: _Store,
    report: MergeReport,
) -> _Commit:
    """The chunk's transaction: delete its ``ts_utc`` range ``bounds``, insert its bars,
    check the count, write its lineage, commit.

    Raises:
        BackfillError: not the expected rows, or a bar outside ``bounds``.
        Interrupted: a signal arrived before the COMMIT.
        duckdb.Error, OSError: the database or the machine failed.
        (The caller rolls back.)
    """
    entry = chunk.manifest
    lo, hi = bounds
    expected = entry.rows
    con.execute("BEGIN TRANSACTION")
    con.execute(
        "DELETE FROM bars_1m WHERE symbol = ? AND ts_utc >= ? AND ts_utc < ?",
        [store.symbol, lo.to_pydatetime(), hi.to_pydatetime()],
    )
    inserted = 0
    if entry.row_group is not None:
        # one row group of a few thousand rows: reader threads cost more than they give
        bars_table = _bars_file(chunk.bars).read_row_group(entry.row_group, use_threads=False)
        _check_inside(chunk, bars_table, lo, hi)
        inserted = _count(con.execute("INSERT INTO bars_1m SELECT * FROM bars_table"))
    if inserted != expected:
        raise BackfillError(
            f"chunk {chunk.chunk_id}: inserted {inserted} rows, expected {expected}"
        )
    committed_at = dt.datetime.now(dt.UTC)
    replaced = _overlapping(store.committed, chunk)
    days = _days_of(chunk, store.dated)
    _write_lineage(
        con,
        chunk,
        store.symbol,
        store.sources,
        store.run_id,
        expected,
        committed_at,
        replaced,
        days,
    )
    slow_merge()
    _SIGNALS.check()
    if report.committed:
        kill_point("merge_in_transaction")
    con.execute("COMMIT")
    return _Commit(committed_at, expected, replaced, days)


def _roll_back(
    con: duckdb.DuckDBPyConnection,
    chunk: ChunkInput,
    state: Checkpoint,
    store: _Store,
    exc: Exception,
) -> NoReturn:
    """Roll the chunk's transaction back, mark its checkpoint ``failed`` with ``exc`` and
    its :func:`error_kind`, and stop (called while ``exc`` is being handled).

    Raises:
        Interrupted: ``exc`` itself, when it is one.
        BackfillError: naming the chunk and ``exc`` (with a hint for the machine's faults).
    """
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")
    kind = error_kind(exc)
    checkpoints.transition(
        store.checkpoint_dir, state, lambda s: s.fail(f"{type(exc).__name__}: {exc}", kind)
    )
    if isinstance(exc, Interrupted):
        log.error("chunk %s rolled back: %s", chunk.chunk_id, exc)
        raise exc
    log.exception("chunk %s rolled back", chunk.chunk_id)
    hint = ""
    if kind == ErrorKind.ENVIRONMENT:
        hint = (
            " (the machine's fault, not the data's: fix it, e.g. free disk space, and "
            "rerun the same command; committed chunks are kept, no --retry-failed needed)"
        )
    raise BackfillError(f"chunk {chunk.chunk_id} rolled back: {exc}{hint}") from exc


def _record_commit(
    chunk: ChunkInput, state: Checkpoint, done: _Commit, store: _Store, report: MergeReport
) -> None:
    """After the chunk's COMMIT: the merge's view of the database follows, then its
    checkpoint says ``done`` with the lineage's commit time."""
    entry = chunk.manifest
    if report.committed:
        kill_point("merge_after_commit")
    store.dated.difference_update(done.days)
    store.dated.update(_selection_rows(chunk).column("trade_date").to_pylist())
    for chunk_id in done.replaced:
        del store.committed[chunk_id]
    store.committed[chunk.chunk_id] = _Committed(
        entry.content_hash, done.at, done.rows, chunk.first, chunk.last, entry.lineage_hash
    )
    checkpoints.transition(
        store.checkpoint_dir,
        state,
        lambda s: s.commit(
            rows=done.rows,
            content_hash=entry.content_hash,
            run_id=store.run_id,
            at=done.at.isoformat(),
        ),
    )
    report.committed.append(chunk.chunk_id)
    report.rows_inserted += done.rows
    log.info(
        "chunk %s (%s..%s) committed: %d rows", chunk.chunk_id, chunk.first, chunk.last, done.rows
    )


def _refresh_sources(
    con: duckdb.DuckDBPyConnection,
    chunk: ChunkInput,
    symbol: str,
    sources: dict[str, FileSummary],
    have: list[tuple[str, str]],
) -> None:
    """A chunk whose content is unchanged (the merge's skip) keeps its rows and commit
    time, but its source lineage follows the files as they are now (a duplicate file removed, a file
    replaced by one with the same bars): rewritten, in its own transaction, when the
    files or their sha256 differ from what the lineage holds."""
    want = sorted((path, _source(chunk, sources, path).sha256) for path in chunk.manifest.sources)
    if want == sorted(have):
        return
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "DELETE FROM bars_1m_chunk_sources WHERE symbol = ? AND chunk_id = ?",
            [symbol, chunk.chunk_id],
        )
        _insert_sources(con, chunk, symbol, sources)
        con.execute("COMMIT")
    except Exception:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    log.info("chunk %s: content unchanged, source lineage now %s", chunk.chunk_id, want)


def _refresh_selection(con: duckdb.DuckDBPyConnection, chunk: ChunkInput, symbol: str) -> None:
    """Rewrite the selection and term structure rows of a chunk whose content (bars and
    picked contracts) is unchanged but whose lineage is not (the roll rule switched, a
    runner-up or basis volume moved, a database migrated from before the roll rule), in
    its own transaction; its rows and commit time stay."""
    con.execute("BEGIN TRANSACTION")
    try:
        _write_selection(con, chunk, symbol)
        con.execute(
            "UPDATE bars_1m_chunks SET lineage_hash = ? WHERE symbol = ? AND chunk_id = ?",
            [chunk.manifest.lineage_hash, symbol, chunk.chunk_id],
        )
        con.execute("COMMIT")
    except Exception:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    log.info("chunk %s: content unchanged, selection lineage rewritten", chunk.chunk_id)


def _write_selection(con: duckdb.DuckDBPyConnection, chunk: ChunkInput, symbol: str) -> None:
    """Replace the chunk's rows of ``bars_1m_trade_dates`` and ``bars_1m_term_structure``
    (its trade dates) by the build's, in the open transaction."""
    for table in ("bars_1m_trade_dates", "bars_1m_term_structure"):
        con.execute(
            f"DELETE FROM {table} WHERE symbol = ? AND trade_date BETWEEN ? AND ?",
            [symbol, chunk.first, chunk.last],
        )
    _insert_selection(con, chunk)


def _insert_selection(con: duckdb.DuckDBPyConnection, chunk: ChunkInput) -> None:
    picks = _selection_rows(chunk)  # noqa: F841 (read by the statement)
    if len(picks):
        names = ", ".join(SELECTION_SCHEMA.names)
        con.execute(f"INSERT INTO bars_1m_trade_dates ({names}) SELECT {names} FROM picks")
    terms = _term_rows(chunk)  # noqa: F841 (read by the statement)
    if len(terms):
        names = ", ".join(TERM_SCHEMA.names)
        con.execute(f"INSERT INTO bars_1m_term_structure ({names}) SELECT {names} FROM terms")


def _source(chunk: ChunkInput, sources: dict[str, FileSummary], path: str) -> FileSummary:
    meta = sources.get(path)
    if meta is None:
        raise BackfillError(f"chunk {chunk.chunk_id}: no decode summary for source {path}")
    return meta


def _insert_sources(
    con: duckdb.DuckDBPyConnection,
    chunk: ChunkInput,
    symbol: str,
    sources: dict[str, FileSummary],
) -> None:
    rows: list[Any] = []
    for path in chunk.manifest.sources:
        meta = _source(chunk, sources, path)
        rows += [symbol, chunk.chunk_id, path, meta.size, meta.sha256]
    if rows:
        values = ", ".join(["(?, ?, ?, ?, ?)"] * (len(rows) // 5))
        con.execute(f"INSERT INTO bars_1m_chunk_sources VALUES {values}", rows)


#: Exception types that are the machine's fault whatever they say: an OS error (pyarrow's
#: I/O errors are OSErrors too), DuckDB's I/O and out-of-memory errors, a signal.
_ENVIRONMENT_TYPES = (OSError, Interrupted, duckdb.IOException, duckdb.OutOfMemoryException)

#: OS errors that are the machine's fault, as DuckDB words them inside its own
#: exceptions of other types.
_ENVIRONMENT_ERRORS = tuple(
    os.strerror(code)
    for code in (
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EFBIG,
        errno.EIO,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.ENOMEM,
    )
)


def error_kind(exc: BaseException) -> ErrorKind:
    """Why a chunk's transaction failed with ``exc``.

    Returns:
        ``environment`` when it is the machine's fault (disk full, an I/O error, out of
        memory, a read-only file, a signal: a rerun retries it without ``retry_failed``),
        else ``data``.
    """
    if isinstance(exc, _ENVIRONMENT_TYPES):
        return ErrorKind.ENVIRONMENT
    # The one place a message decides: DuckDB reports a failed write of its WAL at
    # COMMIT as a TransactionException, "Failed to commit: Could not write file
    # ...wal: No space left on device" (what the full disk of tests/test_faults.py gets,
    # duckdb 2.0), the type it also uses for conflicts, so its type cannot tell. Only
    # DuckDB's own exceptions are read this way; every other type decides by itself.
    if isinstance(exc, duckdb.Error) and any(m in str(exc) for m in _ENVIRONMENT_ERRORS):
        return ErrorKind.ENVIRONMENT
    return ErrorKind.DATA


class _SignalFlag:
    """SIGTERM and SIGINT, while :meth:`catching`, only record the signal; the merge
    calls :meth:`check` where stopping is safe (before a chunk, before a COMMIT)."""

    def __init__(self) -> None:
        self.name: str | None = None

    @contextlib.contextmanager
    def catching(self) -> Iterator[None]:
        self.name = None
        previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread: leave as is
                previous[sig] = signal.signal(sig, self._record)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _record(self, signum: int, frame: object) -> None:
        self.name = self.name or signal.Signals(signum).name

    def check(self) -> None:
        """Raises: Interrupted: a signal arrived."""
        if self.name:
            raise Interrupted(
                f"interrupted by {self.name} during merge_chunks; rolled back", self.name
            )


_SIGNALS = _SignalFlag()

_SELECTIONS: dict[Path, dict[str, pa.Table]] = {}
_TERMS: dict[Path, dict[str, pa.Table]] = {}
_BARS: dict[Path, pq.ParquetFile] = {}


def _bars_file(path: Path) -> pq.ParquetFile:
    """The batch's bars parquet, opened once per merge."""
    if path not in _BARS:
        _BARS[path] = pq.ParquetFile(path)
    return _BARS[path]


def _selection_rows(chunk: ChunkInput) -> pa.Table:
    """The chunk's rows of its batch's selection parquet (each file read once)."""
    return _rows_of(chunk, chunk.selection, SELECTION_SCHEMA, _SELECTIONS)


def _term_rows(chunk: ChunkInput) -> pa.Table:
    """The chunk's rows of its batch's term structure parquet (each file read once)."""
    if chunk.terms is None:
        return TERM_SCHEMA.empty_table()
    return _rows_of(chunk, chunk.terms, TERM_SCHEMA, _TERMS)


def _rows_of(
    chunk: ChunkInput, path: Path, schema: pa.Schema, cache: dict[Path, dict[str, pa.Table]]
) -> pa.Table:
    """The chunk's rows of a per-batch parquet grouped by ``chunk_id``, by chunk."""
    if path not in cache:
        table = pq.read_table(path).select(schema.names)
        ids = table.column("chunk_id").to_pylist()
        by_chunk: dict[str, pa.Table] = {}
        start = 0
        for end in range(1, len(ids) + 1):  # the build writes them in chunk order
            if end == len(ids) or ids[end] != ids[start]:
                by_chunk[ids[start]] = table.slice(start, end - start)
                start = end
        if len(by_chunk) != len(set(ids)):
            raise BackfillError(f"{path}: rows are not grouped by chunk")
        cache[path] = by_chunk
    return cache[path].get(chunk.chunk_id, schema.empty_table())


def _days_of(chunk: ChunkInput, dated: set[dt.date]) -> list[dt.date]:
    """The trade dates of ``dated`` inside the chunk's range."""
    span = (chunk.last - chunk.first).days + 1
    days = (chunk.first + dt.timedelta(days=i) for i in range(span))
    return [d for d in days if d in dated]


def _overlapping(committed: dict[str, _Committed], chunk: ChunkInput) -> list[str]:
    """Committed chunks sharing a trade date with ``chunk`` (itself, or those of another
    ``chunk_days``): their lineage is replaced by the chunk's."""
    return sorted(
        chunk_id
        for chunk_id, row in committed.items()
        if chunk_id == chunk.chunk_id or (row.first <= chunk.last and row.last >= chunk.first)
    )


def _check_inside(chunk: ChunkInput, bars: Any, lo: Any, hi: Any) -> None:
    """The chunk's bars lie in its sessions' ``[lo, hi)``: after the range's delete, the
    range then holds exactly the rows inserted.

    Raises:
        BackfillError: a bar outside (a bug of the build, never data).
    """
    low, high = pc.min_max(bars.column("ts_utc")).values()
    if low.as_py() < lo.to_pydatetime() or high.as_py() >= hi.to_pydatetime():
        raise BackfillError(
            f"chunk {chunk.chunk_id}: bars from {low} to {high} are not all inside its "
            f"sessions [{lo}, {hi})"
        )


def _count(result: duckdb.DuckDBPyConnection) -> int:
    row = first_row(result)
    return int(row[0]) if row else 0


def _write_lineage(
    con: duckdb.DuckDBPyConnection,
    chunk: ChunkInput,
    symbol: str,
    sources: dict[str, FileSummary],
    run_id: str,
    rows: int,
    committed_at: dt.datetime,
    replaced: list[str],
    dated: list[dt.date],
) -> None:
    """Write the chunk's lineage in the open transaction; ``replaced``: the committed
    chunks (this one included) whose trade dates it overlaps, whose rows go; ``dated``:
    the chunk's trade dates that have a lineage row now."""
    if dated:
        for table in ("bars_1m_trade_dates", "bars_1m_term_structure"):
            con.execute(
                f"DELETE FROM {table} WHERE symbol = ? AND trade_date BETWEEN ? AND ?",
                [symbol, chunk.first, chunk.last],
            )
    _insert_selection(con, chunk)
    if replaced:
        marks = ", ".join("?" * len(replaced))
        for table in ("bars_1m_chunk_sources", "bars_1m_chunks"):
            con.execute(
                f"DELETE FROM {table} WHERE symbol = ? AND chunk_id IN ({marks})",
                [symbol, *replaced],
            )
    con.execute(
        "INSERT INTO bars_1m_chunks (symbol, chunk_id, chunk_start, chunk_end, rows, "
        "content_hash, committed_at, run_id, lineage_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            symbol,
            chunk.chunk_id,
            chunk.first,
            chunk.last,
            rows,
            chunk.manifest.content_hash,
            committed_at,
            run_id,
            chunk.manifest.lineage_hash or None,
        ],
    )
    _insert_sources(con, chunk, symbol, sources)

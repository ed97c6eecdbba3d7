"""Commit while building (contract section 11): the per-batch merge and its markers.

The workflow commits each build batch as soon as it is built, one ``merge_chunks``
job per (root, batch), serialized by the ``db_writer`` resource (one writer at a
time). What keeps the contract whole:

* completeness first: :func:`check_decoded_complete` (the ``check_complete`` job,
  after every decode) checks every root's business days of ``[start, end]`` from the
  decoded records, before any merge may write; one root missing a day stops the run
  with the message of :func:`dbn_backfill.store.merge.check_complete`, nothing written;
* each merge writes a marker (:class:`~dbn_backfill.artifacts.MergeMarker`) of the
  chunks and content hashes the database holds for its batch; a chunk failed on its
  data is listed there, the job succeeds (the other batches keep committing) and
  ``merge_report`` (:func:`merge_report`) then fails the run naming every failed chunk;
* before the DAG is built, the plan removes every marker the database or the
  checkpoints contradict (:func:`reconcile_markers`), so Snakemake alone decides what
  merges: a no-op run merges nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Iterable
from pathlib import Path

import duckdb

from dbn_backfill.artifacts import (
    ChunkStatus,
    CompleteMarker,
    FailedChunk,
    FileSummary,
    MergeMarker,
    MergeReport,
)
from dbn_backfill.config import BackfillConfig
from dbn_backfill.errors import ChunksFailed
from dbn_backfill.layout import Layout
from dbn_backfill.runtime import lock
from dbn_backfill.store import checkpoints
from dbn_backfill.store.database import connect, table_exists
from dbn_backfill.store.merge import ChunkInput, check_complete, merge
from dbn_backfill.tradedate import Calendar

log = logging.getLogger(__name__)


def decoded_days(
    parquets: list[Path], roots: Iterable[str], start: dt.date, end: dt.date
) -> dict[str, set[dt.date]]:
    """The trade dates of ``[start, end]`` on which each root has an outright record in
    the decoded parquets (what the builds' ``days_present`` will say), read by DuckDB
    from two columns, streaming.

    Returns:
        root -> its trade dates (an empty set for a root without any).
    """
    days: dict[str, set[dt.date]] = {root: set() for root in roots}
    if not parquets or not days:
        return days
    con = duckdb.connect()
    try:
        con.execute("SET threads = 1")
        rows = con.execute(
            "SELECT DISTINCT CAST(root AS VARCHAR), trade_date FROM read_parquet(?) "
            "WHERE root IS NOT NULL AND trade_date BETWEEN ? AND ?",
            [[str(p) for p in parquets], start, end],
        ).fetchall()
    finally:
        con.close()
    for root, day in rows:
        if root in days:
            days[root].add(day)
    return days


def check_decoded_complete(
    cfg: BackfillConfig, calendar: Calendar, parquets: list[Path]
) -> CompleteMarker:
    """Contract sections 5 and 11 before any write: every root of ``cfg`` has outright
    records on every business day of ``[start, end]`` (less its expected gaps).

    Args:
        parquets: every decode group's parquet the run's builds read.

    Returns:
        what was checked (the marker ``check_complete`` writes).

    Raises:
        CompletenessError: naming every root with missing days, and the days.
    """
    present = decoded_days(parquets, cfg.symbols, cfg.start, cfg.end)
    missing: dict[str, list[dt.date]] = {}
    required: dict[str, int] = {}
    for root in cfg.symbols:
        days = calendar.required_days(cfg.start, cfg.end, cfg.for_root(root).expected_gaps)
        required[root] = len(days)
        missing[root] = [d for d in days if d not in present[root]]
    check_complete(missing, cfg)
    return CompleteMarker(start=str(cfg.start), end=str(cfg.end), days=required)


def merge_batch(
    *,
    cfg: BackfillConfig,
    batch_id: str,
    chunks: list[ChunkInput],
    calendar: Calendar,
    sources: dict[str, FileSummary],
    run_id: str,
) -> MergeMarker:
    """Commit one batch's chunks of one root (``cfg`` is the root's settings:
    :meth:`BackfillConfig.for_root`) with :func:`dbn_backfill.store.merge.merge`.

    The whole range's completeness was checked by ``check_complete`` before; the merge's
    own check sees only the batch's days of ``[start, end]``.

    Returns:
        the batch's marker; a chunk failed on its data is in ``failed`` (its checkpoint
        says ``failed``), every valid chunk committed.

    Raises:
        SchemaMismatchError, BackfillError, Interrupted: see
            :func:`dbn_backfill.store.merge.merge` (the merge stopped at once).
    """
    marker = MergeMarker(run_id=run_id, root=cfg.symbol, batch_id=batch_id)
    if not chunks:
        return marker
    own = dataclasses.replace(
        cfg,
        start=max(cfg.start, min(c.first for c in chunks)),
        end=min(cfg.end, max(c.last for c in chunks)),
    )
    started = time.monotonic()
    try:
        # one writer: the db_writer resource schedules the merges one at a time; the
        # lock holds that even where the resource is not set (a module use, --resources)
        with lock.hold(Layout.of(cfg).writer_lock):
            report = merge(
                cfg=own, chunks=chunks, calendar=calendar, sources=sources, run_id=run_id
            )
    except ChunksFailed as exc:
        errors = {chunk_id: error for _, chunk_id, error in exc.failed}
        marker.failed = [
            FailedChunk(c.chunk_id, errors[c.chunk_id]) for c in chunks if c.chunk_id in errors
        ]
        # every other chunk is committed (merge commits each valid chunk before it
        # raises); which of them this run wrote does not matter: the plan removes this
        # marker before the next run, whose merge of the batch then skips them
        marker.skipped = [c.chunk_id for c in chunks if c.chunk_id not in errors]
    else:
        marker.committed, marker.skipped = list(report.committed), list(report.skipped)
        marker.rows_inserted = report.rows_inserted
    hashes = {c.chunk_id: c.manifest.content_hash for c in chunks}
    marker.chunks = {cid: hashes[cid] for cid in sorted([*marker.committed, *marker.skipped])}
    marker.seconds = time.monotonic() - started
    return marker


def merge_report(markers: dict[str, list[MergeMarker]], run_id: str) -> dict[str, MergeReport]:
    """Each root's merge record of run ``run_id`` (``runs/<run_id>/merge.json``, the
    shape the summary, ``status`` and the report read) from its batches' markers: the
    chunks this run's merges committed, and every other chunk as skipped (committed
    before, by an earlier run or an earlier merge of the batch).

    Raises:
        ChunksFailed: a marker lists failed chunks: naming every one, with its root,
            and the command that retries them.
    """
    failed = [
        (root, f.chunk_id, f.error)
        for root, of_root in markers.items()
        for marker in of_root
        for f in marker.failed
    ]
    if failed:
        by_root = sorted({root for root, _, _ in failed})
        raise ChunksFailed(
            f"{len(failed)} chunks failed and were not committed "
            f"({', '.join(by_root)}; every valid chunk of every root was committed): "
            + " | ".join(f"{root} {cid}: {err}" for root, cid, err in failed)
            + ". Fix the cause, then rerun with retry_failed=true (CLI: --retry-failed).",
            failed,
        )
    reports = {}
    for root, of_root in markers.items():
        report = MergeReport(run_id=run_id)
        for marker in of_root:
            if marker.run_id == run_id:
                report.committed += marker.committed
                report.skipped += marker.skipped
                report.rows_inserted += marker.rows_inserted
                report.seconds += marker.seconds
            else:
                report.skipped += list(marker.chunks)
        report.committed.sort()
        report.skipped.sort()
        reports[root] = report
    return reports


def reconcile_markers(
    layout: Layout, roots: Iterable[str], batch_ids: Iterable[str], db: Path
) -> list[Path]:
    """Remove every merge marker of the plan's batches that no longer says what the
    database holds, so that Snakemake reruns its merge: the database lacks one of its
    chunks with that content hash (deleted, a chunk replaced by another ``chunk_days``,
    a rollback), the marker lists a failed chunk, a chunk's checkpoint does not say
    ``done`` with that hash (the checkpoint folder was removed: the merge repairs it
    from the lineage), or the marker is unreadable. Called by the plan, holding the
    run lock, before the DAG is built.

    Returns:
        the markers removed.

    Raises:
        SchemaMismatchError: ``db`` is not a DuckDB database.
    """
    found: list[tuple[Path, MergeMarker | None]] = []
    for root in roots:
        for batch_id in batch_ids:
            path = layout.merge_marker(root, batch_id)
            if not path.exists():
                continue
            try:
                found.append((path, MergeMarker.read(path)))
            except (OSError, ValueError, KeyError, TypeError):
                found.append((path, None))
    if not found:
        return []
    held = _held_hashes(db, {m.root for _, m in found if m is not None})
    removed = []
    for path, marker in found:
        if marker is None or not _still_true(marker, held, layout):
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.info("merge markers removed (their merge reruns): %s", [str(p) for p in removed])
    return removed


def _held_hashes(db: Path, roots: set[str]) -> dict[tuple[str, str], str]:
    """``(symbol, chunk_id) -> content_hash`` of the database's committed chunks of
    ``roots`` (none when the database or its lineage is not there)."""
    if not Path(db).exists() or not roots:
        return {}
    con = connect(Path(db), read_only=True)
    try:
        if not table_exists(con, "bars_1m_chunks"):
            return {}
        rows = con.execute(
            "SELECT symbol, chunk_id, content_hash FROM bars_1m_chunks "
            "WHERE list_contains(?, symbol)",
            [sorted(roots)],
        ).fetchall()
    finally:
        con.close()
    return {(str(s), str(c)): str(h) for s, c, h in rows}


def _still_true(marker: MergeMarker, held: dict[tuple[str, str], str], layout: Layout) -> bool:
    if marker.failed:
        return False
    folder = layout.checkpoint_dir(marker.root)
    for chunk_id, content_hash in marker.chunks.items():
        if held.get((marker.root, chunk_id)) != content_hash:
            return False
        state = checkpoints.read(folder, chunk_id)
        if state is None or state.status != ChunkStatus.DONE or state.content_hash != content_hash:
            return False
    return True

"""The store of chunk checkpoint files (contract section 8): one JSON per chunk.

``done`` means committed to the database. The lineage table in the database is
the source of truth; a checkpoint mirrors it, so a kill between a commit and
its checkpoint write is repaired by the next merge without redoing the chunk.
A checkpoint is the immutable :class:`dbn_backfill.artifacts.Checkpoint`; it
changes only through its transitions, and :func:`transition` is how a transition
reaches the disk: validated first, then written atomically (a reader never sees
half a file, a killed writer leaves the previous state).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from dbn_backfill.artifacts import (
    CHECKPOINT_STATUSES,
    Checkpoint,
    ChunkStatus,
    ErrorKind,
    utc_now,
    write_json,
)
from dbn_backfill.errors import CheckpointError
from dbn_backfill.layout import checkpoint_files, checkpoint_path

log = logging.getLogger(__name__)

STATUSES = CHECKPOINT_STATUSES

#: The current UTC time as checkpoints write it.
now = utc_now


def path_for(checkpoint_dir: Path, chunk_id: str) -> Path:
    """The checkpoint file of ``chunk_id`` in ``checkpoint_dir`` (which may not exist):
    :func:`dbn_backfill.layout.checkpoint_path`."""
    return checkpoint_path(checkpoint_dir, chunk_id)


def read(checkpoint_dir: Path, chunk_id: str) -> Checkpoint | None:
    """The checkpoint of ``chunk_id``, or None when there is none or it is unreadable (not
    JSON, a field missing, an unknown status: only another tool could cause that, this
    one replaces files atomically). Never raises for the file's content."""
    path = path_for(checkpoint_dir, chunk_id)
    try:
        return Checkpoint.from_json(dict(json.loads(path.read_text())))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):  # json.JSONDecodeError is a ValueError
        return None


def write(checkpoint_dir: Path, checkpoint: Checkpoint) -> None:
    """Replace the checkpoint file of ``checkpoint.chunk_id`` atomically.

    Raises:
        OSError: the folder cannot be written.
    """
    write_json(path_for(checkpoint_dir, checkpoint.chunk_id), checkpoint.to_json())


def load_or_create(checkpoint_dir: Path, fresh: Checkpoint) -> Checkpoint:
    """The chunk's checkpoint on disk; when there is none (or it is unreadable), ``fresh``
    (a :meth:`Checkpoint.create`), written first.

    Raises:
        OSError: the folder cannot be written.
    """
    state = read(checkpoint_dir, fresh.chunk_id)
    if state is None:
        state = fresh
        write(checkpoint_dir, state)
    return state


def transition(
    checkpoint_dir: Path, state: Checkpoint, transition: Callable[[Checkpoint], Checkpoint]
) -> Checkpoint:
    """Apply ``transition`` (e.g. ``lambda s: s.commit(...)``) to ``state`` and write the
    result atomically.

    Returns:
        The new state, as now on disk.

    Raises:
        CheckpointTransitionError: the transition is illegal from ``state`` (nothing is
            written).
        OSError: the folder cannot be written (the file keeps its previous state).
    """
    new = transition(state)
    write(checkpoint_dir, new)
    return new


def failed(
    checkpoint_dir: Path, chunk_ids: Iterable[str], kind: str | None = None
) -> list[tuple[str, str]]:
    """The chunks among ``chunk_ids`` whose checkpoint says ``failed``.

    Args:
        checkpoint_dir: the checkpoint folder.
        chunk_ids: the chunks to look at (those without a readable file are skipped).
        kind: ``data`` or ``environment``: only the chunks that failed for that reason
            (a checkpoint without ``error_kind`` counts as ``data``); None: all.

    Returns:
        ``(chunk_id, error)`` in the order of ``chunk_ids``.

    Raises:
        ValueError: ``kind`` is not an :class:`~dbn_backfill.artifacts.ErrorKind`.
    """
    wanted = None if kind is None else ErrorKind(kind)
    out = []
    for chunk_id in chunk_ids:
        state = read(checkpoint_dir, chunk_id)
        if state and state.status == ChunkStatus.FAILED and wanted in (None, state.failure_kind):
            out.append((chunk_id, str(state.error)))
    return out


def adopt_legacy(checkpoint_root: Path, root: str) -> list[str]:
    """Move the checkpoints of ``root`` found directly in ``checkpoint_root`` (the
    earlier, single-root layout) into ``root``'s folder, unchanged (contract section 8):
    a ``done`` chunk stays done with its timestamps. Checkpoints of other roots stay
    where they are (their root's next run moves them). Returns the chunk ids moved.

    A legacy checkpoint whose chunk already has one in the root's folder is the older
    of the two: it is removed, the folder's is kept.

    Raises:
        CheckpointError: a legacy checkpoint names no root (unreadable, or no
            ``symbol``): the run cannot tell whose it is.
    """
    moved = []
    target_dir = Path(checkpoint_root) / root
    for path in checkpoint_files(checkpoint_root):
        state = read(path.parent, path.stem)
        if state is None or not state.symbol:
            raise CheckpointError(
                f"checkpoint {path} names no root (unreadable, or no 'symbol'): move it "
                f"into {Path(checkpoint_root)}/<ROOT>/ of the root it belongs to, or delete "
                "it (the database's lineage is the record of what was committed)"
            )
        if state.symbol != root:
            continue
        target = checkpoint_path(target_dir, path.stem)
        if target.exists():
            path.unlink()
            log.info("legacy checkpoint %s removed: %s holds the newer one", path, target)
            continue
        target_dir.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        moved.append(path.stem)
    if moved:
        log.info("moved %d checkpoints of %s into %s", len(moved), root, target_dir)
    return moved


def drop_stale(folder: Path, planned: set[str], start: dt.date, end: dt.date) -> list[str]:
    """Remove the checkpoints in ``folder`` whose span meets ``[start, end]`` but is no
    chunk of the plan (``planned``: the plan's chunk ids), because ``start``, ``end``
    or ``chunk_days`` changed: their trade dates are planned again as other chunks, so
    they must never count as done work (contract section 8). Returns the ids removed.
    """
    dropped = []
    for path in checkpoint_files(folder):
        if path.stem in planned:
            continue
        span = chunk_span(path.stem)
        if span is None or span[0] > end or span[1] < start:
            continue
        path.unlink()
        dropped.append(path.stem)
    if dropped:
        log.info("removed %d checkpoints of chunks no longer planned: %s", len(dropped), dropped)
    return dropped


def chunk_span(chunk_id: str) -> tuple[dt.date, dt.date] | None:
    """``(first, last)`` trade date of ``chunk_YYYYMMDD_YYYYMMDD``; None for another name."""
    parts = chunk_id.split("_")
    if len(parts) != 3:
        return None
    try:
        first = dt.datetime.strptime(parts[1], "%Y%m%d").date()
        last = dt.datetime.strptime(parts[2], "%Y%m%d").date()
    except ValueError:
        return None
    return first, last

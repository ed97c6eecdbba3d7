"""Chunk checkpoint files (contract section 8): one JSON per chunk, written atomically.

``done`` means committed to the database. The lineage table in the database is
the source of truth; a checkpoint mirrors it, so a kill between a commit and
its checkpoint write is repaired by the next merge without redoing the chunk.
The file's shape is :class:`dbn_backfill.artifacts.Checkpoint`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path

from dbn_backfill.artifacts import CHECKPOINT_STATUSES, Checkpoint, write_json
from dbn_backfill.layout import checkpoint_path

STATUSES = CHECKPOINT_STATUSES


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def path_for(checkpoint_dir: Path, chunk_id: str) -> Path:
    """The file of chunk ``chunk_id``'s checkpoint (:func:`dbn_backfill.layout.checkpoint_path`)."""
    return checkpoint_path(checkpoint_dir, chunk_id)


def read(checkpoint_dir: Path, chunk_id: str) -> Checkpoint | None:
    """The checkpoint of ``chunk_id``, or None when there is none (or it is unreadable,
    which only another tool could cause: this one replaces files atomically)."""
    path = path_for(checkpoint_dir, chunk_id)
    try:
        return Checkpoint.from_json(dict(json.loads(path.read_text())))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, TypeError):
        return None


def write(checkpoint_dir: Path, checkpoint: Checkpoint) -> None:
    """Replace the checkpoint file of ``checkpoint.chunk_id`` atomically.

    Raises:
        ValueError: an unknown status.
        OSError: the folder cannot be written.
    """
    write_json(path_for(checkpoint_dir, checkpoint.chunk_id), checkpoint.to_json())


def failed(
    checkpoint_dir: Path, chunk_ids: Iterable[str], kind: str | None = None
) -> list[tuple[str, str]]:
    """``(chunk_id, error)`` of the chunks whose checkpoint says ``failed``; with
    ``kind``, only those of that ``error_kind`` (a checkpoint without one: ``data``)."""
    out = []
    for chunk_id in chunk_ids:
        state = read(checkpoint_dir, chunk_id)
        if state and state.status == "failed" and kind in (None, state.error_kind or "data"):
            out.append((chunk_id, str(state.error)))
    return out

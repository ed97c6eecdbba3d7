"""Chunk checkpoint files (contract section 8): one JSON per chunk, written atomically.

``done`` means committed to the database. The lineage table in the database is
the source of truth; a checkpoint mirrors it, so a kill between a commit and
its checkpoint write is repaired by the next merge without redoing the chunk.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

STATUSES = ("pending", "in_progress", "done", "failed")


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def path_for(checkpoint_dir: Path, chunk_id: str) -> Path:
    return Path(checkpoint_dir) / f"{chunk_id}.json"


def read(checkpoint_dir: Path, chunk_id: str) -> dict[str, Any] | None:
    """The checkpoint of ``chunk_id``, or None when there is none."""
    path = path_for(checkpoint_dir, chunk_id)
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        # only a crash of another tool could leave this (we replace atomically)
        return None


def write(checkpoint_dir: Path, chunk_id: str, state: dict[str, Any]) -> None:
    """Replace the checkpoint of ``chunk_id`` atomically (write, rename).

    A reader never sees a half-written file, and a killed process loses nothing the
    kernel already has. No fsync: after a power loss the lineage table in the
    database (the source of truth) repairs the checkpoint on the next merge.
    """
    if state.get("status") not in STATUSES:
        raise ValueError(f"bad checkpoint status {state.get('status')!r}")
    folder = Path(checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = path_for(folder, chunk_id)
    tmp = target.with_suffix(f".json.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        json.dump(state, handle, indent=1, sort_keys=True)
    os.replace(tmp, target)


def failed(checkpoint_dir: Path, chunk_ids: Iterable[str]) -> list[tuple[str, str]]:
    """``(chunk_id, error)`` of the chunks whose checkpoint says ``failed``."""
    out = []
    for chunk_id in chunk_ids:
        state = read(checkpoint_dir, chunk_id)
        if state and state.get("status") == "failed":
            out.append((chunk_id, str(state.get("error"))))
    return out

"""The run lock: one backfill per database and per work directory.

``fcntl.flock`` locks belong to the open file; the operating system drops them
when the process dies, SIGKILL included, so a killed run never leaves a lock a
user must remove by hand.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from dbn_backfill.errors import LockError

_held: dict[str, IO[str]] = {}


def acquire(path: Path, what: str) -> None:
    """Take the lock file ``path`` for this process, or refuse.

    Raises:
        LockError: another live process holds it; the message says which.
    """
    path = Path(path)
    key = str(path.resolve())
    if key in _held:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown process"
        handle.close()
        raise LockError(
            f"another backfill is running on {what} ({holder}); "
            f"refusing to start a second one. Wait for it to finish (lock: {path})"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(
        f"pid {os.getpid()} since {dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}: "
        + " ".join(sys.argv[:3])
    )
    handle.flush()
    _held[key] = handle


@contextmanager
def hold(path: Path) -> Iterator[None]:
    """Hold the lock file ``path`` for the ``with`` block, waiting while another process
    holds it (the database writer's turn: :attr:`dbn_backfill.layout.Layout.writer_lock`).
    The operating system drops it when the process dies."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

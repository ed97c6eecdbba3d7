"""Patches of Snakemake's main process: a SIGTERM handler for its scheduler that a
second SIGTERM cannot deadlock, and scheduler timers that do not delay exit.

Snakemake 9's ``JobScheduler.exit_gracefully`` (its SIGTERM handler) takes the
scheduler's lock and releases a semaphore, both non-reentrant: a second SIGTERM
arriving while the first is being handled, as when a signal to the whole process
group and the one ``dbn-backfill`` passes on arrive together, interrupts the
handler inside the lock and the process hangs forever (measured: every thread in
``futex`` wait). The replacement only sets the flag the scheduler reads and writes
a byte to a pipe; a helper thread wakes the scheduler, outside any signal handler.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any


def make_sigterm_reentrant() -> None:
    """Replace ``JobScheduler.exit_gracefully`` in this (Snakemake's main) process;
    call it before the scheduler is created (at parse time)."""
    import snakemake.scheduling.job_scheduler as job_scheduler

    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    woken: dict[str, Any] = {}

    def exit_gracefully(self: Any, *args: object) -> None:
        self._user_kill = "graceful"  # an attribute store: atomic, no lock needed
        woken["scheduler"] = self
        with contextlib.suppress(BlockingIOError):  # a wake-up is already pending
            os.write(write_fd, b"x")

    def wake() -> None:
        while os.read(read_fd, 1):
            scheduler = woken.get("scheduler")
            if scheduler is not None:
                scheduler._open_jobs.release()

    threading.Thread(target=wake, name="dbn-backfill-sigterm", daemon=True).start()
    job_scheduler.JobScheduler.exit_gracefully = exit_gracefully  # type: ignore[method-assign]


class _DaemonTimer(threading.Timer):
    """A ``threading.Timer`` the interpreter does not wait for at exit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.daemon = True


def daemonize_scheduler_timers() -> None:
    """Stop Snakemake's job-rate-limit timers from delaying exit by a second.

    Snakemake 9's scheduler starts a 1 s ``threading.Timer`` whenever its rate limit
    is reached; the last one outlives the run and the interpreter waits for it
    (measured: 1.3 s after "Elapsed time" on every run). Those timers only wake the
    scheduler, so they are made daemon threads in the main Snakemake process.
    """
    import snakemake.scheduling.job_scheduler as job_scheduler

    job_scheduler.threading.Timer = _DaemonTimer  # type: ignore[misc]

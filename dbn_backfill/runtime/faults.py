"""Deterministic crash points and a slow merge, for the resume and fault tests.

Setting ``DBN_BACKFILL_KILL_AT=<point>`` makes the step reaching ``<point>``
SIGKILL its whole process group (the CLI, Snakemake and every job), the way a
laptop losing power or a cluster time limit would. Setting
``DBN_BACKFILL_SLOW_MERGE=<seconds>`` makes the merge sleep that long inside every
chunk's transaction, so a test can send a signal or fill a disk mid-merge.
Unset, both do nothing.
"""

from __future__ import annotations

import os
import signal
import time

KILL_ENV = "DBN_BACKFILL_KILL_AT"
SLOW_MERGE_ENV = "DBN_BACKFILL_SLOW_MERGE"
POINTS = ("decode", "build", "merge_in_transaction", "merge_after_commit", "gates")


def kill_point(name: str) -> None:
    """SIGKILL the process group if ``DBN_BACKFILL_KILL_AT`` names this point."""
    if os.environ.get(KILL_ENV) == name:
        os.killpg(os.getpgrp(), signal.SIGKILL)


def slow_merge() -> None:
    """Sleep ``DBN_BACKFILL_SLOW_MERGE`` seconds (a chunk's transaction, in tests)."""
    seconds = float(os.environ.get(SLOW_MERGE_ENV) or 0)
    if seconds > 0:
        time.sleep(seconds)

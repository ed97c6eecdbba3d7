"""Deterministic crash points for the resume tests.

Setting ``DBN_BACKFILL_KILL_AT=<point>`` makes the step reaching ``<point>``
SIGKILL its whole process group (the CLI, Snakemake and every job), the way a
laptop losing power or a cluster time limit would. Unset, this does nothing.
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "DBN_BACKFILL_KILL_AT"
POINTS = ("decode", "build", "merge_in_transaction", "merge_after_commit", "gates")


def kill_point(name: str) -> None:
    """SIGKILL the process group if ``DBN_BACKFILL_KILL_AT`` names this point."""
    if os.environ.get(KILL_ENV) == name:
        os.killpg(os.getpgrp(), signal.SIGKILL)

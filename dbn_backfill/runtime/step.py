"""Running one workflow step: logging to its log file, start/end lines, loud failures."""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dbn_backfill.errors import BackfillError, Interrupted
from dbn_backfill.runtime.progress import on_console

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_file: str | Path | None) -> None:
    """Log everything to ``log_file`` (the rule's ``log:``); on stderr only warnings,
    errors, progress lines and the step's start and end (:func:`progress.on_console`).
    Without a log file everything goes to stderr."""
    console = logging.StreamHandler(sys.stderr)
    if log_file:
        console.addFilter(on_console)
    handlers: list[logging.Handler] = [console]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=logging.INFO, format=FORMAT, handlers=handlers, force=True)


def run_step(name: str, snakemake: Any, body: Callable[[], None]) -> None:
    """Run ``body`` as step ``name`` of the workflow; any error is logged with its
    stack trace and ends the process with a non-zero status."""
    log_file = snakemake.log[0] if len(snakemake.log) else None
    setup_logging(log_file)
    log = logging.getLogger(f"dbn_backfill.{name}")
    started = time.monotonic()
    log.info("start %s", name, extra={"console": True})
    try:
        body()
    except Interrupted as exc:
        log.error("%s stopped: %s", name, exc)  # no stack trace: nothing broke
        sys.exit(1)
    except BackfillError as exc:
        log.error("%s stopped: %s: %s\n%s", name, type(exc).__name__, exc, traceback.format_exc())
        sys.exit(1)
    except Exception:
        log.exception("%s crashed", name)
        sys.exit(1)
    log.info("end %s (%.2f s)", name, time.monotonic() - started, extra={"console": True})

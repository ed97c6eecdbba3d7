"""A dry run (``snakemake -n``, ``dbn-backfill --dry-run``) creates and writes nothing
under the user's paths.

What the plan would write (the calendar, a decode group's content stamp) goes to a
scratch folder outside them instead (:func:`scratch`, removed when the process
exits), and the jobs' inputs name the scratch copy when it differs from the work
directory's: a fresh file, so ``-n`` lists the jobs a changed file reruns, exactly as
a real run would. Snakemake's own state (``.snakemake/``) is read where it is when it
is complete, else taken from the scratch folder, and its dry-run I/O cache is not
saved (:func:`keep_snakemake_state_untouched`).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

#: The folders Snakemake's persistence creates in ``.snakemake/`` when they are missing.
STATE_FOLDERS = (
    "shadow",
    "conda-archive",
    "conda",
    "singularity",
    "auxiliary",
    "iocache",
    "locks",
    "metadata",
    "incomplete",
)


@functools.cache
def scratch() -> Path:
    """This process's scratch folder (in the system's temporary folder), removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="dbn-backfill-dry-run-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def keep_snakemake_state_untouched() -> None:
    """Patch Snakemake's persistence in this (its main, dry-run) process: a
    ``.snakemake/`` folder missing any of :data:`STATE_FOLDERS` is replaced by one in
    :func:`scratch` (so none is created), and the I/O cache a dry run saves for
    ``--trust-io-cache`` is not written. Call it at parse time."""
    from snakemake.persistence import PersistenceBase

    if getattr(PersistenceBase, "_dbn_backfill_dry_run", False):
        return
    original_init = PersistenceBase.__init__

    def init(self: Any, *args: Any, path: Path | None = None, **kwargs: Any) -> None:
        here = Path(".snakemake").absolute()
        if path is None and not all((here / f).is_dir() for f in STATE_FOLDERS):
            path = scratch() / ".snakemake"
        original_init(self, *args, path=path, **kwargs)

    PersistenceBase.__init__ = init  # type: ignore[method-assign]
    PersistenceBase.save_iocache = lambda self: None  # type: ignore[method-assign]
    PersistenceBase._dbn_backfill_dry_run = True  # type: ignore[attr-defined]

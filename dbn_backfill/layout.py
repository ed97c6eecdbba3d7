"""Where everything a backfill reads and writes lives: the one place that knows.

A run has three places of its own:

- the **work directory** (Snakemake's ``--directory``; the CLI's default is
  ``<db>.work/`` beside the database): intermediates, run records, logs, the
  workflow's own state;
- the **checkpoint folder** (config ``checkpoint``): one JSON per chunk;
- the **database file** (config ``db``) and its run lock beside it.

:class:`Layout` names every file of those places, for the workflow (whose rules use
paths relative to the work directory), the CLI, ``status`` and the report alike.
Everything that belongs to one root (results, chunk parquets, checkpoints, run
records, logs) takes the root as an argument::

    <workdir>/
      .dbn-backfill.lock                       run lock of the work directory
      .dbn-backfill/sources.json               source index (fingerprints, sha256)
      .dbn-backfill/spot-counts/               the spot-check's per-file counts
      .dbn-backfill/writer.lock                held by the merge job writing the database
      results/calendar.json                    business days, computed by the plan
      results/sources/<group>.json             a decode group's content stamp
      results/decoded/<group>.parquet          decoded outright bars of every root
                                               (+ .json summary); shared by the roots
      results/complete.json                    every root's business days have bars
                                               (check_complete; the merges wait for it)
      results/<ROOT>/batches/<batch>.*         chunk bars, selection, term structure,
                                               manifest
      results/<ROOT>/merged/<batch>.json       the chunks (and content hashes) a batch's
                                               merge committed or found committed
      results/<ROOT>/runs/<run_id>/            config.json, merge.json, spot_check.json,
                                               gates.json
      results/<ROOT>/report/                   the Snakemake report target's files
      logs/<ROOT>/<rule>/<name>.log            one log per job of one root (build)
      logs/runs/<run_id>.log                   a run's whole output (Snakemake's and its jobs')
      logs/<rule>/<name>.log                   one log per job of every root (decode,
                                               merge, spot-check, gates)
    <checkpoint>/<ROOT>/chunk_YYYYMMDD_YYYYMMDD.json  one checkpoint per chunk
    <db>.lock                                  run lock of the database
    <dbn>/<ROOT>/glbx-mdp3-YYYYMMDD.ohlcv-1m.dbn.zst  a UTC day fetched from Databento
    <dbn>/.dbn-backfill-fetch.lock             the lock of a fetch into the folder

(``<dbn>`` is read wherever its files lie: files of the earlier, single-root fetch
layout, ``<dbn>/glbx-mdp3-YYYYMMDD.ohlcv-1m.dbn.zst``, stay where they are.)

This module imports nothing of the package but the config type, so every layer
(and the Snakefile at parse time) may use it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dbn_backfill.config import BackfillConfig

#: The files a build job writes per batch, by kind.
BATCH_FILES = {
    "bars": "bars.parquet",
    "selection": "selection.parquet",
    "terms": "terms.parquet",
    "manifest": "manifest.json",
}
#: The records a run leaves in its run folder, by kind.
RUN_RECORDS = {
    "config": "config.json",
    "merge": "merge.json",
    "spot_check": "spot_check.json",
    "gates": "gates.json",
}
#: The files of the Snakemake report target, by kind.
REPORT_FILES = {
    "html": "report.html",
    "rolls": "rolls.png",
    "rolls_detail": "rolls_detail.png",
    "bars_per_day": "bars_per_day.png",
    "gates": "gates.json",
}


def default_workdir(db: Path | str) -> Path:
    """The CLI's work directory for database ``db``: ``<db>.work/`` beside it."""
    path = Path(db).expanduser().resolve()
    return path.with_name(path.name + ".work")


def db_lock(db: Path | str) -> Path:
    """The run lock of database ``db``: ``<db>.lock`` beside it."""
    path = Path(db)
    return path.with_name(path.name + ".lock")


def fetch_lock(folder: Path | str) -> Path:
    """The lock a fetch holds on the ``dbn`` folder it downloads into."""
    return Path(folder) / ".dbn-backfill-fetch.lock"


#: The schema of the files a fetch writes.
FETCH_SCHEMA = "ohlcv-1m"


def fetched_name(dataset: str, day: dt.date) -> str:
    """The name a fetched UTC day gets: ``glbx-mdp3-YYYYMMDD.ohlcv-1m.dbn.zst`` for
    GLBX.MDP3."""
    return f"{dataset.lower().replace('.', '-')}-{day:%Y%m%d}.{FETCH_SCHEMA}.dbn.zst"


def fetched_folder(dbn_folder: Path | str, root: str) -> Path:
    """The folder a fetch writes root ``root``'s days into: ``<dbn>/<root>``."""
    return Path(dbn_folder) / root


def fetched_file(dbn_folder: Path | str, root: str, dataset: str, day: dt.date) -> Path:
    """The file of UTC day ``day`` of root ``root`` fetched into ``dbn_folder``:
    ``<dbn>/<root>/glbx-mdp3-YYYYMMDD.ohlcv-1m.dbn.zst``."""
    return fetched_folder(dbn_folder, root) / fetched_name(dataset, day)


def fetch_partial(final: Path, pid: int) -> Path:
    """The hidden temporary file a download into ``final`` streams to (same folder, so
    the rename is atomic)."""
    return final.with_name(f".{final.name}.{pid}.part")


def fetch_partial_glob(dataset: str) -> str:
    """The glob of :func:`fetch_partial` files of ``dataset`` (leftovers of killed
    downloads)."""
    return f".{dataset.lower().replace('.', '-')}-*.{FETCH_SCHEMA}.dbn.zst.*.part"


def checkpoint_path(folder: Path | str, chunk_id: str) -> Path:
    """The checkpoint file of chunk ``chunk_id`` in checkpoint folder ``folder``."""
    return Path(folder) / f"{chunk_id}.json"


def checkpoint_files(folder: Path | str) -> list[Path]:
    """Every chunk checkpoint file directly in ``folder``, sorted."""
    return sorted(Path(folder).glob("chunk_*.json"))


def root_checkpoint_files(folder: Path | str, root: str | None) -> list[Path]:
    """The checkpoint files of ``root`` (every root when None) under checkpoint folder
    ``folder``: those of its own folder(s), then those still directly in ``folder``
    (the earlier layout; whose root they are, only their content says)."""
    folder = Path(folder)
    roots = [folder / root] if root else sorted(p for p in folder.glob("*") if p.is_dir())
    return [f for r in roots for f in checkpoint_files(r)] + checkpoint_files(folder)


def checkpoint_roots(folder: Path | str) -> list[str]:
    """The roots that have a folder of chunk checkpoints in checkpoint folder ``folder``
    (``<folder>/<ROOT>/chunk_*.json``), sorted; legacy files directly in ``folder`` name
    their root only in their content (:func:`checkpoint_files` of ``folder``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and checkpoint_files(p))


def probe_file(folder: Path | str, pid: int) -> Path:
    """A file written and removed at once to prove ``folder`` writable."""
    return Path(folder) / f".dbn-backfill-probe-{pid}"


@dataclass(frozen=True)
class Layout:
    """The paths of one work directory and checkpoint folder.

    Attributes:
        workdir: the work directory. The workflow uses ``Path(".")`` (Snakemake runs
            in it, and its rules name files relative to it); ``status``, the report
            and the CLI use an absolute path.
        checkpoint: the checkpoint folder (None where it is not known, e.g. a report
            of a database without one).
    """

    workdir: Path = Path(".")
    checkpoint: Path | None = None

    @classmethod
    def of(cls, cfg: BackfillConfig, workdir: Path | None = None) -> Layout:
        """The layout of run settings ``cfg`` in ``workdir`` (default: relative, ``.``)."""
        return cls(Path(workdir) if workdir is not None else Path("."), cfg.checkpoint)

    # work directory state, shared by every root ------------------------------------
    @property
    def state_dir(self) -> Path:
        """``.dbn-backfill/``: what the tool keeps between runs besides Snakemake's own."""
        return self.workdir / ".dbn-backfill"

    @property
    def source_index(self) -> Path:
        """The source index (:mod:`dbn_backfill.sources.index`)."""
        return self.state_dir / "sources.json"

    @property
    def spot_counts_dir(self) -> Path:
        """The spot-check's per-file counts (:mod:`dbn_backfill.gates.spot`)."""
        return self.state_dir / "spot-counts"

    @property
    def writer_lock(self) -> Path:
        """The lock each ``merge_chunks`` job holds while it writes the database: one
        writer at a time even when the ``db_writer`` resource is not set."""
        return self.state_dir / "writer.lock"

    @property
    def workdir_lock(self) -> Path:
        """The run lock of the work directory."""
        return self.workdir / ".dbn-backfill.lock"

    # per root -------------------------------------------------------------------
    def results(self, root: str) -> Path:
        """``results/<root>``: every intermediate and record of ``root``."""
        return self.workdir / "results" / root

    @property
    def calendar_file(self) -> Path:
        """The business days every job reads (written by the plan)."""
        return self.workdir / "results" / "calendar.json"

    def source_stamp(self, group: str) -> Path:
        """A decode group's content stamp (the paths and sha256 of its files)."""
        return self.workdir / "results" / "sources" / f"{group}.json"

    def decoded(self, group: str, kind: str = "parquet") -> Path:
        """A decode group's bars (``parquet``) or summary (``json``): the outrights of
        every root its files hold, decoded once for all roots."""
        return self.workdir / "results" / "decoded" / f"{group}.{kind}"

    def batch_file(self, root: str, batch_id: str, kind: str) -> Path:
        """A build job's output; ``kind`` is a key of :data:`BATCH_FILES`.

        Raises:
            KeyError: an unknown kind.
        """
        return self.results(root) / "batches" / f"{batch_id}.{BATCH_FILES[kind]}"

    @property
    def complete_marker(self) -> Path:
        """Written by ``check_complete`` once every root of the run has bars on every
        business day (contract section 5); every ``merge_chunks`` job waits for it."""
        return self.workdir / "results" / "complete.json"

    def merged_dir(self, root: str) -> Path:
        """``results/<root>/merged``: the markers of :meth:`merge_marker`."""
        return self.results(root) / "merged"

    def merge_marker(self, root: str, batch_id: str) -> Path:
        """The marker a batch's ``merge_chunks`` job writes: the chunk ids and content
        hashes it committed or found committed (:class:`~dbn_backfill.artifacts.MergeMarker`)."""
        return self.merged_dir(root) / f"{batch_id}.json"

    def runs_dir(self, root: str) -> Path:
        """``results/<root>/runs``: one folder per run."""
        return self.results(root) / "runs"

    def run_dir(self, root: str, run_id: str) -> Path:
        """The folder of run ``run_id``."""
        return self.runs_dir(root) / run_id

    def run_record(self, root: str, run_id: str, kind: str) -> Path:
        """A record of run ``run_id``; ``kind`` is a key of :data:`RUN_RECORDS`.

        Raises:
            KeyError: an unknown kind.
        """
        return self.run_dir(root, run_id) / RUN_RECORDS[kind]

    def report_file(self, root: str, kind: str) -> Path:
        """A file of the Snakemake report target; ``kind`` is a key of :data:`REPORT_FILES`.

        Raises:
            KeyError: an unknown kind.
        """
        return self.results(root) / "report" / REPORT_FILES[kind]

    def log(self, rule: str, name: str, root: str | None = None) -> Path:
        """The log of one job of ``rule`` (``name``: its wildcard or the run id), under
        ``logs/<root>/`` for a job of one root, ``logs/`` for a job of every root."""
        folder = self.workdir / "logs" / root if root else self.workdir / "logs"
        return folder / rule / f"{name}.log"

    def run_log(self, run_id: str) -> Path:
        """The log of run ``run_id`` as a whole: everything Snakemake and its jobs printed
        (``dbn-backfill`` shows a person a short console and keeps the rest here)."""
        return self.workdir / "logs" / "runs" / f"{run_id}.log"

    def gates_results_log(self, root: str, run_id: str) -> Path:
        """The gates' results kept beside their log (Snakemake removes a failed job's
        outputs, ``gates.json`` included, but keeps its logs)."""
        return self.workdir / "logs" / root / "check_gates" / f"{run_id}.json"

    def checkpoint_dir(self, root: str) -> Path:
        """The folder of ``root``'s chunk checkpoints: ``<checkpoint>/<root>``.

        Raises:
            ValueError: the layout has no checkpoint folder.
        """
        return self.checkpoint_root / root

    @property
    def checkpoint_root(self) -> Path:
        """The checkpoint folder itself (its files directly inside are the earlier,
        single-root layout: :func:`checkpoint_files` of it finds them).

        Raises:
            ValueError: the layout has no checkpoint folder.
        """
        if self.checkpoint is None:
            raise ValueError("no checkpoint folder is known")
        return self.checkpoint

    def checkpoint_file(self, root: str, chunk_id: str) -> Path:
        """The checkpoint of chunk ``chunk_id`` of ``root``."""
        return checkpoint_path(self.checkpoint_dir(root), chunk_id)

    def has_runs(self, root: str | None = None) -> bool:
        """Whether this work directory holds run records (of ``root``, or of any root)."""
        if root:
            return self.runs_dir(root).is_dir()
        return bool(self.roots_with_runs())

    def roots_with_runs(self) -> list[str]:
        """The roots this work directory holds run records of, sorted."""
        results = self.workdir / "results"
        if not results.is_dir():
            return []
        return sorted(p.parent.name for p in results.glob("*/runs") if p.is_dir())


def find_workdir(root: str | None, db: Path | None = None) -> Path | None:
    """The work directory of a backfill when none is given: the CLI's default
    ``<db>.work/`` beside the database, else the current directory, whichever holds
    run records (of ``root``, or of any root); None when neither does."""
    candidates = [default_workdir(db)] if db is not None else []
    for here in [*candidates, Path.cwd()]:
        if Layout(here).has_runs(root):
            return here
    return None

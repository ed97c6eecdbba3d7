"""Parse-time planning for the Snakefile: settings, sources, groups, batches.

Everything here reads only headers and small files, never a bar, so
``snakemake -n`` prints the whole plan before any data is decoded.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbn_backfill.chunks.front import PRIOR_DAY
from dbn_backfill.chunks.grid import Batch, header_trade_span, overlaps, plan_chunks
from dbn_backfill.config import BackfillConfig, check_writable, from_mapping
from dbn_backfill.errors import CheckpointError, ConfigError, SourceError
from dbn_backfill.layout import Layout, db_lock
from dbn_backfill.runtime import lock
from dbn_backfill.sources.dbn_files import SourceHeader, check_header, find_sources
from dbn_backfill.sources.index import IndexedSource, group_stamp, scan, write_if_changed
from dbn_backfill.store import checkpoints
from dbn_backfill.store.batches import reconcile_markers
from dbn_backfill.store.database import check_not_open_elsewhere
from dbn_backfill.tradedate import Calendar, cme_calendar, save_calendar


@dataclass(frozen=True)
class Plan:
    """What one run will do, for every root of it.

    Decoding is shared: a decode group (the files whose header starts in one UTC
    quarter) is decoded once for all roots. Chunks, batches, checkpoints and gates
    are per root; every root has the same chunk grid.
    """

    cfg: BackfillConfig
    calendar: Calendar
    sources: tuple[IndexedSource, ...]
    groups: dict[str, list[str]]
    group_spans: dict[str, tuple[dt.date, dt.date | None]]
    batches: tuple[Batch, ...]
    run_id: str
    layout: Layout = Layout()

    @property
    def roots(self) -> tuple[str, ...]:
        """The run's roots, in the order given."""
        return self.cfg.symbols

    @property
    def headers(self) -> tuple[SourceHeader, ...]:
        return tuple(s.header for s in self.sources)

    def sources_of(self, root: str) -> list[IndexedSource]:
        """The files whose header names ``root`` (the only ones its chunks read)."""
        return [s for s in self.sources if s.header.names(root)]

    def files_of(self, root: str) -> list[str]:
        """The paths of :meth:`sources_of`, sorted."""
        return sorted(str(s.path) for s in self.sources_of(root))

    def group_stamp(self, group: str) -> str:
        """What decode group ``group`` depends on (its files' paths and sha256)."""
        members = set(self.groups[group])
        return group_stamp([s for s in self.sources if str(s.path) in members])

    def calendar_file(self) -> Path:
        """The business days every job reads (:func:`write_calendar`)."""
        return self.layout.calendar_file

    def stamp_file(self, group: str) -> Path:
        """The file whose modification time tells Snakemake that a group's content
        changed: rewritten only when :meth:`group_stamp` changes."""
        return self.layout.source_stamp(group)

    def basis_day(self, batch: Batch) -> dt.date | None:
        """The basis day (contract section 5a) of ``batch``'s first trade date that its
        build reads: the business day before it, except before ``start`` under
        ``same_day_volume`` (whose rows never need it: only the other rule's pick of
        ``start`` would, which is then unknown)."""
        if self.cfg.roll_rule == PRIOR_DAY or batch.first > self.cfg.start:
            return self.calendar.previous_business_day(batch.first)
        return None

    def groups_for(self, root: str, batch: Batch) -> list[str]:
        """The decode groups whose files may hold bars of ``root`` in ``batch`` or on its
        basis day (:meth:`basis_day`): a file of the group names the root and the
        group's span meets the batch's."""
        named = {str(s.header.group) for s in self.sources_of(root)}
        first = self.basis_day(batch) or batch.first
        return sorted(
            g
            for g, span in self.group_spans.items()
            if g in named and overlaps(span, first, batch.last)
        )

    def used_groups(self) -> list[str]:
        """The decode groups some root's batch reads (the others are not decoded)."""
        return sorted({g for r in self.roots for b in self.batches for g in self.groups_for(r, b)})

    def batch(self, batch_id: str) -> Batch:
        """The batch named ``batch_id`` (a ``build_chunks`` wildcard).

        Raises:
            KeyError: no batch of this plan has that name.
        """
        for batch in self.batches:
            if batch.batch_id == batch_id:
                return batch
        raise KeyError(f"no batch {batch_id} in the plan")

    def chunk_ids(self) -> list[str]:
        """Every chunk of the plan, in date order (the same grid for every root)."""
        return [c.chunk_id for b in self.batches for c in b.chunks]


def make_plan(
    config: dict[str, Any],
    run_id: str | None = None,
    source_index: Path | None = None,
    write_index: bool = False,
    allow_no_sources: bool = False,
    cache_calendar: bool = False,
) -> Plan:
    """Check the settings and sources and plan the run (see :class:`Plan`).

    ``source_index`` (:mod:`dbn_backfill.sources.index`, a JSON file of the work
    directory) keeps the header and sha256 of every file whose fingerprint (size,
    mtime, ctime, inode) has not moved, so planning thousands of daily files stats
    them instead of reading them; ``write_index`` saves it (the main process only).
    Every header is still checked, and decoding re-reads the real header of every
    file it decodes.

    ``allow_no_sources`` plans a missing or empty ``dbn`` folder as holding no file
    (a dry run with ``fetch``, which downloads nothing). ``cache_calendar`` takes the
    calendar from the working directory's ``calendar.json`` when a previous plan built
    it from the same settings and ``pandas_market_calendars`` version (importing and
    running that library costs most of a second).

    Raises:
        ConfigError, SourceError: a bad setting or an unusable DBN file.
    """
    cfg = from_mapping(config)
    layout = Layout.of(cfg)
    calendar = run_calendar(cfg, layout.calendar_file if cache_calendar else None)
    try:
        paths = find_sources(cfg.dbn)
    except SourceError:
        if not allow_no_sources or (cfg.dbn.exists() and not cfg.dbn.is_dir()):
            raise
        paths = []
    sources = tuple(scan(paths, source_index, write=write_index))
    headers = tuple(s.header for s in sources)
    for header in headers:
        check_header(header, cfg.dataset)
    if headers:
        check_roots_named(cfg.symbols, headers)
    groups: dict[str, list[str]] = {}
    spans: dict[str, tuple[dt.date, dt.date | None]] = {}
    for header in headers:
        groups.setdefault(header.group, []).append(str(header.path))
        lo, hi = header_trade_span(header, calendar)
        if header.group in spans:
            old_lo, old_hi = spans[header.group]
            hi = None if hi is None or old_hi is None else max(hi, old_hi)
            lo = min(lo, old_lo)
        spans[header.group] = (lo, hi)
    batches = plan_chunks(calendar, cfg.start, cfg.end, cfg.chunk_days, cfg.chunks_per_job)
    return Plan(
        cfg=cfg,
        calendar=calendar,
        sources=sources,
        groups=groups,
        group_spans=spans,
        batches=tuple(batches),
        run_id=run_id or default_run_id(),
        layout=layout,
    )


def check_roots_named(roots: tuple[str, ...], headers: tuple[SourceHeader, ...]) -> None:
    """Contract section 11: every root of the run is named by some file's header (its
    requested symbols, or the outrights its symbol mappings list).

    Raises:
        SourceError: naming the roots no file holds and the roots the files do hold.
    """
    held = sorted({r for h in headers for r in h.roots})
    absent = [r for r in roots if r not in held]
    if absent:
        they = ", ".join(held) if held else "no outright of any root"
        raise SourceError(
            f"no outright of {', '.join(absent)} in the files; they hold {they}. "
            "Nothing was written. Check --symbol, or fetch that root's files first."
        )


def run_calendar(cfg: BackfillConfig, saved: Path | None = None) -> Calendar:
    """The business days of ``cfg``'s calendar settings (see
    :func:`dbn_backfill.tradedate.cme_calendar`; ``saved``: a copy a previous plan wrote).

    Raises:
        ConfigError: the calendar is unknown or ``session_roll`` is not ``HH:MM``.
    """
    try:
        return cme_calendar(cfg.calendar, cfg.session_tz, cfg.session_roll, saved)
    except ValueError as exc:
        raise ConfigError(f"config calendar={cfg.calendar!r}: {exc}") from exc


def write_calendar(plan: Plan) -> bool:
    """Write the plan's calendar (computed once, by the main process, while planning)
    where the jobs read it, unless it already holds exactly that: a changed calendar
    setting re-runs what depends on it, an unchanged one nothing. Returns whether it
    wrote."""
    return save_calendar(plan.calendar, plan.calendar_file())


def write_group_stamps(plan: Plan) -> list[str]:
    """Rewrite the stamp of every decode group whose content changed (see
    :meth:`Plan.stamp_file`); returns those groups."""
    return [
        g for g in plan.used_groups() if write_if_changed(plan.stamp_file(g), plan.group_stamp(g))
    ]


def write_plan_files(plan: Plan, scratch: Path | None = None) -> dict[str, str]:
    """Write the calendar and the decode groups' stamps where the jobs read them (only
    those that changed: :func:`write_calendar`, :func:`write_group_stamps`).

    With ``scratch`` (a dry run) nothing is written under the work directory: each file
    a real run would write, because it is missing or its content changed, is written
    under ``scratch`` instead, and the result maps its path to that copy, so the jobs'
    inputs can name the copy (a fresh file: Snakemake lists what a real run would run).

    Returns:
        ``{path under the work directory: path of its scratch copy}`` (empty for a real
        run).
    """
    if scratch is None:
        write_calendar(plan)
        write_group_stamps(plan)
        return {}
    moved: dict[str, str] = {}
    pending = [(plan.calendar_file(), None)] + [
        (plan.stamp_file(g), plan.group_stamp(g)) for g in plan.used_groups()
    ]
    for real, text in pending:
        copy = Path(scratch) / str(real).lstrip("/")
        if text is None:
            save_calendar(plan.calendar, copy)
        else:
            write_if_changed(copy, text)
        try:
            same = Path(real).read_bytes() == copy.read_bytes()
        except OSError:
            same = False
        if not same:
            moved[str(real)] = str(copy)
    return moved


def describe_chunks(plan: Plan) -> str:
    """The plan's chunks, one line per chunk with its build job, for ``snakemake -n``
    (the same grid for every root)."""
    lines = [
        f"plan: {len(plan.chunk_ids())} chunks of {plan.cfg.chunk_days} trading days in "
        f"{len(plan.batches)} build_chunks jobs per root, roots {', '.join(plan.roots)}"
    ]
    for batch in plan.batches:
        for chunk in batch.chunks:
            lines.append(f"  {chunk.chunk_id}  {chunk.first}..{chunk.last}  in {batch.batch_id}")
    return "\n".join(lines)


def default_run_id() -> str:
    """A new run id: the UTC start time and the process id."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{os.getpid()}"


def check_before_run(plan: Plan, workdir: Path) -> None:
    """What must hold before a (non dry) run starts any work, in this order: the
    database file, its folder, the checkpoint folder and the work directory are
    writable, no other run holds the locks (taken here, held until this process
    exits), no other process has the database open, no chunk of the plan failed
    before on its data; then the merge markers the database contradicts are removed
    (:func:`dbn_backfill.store.batches.reconcile_markers`).

    Raises:
        ConfigError: the database, checkpoint or work location cannot be written.
        LockError: another backfill runs on the same database or work directory, or
            another process (a notebook) has the database open.
        SchemaMismatchError: the database file is not a DuckDB database.
        CheckpointError: a chunk of the plan failed on its data before and
            ``retry_failed`` is off.
    """
    check_writable(plan.cfg, workdir)
    for lock_file, what in lock_paths(plan, workdir):
        lock.acquire(lock_file, what)
    check_not_open_elsewhere(plan.cfg.db)
    for root in plan.roots:
        checkpoints.adopt_legacy(plan.layout.checkpoint_root, root)
        checkpoints.drop_stale(
            plan.layout.checkpoint_dir(root), set(plan.chunk_ids()), plan.cfg.start, plan.cfg.end
        )
    check_failed(plan)
    # a batch's merge marker the database or the checkpoints contradict is removed, so
    # the DAG reruns that merge (and only that one)
    reconcile_markers(plan.layout, plan.roots, [b.batch_id for b in plan.batches], plan.cfg.db)


def check_failed(plan: Plan) -> None:
    """Stop at once when a chunk of the plan is ``failed`` on its data (``error_kind``
    ``data``) and ``retry_failed`` is off. A chunk failed by its environment (disk
    full, an I/O error, a signal) is retried by the next run without the flag."""
    if plan.cfg.retry_failed:
        return
    bad = [
        (root, chunk_id, error)
        for root in plan.roots
        for chunk_id, error in checkpoints.failed(
            plan.layout.checkpoint_dir(root), plan.chunk_ids(), kind="data"
        )
    ]
    if bad:
        listing = " | ".join(f"{root} {cid}: {err}" for root, cid, err in bad)
        raise CheckpointError(
            f"{len(bad)} chunks failed in an earlier run and retry_failed is off: {listing}. "
            "Fix the cause, then rerun with retry_failed=true (CLI: --retry-failed)."
        )


def lock_paths(plan: Plan, workdir: Path) -> list[tuple[Path, str]]:
    """The run locks (file, what it guards) of a run of ``plan`` in ``workdir``."""
    db = plan.cfg.db
    return [
        (db_lock(db), f"database {db}"),
        (Layout(Path(workdir)).workdir_lock, f"work directory {Path(workdir).resolve()}"),
    ]

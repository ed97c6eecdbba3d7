# Settings, the plan and helpers shared by every rule. Planning reads DBN headers
# only; no bar is read before a job runs.
import sys
import time
from pathlib import Path

from snakemake.utils import validate

from dbn_backfill.errors import BackfillError
from dbn_backfill.runtime.dryrun import keep_snakemake_state_untouched, scratch
from dbn_backfill.runtime.module_use import hand_over_handlers
from dbn_backfill.sources.fetch import fetch_from_config
from dbn_backfill.layout import Layout
from dbn_backfill.runtime.signals import (
    daemonize_scheduler_timers,
    make_sigterm_reentrant,
)
from dbn_backfill.planning.summary import print_summary
from dbn_backfill.planning.plan import (
    check_before_run,
    describe_chunks,
    make_plan,
    write_plan_files,
)
from dbn_backfill.views.runs import write_run_config

validate(config, "../schemas/config.schema.yaml")

RUN_STARTED = time.time()
DRY_RUN = workflow.output_settings.dryrun
# every path of the run, relative to the work directory (dbn_backfill/layout.py); the
# source index (what every DBN file held when last seen) is written by the main process
# of a real run only
SOURCE_INDEX = Layout().source_index
WRITES = workflow.is_main_process and not DRY_RUN
try:
    # fetch: true downloads the missing days before the plan reads the headers
    FETCHING = workflow.is_main_process and fetch_from_config(
        config,
        dry_run=DRY_RUN,
        header_cache=SOURCE_INDEX,
        calendar_cache=Layout().calendar_file,
    )
    PLAN = make_plan(
        config,
        run_id=config.get("run_id"),
        source_index=SOURCE_INDEX,
        write_index=WRITES,
        allow_no_sources=FETCHING and DRY_RUN,
        cache_calendar=True,
    )
    # the merge jobs read the run id from the config (a param would rerun them every run)
    config["run_id"] = PLAN.run_id
    if workflow.is_main_process and DRY_RUN:
        print(describe_chunks(PLAN), file=sys.stderr)
    if WRITES:
        check_before_run(PLAN, Path.cwd())
    # the calendar the plan computed is every job's input (no job of its own), a decode
    # group's stamp its decode's; a dry run writes them to a scratch folder instead, and
    # the inputs name those copies, so that -n shows the decodes a changed file reruns
    # and writes nothing (dbn_backfill/runtime/dryrun.py)
    DRY_RUN_COPIES = {}
    if workflow.is_main_process:
        DRY_RUN_COPIES = write_plan_files(PLAN, scratch() if DRY_RUN else None)
    if workflow.is_main_process and DRY_RUN:
        keep_snakemake_state_untouched()
    if WRITES:
        daemonize_scheduler_timers()
        make_sigterm_reentrant()
except BackfillError as error:
    raise WorkflowError(f"{type(error).__name__}: {error}") from None

LAYOUT = PLAN.layout
ROOTS = PLAN.roots
RUN_ID = PLAN.run_id


def log_file(rule, name, root=None):
    """The log of one job of ``rule`` (``name``: a wildcard pattern or the run id; with
    ``root``, a job of that root)."""
    return str(LAYOUT.log(rule, name, root))


def run_record(root, kind):
    """A record of this run for ``root``: config, merge, spot_check or gates."""
    return str(LAYOUT.run_record(root, RUN_ID, kind))


def run_records(kind):
    """The record ``kind`` of this run, of every root."""
    return [run_record(root, kind) for root in ROOTS]


def calendar_file():
    path = str(PLAN.calendar_file())
    return DRY_RUN_COPIES.get(path, path)


def group_stamp_file(wildcards):
    """A decode group's content stamp: its input, instead of the DBN files themselves,
    so that what reruns a decode is a change of content, never a bare mtime."""
    path = str(PLAN.stamp_file(wildcards.group))
    return DRY_RUN_COPIES.get(path, path)


def decoded_file(group, kind="parquet"):
    """A decode group's bars (parquet) or summary (json); ``group`` may be a pattern."""
    return str(LAYOUT.decoded(group, kind))


def batch_file(root, batch, kind):
    """A build job's bars, selection or manifest (see dbn_backfill/layout.py)."""
    return str(LAYOUT.batch_file(root, batch, kind))


def report_file(root, kind):
    """A file of the report target of ``root``."""
    return str(LAYOUT.report_file(root, kind))


def batch_decoded(wildcards):
    batch = PLAN.batch(wildcards.batch)
    return [decoded_file(group) for group in PLAN.groups_for(wildcards.root, batch)]


def batch_sources(wildcards):
    """The DBN files of the root that the batch reads (their unresolved records count
    for the root): only the batch's own groups, so a new file reruns only its batch."""
    batch = PLAN.batch(wildcards.batch)
    groups = set(PLAN.groups_for(wildcards.root, batch))
    return sorted(
        str(s.path) for s in PLAN.sources_of(wildcards.root) if s.header.group in groups
    )


def batch_summaries(wildcards):
    """The decode summaries of the groups a batch reads (its chunks' source lineage)."""
    batch = PLAN.batch(wildcards.batch)
    return [
        decoded_file(group, "json") for group in PLAN.groups_for(wildcards.root, batch)
    ]


def merge_marker(root, batch):
    """A batch's merge marker (the chunks and hashes its merge left in the database)."""
    return str(LAYOUT.merge_marker(root, batch))


def merge_markers():
    """Every root's every batch's merge marker, root by root."""
    return [merge_marker(r, b.batch_id) for r in ROOTS for b in PLAN.batches]


def source_stamps():
    """Every used decode group's content stamp: what changes when a file's content does."""
    stamps = [str(PLAN.stamp_file(group)) for group in PLAN.used_groups()]
    return [DRY_RUN_COPIES.get(path, path) for path in stamps]


#: per root, the gates' results kept beside their log
GATES_RESULTS = [str(LAYOUT.gates_results_log(root, RUN_ID)) for root in ROOTS]


def root_sources():
    """root -> the DBN files whose header names it (its spot-check and gates read them)."""
    return {root: PLAN.sources_of(root) for root in ROOTS}


onstart:
    print(
        f"dbn-backfill run {PLAN.run_id}: {','.join(ROOTS)} {PLAN.cfg.start}..{PLAN.cfg.end}, "
        f"{len(PLAN.headers)} DBN files in {len(PLAN.groups)} decode groups, "
        f"{len(PLAN.chunk_ids())} chunks of {PLAN.cfg.chunk_days} trading days in "
        f"{len(PLAN.batches)} build jobs per root, db {PLAN.cfg.db}",
        file=sys.stderr,
    )
    for root in ROOTS:
        record = write_run_config(LAYOUT, RUN_ID, PLAN.cfg.for_root(root))
    # the settings, with their types, are in each root's run record (config.json)
    print(f"settings: {record}", file=sys.stderr)


onsuccess:
    print_summary(PLAN, time.time() - RUN_STARTED, ok=True)


onerror:
    print_summary(PLAN, time.time() - RUN_STARTED, ok=False)


# Used as a module (`use rule * from ...`), Snakemake runs the handlers of the main
# Snakefile only: hand these over to it (dbn_backfill/runtime/module_use.py); in a
# normal run this does nothing.
hand_over_handlers(
    workflow, {"onstart": onstart, "onsuccess": onsuccess, "onerror": onerror}
)

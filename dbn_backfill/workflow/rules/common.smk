# Settings, the plan and helpers shared by every rule. Planning reads DBN headers
# only; no bar is read before a job runs.
import sys
import time
from pathlib import Path

from snakemake.utils import validate

from dbn_backfill.errors import BackfillError
from dbn_backfill.module_use import hand_over_handlers
from dbn_backfill.sources.fetch import fetch_from_config
from dbn_backfill.runtime.signals import make_sigterm_reentrant
from dbn_backfill.runtime.summary import daemonize_scheduler_timers, print_summary
from dbn_backfill.runtime.plan import (
    check_before_run,
    config_snapshot,
    describe_chunks,
    make_plan,
    write_calendar,
    write_group_stamps,
)
from dbn_backfill.views.runs import write_run_config

validate(config, "../schemas/config.schema.yaml")

RUN_STARTED = time.time()
DRY_RUN = workflow.output_settings.dryrun
# what every DBN file held when last seen (fingerprint, header, sha256): only the main
# process of a real run writes it
SOURCE_INDEX = Path(".dbn-backfill") / "sources.json"
# the spot-check's per-file counts (dbn_backfill/gates/spot.py)
SPOT_COUNTS = Path(".dbn-backfill") / "spot-counts"
WRITES = workflow.is_main_process and not DRY_RUN
try:
    # fetch: true downloads the missing days before the plan reads the headers
    FETCHING = workflow.is_main_process and fetch_from_config(
        config, dry_run=DRY_RUN, header_cache=SOURCE_INDEX
    )
    PLAN = make_plan(
        config,
        run_id=config.get("run_id"),
        source_index=SOURCE_INDEX,
        write_index=WRITES,
        allow_no_sources=FETCHING and DRY_RUN,
        cache_calendar=True,
    )
    if workflow.is_main_process and DRY_RUN:
        print(describe_chunks(PLAN), file=sys.stderr)
    if WRITES:
        check_before_run(PLAN, Path.cwd())
    if workflow.is_main_process:
        # also in a dry run, so that -n shows the decodes a changed file reruns; the
        # calendar the plan computed is every job's input (no job of its own)
        write_calendar(PLAN)
        write_group_stamps(PLAN)
    if WRITES:
        daemonize_scheduler_timers()
        make_sigterm_reentrant()
except BackfillError as error:
    raise WorkflowError(f"{type(error).__name__}: {error}") from None

ROOT = PLAN.root
LOGS = f"logs/{PLAN.cfg.symbol}"
RUN = f"{ROOT}/runs/{PLAN.run_id}"


def calendar_file():
    return str(PLAN.calendar_file())


def group_stamp_file(wildcards):
    """A decode group's content stamp: its input, instead of the DBN files themselves,
    so that what reruns a decode is a change of content, never a bare mtime."""
    return str(PLAN.stamp_file(wildcards.group))


def batch_decoded(wildcards):
    batch = PLAN.batch(wildcards.batch)
    return [f"{ROOT}/decoded/{group}.parquet" for group in PLAN.groups_for(batch)]


def group_summaries():
    used = {group for batch in PLAN.batches for group in PLAN.groups_for(batch)}
    return [f"{ROOT}/decoded/{group}.json" for group in sorted(used)]


def batch_files(kind):
    """Every batch's ``bars.parquet``, ``selection.parquet`` or ``manifest.json``."""
    return [f"{ROOT}/batches/{b.batch_id}.{kind}" for b in PLAN.batches]


def source_stamps():
    """Every decode group's content stamp: what changes when a DBN file's content does."""
    return [str(PLAN.stamp_file(group)) for group in sorted(PLAN.groups)]


def spot_counts():
    return f"{RUN}/spot_check.json"


def merge_report():
    return f"{RUN}/merge.json"


def gates_report():
    return f"{RUN}/gates.json"


onstart:
    print(
        f"dbn-backfill run {PLAN.run_id}: {PLAN.cfg.symbol} {PLAN.cfg.start}..{PLAN.cfg.end}, "
        f"{len(PLAN.headers)} DBN files in {len(PLAN.groups)} decode groups, "
        f"{len(PLAN.chunk_ids())} chunks of {PLAN.cfg.chunk_days} trading days in "
        f"{len(PLAN.batches)} build jobs, db {PLAN.cfg.db}",
        file=sys.stderr,
    )
    print(f"config snapshot: {config_snapshot(PLAN)}", file=sys.stderr)
    write_run_config(Path(RUN), PLAN.run_id, PLAN.cfg)


onsuccess:
    print_summary(
        PLAN, merge_report(), gates_report(), time.time() - RUN_STARTED, ok=True
    )


onerror:
    print_summary(
        PLAN, merge_report(), gates_report(), time.time() - RUN_STARTED, ok=False
    )


# Used as a module (`use rule * from ...`), Snakemake runs the handlers of the main
# Snakefile only: hand these over to it (dbn_backfill/module_use.py); in a normal run
# this does nothing.
hand_over_handlers(
    workflow, {"onstart": onstart, "onsuccess": onsuccess, "onerror": onerror}
)

"""The run summary printed at the end of every run (success or failure)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dbn_backfill.artifacts import ErrorKind, GatesReport, MergeReport
from dbn_backfill.store import checkpoints

T = TypeVar("T")

#: Failed chunks named one by one in the summary (the rest are counted; ``status``
#: lists them all).
FAILED_SHOWN = 5

if TYPE_CHECKING:
    from dbn_backfill.planning.plan import Plan


def collect(plan: Plan, seconds: float) -> dict[str, Any]:
    """What the run did, from its checkpoints and its per-root merge and gates reports
    (a report is missing when the run stopped before writing it)."""
    states: dict[str, int] = {}
    failed: list[str] = []
    failed_data = 0
    committed = skipped = rows = 0
    merged = gated = True
    gates_passed = True
    for root in plan.roots:
        folder = plan.layout.checkpoint_dir(root)
        for chunk_id in plan.chunk_ids():
            state = checkpoints.read(folder, chunk_id)
            status = state.status.value if state else "pending"  # a plain str: printed as is
            states[status] = states.get(status, 0) + 1
            if state is not None and status == "failed":
                failed.append(f"{root} {chunk_id}: {state.error}")
                failed_data += state.failure_kind == ErrorKind.DATA
        merge = _load(MergeReport.read, plan.layout.run_record(root, plan.run_id, "merge"))
        gates = _load(GatesReport.read, plan.layout.run_record(root, plan.run_id, "gates"))
        merged = merged and merge is not None
        gated = gated and gates is not None
        if merge is not None:
            committed += len(merge.committed)
            skipped += len(merge.skipped)
            rows += merge.rows_inserted
        if gates is not None:
            gates_passed = gates_passed and gates.passed
    return {
        "run_id": plan.run_id,
        "roots": list(plan.roots),
        "chunks": len(plan.chunk_ids()) * len(plan.roots),
        "checkpoints": states,
        "chunks_committed": committed if merged else None,
        "chunks_skipped": skipped if merged else None,
        "chunks_failed": len(failed),
        "rows_inserted": rows if merged else None,
        "gates_passed": gates_passed if gated else None,
        "wall_seconds": round(seconds, 2),
        "failed": failed,
        "failed_data": failed_data,
        "log": _existing(plan.layout.run_log(plan.run_id)),
    }


def _existing(path: Path) -> str | None:
    """``path`` made absolute when it exists (the run log of a ``dbn-backfill`` run;
    a direct Snakemake run has none), else None."""
    return str(path.resolve()) if path.is_file() else None


def summary_lines(s: dict[str, Any], ok: bool) -> list[str]:
    """The run summary (:func:`collect`) as the lines a person reads: no ``None`` (a
    report the run never reached is said in words), and on failure the next command."""
    states = ", ".join(f"{k} {v}" for k, v in sorted(s["checkpoints"].items())) or "none"
    if s["chunks_committed"] is None:
        chunks = f"the merge did not finish, {s['chunks_failed']} failed"
        rows = "rows inserted: none (no merge report)"
    else:
        chunks = (
            f"committed {s['chunks_committed']}, skipped (already committed) "
            f"{s['chunks_skipped']}, failed {s['chunks_failed']}"
        )
        rows = f"rows inserted: {s['rows_inserted']}"
    gates = "not run" if s["gates_passed"] is None else s["gates_passed"]
    lines = [
        f"dbn-backfill summary ({'OK' if ok else 'FAILED'}), run {s['run_id']}, "
        f"{', '.join(s['roots'])}:",
        f"  chunks: {s['chunks']} in plan; {chunks}; checkpoints: {states}",
        f"  {rows}; gates passed: {gates}; wall time {s['wall_seconds']} s",
    ]
    lines += [f"  failed {f}" for f in s["failed"][:FAILED_SHOWN]]
    if len(s["failed"]) > FAILED_SHOWN:
        lines.append(
            f"  ... and {len(s['failed']) - FAILED_SHOWN} more failed chunks "
            "(dbn-backfill status lists them)"
        )
    if ok and s["chunks_committed"] == 0 and not s["failed"]:
        lines.append(
            "  nothing to do: every chunk was committed before; the database is up to date"
        )
    if s.get("log"):
        lines.append(f"  Snakemake's output and every job's log lines: {s['log']}")
    if not ok and s["failed"] and s.get("failed_data", len(s["failed"])):
        lines.append(
            "  next: fix the file named in the failed chunk's error, then rerun the same "
            "command with --retry-failed"
        )
    elif not ok and s["failed"]:
        lines.append(
            "  next: the machine failed these chunks, not their data (disk full, I/O, a "
            "signal): fix it and rerun the same command; no --retry-failed needed"
        )
    elif not ok:
        lines.append(
            "  next: see the error above (the job's log has the detail); fix the cause "
            "and rerun the same command"
        )
    return lines


def print_summary(plan: Plan, seconds: float, ok: bool) -> None:
    """Print the run's summary to stderr (:func:`collect`, :func:`summary_lines`)."""
    print("\n".join(summary_lines(collect(plan, seconds), ok)), file=sys.stderr)


def _load(read: Callable[[Path], T], path: Path) -> T | None:
    """The report at ``path``, or None when the run stopped before writing it."""
    try:
        return read(path)
    except (OSError, ValueError, KeyError):
        return None

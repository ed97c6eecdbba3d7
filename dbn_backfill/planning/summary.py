"""The run summary printed at the end of every run (success or failure)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dbn_backfill.artifacts import GatesReport, MergeReport
from dbn_backfill.store import checkpoints

T = TypeVar("T")

if TYPE_CHECKING:
    from dbn_backfill.planning.plan import Plan


def collect(plan: Plan, merge_report: str, gates_report: str, seconds: float) -> dict[str, Any]:
    states: dict[str, int] = {}
    failed: list[str] = []
    for chunk_id in plan.chunk_ids():
        state = checkpoints.read(plan.cfg.checkpoint, chunk_id)
        status = state.status.value if state else "pending"  # a plain str: printed as is
        states[status] = states.get(status, 0) + 1
        if status == "failed":
            failed.append(f"{chunk_id}: {state.error if state else None}")
    merge = _load(MergeReport.read, merge_report)
    gates = _load(GatesReport.read, gates_report)
    return {
        "run_id": plan.run_id,
        "chunks": len(plan.chunk_ids()),
        "checkpoints": states,
        "chunks_committed": len(merge.committed) if merge else None,
        "chunks_skipped": len(merge.skipped) if merge else None,
        "chunks_failed": len(failed),
        "rows_inserted": merge.rows_inserted if merge else None,
        "gates_passed": gates.passed if gates else None,
        "wall_seconds": round(seconds, 2),
        "failed": failed,
    }


def print_summary(
    plan: Plan, merge_report: str, gates_report: str, seconds: float, ok: bool
) -> None:
    s = collect(plan, merge_report, gates_report, seconds)
    lines = [
        f"dbn-backfill summary ({'OK' if ok else 'FAILED'}), run {s['run_id']}:",
        f"  chunks: {s['chunks']} in plan; committed {s['chunks_committed']}, "
        f"skipped (already committed) {s['chunks_skipped']}, failed {s['chunks_failed']}; "
        f"checkpoints {s['checkpoints']}",
        f"  rows inserted: {s['rows_inserted']}; gates passed: {s['gates_passed']}; "
        f"wall time {s['wall_seconds']} s",
    ]
    lines += [f"  failed {f}" for f in s["failed"]]
    if not ok:
        lines.append(
            "  see the log of the failed job above; fix the cause and rerun the same command"
        )
    print("\n".join(lines), file=sys.stderr)


def _load(read: Callable[[Path], T], path: str) -> T | None:
    """The report at ``path``, or None when the run stopped before writing it."""
    try:
        return read(Path(path))
    except (OSError, ValueError, KeyError):
        return None

"""The merge of a run's roots (contract section 11), around the one-root merge of
:mod:`dbn_backfill.store.merge`.

Completeness is checked for every root before anything is written: one root missing
a business day stops the whole run. Then each root's chunks are committed in turn,
by the single writer; a root's chunk that failed on its data does not keep the other
roots' valid chunks from committing, and the merge then stops naming every failed
chunk with its root. A database or environment error, or a signal, stops at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from dbn_backfill.artifacts import BatchManifest, FileSummary, MergeReport
from dbn_backfill.config import BackfillConfig
from dbn_backfill.errors import ChunksFailed
from dbn_backfill.store.merge import ChunkInput, check_complete, load_chunks, merge, missing_days
from dbn_backfill.tradedate import Calendar


@dataclass(frozen=True)
class RootChunks:
    """One root's built chunks (every batch of the plan)."""

    root: str
    chunks: list[ChunkInput]


def load_roots(
    roots: tuple[str, ...],
    manifests: list[Path],
    bars: list[Path],
    selections: list[Path],
    terms: list[Path] | None = None,
) -> list[RootChunks]:
    """Every root's chunks, from the build outputs listed root by root (each root the
    same number of batches, in the order of ``roots``).

    Raises:
        ValueError: the lists do not split evenly among the roots, or a manifest's
            path is not under its root's results.
    """
    n = len(manifests)
    if n % max(len(roots), 1) or not (len(bars) == len(selections) == n):
        raise ValueError(f"{n} manifests, {len(bars)} bars files for {len(roots)} roots")
    per = n // len(roots) if roots else 0
    out = []
    for i, root in enumerate(roots):
        part = slice(i * per, (i + 1) * per)
        out.append(
            RootChunks(
                root,
                load_chunks(
                    [BatchManifest.read(p) for p in manifests[part]],
                    list(bars[part]),
                    list(selections[part]),
                    list(terms[part]) if terms is not None else None,
                ),
            )
        )
    return out


def merge_roots(
    *,
    cfg: BackfillConfig,
    roots: list[RootChunks],
    calendar: Calendar,
    sources: dict[str, FileSummary],
    run_id: str,
) -> dict[str, MergeReport]:
    """Commit every root's chunks; see the module docstring.

    Returns:
        root -> what its merge committed, skipped and failed.

    Raises:
        CompletenessError: a root lacks a business day (nothing written).
        ChunksFailed: chunks of one or more roots failed (every valid chunk committed);
            ``failed`` lists them all.
        SchemaMismatchError, BackfillError, Interrupted: see
            :func:`dbn_backfill.store.merge.merge` (the merge stops at once).
    """
    missing: dict[str, list[dt.date]] = {}
    for part in roots:
        root_cfg = cfg.for_root(part.root)
        missing[part.root] = missing_days(
            part.chunks, calendar, cfg.start, cfg.end, root_cfg.expected_gaps
        )
    check_complete(missing, cfg)
    reports: dict[str, MergeReport] = {}
    failed: list[tuple[str, str, str]] = []
    for part in roots:
        try:
            reports[part.root] = merge(
                cfg=cfg.for_root(part.root),
                chunks=part.chunks,
                calendar=calendar,
                sources=sources,
                run_id=run_id,
            )
        except ChunksFailed as exc:
            failed += exc.failed
    if failed:
        by_root = sorted({root for root, _, _ in failed})
        raise ChunksFailed(
            f"{len(failed)} chunks failed and were not committed "
            f"({', '.join(by_root)}; every valid chunk of every root was committed): "
            + " | ".join(f"{root} {cid}: {err}" for root, cid, err in failed)
            + ". Fix the cause, then rerun with retry_failed=true (CLI: --retry-failed).",
            failed,
        )
    return reports

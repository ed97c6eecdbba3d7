"""Commit while building (:mod:`dbn_backfill.store.batches`) on a real DuckDB file with
small hand-built batches: batches merged one by one, in any order, give the table of
one merge; the markers say what the database holds and the plan's reconcile removes
those it contradicts; the run's merge record comes from the markers; completeness is
checked from the decoded records before any write."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_merge import CALENDAR, DAYS, SOURCES, batch, chunk_id, config, query

from dbn_backfill.artifacts import FailedChunk, MergeMarker
from dbn_backfill.errors import ChunksFailed, CompletenessError
from dbn_backfill.layout import Layout
from dbn_backfill.store import merge
from dbn_backfill.store.batches import (
    check_decoded_complete,
    merge_batch,
    merge_report,
    reconcile_markers,
)
from dbn_backfill.store.database import connect, ensure_tables

TABLES = ("bars_1m", "bars_1m_trade_dates", "bars_1m_chunks", "bars_1m_chunk_sources")
ORDER = {
    "bars_1m": "ts_utc",
    "bars_1m_trade_dates": "trade_date",
    "bars_1m_chunks": "chunk_id",
    "bars_1m_chunk_sources": "chunk_id",
}


def merged(tmp_path: Path, name: str, days: list[dt.date], run_id: str = "run1", **kw):
    """Merge one batch of one-day chunks; returns its marker, written where the plan
    looks for it."""
    cfg = config(tmp_path)
    marker = merge_batch(
        cfg=cfg,
        batch_id=name,
        chunks=batch(tmp_path / "b", name, days, **kw),
        calendar=CALENDAR,
        sources=SOURCES,
        run_id=run_id,
    )
    marker.write(Layout.of(cfg).merge_marker("MGC", name))
    return marker


def snapshot(tmp_path: Path) -> dict[str, list[tuple]]:
    """Every table, without the commit times and run ids (which differ by design).

    These hand-built selections lack the roll rule's columns, which every merge's
    migration fills in the rows already there (a real build writes them): the database
    is migrated once more first, as the next run's merge would."""
    with connect(tmp_path / "bars.duckdb") as con:
        ensure_tables(con, tmp_path / "bars.duckdb", CALENDAR)
    out = {}
    with duckdb.connect(str(tmp_path / "bars.duckdb"), read_only=True) as con:
        for table in TABLES:
            cols = [
                r[0]
                for r in con.execute(f"DESCRIBE {table}").fetchall()
                if r[0] not in ("committed_at", "run_id")
            ]
            out[table] = con.execute(
                f"SELECT {', '.join(cols)} FROM {table} ORDER BY {ORDER[table]}"
            ).fetchall()
    return out


def reconcile(tmp_path: Path) -> list[str]:
    cfg = config(tmp_path)
    removed = reconcile_markers(Layout.of(cfg), ["MGC"], ["b1", "b2"], cfg.db)
    return sorted(p.stem for p in removed)


def test_batches_merged_in_any_order_equal_one_merge(tmp_path):
    one = tmp_path / "one"
    merge.merge(
        cfg=config(one),
        chunks=batch(one / "b", "all", DAYS),
        calendar=CALENDAR,
        sources=SOURCES,
        run_id="run1",
    )
    late = merged(tmp_path, "b2", DAYS[2:])  # the later batch first
    early = merged(tmp_path, "b1", DAYS[:2])
    assert snapshot(tmp_path) == snapshot(one)
    assert early.committed == [chunk_id(d) for d in DAYS[:2]] and late.skipped == []
    assert early.chunks == {chunk_id(d): f"{d}:3:2000.0" for d in DAYS[:2]}
    assert early.rows_inserted == 6 and not early.failed


def test_a_failed_chunk_is_in_the_marker_and_the_other_chunks_commit(tmp_path):
    marker = merged(tmp_path, "b1", DAYS, broken={DAYS[1]: "high < low at 14:31"})
    assert marker.failed == [FailedChunk(chunk_id(DAYS[1]), "high < low at 14:31")]
    assert sorted(marker.chunks) == [chunk_id(DAYS[0]), chunk_id(DAYS[2])]
    got = query(tmp_path, "SELECT chunk_id FROM bars_1m_chunks ORDER BY 1")
    assert got == [(chunk_id(DAYS[0]),), (chunk_id(DAYS[2]),)]


def test_reconcile_keeps_true_markers_and_removes_the_contradicted(tmp_path):
    merged(tmp_path, "b1", DAYS[:2])
    merged(tmp_path, "b2", DAYS[2:])
    assert reconcile(tmp_path) == []  # a no-op rerun: every merge stays done
    # the database lost a chunk of b2 (a rollback, a chunk replaced): b2 merges again
    with duckdb.connect(str(tmp_path / "bars.duckdb")) as con:
        con.execute("DELETE FROM bars_1m_chunks WHERE chunk_id = ?", [chunk_id(DAYS[2])])
    assert reconcile(tmp_path) == ["b2"]
    merged(tmp_path, "b2", DAYS[2:])
    # another content hash in the database than in the marker
    with duckdb.connect(str(tmp_path / "bars.duckdb")) as con:
        con.execute(
            "UPDATE bars_1m_chunks SET content_hash = 'x' WHERE chunk_id = ?", [chunk_id(DAYS[0])]
        )
    assert reconcile(tmp_path) == ["b1"]
    merged(tmp_path, "b1", DAYS[:2])
    # a checkpoint removed: the merge reruns and repairs it from the lineage
    (tmp_path / "checkpoints" / "MGC" / f"{chunk_id(DAYS[2])}.json").unlink()
    assert reconcile(tmp_path) == ["b2"]
    merged(tmp_path, "b2", DAYS[2:])
    # an unreadable marker
    Layout.of(config(tmp_path)).merge_marker("MGC", "b1").write_text("{")
    assert reconcile(tmp_path) == ["b1"]
    merged(tmp_path, "b1", DAYS[:2])
    # the database deleted: every marker goes
    (tmp_path / "bars.duckdb").unlink()
    assert reconcile(tmp_path) == ["b1", "b2"]


def test_reconcile_removes_a_marker_with_a_failed_chunk(tmp_path):
    merged(tmp_path, "b1", DAYS[:2], broken={DAYS[0]: "bad"})
    merged(tmp_path, "b2", DAYS[2:])
    assert reconcile(tmp_path) == ["b1"]  # retry_failed: the batch merges again


def test_merge_report_splits_this_runs_commits_from_earlier_ones():
    old = MergeMarker("r1", "MGC", "b1", {"c1": "h1", "c2": "h2"}, committed=["c1", "c2"])
    new = MergeMarker("r2", "MGC", "b2", {"c4": "h4", "c3": "h3"}, committed=["c4"], skipped=["c3"])
    new.rows_inserted, new.seconds = 7, 1.5
    (report,) = merge_report({"MGC": [new, old]}, "r2").values()
    assert report.run_id == "r2"
    assert report.committed == ["c4"] and report.skipped == ["c1", "c2", "c3"]
    assert report.rows_inserted == 7 and report.seconds == 1.5


def test_merge_report_fails_naming_every_failed_chunk_of_every_root():
    mgc = MergeMarker("r", "MGC", "b1", failed=[FailedChunk("c1", "high < low")])
    gc = MergeMarker("r", "GC", "b1", failed=[FailedChunk("c2", "gap")])
    ok = MergeMarker("r", "GC", "b2", {"c3": "h"}, committed=["c3"])
    with pytest.raises(ChunksFailed) as info:
        merge_report({"MGC": [mgc], "GC": [gc, ok]}, "r")
    assert info.value.failed == [("MGC", "c1", "high < low"), ("GC", "c2", "gap")]
    assert "MGC c1: high < low | GC c2: gap" in str(info.value)
    assert "--retry-failed" in str(info.value)


def decoded(path: Path, rows: list[tuple[str | None, dt.date]]) -> Path:
    """A decoded parquet's two columns the check reads (``root`` null: unresolved)."""
    roots = pa.array([r for r, _ in rows], pa.string()).dictionary_encode()
    dates = pa.array([d for _, d in rows], pa.date32())
    pq.write_table(pa.table({"root": roots, "trade_date": dates}), path)
    return path


def test_completeness_is_checked_from_the_decoded_records_for_every_root(tmp_path):
    cfg = dataclasses.replace(config(tmp_path), symbols=("MGC", "GC"))
    files = [
        decoded(tmp_path / "a.parquet", [("MGC", d) for d in DAYS] + [("GC", DAYS[0])]),
        # GC's 2024-01-04 only unresolved: not a GC bar
        decoded(tmp_path / "b.parquet", [("GC", DAYS[2]), (None, DAYS[1])]),
    ]
    with pytest.raises(CompletenessError) as info:
        check_decoded_complete(cfg, CALENDAR, files)
    message = str(info.value)
    assert "no outright GC bars" in message and "2024-01-03" in message
    assert "MGC" not in message.split("have no")[0] and "Nothing was written" in message
    gapped = dataclasses.replace(cfg, root_gaps=(("GC", DAYS[1]),))
    marker = check_decoded_complete(gapped, CALENDAR, files)
    assert marker.days == {"MGC": 3, "GC": 2}

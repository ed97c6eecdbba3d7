"""The merge on a temporary DuckDB file with small hand-built chunks (no Snakemake, no
DBN): what it commits, skips, repairs, fails and rolls back, and what each chunk's
checkpoint says afterwards (contract section 8)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dbn_backfill.artifacts import ChunkResult, ErrorKind, FileSummary, MergeReport
from dbn_backfill.config import BackfillConfig
from dbn_backfill.errors import (
    BackfillError,
    CheckpointTransitionError,
    CompletenessError,
    Interrupted,
)
from dbn_backfill.schema import ARROW_SCHEMA, SELECTION_SCHEMA
from dbn_backfill.store import checkpoints, merge
from dbn_backfill.store.merge import ChunkInput, error_kind
from dbn_backfill.tradedate import Calendar

D = dt.date
#: 2024-01-01 is a holiday: the business days around the first trade dates of 2024
CALENDAR = Calendar(
    "CME_TradeDate",
    "America/Chicago",
    "17:00",
    np.array(
        ["2023-12-29", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"],
        dtype="datetime64[D]",
    ),
)
DAYS = [D(2024, 1, 2), D(2024, 1, 3), D(2024, 1, 4)]
SOURCE = "/dbn/glbx-mdp3-2024.ohlcv-1m.dbn.zst"
SOURCES = {SOURCE: FileSummary(SOURCE, 1000, "ab" * 32, 2)}


def chunk_id(day: dt.date) -> str:
    return f"chunk_{day:%Y%m%d}_{day:%Y%m%d}"


def config(tmp_path: Path, *, retry_failed: bool = False) -> BackfillConfig:
    return BackfillConfig(
        dbn=tmp_path / "dbn",
        db=tmp_path / "bars.duckdb",
        symbols=("MGC",),
        start=DAYS[0],
        end=DAYS[-1],
        chunk_days=1,
        checkpoint=tmp_path / "checkpoints",
        dataset="GLBX.MDP3",
        calendar="CME_TradeDate",
        session_tz="America/Chicago",
        session_roll="17:00",
        expected_gaps=(),
        root_gaps=(),
        retry_failed=retry_failed,
        spot_check_days=0,
        chunks_per_job=10,
        fetch=False,
        databento_gateway="",
        fetch_max_cost=5.0,
        fetch_retries=0,
        fetch_backoff=0.0,
        roll_rule="same_day_volume",
    )


def bars_of(day: dt.date, n: int, price: float) -> pa.Table:
    """``n`` bars of ``day``'s day session (14:30 UTC on), all MGCG4."""
    ts = pd.date_range(
        pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=14, minutes=30), periods=n, freq="min"
    )
    return pa.table(
        {
            "ts_utc": pa.array(ts.as_unit("us"), pa.timestamp("us", tz="UTC")),
            "symbol": ["MGC"] * n,
            "source_symbol": ["MGCG4"] * n,
            "open": [price] * n,
            "high": [price + 1] * n,
            "low": [price - 1] * n,
            "close": [price] * n,
            "volume": [10] * n,
        },
        schema=ARROW_SCHEMA,
    )


def batch(
    folder: Path,
    name: str,
    days: list[dt.date],
    *,
    rows: int = 3,
    price: float = 2000.0,
    broken: dict[dt.date, str] | None = None,
    expected: dict[dt.date, int] | None = None,
) -> list[ChunkInput]:
    """One build batch of one-day chunks as the build writes it: a bars parquet with one
    row group per chunk, a selection parquet, and their manifest entries. ``broken``:
    chunks the build rejected (day -> message); ``expected``: a manifest row count other
    than the rows written."""
    broken, expected = broken or {}, expected or {}
    folder.mkdir(parents=True, exist_ok=True)
    bars_path, selection_path = (
        folder / f"{name}.bars.parquet",
        folder / f"{name}.selection.parquet",
    )
    selection = []
    out = []
    with pq.ParquetWriter(bars_path, ARROW_SCHEMA) as writer:
        group = 0
        for day in days:
            cid = chunk_id(day)
            if day in broken:
                entry = ChunkResult(
                    cid,
                    str(day),
                    str(day),
                    "failed",
                    0,
                    "",
                    [str(day)],
                    [SOURCE],
                    error=broken[day],
                    last_ts_event=f"{day} 14:30:00+00:00",
                )
            else:
                writer.write_table(bars_of(day, rows, price))
                selection.append(
                    {
                        "symbol": "MGC",
                        "trade_date": day,
                        "source_symbol": "MGCG4",
                        "instrument_id": 42,
                        "volume": 10 * rows,
                        "runner_up": None,
                        "runner_up_volume": None,
                        "chunk_id": cid,
                    }
                )
                content = f"{day}:{rows}:{price}"
                entry = ChunkResult(
                    cid,
                    str(day),
                    str(day),
                    "ok",
                    expected.get(day, rows),
                    content,
                    [str(day)],
                    [SOURCE],
                    row_group=group,
                )
                group += 1
            out.append(ChunkInput(cid, day, day, bars_path, selection_path, entry))
    pq.write_table(pa.Table.from_pylist(selection, schema=SELECTION_SCHEMA), selection_path)
    return out


def run(tmp_path: Path, chunks: list[ChunkInput], run_id: str = "run1", **kw) -> MergeReport:
    return merge.merge(
        cfg=config(tmp_path, **kw), chunks=chunks, calendar=CALENDAR, sources=SOURCES, run_id=run_id
    )


def state(tmp_path: Path, day: dt.date) -> dict:
    return json.loads(
        checkpoints.path_for(tmp_path / "checkpoints" / "MGC", chunk_id(day)).read_text()
    )


def query(tmp_path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "bars.duckdb"), read_only=True) as con:
        con.execute("SET TimeZone='UTC'")
        return con.execute(sql).fetchall()


def rows_per_day(tmp_path: Path) -> dict[dt.date, int]:
    got = query(
        tmp_path,
        "SELECT CAST(ts_utc AS DATE), count(*) FROM bars_1m GROUP BY 1 ORDER BY 1",
    )
    return {d: n for d, n in got}


def committed_at(tmp_path: Path) -> dict[str, dt.datetime]:
    return dict(query(tmp_path, "SELECT chunk_id, committed_at FROM bars_1m_chunks"))


# --- commit ---------------------------------------------------------------------------


def test_commits_every_chunk_with_lineage_and_done_checkpoints(tmp_path):
    report = run(tmp_path, batch(tmp_path / "b1", "batch", DAYS))
    assert report.committed == [chunk_id(d) for d in DAYS]
    assert (report.skipped, report.failed, report.rows_inserted) == ([], [], 9)
    assert rows_per_day(tmp_path) == {d: 3 for d in DAYS}
    assert query(tmp_path, "SELECT count(*) FROM bars_1m_trade_dates") == [(3,)]
    assert query(tmp_path, "SELECT DISTINCT path FROM bars_1m_chunk_sources") == [(SOURCE,)]
    commits = committed_at(tmp_path)
    for day in DAYS:
        s = state(tmp_path, day)
        assert s["status"] == "done" and s["error_kind"] is None and s["error"] is None
        assert (s["rows_written"], s["run_id"], s["content_hash"]) == (3, "run1", f"{day}:3:2000.0")
        assert s["source"] == [SOURCE]
        assert dt.datetime.fromisoformat(s["finished_at"]) == commits[chunk_id(day)]
        assert s["started_at"] <= s["finished_at"]


# --- skip, repair ---------------------------------------------------------------------


def test_unchanged_content_is_skipped_and_a_stale_checkpoint_repaired(tmp_path):
    run(tmp_path, batch(tmp_path / "b1", "batch", DAYS))
    commits = committed_at(tmp_path)
    folder = tmp_path / "checkpoints" / "MGC"
    untouched = checkpoints.path_for(folder, chunk_id(DAYS[0])).read_bytes()
    # killed between the commit of DAYS[1] and its checkpoint: the file says in_progress
    stale = checkpoints.read(folder, chunk_id(DAYS[1]))
    assert stale is not None
    stale = stale.start(source=[SOURCE], retry_failed=False, at="2030-01-01T00:00:00.000+00:00")
    checkpoints.write(folder, stale)
    # and the checkpoint of DAYS[2] was lost altogether
    checkpoints.path_for(folder, chunk_id(DAYS[2])).unlink()

    report = run(tmp_path, batch(tmp_path / "b2", "batch", DAYS), run_id="run2")
    assert (report.committed, report.rows_inserted) == ([], 0)
    assert report.skipped == [chunk_id(d) for d in DAYS]
    assert committed_at(tmp_path) == commits  # nothing recommitted
    assert rows_per_day(tmp_path) == {d: 3 for d in DAYS}
    assert checkpoints.path_for(folder, chunk_id(DAYS[0])).read_bytes() == untouched
    for day, started in ((DAYS[1], stale.started_at), (DAYS[2], None)):
        s = state(tmp_path, day)
        assert s["status"] == "done" and s["rows_written"] == 3
        assert dt.datetime.fromisoformat(s["finished_at"]) == commits[chunk_id(day)]
        assert s["started_at"] == (started or s["finished_at"])
        assert s["run_id"] != "run2"  # not this run's commit


def test_changed_content_is_committed_again(tmp_path):
    run(tmp_path, batch(tmp_path / "b1", "batch", DAYS))
    before = committed_at(tmp_path)
    changed = batch(tmp_path / "b2", "batch", DAYS[:1], rows=5, price=2100.0) + batch(
        tmp_path / "b2", "rest", DAYS[1:]
    )
    report = run(tmp_path, changed, run_id="run2")
    assert report.committed == [chunk_id(DAYS[0])]
    assert report.skipped == [chunk_id(d) for d in DAYS[1:]]
    assert rows_per_day(tmp_path) == {DAYS[0]: 5, DAYS[1]: 3, DAYS[2]: 3}
    assert query(
        tmp_path, f"SELECT DISTINCT open FROM bars_1m WHERE CAST(ts_utc AS DATE) = '{DAYS[0]}'"
    ) == [(2100.0,)]
    s = state(tmp_path, DAYS[0])
    assert (s["status"], s["rows_written"], s["run_id"], s["content_hash"]) == (
        "done",
        5,
        "run2",
        f"{DAYS[0]}:5:2100.0",
    )
    after = committed_at(tmp_path)
    assert after[chunk_id(DAYS[0])] > before[chunk_id(DAYS[0])]
    assert after[chunk_id(DAYS[1])] == before[chunk_id(DAYS[1])]


# --- failures -------------------------------------------------------------------------


def test_a_failed_chunk_does_not_stop_the_valid_ones_and_fails_the_merge(tmp_path):
    message = (
        f"chunk {chunk_id(DAYS[1])}: 1 invalid outright records (contract section 4), first: file x"
    )
    chunks = batch(tmp_path / "b1", "batch", DAYS, broken={DAYS[1]: message})
    with pytest.raises(BackfillError, match="1 MGC chunks failed and were not committed") as err:
        run(tmp_path, chunks)
    assert message in str(err.value) and "2 valid chunks committed" in str(err.value)
    assert rows_per_day(tmp_path) == {DAYS[0]: 3, DAYS[2]: 3}
    assert sorted(committed_at(tmp_path)) == [chunk_id(DAYS[0]), chunk_id(DAYS[2])]
    s = state(tmp_path, DAYS[1])
    assert (s["status"], s["error"], s["error_kind"]) == ("failed", message, "data")
    assert s["last_ts_event"] == f"{DAYS[1]} 14:30:00+00:00" and s["source"] == [SOURCE]
    assert [state(tmp_path, d)["status"] for d in (DAYS[0], DAYS[2])] == ["done", "done"]


def test_a_business_day_without_bars_writes_nothing(tmp_path):
    with pytest.raises(CompletenessError, match="2024-01-03"):
        run(tmp_path, batch(tmp_path / "b1", "batch", [DAYS[0], DAYS[2]]))
    assert not (tmp_path / "checkpoints").exists()
    assert query(tmp_path, "SELECT count(*) FROM bars_1m") == [(0,)]


def test_a_chunk_whose_insert_is_wrong_rolls_back_as_a_data_failure(tmp_path):
    chunks = batch(tmp_path / "b1", "batch", DAYS, expected={DAYS[1]: 4})
    with pytest.raises(
        BackfillError, match=f"chunk {chunk_id(DAYS[1])} rolled back: .*inserted 3 rows, expected 4"
    ) as err:
        run(tmp_path, chunks)
    assert "no --retry-failed needed" not in str(err.value)
    assert rows_per_day(tmp_path) == {DAYS[0]: 3}  # rolled back; the merge stopped there
    assert sorted(committed_at(tmp_path)) == [chunk_id(DAYS[0])]
    s = state(tmp_path, DAYS[1])
    assert (s["status"], s["error_kind"], s["rows_written"]) == ("failed", "data", 0)
    assert s["error"].startswith("BackfillError: chunk") and s["started_at"] <= s["finished_at"]
    assert state(tmp_path, DAYS[2])["status"] == "pending"


def test_a_chunk_whose_bars_cannot_be_read_rolls_back_as_an_environment_failure(tmp_path):
    chunks = batch(tmp_path / "b1", "one", DAYS[:1]) + batch(tmp_path / "b1", "two", DAYS[1:])
    chunks[1].bars.unlink()  # the file system lost it
    with pytest.raises(BackfillError, match="no --retry-failed needed"):
        run(tmp_path, chunks)
    s = state(tmp_path, DAYS[1])
    assert (s["status"], s["error_kind"]) == ("failed", "environment")
    assert s["error"].startswith("FileNotFoundError")
    assert rows_per_day(tmp_path) == {DAYS[0]: 3}


def test_a_signal_rolls_the_chunk_back_and_stops(tmp_path, monkeypatch):
    calls = []

    def signal_on_second_chunk() -> None:  # stands in for SIGTERM arriving mid-transaction
        calls.append(1)
        if len(calls) == 2:
            merge._SIGNALS.name = "SIGTERM"

    monkeypatch.setattr(merge, "slow_merge", signal_on_second_chunk)
    with pytest.raises(Interrupted, match="1 chunks committed by this run") as err:
        run(tmp_path, batch(tmp_path / "b1", "batch", DAYS))
    assert err.value.signal_name == "SIGTERM"
    assert rows_per_day(tmp_path) == {DAYS[0]: 3}
    s = state(tmp_path, DAYS[1])
    assert (s["status"], s["error_kind"]) == ("failed", "environment")
    assert "interrupted by SIGTERM" in s["error"]


# --- reruns of failed chunks ----------------------------------------------------------


def test_a_data_failure_is_retried_only_with_retry_failed(tmp_path):
    broken = {DAYS[1]: "chunk x: conflicting duplicates"}
    with pytest.raises(BackfillError):
        run(tmp_path, batch(tmp_path / "b1", "batch", DAYS, broken=broken))
    fixed = batch(tmp_path / "b2", "batch", DAYS)
    with pytest.raises(CheckpointTransitionError, match="retry_failed"):
        run(tmp_path, fixed, run_id="run2")
    assert state(tmp_path, DAYS[1])["status"] == "failed"
    report = run(tmp_path, fixed, run_id="run3", retry_failed=True)
    assert report.committed == [chunk_id(DAYS[1])]
    assert state(tmp_path, DAYS[1])["status"] == "done"


def test_an_environment_failure_is_retried_without_the_flag(tmp_path):
    chunks = batch(tmp_path / "b1", "one", DAYS[:1]) + batch(tmp_path / "b1", "two", DAYS[1:])
    chunks[1].bars.unlink()
    with pytest.raises(BackfillError):
        run(tmp_path, chunks)
    report = run(tmp_path, batch(tmp_path / "b2", "batch", DAYS), run_id="run2")
    assert report.committed == [chunk_id(d) for d in DAYS[1:]]
    assert report.skipped == [chunk_id(DAYS[0])]
    s = state(tmp_path, DAYS[1])
    assert (s["status"], s["error"], s["error_kind"], s["run_id"]) == ("done", None, None, "run2")


# --- error kinds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc, kind",
    [
        (OSError(28, "No space left on device"), ErrorKind.ENVIRONMENT),
        (FileNotFoundError("x.parquet"), ErrorKind.ENVIRONMENT),
        (pa.ArrowIOError("read failed"), ErrorKind.ENVIRONMENT),
        (Interrupted("interrupted by SIGINT", "SIGINT"), ErrorKind.ENVIRONMENT),
        (duckdb.IOException("Could not read"), ErrorKind.ENVIRONMENT),
        (duckdb.OutOfMemoryException("failed to allocate"), ErrorKind.ENVIRONMENT),
        # what DuckDB raises when the disk fills at COMMIT (tests/test_faults.py)
        (
            duckdb.TransactionException(
                'TransactionContext Error: Failed to commit: Could not write file "x.wal": '
                "No space left on device"
            ),
            ErrorKind.ENVIRONMENT,
        ),
        (duckdb.TransactionException("Failed to commit: write-write conflict"), ErrorKind.DATA),
        (duckdb.ConstraintException("Duplicate key"), ErrorKind.DATA),
        (BackfillError("chunk x: inserted 3 rows, expected 4"), ErrorKind.DATA),
        # only DuckDB's own messages are read for OS errors
        (BackfillError("no decode summary for source /No space left on device/x"), ErrorKind.DATA),
        (ValueError("bad"), ErrorKind.DATA),
    ],
)
def test_error_kind(exc, kind):
    assert error_kind(exc) is kind

"""Reruns see the files as they are now (contract sections 1 and 8).

Every change of a source file is noticed, whatever its size and modification time:
a corrected file put back with ``cp -p`` (same size, old mtime), a touched file, a
removed duplicate. Only what the change touches is redone; chunks whose content is
unchanged stay ``done`` with their commit times. Files requested with a symbology
that cannot name contracts are refused.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import (
    Bar,
    Run,
    business_days,
    content_hash,
    day_bars,
    db_hash,
    read_table,
    run_output,
    write_bars,
)

from dbn_backfill.config import from_mapping
from dbn_backfill.gates.checks import run_gates
from dbn_backfill.sources.dbn_files import find_sources
from dbn_backfill.sources.index import scan

pytestmark = pytest.mark.slow

D = dt.date
START, END = D(2024, 1, 8), D(2024, 1, 19)
FLIPPED = D(2024, 1, 10)


def day_file_bars(day: dt.date, flip: bool = False) -> list[Bar]:
    """G4 front (J4 after the 16th); ``flip`` gives J4 the day's volume instead.

    The same records either way but for their volumes: a file of the same size.
    """
    g4, j4 = (30, 5) if day < D(2024, 1, 16) else (5, 40)
    if flip:
        g4, j4 = j4, g4 + 50
    return day_bars("MGCG4", 1, day, n=4, volume=g4) + day_bars("MGCJ4", 2, day, n=3, volume=j4)


def day_path(dbn: Path, day: dt.date) -> Path:
    return dbn / f"d{day:%Y%m%d}.dbn"  # plain DBN: the size depends only on the record count


@pytest.fixture
def daily(tmp_path) -> Run:
    dbn = tmp_path / "dbn"
    for day in business_days(START, END):
        write_bars(day_path(dbn, day), day_file_bars(day))
    return Run(tmp_path, dbn, "MGC", START, END, chunk_days=3)


def commit_times(run: Run) -> pd.Series:
    return read_table(run.db, "bars_1m_chunks").set_index("chunk_id")["committed_at"]


def front(run: Run) -> dict[dt.date, str]:
    rows = read_table(run.db, "bars_1m_trade_dates")
    return {
        pd.Timestamp(d).date(): s
        for d, s in zip(rows["trade_date"], rows["source_symbol"], strict=True)
    }


def chunk_of(run: Run, day: dt.date) -> str:
    chunks = read_table(run.db, "bars_1m_chunks")
    hit = chunks[
        (chunks["chunk_start"] <= pd.Timestamp(day)) & (chunks["chunk_end"] >= pd.Timestamp(day))
    ]
    return str(hit["chunk_id"].iloc[0])


def test_corrected_file_put_back_with_cp_p_is_seen(daily, tmp_path):
    daily.run(check=True)
    assert front(daily)[FLIPPED] == "MGCG4"
    before, checkpoints = commit_times(daily), daily.checkpoints()
    target = day_path(daily.dbn, FLIPPED)
    corrected = write_bars(tmp_path / "corrected" / target.name, day_file_bars(FLIPPED, flip=True))
    assert corrected.stat().st_size == target.stat().st_size
    os.utime(corrected, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns))
    subprocess.run(["cp", "-p", str(corrected), str(target)], check=True)
    assert target.stat().st_mtime_ns == corrected.stat().st_mtime_ns  # old mtime put back

    proc = daily.run(check=True)
    assert front(daily)[FLIPPED] == "MGCJ4"
    rows = daily.rows()
    day_rows = rows[
        (rows["ts_utc"] >= pd.Timestamp(FLIPPED, tz="UTC"))
        & (rows["ts_utc"] < pd.Timestamp(FLIPPED, tz="UTC") + pd.Timedelta(days=1))
    ]
    assert set(day_rows["source_symbol"]) == {"MGCJ4"} and len(day_rows) == 3
    # only the chunk holding the corrected day was committed again
    changed = chunk_of(daily, FLIPPED)
    after = commit_times(daily)
    assert after[changed] > before[changed]
    for chunk_id in before.index.drop(changed):
        assert after[chunk_id] == before[chunk_id], chunk_id
        assert daily.checkpoints()[chunk_id]["finished_at"] == checkpoints[chunk_id]["finished_at"]
    assert "rule decode_sources" in run_output(proc)  # the corrected file was decoded again
    again = daily.with_(root=tmp_path / "clean")
    again.root.mkdir()
    again.run(check=True)
    assert content_hash(daily.db) == content_hash(again.db)


def test_touched_files_redo_nothing(daily):
    daily.run(check=True)
    before, state = commit_times(daily), db_hash(daily.db)
    checkpoints = daily.checkpoints()
    for path in daily.dbn.iterdir():
        os.utime(path)  # newer mtime (and ctime), same bytes
    proc = daily.run(check=True)
    out = run_output(proc)  # the run log holds the jobs that ran
    assert "rule merge_report" in out  # the run's merge record, every run
    assert "rule merge_chunks:" not in out  # every batch's marker is up to date
    assert "rule decode_sources" not in run_output(proc)
    assert "rule build_chunks" not in run_output(proc)
    assert commit_times(daily).equals(before)
    assert daily.checkpoints() == checkpoints
    assert db_hash(daily.db) == state


def test_removed_duplicate_file_keeps_chunks_and_fixes_lineage(daily):
    duplicate = daily.dbn / "again" / "copy.dbn"
    duplicate.parent.mkdir()
    shutil.copy(day_path(daily.dbn, D(2024, 1, 17)), duplicate)
    daily.run(check=True)
    chunk = chunk_of(daily, D(2024, 1, 17))
    sources = read_table(daily.db, "bars_1m_chunk_sources")
    assert str(duplicate.resolve()) in set(sources[sources["chunk_id"] == chunk]["path"])
    before, bars, lineage = commit_times(daily), daily.rows(), content_hash(daily.db)
    duplicate.unlink()
    daily.run(check=True)  # the gates ("sources unchanged" among them) pass
    assert commit_times(daily).equals(before)
    sources = read_table(daily.db, "bars_1m_chunk_sources")
    assert str(duplicate.resolve()) not in set(sources["path"])
    assert content_hash(daily.db) != lineage  # the lineage changed, the bars did not
    assert daily.rows().equals(bars)


def test_sources_unchanged_gate_fails_on_a_file_that_changed_after_commit(daily, calendar):
    daily.run(check=True)
    path = day_path(daily.dbn, FLIPPED)
    write_bars(path, day_file_bars(FLIPPED, flip=True))  # changed, not yet backfilled
    cfg = from_mapping({"dbn": daily.dbn, "db": daily.db, "symbol": "MGC", "start": START,
                        "end": END, "chunk_days": 3, "checkpoint": daily.checkpoint})  # fmt: skip
    results = run_gates(
        cfg=cfg, calendar=calendar, sources=scan(find_sources(daily.dbn), None, False), seed="t"
    )
    failed = {r.name: r.detail for r in results if not r.passed}
    assert list(failed) == ["sources unchanged"]
    assert (
        str(path.resolve()) in failed["sources unchanged"]
        and "sha256" in failed["sources unchanged"]
    )
    path.unlink()
    results = run_gates(
        cfg=cfg, calendar=calendar, sources=scan(find_sources(daily.dbn), None, False), seed="t"
    )
    failed = {r.name: r.detail for r in results if not r.passed}
    assert "no longer among the sources" in failed["sources unchanged"]


@pytest.mark.parametrize("stype_in", ["continuous", "instrument_id"])
def test_file_without_contract_symbology_is_refused(daily, stype_in):
    daily.run(check=True)
    state = db_hash(daily.db)
    odd = write_bars(
        daily.dbn / "mgc-v0.dbn",
        day_bars("MGCG4", 1, D(2024, 1, 9), n=2),
        stype_in=stype_in,
        symbols=("MGC.v.0",),
    )
    proc = daily.run(check=False)
    assert f"{odd}: stype_in is '{stype_in}', expected 'raw_symbol' or 'parent'" in proc.stderr
    assert db_hash(daily.db) == state

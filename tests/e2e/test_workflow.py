"""End-to-end: the real Snakemake workflow on hand-built DBN files (contract sections 1-9)."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pandas as pd
import pytest
from conftest import (
    Bar,
    Run,
    business_days,
    content_hash,
    day_bars,
    db_hash,
    fixture_file,
    fixture_files,
    minutes,
    read_table,
    run_output,
    write_bars,
)

D = dt.date
START, END = D(2024, 1, 8), D(2024, 1, 19)  # MLK day 2024-01-15 inside


def scenario_bars() -> tuple[list[Bar], dict[dt.date, str]]:
    """Bars covering START..END with known front contracts, plus traps that must be ignored."""
    bars: list[Bar] = []
    expected: dict[dt.date, str] = {}
    for day in business_days(START, END):
        if day == D(2024, 1, 10):  # volume tie G4/J4 -> earliest expiry G4
            bars += day_bars("MGCG4", 1, day, n=3, volume=10)
            bars += day_bars("MGCJ4", 2, day, n=2, volume=15)
            expected[day] = "MGCG4"
        elif day == D(2024, 1, 11):  # tie with the same expiry -> lexicographic MGCG24
            bars += day_bars("MGCG4", 1, day, n=2, volume=20)
            bars += day_bars("MGCG24", 5, day, n=4, volume=10)
            expected[day] = "MGCG24"
        elif day == D(2024, 1, 12):  # one-digit year wrap: Z9 is 2029 -> Z4 (2024) wins tie
            bars += day_bars("MGCZ9", 6, day, n=2, volume=50)
            bars += day_bars("MGCZ4", 7, day, n=2, volume=50)
            bars += day_bars("MGCG4", 1, day, n=1, volume=5)
            expected[day] = "MGCZ4"
        elif day < D(2024, 1, 16):
            bars += day_bars("MGCG4", 1, day, n=4, volume=30)
            bars += day_bars("MGCJ4", 2, day, n=3, volume=5)
            expected[day] = "MGCG4"
        else:  # rolled: J4 is front
            bars += day_bars("MGCG4", 1, day, n=3, volume=5)
            bars += day_bars("MGCJ4", 2, day, n=5, volume=40)
            expected[day] = "MGCJ4"
    # MLK: Sunday evening and Monday morning trading counts for Tuesday 2024-01-16
    sunday = pd.Timestamp("2024-01-14 23:00", tz="UTC")
    bars += [Bar("MGCJ4", 2, sunday + pd.Timedelta(minutes=i), volume=40) for i in range(3)]
    bars += [Bar("MGCJ4", 2, pd.Timestamp("2024-01-15 15:00", tz="UTC"), volume=40)]
    # traps: spreads with zero/negative prices, another root with bad prices, big volume
    for day in (D(2024, 1, 9), D(2024, 1, 17)):
        for ts in minutes(day, 2, hour=15):
            bars.append(
                Bar("MGCG4-MGCJ4", 9, ts, open=-0.3, high=0.0, low=-0.5, close=-0.1, volume=999)
            )
            bars.append(Bar("GCG4", 10, ts, open=5.0, high=1.0, low=9.0, close=5.0, volume=10**6))
    # a bad row outside [start, end] must not fail the run
    bars.append(Bar("MGCG4", 1, pd.Timestamp("2024-01-05 15:00", tz="UTC"), high=1.0, low=5.0))
    return bars, expected


@pytest.fixture
def scenario(tmp_path) -> tuple[Run, dict[dt.date, str], list[Bar]]:
    bars, expected = scenario_bars()
    dbn = tmp_path / "dbn"
    write_bars(
        dbn / "part1.dbn.zst", [b for b in bars if b.ts < pd.Timestamp("2024-01-13", tz="UTC")]
    )
    write_bars(dbn / "part2.dbn", [b for b in bars if b.ts >= pd.Timestamp("2024-01-11", tz="UTC")])
    return Run(tmp_path, dbn, "MGC", START, END, chunk_days=3), expected, bars


def expected_rows(bars: list[Bar], expected: dict[dt.date, str], calendar) -> pd.DataFrame:
    """The contract's table for the scenario, computed straight from the bar list."""
    rows = {}
    for b in bars:
        td = pd.Timestamp(calendar.trade_dates([b.ts_ns])[0]).date()
        if expected.get(td) == b.raw_symbol:
            rows[b.ts] = (b.ts, "MGC", b.raw_symbol, b.open, b.high, b.low, b.close, b.volume)
    frame = pd.DataFrame(
        sorted(rows.values()),
        columns=["ts_utc", "symbol", "source_symbol", "open", "high", "low", "close", "volume"],
    )
    return frame


def test_backfill_follows_the_contract(scenario, calendar):
    run, expected, bars = scenario
    proc = run.run(check=True)
    table = run.rows()
    want = expected_rows(bars, expected, calendar)
    assert len(table) == len(want)
    pd.testing.assert_frame_equal(
        table.reset_index(drop=True), want, check_dtype=False, check_exact=True
    )
    assert str(table["ts_utc"].dtype).startswith("datetime64") and "UTC" in str(
        table["ts_utc"].dtype
    )
    # lineage: one selection per trade date with runner-up, sources with sha256
    lineage = read_table(run.db, "bars_1m_trade_dates")
    assert dict(zip(lineage["trade_date"].astype(str), lineage["source_symbol"], strict=True)) == {
        str(d): s for d, s in expected.items()
    }
    tie = lineage[lineage["trade_date"].astype(str) == "2024-01-10"].iloc[0]
    assert (tie["volume"], tie["runner_up"], tie["runner_up_volume"]) == (30, "MGCJ4", 30)
    sources = read_table(run.db, "bars_1m_chunk_sources")
    assert set(sources["path"].map(lambda p: p.rsplit("/", 1)[-1])) == {
        "part1.dbn.zst",
        "part2.dbn",
    }
    assert sources["sha256"].str.len().eq(64).all()
    # checkpoints: one per chunk, all done, with the contract's fields
    states = run.checkpoints()
    assert states and all(s["status"] == "done" for s in states.values())
    for s in states.values():
        assert {
            "chunk_start",
            "chunk_end",
            "status",
            "rows_written",
            "started_at",
            "finished_at",
            "source",
            "error",
        } <= set(s)
    assert sum(s["rows_written"] for s in states.values()) == len(table)
    # the run ends with a summary and passing gates
    assert "dbn-backfill summary (OK)" in proc.stderr
    report = json.loads(
        next((run.workdir / "results" / "MGC" / "runs").glob("*/gates.json")).read_text()
    )
    assert report["passed"] and len(report["gates"]) == 8


def test_rerun_is_a_noop_and_range_change_keeps_outside_rows(scenario):
    run, expected, _ = scenario
    run.run(check=True)
    before = db_hash(run.db)
    stamps = {k: v["finished_at"] for k, v in run.checkpoints().items()}
    proc = run.run(check=True)
    assert db_hash(run.db) == before, "a rerun with nothing new must write nothing"
    assert {k: v["finished_at"] for k, v in run.checkpoints().items()} == stamps
    assert "committed 0" in proc.stderr
    # a narrower rerun rewrites its range and nothing outside it: tamper one bar outside
    # and one inside, rerun 2024-01-16..17; the inside one is restored, the outside one kept
    import duckdb

    con = duckdb.connect(str(run.db))
    con.execute("SET TimeZone='UTC'").fetchall()
    con.execute(
        "UPDATE bars_1m SET volume = 777 WHERE ts_utc = '2024-01-09 14:30:00+00'"
    ).fetchall()
    con.execute(
        "UPDATE bars_1m SET volume = 777 WHERE ts_utc = '2024-01-16 14:30:00+00'"
    ).fetchall()
    con.execute("DELETE FROM bars_1m_chunks").fetchall()  # forget the hashes: force a rewrite
    con.close()
    narrow = run.with_(start=D(2024, 1, 16), end=D(2024, 1, 17))
    narrow.run(check=True)
    table = run.rows().set_index("ts_utc")["volume"]
    assert table[pd.Timestamp("2024-01-09 14:30", tz="UTC")] == 777
    assert table[pd.Timestamp("2024-01-16 14:30", tz="UTC")] == 40


def test_new_file_rebuilds_only_its_chunks(scenario):
    run, expected, bars = scenario
    run.run(check=True)
    before = read_table(run.db, "bars_1m_chunks").set_index("chunk_id")["committed_at"]
    # tomorrow's download: one more trade date
    extra = day_bars("MGCJ4", 2, D(2024, 1, 22), n=5, volume=40)
    write_bars(run.dbn / "part3.dbn.zst", extra)
    later = run.with_(end=D(2024, 1, 22))
    proc = later.run(check=True)
    after = read_table(run.db, "bars_1m_chunks").set_index("chunk_id")["committed_at"]
    unchanged = [c for c in before.index if c in after.index and after[c] == before[c]]
    assert len(unchanged) >= len(before) - 1
    assert "chunk_20240122" in " ".join(after.index) or any("20240122" in c for c in after.index)
    assert "build_chunks" in run_output(proc) and "batch_2024" in run_output(proc)


def test_real_databento_fixtures_backfill(tmp_path):
    dbn = tmp_path / "dbn"
    dbn.mkdir()
    for path in fixture_files("*ohlcv-1m*"):
        shutil.copy(path, dbn / path.name)
    run = Run(tmp_path, dbn, "ES", D(2020, 12, 28), D(2020, 12, 28))
    run.run(check=True)
    table = run.rows()
    # v1/v2/v3/plain copies of the same two bars count once; the other file adds four
    assert len(table) == 6
    assert set(table["source_symbol"]) == {"ESH1"}
    assert table["ts_utc"].min() == pd.Timestamp("2020-12-28 00:00", tz="UTC")
    assert float(table.iloc[0]["open"]) == 3702750000000 / 1e9


def test_wrong_schema_fixture_refused_before_any_work(tmp_path):
    dbn = tmp_path / "dbn"
    dbn.mkdir()
    for path in fixture_files("*ohlcv-1m.dbn"):
        shutil.copy(path, dbn / path.name)
    shutil.copy(
        fixture_file("databento-python.GLBX.MDP3.test_data.trades.dbn.zst"), dbn / "t.dbn.zst"
    )
    run = Run(tmp_path, dbn, "ES", D(2020, 12, 28), D(2020, 12, 28))
    proc = run.run(check=False)
    assert "t.dbn.zst: schema is 'trades', expected 'ohlcv-1m'" in proc.stderr
    assert not run.db.exists()


def test_dry_run_prints_every_chunk_and_reads_nothing(scenario):
    run, _, _ = scenario
    proc = run.run("--dry-run", check=True)
    out = proc.stdout + proc.stderr
    from conftest import calendar_once

    from dbn_backfill.chunks.grid import plan_chunks

    chunks = [c for b in plan_chunks(calendar_once(), START, END, 3, 20) for c in b.chunks]
    for chunk in chunks:
        assert f"{chunk.chunk_id}  {chunk.first}..{chunk.last}" in out
    assert not run.db.exists() and not run.checkpoint.exists()
    assert not (run.workdir / "results" / "decoded").exists()


def test_snakemake_directly_with_directory(scenario, tmp_path):
    import subprocess
    import sys

    from conftest import PROJECT

    run, _, _ = scenario
    cmd = [sys.executable, "-m", "snakemake", "-s", str(PROJECT / "workflow" / "Snakefile"),
           "--directory", str(tmp_path / "elsewhere"), "--cores", "2", "--config",
           f"dbn={run.dbn}", f"db={run.db}", "symbol=MGC", f"start={START}", f"end={END}",
           "chunk_days=3", f"checkpoint={run.checkpoint}"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "elsewhere" / "results" / "decoded").is_dir()
    via_cli = run.with_(root=tmp_path / "cli")
    via_cli.root.mkdir()
    via_cli.run(check=True)
    assert content_hash(run.db) != "" and read_table(run.db).equals(read_table(via_cli.db))

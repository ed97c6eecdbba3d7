"""The report model gathered from a small database built here, and the page rendered
from a hand-built model (no workflow run, no charts drawn)."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import os
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from dbn_backfill.artifacts import Checkpoint, GateResult, GatesReport, MergeReport, write_json
from dbn_backfill.layout import Layout
from dbn_backfill.store.database import ensure_tables
from dbn_backfill.views.report import collect
from dbn_backfill.views.report.model import (
    BACK,
    ROLL,
    Checkpoints,
    Chunk,
    PackageVersion,
    ReportError,
    ReportModel,
    Roll,
    Settings,
    Source,
    TradeDay,
)
from dbn_backfill.views.report.render import CHARTS, fmt, to_html
from dbn_backfill.views.runs import RunConfig, RunRecord

D = dt.date
SYMBOL = "MGC"
MON, TUE, WED, THU = D(2024, 2, 5), D(2024, 2, 6), D(2024, 2, 7), D(2024, 2, 8)
# trade date -> (selected, volume, runner-up, its volume, bars); WED has no bars
SELECTION = {
    MON: ("MGCJ4", 100, "MGCM4", 50, 10),
    TUE: ("MGCM4", 120, "MGCJ4", 40, 10),  # roll
    THU: ("MGCJ4", 60, "MGCM4", 60, 2),  # back to an earlier expiry, a tie, thin
}
CHUNK_A, CHUNK_B = "chunk_20240205_20240206", "chunk_20240207_20240209"


def bar_rows(day: D, contract: str, n: int) -> list[tuple]:
    start = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=14, minutes=30)  # 08:30 Chicago
    return [
        (start + pd.Timedelta(minutes=i), SYMBOL, contract, 1.0, 2.0, 0.5, 1.5, 10)
        for i in range(n)
    ]


def build_db(path: Path, symbols: tuple[str, ...] = (SYMBOL,)) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        ensure_tables(con, path)
        rows = [r for d, s in SELECTION.items() for r in bar_rows(d, s[0], s[4])]
        # 16:30 Chicago: in the metals session's daily break, outside every session
        rows.append(
            (pd.Timestamp("2024-02-06 22:30", tz="UTC"), SYMBOL, "MGCM4", 1, 2, 0.5, 1.5, 1)
        )
        con.executemany("INSERT INTO bars_1m VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        for symbol in symbols:
            for d, (sel, vol, runner, rvol, _) in SELECTION.items():
                chunk = CHUNK_A if d <= TUE else CHUNK_B
                con.execute(
                    "INSERT INTO bars_1m_trade_dates (symbol, trade_date, source_symbol, "
                    "instrument_id, volume, runner_up, runner_up_volume, chunk_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [symbol, d, sel, 1, vol, runner, rvol, chunk],
                )
        committed = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
        con.executemany(
            "INSERT INTO bars_1m_chunks (symbol, chunk_id, chunk_start, chunk_end, rows, "
            "content_hash, committed_at, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [SYMBOL, CHUNK_A, MON, TUE, 21, "a" * 64, committed, "r1"],
                [SYMBOL, CHUNK_B, WED, D(2024, 2, 9), 2, "b" * 64, committed, "r1"],
            ],
        )
        con.executemany(
            "INSERT INTO bars_1m_chunk_sources VALUES (?, ?, ?, ?, ?)",
            [
                [SYMBOL, CHUNK_A, "/data/dbn/a.dbn.zst", 1000, "1" * 64],
                [SYMBOL, CHUNK_B, "/data/dbn/b.dbn.zst", 500, "2" * 64],
            ],
        )
    finally:
        con.close()


@pytest.fixture()
def backfill(tmp_path) -> tuple[Path, Layout]:
    db = tmp_path / "mgc.duckdb"
    build_db(db)
    layout = Layout(tmp_path / "work", tmp_path / "checkpoints")
    done = Checkpoint(CHUNK_A, str(MON), str(TUE), SYMBOL, status="done", rows_written=21)
    failed = Checkpoint(CHUNK_B, str(WED), "2024-02-09", SYMBOL, status="failed",
                        error="bad <bar>", error_kind="data")  # fmt: skip
    other = Checkpoint("chunk_20240205_20240206x", str(MON), str(TUE), "GC", status="failed")
    for checkpoint in (done, failed, other):
        write_json(layout.checkpoint_file(SYMBOL, checkpoint.chunk_id), checkpoint.to_json())
    layout.checkpoint_file(SYMBOL, "chunk_20990101_20990101").write_text("{broken")
    config = RunConfig(
        run_id="r1", started_at="2024-03-01T12:00:00+00:00",
        settings={"symbol": SYMBOL, "start": str(MON), "end": "2024-02-09",
                  "expected_gaps": [str(WED)], "fetch": False},
        versions={"duckdb": "0.0.1"},
    )  # fmt: skip
    write_json(layout.run_record(SYMBOL, "r1", "config"), config.to_json())
    MergeReport("r1", committed=[CHUNK_A, CHUNK_B], rows_inserted=23, seconds=0.5).write(
        layout.run_record(SYMBOL, "r1", "merge")
    )
    GatesReport("r1", str(db), [GateResult("bar count", True, "23 rows")]).write(
        layout.run_record(SYMBOL, "r1", "gates")
    )
    # a later run that stopped after its merge (no gates, no settings)
    MergeReport("r2", skipped=[CHUNK_A]).write(layout.run_record(SYMBOL, "r2", "merge"))
    r1, r2 = layout.run_dir(SYMBOL, "r1"), layout.run_dir(SYMBOL, "r2")
    os.utime(r1, ns=(10**18, 10**18))
    os.utime(r2, ns=(10**18 + 1, 10**18 + 1))
    return db, layout


def test_the_model_holds_what_the_database_checkpoints_and_runs_say(backfill):
    db, layout = backfill
    model = collect(db, checkpoint=layout.checkpoint, workdir=layout.workdir)
    assert model.symbol == SYMBOL and model.session_calendar == "CMEGlobex_Metals"
    assert (model.first_trade_date, model.last_trade_date) == (MON, THU)
    assert len(model.days) == 3 and model.bars == 23 and model.contracts == 2
    assert model.rolls == (
        Roll(TUE, "MGCJ4", "MGCM4", ROLL, 120, 40, "MGCJ4", 40, 0.75, "2024-04", "2024-06"),
        Roll(THU, "MGCM4", "MGCJ4", BACK, 60, 60, "MGCM4", 60, 0.5, "2024-06", "2024-04"),
    )  # no term structure: gap, ratio and stale unknown
    assert model.rolls_back == 1
    thinnest = model.thinnest[0]
    assert (thinnest.trade_date, thinnest.bars, thinnest.session_minutes) == (THU, 2, 1380)
    assert thinnest.chunk_id == CHUNK_B and [t.trade_date for t in model.thinnest][1:] == [MON, TUE]
    assert bool(model.days.loc[model.days["trade_date"] == pd.Timestamp(THU), "thin"].item())
    assert model.missing_days == (str(WED),) and model.expected_gaps == (str(WED),)
    assert model.outside_bars == 1
    assert [c.chunk_id for c in model.chunks] == [CHUNK_A, CHUNK_B]
    a = model.chunks[0]
    assert (a.chunk_start, a.chunk_end, a.trade_dates, a.rows) == (MON, TUE, 2, 21)
    assert a.contracts == "MGCJ4 MGCM4" and a.run_id == "r1"
    assert a.committed_at == dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
    assert [(s.path, s.size, s.chunks) for s in model.sources] == [
        ("/data/dbn/a.dbn.zst", 1000, 1), ("/data/dbn/b.dbn.zst", 500, 1),
    ]  # fmt: skip
    assert model.source_bytes == 1500
    assert model.checkpoints is not None
    assert dict(model.checkpoints.counts) == {"done": 1, "failed": 1, "unreadable": 1}
    assert [p.chunk_id for p in model.checkpoints.problems] == [CHUNK_B]
    assert [r.run_id for r in model.runs] == ["r1", "r2"]
    assert model.run is not None and model.run.run_id == "r2"
    assert model.gates_run is not None and model.gates_run.run_id == "r1"
    assert model.gates_origin == str(
        layout.run_record(SYMBOL, "r1", "gates").relative_to(layout.workdir)
    )
    settings = model.settings
    assert settings.from_run and "r1" in settings.origin and settings.values["fetch"] is False
    versions = {v.name: v for v in settings.versions}
    assert versions["duckdb"].run == "0.0.1" and versions["duckdb"].report


def test_without_run_records_the_settings_come_from_the_lineage(backfill):
    db, _ = backfill
    model = collect(db)
    assert model.runs == () and model.run is None and model.gates_run is None
    assert model.checkpoints is None and model.expected_gaps == ()
    assert not model.settings.from_run and "lineage" in model.settings.origin
    values = model.settings.values
    assert values["first trade date"] == str(MON) and values["last trade date"] == str(THU)
    assert (
        values["chunks committed"] == 2
        and values["dbn (common folder of the sources)"] == "/data/dbn"
    )
    assert all(v.run is None for v in model.settings.versions)


def test_no_lineage_or_several_symbols_is_a_report_error(tmp_path):
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    with pytest.raises(ReportError, match="no backfill lineage"):
        collect(empty)
    two = tmp_path / "two.duckdb"
    build_db(two, symbols=(SYMBOL, "GC"))
    with pytest.raises(ReportError, match="--symbol"):
        collect(two)
    assert collect(two, symbol=SYMBOL).symbol == SYMBOL


# --------------------------------------------------------------------------- render

EVIL = "<script>alert('x')</script>"
SECTIONS = ("rolls-section", "bars-section", "gates-section", "runs-section",
            "chunks-section", "sources-section", "config-section")  # fmt: skip


def hand_built(n_chunks: int = 2) -> ReportModel:
    days = pd.DataFrame(
        {"trade_date": pd.to_datetime([MON, TUE]), "source_symbol": ["MGCJ4", "MGCM4"],
         "bars": [1200, 3]}
    )  # fmt: skip
    gates = GatesReport("r1", "db", [GateResult("bar count", False, EVIL)])
    run = RunRecord(
        run_id="r1", path=Path("/w/r1"),
        config=RunConfig(run_id="r1", started_at="2024-03-01T12:00:00+00:00",
                         settings={"start": str(MON), "end": str(TUE)}),
        merge=MergeReport("r1", committed=["c"], rows_inserted=1203, seconds=2.0),
        gates=gates, gates_origin=Path("/w/g.json"),
    )  # fmt: skip
    return ReportModel(
        db=Path("/data/<db>.duckdb"),
        symbol=SYMBOL,
        generated_at="2024-03-02T00:00:00+00:00",
        session_calendar="CMEGlobex_Metals",
        thin_fraction=0.5,
        days=days,
        rolls=(Roll(TUE, "MGCJ4", EVIL, BACK, 1234567, None, "MGCJ4", None, 0.5),),
        thinnest=(TradeDay(TUE, "MGCM4", 3, 1380, 3 / 1380, 0.0025, 1300.0, 0, "c1"),),
        missing_days=(str(WED), str(THU)),
        expected_gaps=(str(WED),),
        outside_bars=0,
        chunks=tuple(
            Chunk(
                f"chunk_{i}",
                MON,
                TUE,
                2,
                1203,
                "MGCJ4 MGCM4",
                "h" * 64,
                dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC),
                "r1",
            )
            for i in range(n_chunks)
        ),  # fmt: skip
        sources=(Source("/d/a&b.dbn", 2048, "s" * 64, 1, MON, TUE),),
        runs=(run,),
        run=run,
        gates_run=run,
        gates_origin="results/MGC/runs/r1/gates.json",
        settings=Settings(
            origin="runs/r1/config.json",
            values={"symbol": EVIL, "fetch": True, "chunk_days": 5},
            versions=(PackageVersion("duckdb", "1.0", None),),
            from_run=True,
        ),  # fmt: skip
        checkpoints=Checkpoints(
            counts={"done": 1, "failed": 1},
            problems=(Checkpoint("c2", "x", "y", SYMBOL, status="failed", error=EVIL),),
        ),
    )


def charts() -> dict[str, bytes]:
    return {name: b"\x89PNG " + name.encode() for name in CHARTS}


def test_the_page_escapes_values_and_holds_every_section():
    page = to_html(hand_built(), charts())
    assert "<script" not in page and page.count("&lt;script&gt;") == 4  # roll, gate, error, setting
    assert "/data/&lt;db&gt;.duckdb" in page and "/d/a&amp;b.dbn" in page
    for section in SECTIONS:
        assert f'id="{section}"' in page, section
    for table in ("rolls", "thin-days", "gates", "runs", "checkpoint-problems", "chunks",
                  "sources", "config", "versions"):  # fmt: skip
        assert f'<table id="{table}">' in page, table
    for name, chart_id in (("rolls", "rolls"), ("rolls_detail", "rolls-detail"),
                           ("bars_per_day", "bars-per-day")):  # fmt: skip
        uri = "data:image/png;base64," + base64.b64encode(charts()[name]).decode()
        assert f'id="chart-{chart_id}"' in page and uri in page
    assert "2024-02-07 (expected gap), 2024-02-08" in page
    assert '<td class="num">1,234,567</td>' in page and '<td class="num">50.0%</td>' in page
    assert "<td>2024-03-01 12:00:00 UTC</td>" in page
    assert '<td class="mono">true</td>' in page  # booleans as true/false, not 1/0
    assert '<span class="fail">FAILED</span>' in page and "not installed" in page
    assert "<details>" not in page


def test_long_tables_fold_and_charts_are_required():
    assert "<details><summary>show all 41 chunks</summary>" in to_html(hand_built(41), charts())
    with pytest.raises(KeyError, match="rolls_detail"):
        to_html(hand_built(), {"rolls": b"", "bars_per_day": b""})


def test_the_empty_report_renders():
    full = hand_built(0)
    empty = dataclasses.replace(
        full, days=full.days.iloc[0:0], rolls=(), thinnest=(), missing_days=(), runs=(),
        run=None, gates_run=None, checkpoints=None,
    )  # fmt: skip
    page = to_html(empty, charts())
    assert "no trade date committed" in page and "No gates report found" in page
    assert "No run records found" in page and 'id="missing-days">None' in page


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, ""), (float("nan"), ""), (1380.0, "1,380"), (0.1234, "0.123"), (12345, "12,345"),
     (True, "true"), (D(2024, 2, 5), "2024-02-05"), ([], "[]"),
     (dt.datetime(2024, 2, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=-6))), "2024-02-05 12:00:00 UTC")],
)  # fmt: skip
def test_cell_format(value, text):
    assert fmt(value) == text

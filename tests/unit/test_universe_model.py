"""``status`` and ``report`` of a database of several roots (contract section 11), on a
small database of MGC and GC built here: one status object per root, the exit status
over all roots, the report's overview and its per-root sections with unique ids."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from dbn_backfill.artifacts import Checkpoint, GateResult, GatesReport, MergeReport, write_json
from dbn_backfill.layout import Layout, checkpoint_roots
from dbn_backfill.store.database import ensure_tables
from dbn_backfill.views import status as st
from dbn_backfill.views.report import collect_universe
from dbn_backfill.views.report.render import CHARTS, to_html, universe_html

D = dt.date
MON, TUE, WED, THU, FRI = (D(2024, 2, d) for d in (5, 6, 7, 8, 9))
CHUNK_A, CHUNK_B = "chunk_20240205_20240207", "chunk_20240208_20240209"
#: per root: trade date -> (selected, runner-up, bars); GC has no bars on WED
DAYS = {
    "MGC": {
        MON: ("MGCJ4", "MGCM4", 4), TUE: ("MGCJ4", "MGCM4", 4), WED: ("MGCM4", "MGCJ4", 4),
        THU: ("MGCM4", "MGCJ4", 4), FRI: ("MGCM4", "MGCJ4", 4),
    },
    "GC": {MON: ("GCJ4", "GCM4", 3), TUE: ("GCM4", "GCJ4", 3), THU: ("GCM4", "GCJ4", 3),
           FRI: ("GCM4", "GCJ4", 3)},
}  # fmt: skip
COMMITTED = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)


def chunk_of(day: D) -> str:
    return CHUNK_A if day <= WED else CHUNK_B


def build_db(path: Path) -> None:
    """Bars, trade dates, chunks and sources of MGC and GC, Feb 5-9 2024."""
    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        ensure_tables(con, path)
        for root, days in DAYS.items():
            for day, (sel, runner, n) in days.items():
                start = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=14, minutes=30)
                con.executemany(
                    "INSERT INTO bars_1m VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(start + pd.Timedelta(minutes=i), root, sel, 1.0, 2.0, 0.5, 1.5, 10)
                     for i in range(n)],
                )  # fmt: skip
                con.execute(
                    "INSERT INTO bars_1m_trade_dates (symbol, trade_date, source_symbol, "
                    "instrument_id, volume, runner_up, runner_up_volume, chunk_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [root, day, sel, 1, 10 * n, runner, 5, chunk_of(day)],
                )
            for chunk, first, last in ((CHUNK_A, MON, WED), (CHUNK_B, THU, FRI)):
                rows = sum(n for d, (_, _, n) in days.items() if chunk_of(d) == chunk)
                con.execute(
                    "INSERT INTO bars_1m_chunks (symbol, chunk_id, chunk_start, chunk_end, "
                    "rows, content_hash, committed_at, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [root, chunk, first, last, rows, "a" * 64, COMMITTED, f"run-{root}"],
                )
                con.execute(
                    "INSERT INTO bars_1m_chunk_sources VALUES (?, ?, ?, ?, ?)",
                    [root, chunk, f"/data/{chunk}.dbn.zst", 100, "1" * 64],
                )
    finally:
        con.close()


def checkpoint(root: str, chunk: str, status: str = "done", **kw) -> Checkpoint:
    first, last = (MON, WED) if chunk == CHUNK_A else (THU, FRI)
    return Checkpoint(chunk, str(first), str(last), root, status=status, **kw)


@pytest.fixture()
def universe(tmp_path) -> tuple[Path, Layout]:
    """The database, every chunk's checkpoint done, one run per root whose gates passed."""
    db = tmp_path / "futures.duckdb"
    build_db(db)
    layout = Layout(tmp_path / "work", tmp_path / "checkpoints")
    for root in DAYS:
        for chunk in (CHUNK_A, CHUNK_B):
            write_json(layout.checkpoint_file(root, chunk), checkpoint(root, chunk).to_json())
        run_id = f"run-{root}"
        MergeReport(run_id, committed=[CHUNK_A, CHUNK_B], rows_inserted=20, seconds=0.1).write(
            layout.run_record(root, run_id, "merge")
        )
        GatesReport(run_id, str(db), [GateResult("bar count", True, "ok")]).write(
            layout.run_record(root, run_id, "gates")
        )
    return db, layout


def fail_chunk(layout: Layout, root: str, chunk: str) -> None:
    failed = checkpoint(root, chunk, "failed", error="bad bar", error_kind="data")
    write_json(layout.checkpoint_file(root, chunk), failed.to_json())


# ------------------------------------------------------------------------- status


def test_status_has_one_object_per_root_with_the_fields_of_one_root(universe):
    db, layout = universe
    status = st.collect(db, layout.checkpoint_root, workdir=layout.workdir)
    assert status["ok"] is True and status["attention"] == []
    assert status["symbols"] == ["GC", "MGC"] and list(status["roots"]) == ["GC", "MGC"]
    gc, mgc = status["roots"]["GC"], status["roots"]["MGC"]
    for root, name in ((gc, "GC"), (mgc, "MGC")):
        assert root["symbol"] == name and root["ok"] is True
        assert set(root) >= {"ok", "attention", "db", "symbol", "running", "database",
                             "chunks", "last_run", "workdir"}  # fmt: skip
        assert root["chunks"]["counts"] == {"done": 2}
        assert root["last_run"]["run_id"] == f"run-{name}" and root["last_run"]["gates"]["passed"]
    assert (gc["database"]["rows"], mgc["database"]["rows"]) == (12, 20)
    assert gc["database"]["missing_business_days"] == [str(WED)]
    assert mgc["database"]["missing_business_days"] == []
    assert (mgc["database"]["first_trade_date"], mgc["database"]["last_trade_date"]) == (
        str(MON), str(FRI),
    )  # fmt: skip
    text = st.format_text(status)
    assert text.splitlines()[0].endswith("2 roots (GC, MGC) in " + str(db) + ": OK")
    header, gc_row, mgc_row = text.splitlines()[2:5]
    assert header.split()[:3] == ["root", "state", "chunks"]
    assert gc_row.split()[:6] == ["GC", "OK", "2/0/0/0", str(MON), "..", str(FRI)]
    assert gc_row.split()[6:8] == ["12", "1"] and "run-GC: gates passed (1/1)" in gc_row
    assert mgc_row.split()[6:8] == ["20", "0"]
    assert "needs attention" not in text.lower()


def test_a_failed_chunk_of_one_root_needs_attention_naming_it(universe):
    db, layout = universe
    fail_chunk(layout, "GC", CHUNK_B)
    status = st.collect(db, layout.checkpoint_root, workdir=layout.workdir)
    assert status["ok"] is False and status["roots"]["MGC"]["ok"] is True
    gc = status["roots"]["GC"]
    assert gc["chunks"]["counts"] == {"done": 1, "failed": 1}
    assert gc["attention"] == [f"chunk {CHUNK_B} failed: bad bar"]
    assert status["attention"] == [f"GC: chunk {CHUNK_B} failed: bad bar"]
    text = st.format_text(status)
    assert "NEEDS ATTENTION (1)" in text.splitlines()[0]
    assert "GC: NEEDS ATTENTION (1)" in text and "MGC: NEEDS" not in text
    assert f"    failed {CHUNK_B}: bad bar" in text
    gc_row = next(line for line in text.splitlines() if line.split()[:1] == ["GC"])
    assert "ATTENTION (1)" in gc_row and "1/1/0/0" in gc_row
    # filtered to the healthy root: OK, that root's own view as before
    only = st.collect(db, layout.checkpoint_root, symbols=["MGC"], workdir=layout.workdir)
    assert only["ok"] is True and list(only["roots"]) == ["MGC"]
    text = st.format_text(only)
    assert text.splitlines()[0] == f"dbn-backfill status: MGC in {db}: OK"
    assert "  chunks: 2 done, 0 failed, 0 in_progress, 0 pending" in text


def test_roots_come_from_checkpoints_and_runs_too_and_legacy_files_count(universe):
    db, layout = universe
    # SI: only a pending checkpoint; HG: only a run that stopped before its merge
    write_json(
        layout.checkpoint_file("SI", CHUNK_A), checkpoint("SI", CHUNK_A, "pending").to_json()
    )
    layout.run_dir("HG", "run-HG").mkdir(parents=True)
    # a legacy checkpoint directly in the folder, naming MGC; one that names no root
    legacy = checkpoint("MGC", "chunk_20240101_20240102", "failed", error="old")
    write_json(layout.checkpoint_root / "chunk_20240101_20240102.json", legacy.to_json())
    (layout.checkpoint_root / "chunk_20231201_20231201.json").write_text("{broken")
    assert checkpoint_roots(layout.checkpoint_root) == ["GC", "MGC", "SI"]
    status = st.collect(db, layout.checkpoint_root, workdir=layout.workdir)
    assert status["symbols"] == ["GC", "HG", "MGC", "SI"]
    si, hg, mgc = (status["roots"][r] for r in ("SI", "HG", "MGC"))
    assert si["chunks"]["pending"] == [CHUNK_A] and si["database"]["rows"] == 0 and si["ok"]
    assert not hg["ok"] and "has no merge report" in hg["attention"][0]
    assert mgc["chunks"]["counts"] == {"done": 2, "failed": 1}
    assert status["unassigned_checkpoints"] == ["chunk_20231201_20231201.json"]
    assert any("chunk_20231201_20231201.json" in a and "names no root" in a
               for a in status["attention"])  # fmt: skip
    text = st.format_text(status)
    assert "needs attention (no root):" in text and "nothing committed" in text


# ------------------------------------------------------------------------- report


def fake_charts(roots) -> dict[str, dict[str, bytes]]:
    return {r: {name: b"\x89PNG " + f"{r}-{name}".encode() for name in CHARTS} for r in roots}


def test_the_overview_holds_each_roots_span_rows_rolls_and_gates(universe):
    db, layout = universe
    fail_chunk(layout, "GC", CHUNK_B)  # the checkpoint says failed; the lineage has it
    u = collect_universe(db, checkpoint=layout.checkpoint_root, workdir=layout.workdir)
    assert u.symbols == ("GC", "MGC") and not u.single
    gc, mgc = u.overview
    assert (gc.root, gc.first_trade_date, gc.last_trade_date, gc.trade_dates) == ("GC", MON, FRI, 4)
    assert (gc.rows, gc.contracts, gc.rolls, gc.rolls_back, gc.missing_days) == (12, 2, 1, 0, 1)
    assert (mgc.rows, mgc.trade_dates, mgc.rolls, mgc.missing_days) == (20, 5, 1, 0)
    assert (gc.latest_run, gc.gates_passed, gc.gates) == ("run-GC", True, (1, 1))
    assert u.rows == 32 and (u.first_trade_date, u.last_trade_date) == (MON, FRI)
    assert [r.to_symbol for r in u.roots[0].rolls] == ["GCM4"]
    one = collect_universe(db, symbols=["MGC"], workdir=layout.workdir)
    assert one.single and one.symbols == ("MGC",)


def test_the_universe_page_has_the_overview_then_a_section_per_root_with_unique_ids(universe):
    db, layout = universe
    u = collect_universe(db, checkpoint=layout.checkpoint_root, workdir=layout.workdir)
    page = universe_html(u, fake_charts(u.symbols))
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert ids.index("overview") < ids.index("GC-section") < ids.index("MGC-section")
    for root in ("GC", "MGC"):
        for part in ("rolls-section", "rolls", "chart-rolls", "chart-bars-per-day", "gates",
                     "runs", "chunks", "sources", "config", "missing-days"):  # fmt: skip
            assert f"{root}-{part}" in ids, (root, part)
        assert f'href="#{root}-section"' in page
    overview = page[
        page.index('id="overview"') : page.index("</table>", page.index('id="overview"'))
    ]
    assert overview.count("<tr>") == 3 and "run-GC" in overview and "PASS" in overview
    # a universe of one root is that root's page as it always was
    one = collect_universe(db, symbols=["MGC"], workdir=layout.workdir)
    charts = fake_charts(["MGC"])
    assert universe_html(one, charts) == to_html(one.roots[0], charts["MGC"])
    assert 'id="rolls-section"' in universe_html(one, charts)


def test_a_running_universe_shows_each_roots_progress(universe, monkeypatch):
    """While a backfill holds the database (here: status is told so), the database is
    not opened and every root says how far it is, once."""
    db, layout = universe
    monkeypatch.setattr(st, "lock_holder", lambda path: "pid 7 since now")
    monkeypatch.setattr(
        st,
        "run_progress",
        lambda run, done, workdir, symbol: {"done": done, "planned": 5, "since": "t0"},
    )
    status = st.collect(db, layout.checkpoint_root, workdir=layout.workdir)
    assert status["ok"] is True
    text = st.format_text(status)
    assert "running now: pid 7 since now" in text
    assert "progress: GC 2 of 5 chunks committed (run started t0)" in text
    assert "progress: MGC 2 of 5 chunks committed (run started t0)" in text
    assert text.count("progress: GC") == 1

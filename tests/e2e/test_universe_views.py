"""``status`` and ``report`` of a real two-root backfill (MGC and GC in one run and one
database, contract section 11): every root shown without ``--symbol``, one root with
it, the exit status over all roots, the report's overview and a section per root."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import Run

from dbn_backfill.sampledata.synth import generate

pytestmark = pytest.mark.slow

START, END = dt.date(2024, 1, 2), dt.date(2024, 1, 19)
ROOTS = ("GC", "MGC")


@pytest.fixture(scope="module")
def backfill(tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("universe-views")
    generate(root / "dbn", dt.date(2024, 1, 1), dt.date(2024, 1, 20), seed=5, layout="daily")
    run = Run(root, root / "dbn", "MGC,GC", START, END, chunk_days=5)
    run.run(check=True)
    return run


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dbn_backfill.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def status(
    run: Run, *extra: str, checkpoint: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return cli(
        "status", "--db", str(run.db), "--checkpoint", str(checkpoint or run.checkpoint),
        "--workdir", str(run.workdir), *extra, cwd=run.root,
    )  # fmt: skip


def facts(db: Path) -> dict[str, tuple[int, str, str, int]]:
    """Per root: rows, first and last trade date, chunks."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {
            r[0]: (r[1], str(r[2]), str(r[3]), r[4])
            for r in con.execute(
                """
                SELECT t.symbol, (SELECT count(*) FROM bars_1m b WHERE b.symbol = t.symbol),
                       min(t.trade_date), max(t.trade_date),
                       (SELECT count(*) FROM bars_1m_chunks c WHERE c.symbol = t.symbol)
                FROM bars_1m_trade_dates t GROUP BY t.symbol
                """
            ).fetchall()
        }
    finally:
        con.close()


def test_status_shows_every_root_and_filters_by_symbol(backfill):
    known = facts(backfill.db)
    assert set(known) == set(ROOTS)
    proc = status(backfill)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"dbn-backfill status: 2 roots (GC, MGC) in {backfill.db}: OK"
    for root in ROOTS:
        rows, first, last, chunks = known[root]
        (row,) = [line.split() for line in lines if line.split()[:1] == [root]]
        assert row[1:7] == ["OK", f"{chunks}/0/0/0", first, "..", last, f"{rows:,}"], row
        assert row[7] == "0" and "gates" in row and "passed" in row
    assert "needs attention" not in proc.stdout.lower()

    js = json.loads(status(backfill, "--json").stdout)
    assert js["ok"] is True and js["symbols"] == list(ROOTS) and list(js["roots"]) == list(ROOTS)
    for root in ROOTS:
        rows, first, last, chunks = known[root]
        one = js["roots"][root]
        assert one["symbol"] == root and one["ok"] is True
        assert one["chunks"]["counts"] == {"done": chunks}
        d = one["database"]
        assert (d["rows"], d["first_trade_date"], d["last_trade_date"], d["chunks"]) == (
            rows, first, last, chunks,
        )  # fmt: skip
        assert one["last_run"]["gates"]["passed"] is True
        assert one["last_run"]["range"] == [str(START), str(END)]

    only = status(backfill, "--symbol", "GC")
    assert only.returncode == 0, only.stdout
    assert only.stdout.splitlines()[0] == f"dbn-backfill status: GC in {backfill.db}: OK"
    assert f"  chunks: {known['GC'][3]} done, 0 failed, 0 in_progress, 0 pending" in only.stdout
    assert "MGC" not in only.stdout
    js = json.loads(status(backfill, "--symbol", "GC", "--json").stdout)
    assert js["symbols"] == ["GC"] and list(js["roots"]) == ["GC"]
    bad = status(backfill, "--symbol", "gc")
    assert bad.returncode == 2 and "upper-case root" in bad.stderr


def test_a_failed_chunk_of_gc_needs_attention_naming_gc(backfill, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    shutil.copytree(backfill.checkpoint, checkpoints)
    chunk = sorted((checkpoints / "GC").glob("chunk_*.json"))[1]
    state = json.loads(chunk.read_text())
    state.update(status="failed", error_kind="data", error="test: high < low in GCH4")
    chunk.write_text(json.dumps(state))

    proc = status(backfill, checkpoint=checkpoints)
    assert proc.returncode == 1, proc.stdout
    text = proc.stdout
    assert "NEEDS ATTENTION (1)" in text.splitlines()[0]
    assert "\nGC: NEEDS ATTENTION (1)" in text and "MGC: NEEDS" not in text
    assert f"failed {chunk.stem}: test: high < low in GCH4" in text
    gc_row = next(line for line in text.splitlines() if line.split()[:1] == ["GC"])
    assert "ATTENTION (1)" in gc_row and "/1/0/0" in gc_row
    js = json.loads(status(backfill, "--json", checkpoint=checkpoints).stdout)
    assert js["ok"] is False and js["roots"]["MGC"]["ok"] is True
    assert js["attention"] == [f"GC: chunk {chunk.stem} failed: test: high < low in GCH4"]
    (failed,) = js["roots"]["GC"]["chunks"]["failed"]
    assert failed["chunk_id"] == chunk.stem
    assert status(backfill, "--symbol", "MGC", checkpoint=checkpoints).returncode == 0
    assert status(backfill, "--symbol", "GC", checkpoint=checkpoints).returncode == 1


def test_report_has_the_overview_and_a_section_per_root(backfill, tmp_path):
    known = facts(backfill.db)
    out = tmp_path / "report.html"
    proc = cli(
        "report", "--db", str(backfill.db), "--checkpoint", str(backfill.checkpoint),
        "--workdir", str(backfill.workdir), "--out", str(out), "--charts-dir",
        str(tmp_path / "charts"), cwd=backfill.root,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("dbn-backfill report: GC, ") and "; MGC, " in proc.stdout
    page = out.read_text()
    assert "<title>dbn-backfill report: GC, MGC</title>" in page
    start = page.index('<table id="overview">')
    overview = page[start : page.index("</table>", start)]
    assert overview.count("<tr>") == 3 and "<th>lookahead exposure</th>" in overview
    for root in ROOTS:
        rows, first, last, _ = known[root]
        assert f'href="#{root}-section">{root}</a>' in overview
        assert f"{rows:,}" in overview and first in overview and last in overview
        for part in ("section", "chart-rolls", "chart-rolls-detail", "chart-bars-per-day",
                     "rolls", "exposure-section", "exposure", "gates", "runs", "chunks",
                     "sources", "config"):  # fmt: skip
            assert f'id="{root}-{part}"' in page, (root, part)
        assert {p.name for p in (tmp_path / "charts" / root).iterdir()} == {
            "rolls.png", "rolls_detail.png", "bars_per_day.png",
        }  # fmt: skip
    assert (
        page.index('id="overview"') < page.index('id="GC-section"') < page.index('id="MGC-section"')
    )
    assert "PASS</span> 8/8" in overview

    single = tmp_path / "mgc.html"
    proc = cli(
        "report", "--db", str(backfill.db), "--workdir", str(backfill.workdir),
        "--symbol", "MGC", "--out", str(single), cwd=backfill.root,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = single.read_text()
    assert "<title>dbn-backfill report: MGC</title>" in text and 'id="overview"' not in text
    assert 'id="rolls-section"' in text and 'id="chart-rolls"' in text and ">GCG4<" not in text

"""``dbn-backfill report`` on a real small backfill: the charts are embedded PNGs, the
tables hold the rolls, chunks, sources, gates and settings of the data written here,
nothing outside the HTML is needed or written, and Snakemake's --report shows it too."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path

import duckdb
import pytest
from conftest import PROJECT, Bar, Run, business_days, day_bars, write_bars
from PIL import Image

from dbn_backfill.views.report import write_report

D = dt.date
START, END = D(2024, 2, 5), D(2024, 2, 23)
ROLL, FLIP_BACK, ROLL_AGAIN, THIN = D(2024, 2, 13), D(2024, 2, 15), D(2024, 2, 16), D(2024, 2, 21)


def day(raw_j: tuple[int, int], raw_m: tuple[int, int], d: dt.date) -> list[Bar]:
    """MGCJ4 and MGCM4 bars of ``d``: (bars, volume per bar) each."""
    return day_bars("MGCJ4", 2, d, n=raw_j[0], volume=raw_j[1]) + day_bars(
        "MGCM4", 3, d, n=raw_m[0], volume=raw_m[1]
    )


def bars_of(d: dt.date) -> list[Bar]:
    if d < ROLL:
        return day((4, 30), (2, 5), d)  # J4 120 vs M4 10
    if d in (ROLL, ROLL + dt.timedelta(days=1)):
        return day((2, 10), (4, 30), d)  # roll: M4 120 vs J4 20
    if d == FLIP_BACK:
        return day((4, 11), (4, 10), d)  # back to J4, near tie: 44 vs 40
    if d == THIN:
        return day((2, 5), (1, 200), d)  # M4 wins with one bar: a thin day
    return day((2, 5), (4, 30), d)  # M4 120 vs J4 10


@pytest.fixture(scope="module")
def backfill(tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("report")
    dbn = root / "dbn"
    days = business_days(START, END)
    write_bars(dbn / "first.dbn.zst", [b for d in days if d < D(2024, 2, 12) for b in bars_of(d)])
    write_bars(dbn / "second.dbn", [b for d in days if d >= D(2024, 2, 12) for b in bars_of(d)])
    run = Run(root, dbn, "MGC", START, END, chunk_days=5)
    run.run(check=True)
    return run


class Page(HTMLParser):
    """Tables (by id: rows of cell texts, header first), images and ids of an HTML page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: dict[str, dict[str, str]] = {}
        self.ids: dict[str, str] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._paragraph: tuple[str, list[str]] | None = None  # (id, texts) of a <p id=...>
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "p" and "id" in a:
            self._paragraph = (a["id"], [])
        if tag == "table":
            self._table = a.get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images[a["id"]] = a

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "p" and self._paragraph is not None:
            self.ids[self._paragraph[0]] = "".join(self._paragraph[1])
            self._paragraph = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._paragraph is not None:
            self._paragraph[1].append(data)


def snapshot(*folders: Path) -> dict[str, bytes]:
    return {
        str(p): p.read_bytes() for f in folders for p in sorted(Path(f).rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def page(backfill, tmp_path_factory) -> tuple[Page, str, Path]:
    out = tmp_path_factory.mktemp("html")
    before = snapshot(backfill.db.parent / "checkpoints") | {"db": backfill.db.read_bytes()}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dbn_backfill.cli",
            "report",
            "--db",
            str(backfill.db),
            "--checkpoint",
            str(backfill.checkpoint),
            "--workdir",
            str(backfill.workdir),
            "--out",
            str(out / "report.html"),
            "--charts-dir",
            str(out / "charts"),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert str((out / "report.html").resolve()) in proc.stdout
    after = snapshot(backfill.db.parent / "checkpoints") | {"db": backfill.db.read_bytes()}
    assert after == before, "the report changed the database or the checkpoints"
    text = (out / "report.html").read_text()
    return Page(text), text, out


def test_charts_are_embedded_pngs(page):
    parsed, text, out = page
    for chart, name in (
        ("chart-rolls", "rolls"),
        ("chart-rolls-detail", "rolls_detail"),
        ("chart-bars-per-day", "bars_per_day"),
    ):
        src = parsed.images[chart]["src"]
        assert src.startswith("data:image/png;base64,"), chart
        png = base64.b64decode(src.split(",", 1)[1])
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert png == (out / "charts" / f"{name}.png").read_bytes()
        width, height = Image.open(io.BytesIO(png)).size
        assert width >= 1000 and height >= 300, (chart, width, height)
    assert "MGC roll chart" in parsed.images["chart-rolls"]["alt"]
    # self-contained: no external resource of any kind
    # (a URL may appear as text: the databento_gateway setting of the config snapshot)
    for needle in ('src="http', 'href="http', "<script", "<link", 'src="/', "url("):
        assert needle not in text, needle


def test_rolls_table_holds_every_roll_of_the_data(page, backfill):
    rows = page[0].tables["rolls"]
    assert rows[0][:9] == ["trade date", "from contract", "from expiry", "to contract",
                           "to expiry", "gap", "ratio", "roll back", "stale"]  # fmt: skip
    con = duckdb.connect(str(backfill.db), read_only=True)
    try:
        view = con.execute(
            "SELECT trade_date, gap, ratio, stale FROM rolls ORDER BY trade_date"
        ).fetchall()
    finally:
        con.close()
    assert [r[0] for r in rows[1:]] == [str(v[0]) for v in view]
    assert [(r[5], r[6]) for r in rows[1:]] == [(f"{g:+,.2f}", f"{q:,.5f}") for _, g, q, _ in view]
    assert [r[8] == "stale" for r in rows[1:]] == [bool(v[3]) for v in view]
    assert [r[1:5] + r[7:8] + r[9:] for r in rows[1:]] == [
        ["MGCJ4", "2024-04", "MGCM4", "2024-06", "", "120", "20", "MGCJ4", "20", "85.7%"],
        ["MGCM4", "2024-06", "MGCJ4", "2024-04", "roll back", "44", "40", "MGCM4", "40", "52.4%"],
        ["MGCJ4", "2024-04", "MGCM4", "2024-06", "", "120", "10", "MGCJ4", "10", "92.3%"],
    ]


def test_lookahead_exposure_matches_the_lineage(page, backfill):
    parsed, text, _ = page
    con = duckdb.connect(str(backfill.db), read_only=True)
    try:
        differs, unknown, total = con.execute(
            "SELECT count(*) FILTER (other_rule_pick <> source_symbol), "
            "count(*) FILTER (other_rule_pick IS NULL), count(*) FROM bars_1m_trade_dates"
        ).fetchone()
    finally:
        con.close()
    row = parsed.tables["exposure"][1]
    assert row[:3] == ["same_day_volume", "prior_day_volume", str(total)]
    assert (row[3], row[6]) == (str(differs), str(unknown))
    assert differs > 0  # the prior day's volume rolls a day later: 02-13, 02-15, 02-16, ...
    assert len(parsed.tables["exposure-days"]) - 1 == differs
    assert 'id="exposure-section"' in text and 'id="exposure-summary"' in text


def test_thinnest_days_and_missing_days(page, backfill):
    parsed = page[0]
    thin = parsed.tables["thin-days"]
    assert thin[0][:5] == ["trade date", "contract", "bars", "session minutes", "coverage"]
    first = thin[1]
    assert first[:3] == [str(THIN), "MGCM4 (2024-06)", "1"]
    assert first[3] == "1,380"  # a CMEGlobex_Metals session: 17:00-16:00 Chicago
    assert len(thin) - 1 == len(business_days(START, END))  # fewer than 20 trade dates
    assert parsed.ids["missing-days"].startswith("None")


def test_chunks_and_sources_tables_match_the_lineage(page, backfill):
    parsed = page[0]
    chunk_rows = parsed.tables["chunks"]
    assert chunk_rows[0] == [
        "chunk", "trade dates", "days", "rows", "contract(s)", "content hash", "committed", "run",
    ]  # fmt: skip
    ids = [r[0] for r in chunk_rows[1:]]
    assert ids == sorted(backfill.checkpoints()) and len(ids) == 3
    con = duckdb.connect(str(backfill.db), read_only=True)
    try:
        lineage = {
            r[0]: (r[1], r[2])
            for r in con.execute(
                "SELECT chunk_id, rows, content_hash FROM bars_1m_chunks"
            ).fetchall()
        }
        (total,) = con.execute("SELECT count(*) FROM bars_1m").fetchone()
    finally:
        con.close()
    for row in chunk_rows[1:]:
        assert (int(row[3].replace(",", "")), row[5]) == lineage[row[0]]
    assert sum(int(r[3].replace(",", "")) for r in chunk_rows[1:]) == total
    roll_chunk = next(r for r in chunk_rows[1:] if r[1].startswith("2024-02-09"))
    assert roll_chunk[4] == "MGCJ4 (2024-04) MGCM4 (2024-06)" and roll_chunk[2] == "5"

    sources = {(r[0], int(r[1].replace(",", "")), r[2]) for r in page[0].tables["sources"][1:]}
    expected = {
        (str(p.resolve()), p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in (backfill.dbn / "first.dbn.zst", backfill.dbn / "second.dbn")
    }
    assert sources == expected


def test_gates_runs_settings_and_versions(page, backfill):
    parsed = page[0]
    gates_file = next((backfill.workdir / "results" / "MGC" / "runs").glob("*/gates.json"))
    gates = json.loads(gates_file.read_text())["gates"]
    rows = parsed.tables["gates"]
    assert [r[0] for r in rows[1:]] == [g["name"] for g in gates] and len(gates) == 8
    assert all(r[1] == "PASS" for r in rows[1:])
    assert rows[-1][0] == "spot-check against DBN" and "checked" in rows[-1][2]
    runs = parsed.tables["runs"]
    assert len(runs) == 2 and runs[1][0] == gates_file.parent.name and runs[1][-1] == "PASS"
    config = dict(parsed.tables["config"][1:])
    assert config["symbol"] == "MGC" and config["start"] == str(START)
    assert config["end"] == str(END) and config["chunk_days"] == "5"
    assert config["db"] == str(backfill.db.resolve())
    versions = {r[0]: r[1:] for r in parsed.tables["versions"][1:]}
    for name in ("dbn-backfill", "databento", "duckdb", "pandas_market_calendars", "snakemake",
                 "pyarrow", "matplotlib"):  # fmt: skip
        assert versions[name] == [metadata.version(name)] * 2, name


def test_report_from_the_database_alone(backfill, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no run records anywhere near
    data = write_report(tmp_path / "r.html", backfill.db)
    parsed = Page((tmp_path / "r.html").read_text())
    assert "reconstructed from the database lineage" in data.model.settings.origin
    config = dict(parsed.tables["config"][1:])
    assert config["chunk_days (most common chunk length)"] == "5"
    assert config["first trade date"] == str(START) and config["last trade date"] == str(END)
    assert config["dbn (common folder of the sources)"] == str(backfill.dbn.resolve())
    assert "gates" not in parsed.tables and len(parsed.tables["rolls"]) == 4
    assert {r[0] for r in parsed.tables["versions"][1:]} >= {"matplotlib", "snakemake"}


def test_snakemake_report_shows_the_report(backfill, tmp_path):
    """`snakemake backfill_report` writes the report; `snakemake --report` then holds it."""
    work = tmp_path / "work"
    shutil.copytree(backfill.workdir, work)
    config = [
        f"dbn={backfill.dbn}", f"db={backfill.db}", "symbol=MGC", f"start={START}",
        f"end={END}", "chunk_days=5", f"checkpoint={backfill.checkpoint}",
    ]  # fmt: skip
    base = [sys.executable, "-m", "snakemake", "backfill_report", "--snakefile",
            str(PROJECT / "workflow" / "Snakefile"), "--directory", str(work), "--cores", "2"]  # fmt: skip
    made = subprocess.run([*base, "--config", *config], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-4000:]
    folder = work / "results" / "MGC" / "report"
    names = {"report.html", "rolls.png", "rolls_detail.png", "bars_per_day.png", "gates.json"}
    assert {p.name for p in folder.iterdir()} == names
    assert json.loads((folder / "gates.json").read_text())["passed"] is True
    assert 'id="chart-rolls"' in (folder / "report.html").read_text()
    out = tmp_path / "snakemake-report.html"
    shown = subprocess.run(
        [*base, "--report", str(out), "--config", *config],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shown.returncode == 0, shown.stderr[-4000:]
    text = out.read_text()
    for name in names:
        assert f"Adding {name}" in shown.stderr, shown.stderr[-3000:]
    assert "Written for symbol MGC" in text  # the caption, rendered

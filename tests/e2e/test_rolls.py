"""Contract section 12 end to end on a tiny fixture with hand-computed gaps: the
``rolls`` view, the back-adjusted views and the ``dbn-backfill rolls`` command in
every format."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import duckdb
import pandas as pd
import pytest
from conftest import Run, day_bars, write_bars

from dbn_backfill.views.rolls import COLUMNS

pytestmark = pytest.mark.slow

D = dt.date
START, END = D(2024, 1, 8), D(2024, 1, 16)  # MLK day 2024-01-15 inside


def bars(raw: str, iid: int, day: dt.date, n: int, volume: int, close: float):
    return day_bars(
        raw, iid, day, n=n, volume=volume, open=close, high=close + 1, low=close - 1, close=close
    )


#: per trade date: (raw symbol, instrument id, bars, volume per bar, close) of each contract
DAYS = {
    D(2024, 1, 8): [("MGCG4", 1, 3, 30, 100.0), ("MGCJ4", 2, 3, 5, 110.0)],
    D(2024, 1, 9): [("MGCG4", 1, 3, 30, 101.0), ("MGCJ4", 2, 3, 5, 111.0)],
    # roll G4 -> J4, both last bars at 14:32: gap 10, ratio 112/102
    D(2024, 1, 10): [("MGCG4", 1, 3, 5, 102.0), ("MGCJ4", 2, 3, 50, 112.0)],
    D(2024, 1, 11): [("MGCJ4", 2, 3, 50, 113.0)],
    # roll back J4 -> G4, J4 has no bar that day: gap 0, ratio 1, stale
    D(2024, 1, 12): [("MGCG4", 1, 3, 50, 104.0)],
    # roll G4 -> J4, last bars 14:31 and 14:39 (8 minutes apart): gap 10, stale
    D(2024, 1, 16): [("MGCG4", 1, 2, 5, 105.0), ("MGCJ4", 2, 10, 100, 115.0)],
}

EXPECTED_ROLLS = [
    ("MGC", D(2024, 1, 10), "MGCG4", "2024-02", "MGCJ4", "2024-04", 10.0, 112 / 102, False, False),
    ("MGC", D(2024, 1, 12), "MGCJ4", "2024-04", "MGCG4", "2024-02", 0.0, 1.0, True, True),
    ("MGC", D(2024, 1, 16), "MGCG4", "2024-02", "MGCJ4", "2024-04", 10.0, 115 / 105, False, True),
]

#: per trade date: (sum of later gaps, product of later ratios)
FACTORS = {
    D(2024, 1, 8): (20.0, 112 / 102 * 115 / 105),
    D(2024, 1, 9): (20.0, 112 / 102 * 115 / 105),
    D(2024, 1, 10): (10.0, 115 / 105),
    D(2024, 1, 11): (10.0, 115 / 105),
    D(2024, 1, 12): (10.0, 115 / 105),
    D(2024, 1, 16): (0.0, 1.0),
}

#: the close of the front contract per trade date
FRONT_CLOSE = {
    D(2024, 1, 8): 100.0,
    D(2024, 1, 9): 101.0,
    D(2024, 1, 10): 112.0,
    D(2024, 1, 11): 113.0,
    D(2024, 1, 12): 104.0,
    D(2024, 1, 16): 115.0,
}


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("rolls")
    dbn = root / "dbn"
    for day, contracts in DAYS.items():
        day_file = [b for c in contracts for b in bars(c[0], c[1], day, *c[2:])]
        write_bars(dbn / f"d{day:%Y%m%d}.dbn", day_file)
    run = Run(root, dbn, "MGC", START, END, chunk_days=2)
    run.run(check=True)
    return run


def query(run: Run, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(run.db), read_only=True)
    try:
        con.execute("SET TimeZone='UTC'")
        return con.sql(sql).df()
    finally:
        con.close()


def test_the_rolls_view_holds_the_hand_computed_gaps(backfilled):
    got = query(backfilled, "SELECT * FROM rolls ORDER BY trade_date")
    assert tuple(got.columns) == COLUMNS
    rows = [tuple(r) for r in got.itertuples(index=False)]
    assert len(rows) == len(EXPECTED_ROLLS)
    for row, want in zip(rows, EXPECTED_ROLLS, strict=True):
        assert (pd.Timestamp(row[1]).date(), *row[2:6]) == want[1:6]
        assert row[6] == pytest.approx(want[6]) and row[7] == pytest.approx(want[7])
        assert (bool(row[8]), bool(row[9])) == want[8:]
    types = dict(query(backfilled, "DESCRIBE rolls")[["column_name", "column_type"]].values)
    assert types["trade_date"] == "DATE" and types["gap"] == types["ratio"] == "DOUBLE"
    assert types["roll_back"] == types["stale"] == "BOOLEAN"


@pytest.mark.parametrize("view", ["bars_1m_adj_diff", "bars_1m_adj_ratio"])
def test_the_adjusted_views_add_later_gaps_and_multiply_later_ratios(backfilled, view):
    raw = query(backfilled, "SELECT * FROM bars_1m ORDER BY ts_utc")
    adj = query(backfilled, f"SELECT * FROM {view} ORDER BY ts_utc")
    assert list(adj.columns) == list(raw.columns)
    assert len(adj) == len(raw)
    assert (
        (adj[["ts_utc", "symbol", "source_symbol", "volume"]] == raw[adj.columns[[0, 1, 2, 7]]])
        .all()
        .all()
    )
    for i, bar in raw.iterrows():
        diff, ratio = FACTORS[bar["ts_utc"].date()]
        assert bar["close"] == FRONT_CLOSE[bar["ts_utc"].date()]
        for price in ("open", "high", "low", "close"):
            want = bar[price] + diff if view.endswith("diff") else bar[price] * ratio
            assert adj.loc[i, price] == pytest.approx(want, rel=1e-12), (bar["ts_utc"], price)
    last = raw["ts_utc"].dt.date == END  # the latest contract segment is raw
    assert (adj.loc[last, "close"] == raw.loc[last, "close"]).all()


def rolls_cli(run: Run, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dbn_backfill.cli", "rolls", "--db", str(run.db), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("fmt", ["table", "csv", "parquet", "json"])
def test_the_rolls_command_in_every_format(backfilled, fmt, tmp_path):
    out = tmp_path / f"rolls.{fmt}"
    proc = rolls_cli(backfilled, "--symbol", "MGC", "--format", fmt, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    if fmt == "table":
        text = out.read_text()
        assert text.split()[: len(COLUMNS)] == list(COLUMNS)
        assert text.count("MGCJ4") == 3 and "2024-01-12" in text
        return
    if fmt == "csv":
        got = pd.read_csv(out)
    elif fmt == "parquet":
        got = pd.read_parquet(out)
    else:
        got = pd.DataFrame(json.loads(out.read_text()))
    assert tuple(got.columns) == COLUMNS
    assert [str(d) for d in got["trade_date"]] == [str(r[1]) for r in EXPECTED_ROLLS]
    assert got["to_contract"].tolist() == [r[4] for r in EXPECTED_ROLLS]
    assert got["gap"].tolist() == pytest.approx([r[6] for r in EXPECTED_ROLLS])
    assert [bool(v) for v in got["roll_back"]] == [False, True, False]
    assert [bool(v) for v in got["stale"]] == [False, True, True]


def test_the_rolls_command_prints_to_stdout_and_refuses_what_it_cannot_read(backfilled, tmp_path):
    proc = rolls_cli(backfilled, "--format", "csv")
    assert proc.returncode == 0 and proc.stdout.splitlines()[0] == ",".join(COLUMNS)
    assert len(proc.stdout.splitlines()) == 4
    assert rolls_cli(backfilled, "--symbol", "GC").stdout.strip() == "no rolls"
    assert rolls_cli(backfilled, "--format", "parquet").returncode == 2
    missing = subprocess.run(
        [sys.executable, "-m", "dbn_backfill.cli", "rolls", "--db", str(tmp_path / "none.duckdb")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr

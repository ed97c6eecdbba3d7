"""Both roll rules (contract section 5a) end to end on synthetic MGC data with rolls,
compared row for row with an independent computation written here in plain pandas from
the DBN files (databento's ``DBNStore.to_df``, not the project's decode or selection);
then the rule switch on an existing database rewrites only the chunks whose contracts
change (the others keep their commit times) and rewrites every trade date's lineage."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import databento
import numpy as np
import pandas as pd
import pytest
from conftest import Run, business_days, read_table

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:The inplace keyword")]

D = dt.date
START, END = D(2024, 1, 16), D(2024, 4, 30)
MONTHS = "FGHJKMNQUVXZ"
OUTRIGHT = re.compile(r"^MGC[FGHJKMNQUVXZ][0-9]{1,2}$")


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rules")
    dbn = root / "dbn"
    cmd = [sys.executable, "-m", "dbn_backfill.cli", "synth", "--out", str(dbn)]
    cmd += ["--start", "2024-01-01", "--end", "2024-05-03", "--seed", "11", "--layout", "daily"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    return dbn


# --- the independent computation -------------------------------------------------------


def records(dbn: Path) -> pd.DataFrame:
    """Every outright MGC record of every file, identical duplicates once, with its trade
    date (Chicago time + 7 h, moved forward to a business day)."""
    frames = []
    for path in sorted(dbn.rglob("*.dbn*")):
        df = databento.DBNStore.from_file(path).to_df(
            price_type="fixed", pretty_ts=False, map_symbols=True
        )
        frames.append(df.reset_index())
    df = pd.concat(frames, ignore_index=True)
    df = df[df["symbol"].astype(str).str.match(OUTRIGHT)].copy()
    df = df.drop_duplicates(["instrument_id", "ts_event", "open", "high", "low", "close", "volume"])
    ts = pd.to_datetime(df["ts_event"].astype("int64"), unit="ns", utc=True)
    session = (ts.dt.tz_convert(ZoneInfo("America/Chicago")).dt.tz_localize(None)
               + pd.Timedelta(hours=7)).dt.date  # fmt: skip
    days = business_days(D(2023, 12, 1), D(2024, 6, 28))
    ordered = np.array(days, dtype="datetime64[D]")
    at = np.searchsorted(ordered, np.array(list(session), dtype="datetime64[D]"))
    df["trade_date"] = [days[i] for i in at]
    df["symbol"] = df["symbol"].astype(str)
    return df


def expiry(raw: str, year: int) -> tuple[int, int]:
    digits = raw[4:]
    y = year - 1
    while y % 10 ** len(digits) != int(digits):
        y += 1
    return y, MONTHS.index(raw[3]) + 1


def rank(volumes: dict[str, int], day: dt.date) -> str:
    return sorted(volumes, key=lambda s: (-volumes[s], expiry(s, day.year), s))[0]


def picks(df: pd.DataFrame, rule: str) -> dict[dt.date, str]:
    per_day = df.groupby(["trade_date", "symbol"])["volume"].sum()
    vols: dict[dt.date, dict[str, int]] = {}
    for (day, sym), v in per_day.items():
        vols.setdefault(day, {})[sym] = int(v)
    days = business_days(D(2023, 12, 1), END)
    out = {}
    for day in business_days(START, END):
        if day not in vols:
            continue
        today = vols[day]
        basis = vols.get(days[days.index(day) - 1])
        if rule == "prior_day_volume" and basis:
            out[day] = rank({s: basis.get(s, 0) for s in today}, day)
        else:
            out[day] = rank(today, day)
    return out


def expected_bars(df: pd.DataFrame, chosen: dict[dt.date, str]) -> pd.DataFrame:
    keep = [chosen.get(d) == s for d, s in zip(df["trade_date"], df["symbol"], strict=True)]
    rows = df[keep].sort_values("ts_event")
    return pd.DataFrame(
        {
            "ts_utc": pd.to_datetime(rows["ts_event"].astype("int64"), unit="ns", utc=True),
            "source_symbol": rows["symbol"].to_numpy(),
            **{
                c: rows[c].astype("int64").to_numpy() / 1e9
                for c in ("open", "high", "low", "close")
            },
            "volume": rows["volume"].astype("int64").to_numpy(),
        }
    ).reset_index(drop=True)


# --- the runs ---------------------------------------------------------------------------


def check_table(run: Run, df: pd.DataFrame, rule: str) -> dict[dt.date, str]:
    chosen, other = (
        picks(df, rule),
        picks(df, {"same_day_volume": "prior_day_volume"}.get(rule, "same_day_volume")),
    )
    got = run.rows().sort_values("ts_utc").reset_index(drop=True)
    want = expected_bars(df, chosen)
    assert len(got) == len(want)
    assert (got["ts_utc"].dt.as_unit("us") == want["ts_utc"].dt.as_unit("us")).all()
    for column in ("source_symbol", "open", "high", "low", "close", "volume"):
        assert (got[column].to_numpy() == want[column].to_numpy()).all(), column
    lineage = read_table(run.db, "bars_1m_trade_dates").set_index("trade_date")
    lineage.index = [pd.Timestamp(d).date() for d in lineage.index]
    assert lineage["source_symbol"].to_dict() == chosen
    assert set(lineage["roll_rule"]) == {rule}
    # the other rule's pick; the first trade date's is unknown under same_day_volume
    known = lineage["other_rule_pick"].dropna().to_dict()
    assert known == {d: s for d, s in other.items() if d in known}
    assert len(known) >= len(other) - 1
    return chosen


def test_both_rules_and_the_switch(synth, tmp_path):
    df = records(synth)
    same, prior = picks(df, "same_day_volume"), picks(df, "prior_day_volume")
    differ = sorted(d for d in same if same[d] != prior[d])
    assert differ, "the data must roll, and the rules must differ on some roll day"
    run = Run(tmp_path, synth, "MGC", START, END, chunk_days=5)
    run.run(check=True)
    check_table(run, df, "same_day_volume")
    before = read_table(run.db, "bars_1m_chunks").set_index("chunk_id")["committed_at"]

    run.run("--roll-rule", "prior_day_volume", check=True)
    check_table(run, df, "prior_day_volume")
    chunks = read_table(run.db, "bars_1m_chunks")
    after = chunks.set_index("chunk_id")["committed_at"]
    assert set(after.index) == set(before.index)
    changed = {
        c
        for c, first, last in zip(
            chunks["chunk_id"], chunks["chunk_start"], chunks["chunk_end"], strict=True
        )
        if any(pd.Timestamp(first).date() <= d <= pd.Timestamp(last).date() for d in differ)
    }
    assert changed and len(changed) < len(after)
    for chunk_id in after.index:
        if chunk_id in changed:
            assert after[chunk_id] > before[chunk_id], chunk_id
        else:
            assert after[chunk_id] == before[chunk_id], chunk_id
    lineage = read_table(run.db, "bars_1m_trade_dates")
    basis = lineage.set_index("trade_date")["basis_day"]
    assert (basis < basis.index).sum() >= len(lineage) - 1  # every T ranked by its B
    # the basis day of start lies before start and is read, never stored
    assert pd.Timestamp(basis.iloc[0]).date() == D(2024, 1, 12)
    assert run.rows()["ts_utc"].min() >= pd.Timestamp("2024-01-12 23:00", tz="UTC")

    run.run(check=True)  # back to same_day_volume: the same table as the first run
    check_table(run, df, "same_day_volume")

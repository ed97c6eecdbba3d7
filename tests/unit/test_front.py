"""The roll rules of contract section 5a on small frames: ``select_front`` by itself (ties,
basis gaps, candidates without basis bars) and ``build_batch`` reading basis days (a
Monday after a holiday, a basis day before ``start`` holding a bad record)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dbn_backfill.chunks.build import build_batch
from dbn_backfill.chunks.front import PRIOR_DAY, SAME_DAY, select_front
from dbn_backfill.chunks.grid import Chunk
from dbn_backfill.sources.decode import DECODED_SCHEMA
from dbn_backfill.symbols import root_of
from dbn_backfill.tradedate import Calendar

D = dt.date
P = 1_000_000_000


def volumes(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["trade_date", "raw_symbol", "volume"])
    frame["trade_date"] = pd.to_datetime(frame["trade_date"]).values.astype("datetime64[D]")
    frame["instrument_id"] = range(len(frame))
    return frame


def picks(sel: pd.DataFrame, column: str = "source_symbol") -> dict[str, object]:
    return dict(zip(sel["trade_date"].dt.date.astype(str), sel[column], strict=True))


T, B = "2024-03-20", "2024-03-19"
BASIS_OF = {D(2024, 3, 20): D(2024, 3, 19)}


def test_prior_day_ranks_todays_candidates_by_yesterdays_volume():
    today = volumes([(T, "MGCJ4", 100), (T, "MGCM4", 300)])
    yesterday = volumes([(B, "MGCJ4", 200), (B, "MGCM4", 50), (B, "MGCQ4", 999)])
    sel = select_front(today, "MGC", PRIOR_DAY, yesterday, BASIS_OF)
    row = sel.iloc[0]
    # Q4 traded only yesterday: not a candidate; J4 had more volume yesterday
    assert (row["source_symbol"], row["runner_up"]) == ("MGCJ4", "MGCM4")
    assert (row["volume"], row["runner_up_volume"]) == (100, 300)  # T's own volumes
    assert (row["basis_volume"], row["runner_up_basis_volume"]) == (200, 50)
    assert (row["roll_rule"], pd.Timestamp(row["basis_day"]).date()) == (PRIOR_DAY, D(2024, 3, 19))
    assert (row["expiry"], row["runner_up_expiry"]) == ("2024-04", "2024-06")
    assert row["other_rule_pick"] == "MGCM4"  # same_day_volume would pick M4
    same = select_front(today, "MGC", SAME_DAY, yesterday, BASIS_OF).iloc[0]
    assert (same["source_symbol"], same["other_rule_pick"]) == ("MGCM4", "MGCJ4")
    assert pd.Timestamp(same["basis_day"]).date() == D(2024, 3, 20)
    assert same["basis_volume"] == 300


def test_prior_day_ties_go_to_the_earliest_expiry_then_the_raw_symbol():
    today = volumes([(T, "MGCM4", 300), (T, "MGCJ4", 100), (T, "MGCJ24", 5)])
    yesterday = volumes([(B, "MGCJ4", 70), (B, "MGCM4", 70), (B, "MGCJ24", 70)])
    sel = select_front(today, "MGC", PRIOR_DAY, yesterday, BASIS_OF)
    # all tie at 70: J4 and J24 are both 2024-04; MGCJ24 < MGCJ4 lexicographically
    assert (sel.iloc[0]["source_symbol"], sel.iloc[0]["runner_up"]) == ("MGCJ24", "MGCJ4")


def test_a_candidate_without_bars_on_the_basis_day_counts_zero():
    today = volumes([(T, "MGCJ4", 100), (T, "MGCM4", 300)])
    yesterday = volumes([(B, "MGCJ4", 1)])
    sel = select_front(today, "MGC", PRIOR_DAY, yesterday, BASIS_OF)
    assert sel.iloc[0]["source_symbol"] == "MGCJ4"
    assert sel.iloc[0]["runner_up_basis_volume"] == 0


@pytest.mark.parametrize("basis_of", [BASIS_OF, {D(2024, 3, 20): None}, None])
def test_a_basis_day_without_bars_falls_back_to_the_trade_dates_own_volume(basis_of):
    today = volumes([(T, "MGCJ4", 100), (T, "MGCM4", 300)])
    other_day = volumes([("2024-03-18", "MGCJ4", 999)])  # not the basis day
    sel = select_front(today, "MGC", PRIOR_DAY, other_day, basis_of)
    row = sel.iloc[0]
    assert row["source_symbol"] == "MGCM4" and row["other_rule_pick"] == "MGCM4"
    assert pd.Timestamp(row["basis_day"]).date() == D(2024, 3, 20)  # basis = T
    assert (row["basis_volume"], row["runner_up_basis_volume"]) == (300, 100)


def test_an_unknown_basis_leaves_the_other_pick_unknown_and_cannot_be_selected_for():
    today = volumes([(T, "MGCJ4", 100), (T, "MGCM4", 300)])
    lost = {D(2024, 3, 20)}
    sel = select_front(today, "MGC", SAME_DAY, None, BASIS_OF, lost)
    assert sel.iloc[0]["source_symbol"] == "MGCM4" and sel.iloc[0]["other_rule_pick"] is None
    with pytest.raises(ValueError, match="basis day"):
        select_front(today, "MGC", PRIOR_DAY, None, BASIS_OF, lost)


# --- build_batch: basis days read from the decoded records -------------------------

#: Good Friday 2024-03-29 is no CME business day: Monday 2024-04-01's basis day is
#: Thursday 2024-03-28.
CALENDAR = Calendar(
    "CME_TradeDate",
    "America/Chicago",
    "17:00",
    np.array(
        ["2024-03-26", "2024-03-27", "2024-03-28", "2024-04-01", "2024-04-02"],
        dtype="datetime64[D]",
    ),
)


def record(day, raw, iid, minute=0, volume=10, **prices) -> dict:
    ts = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=14, minutes=30 + minute)
    px = {"open": 2000 * P, "high": 2001 * P, "low": 1999 * P, "close": 2000 * P, **prices}
    return {
        "source": "/dbn/a.dbn",
        "instrument_id": iid,
        "ts_event": int(ts.value),
        **px,
        "volume": volume,
        "raw_symbol": raw,
        "trade_date": day,
        "root": root_of(raw),
    }


def day_records(day, j4: int, m4: int) -> list[dict]:
    return [record(day, "MGCJ4", 1, m, volume=j4) for m in range(2)] + [
        record(day, "MGCM4", 2, m + 5, volume=m4) for m in range(2)
    ]


def build(tmp_path, records, chunks, rule, basis_first):
    decoded = tmp_path / "decoded.parquet"
    pq.write_table(pa.Table.from_pylist(records, schema=DECODED_SCHEMA), decoded)
    out = tmp_path / rule
    manifest = build_batch(
        [decoded],
        "b0",
        chunks,
        out / "bars.parquet",
        out / "selection.parquet",
        out / "manifest.json",
        "MGC",
        terms_output=out / "terms.parquet",
        roll_rule=rule,
        basis_first=basis_first,
        calendar=CALENDAR,
    )
    selection = pq.read_table(out / "selection.parquet").to_pandas()
    bars = pq.read_table(out / "bars.parquet").to_pandas()
    terms = pq.read_table(out / "terms.parquet").to_pandas()
    return manifest, selection.set_index("trade_date"), bars, terms


def test_a_roll_on_the_monday_after_a_holiday_ranks_by_the_thursday_before(tmp_path):
    thu, mon = D(2024, 3, 28), D(2024, 4, 1)
    records = day_records(thu, j4=10, m4=30) + day_records(mon, j4=50, m4=40)
    chunks = [Chunk(D(2024, 3, 27), thu), Chunk(mon, D(2024, 4, 2))]
    records += day_records(D(2024, 3, 27), j4=30, m4=10) + day_records(D(2024, 4, 2), 5, 60)
    _, prior, bars, terms = build(tmp_path, records, chunks, PRIOR_DAY, D(2024, 3, 26))
    assert prior.loc[mon, "source_symbol"] == "MGCM4"  # Thursday's volume: M4
    assert prior.loc[mon, "basis_day"] == thu
    assert (prior.loc[mon, "basis_volume"], prior.loc[mon, "runner_up_basis_volume"]) == (60, 20)
    assert prior.loc[mon, "other_rule_pick"] == "MGCJ4"
    # 2024-03-27's basis day 2024-03-26 has no bars: its own volume decides
    assert prior.loc[D(2024, 3, 27), "basis_day"] == D(2024, 3, 27)
    assert prior.loc[D(2024, 3, 27), "source_symbol"] == "MGCJ4"
    assert prior.loc[mon, "session_start_utc"] == pd.Timestamp("2024-03-28 22:00", tz="UTC")
    assert set(bars["source_symbol"][bars["ts_utc"].dt.date == mon]) == {"MGCM4"}
    mon_terms = terms[terms["trade_date"] == mon].set_index("source_symbol")
    assert mon_terms.loc["MGCJ4", "volume"] == 100 and mon_terms.loc["MGCJ4", "bars"] == 2
    assert mon_terms.loc["MGCM4", "last_ts_utc"] == pd.Timestamp("2024-04-01 14:36", tz="UTC")
    assert mon_terms.loc["MGCM4", "expiry"] == "2024-06"


@pytest.mark.parametrize("rule", [SAME_DAY, PRIOR_DAY])
def test_a_bad_record_on_the_basis_day_before_start(tmp_path, rule):
    """The basis day of ``start`` is read, checked and never stored: a bad record there
    fails the first chunk under prior_day_volume only."""
    wed, thu = D(2024, 3, 27), D(2024, 3, 28)
    before = [*day_records(D(2024, 3, 26), 30, 10), record(D(2024, 3, 26), "MGCJ4", 1, 9, open=0)]
    records = before + day_records(wed, 10, 30) + day_records(thu, 10, 30)
    chunks = [Chunk(wed, wed), Chunk(thu, thu)]
    manifest, selection, bars, _ = build(tmp_path, records, chunks, rule, D(2024, 3, 26))
    assert not (bars["ts_utc"].dt.date == D(2024, 3, 26)).any()
    first, second = manifest.chunks
    assert second.status == "ok"
    if rule == PRIOR_DAY:
        assert first.status == "failed"
        assert "basis day 2024-03-26 of trade date 2024-03-27" in str(first.error)
        assert "open" in str(first.error)
    else:
        assert first.status == "ok"
        assert selection.loc[wed, "source_symbol"] == "MGCM4"
        assert pd.isna(selection.loc[wed, "other_rule_pick"])  # its basis is unknown
        assert selection.loc[thu, "other_rule_pick"] == "MGCM4"


def test_a_bad_record_on_the_previous_chunks_last_day_fails_the_next_chunk_too(tmp_path):
    wed, thu = D(2024, 3, 27), D(2024, 3, 28)
    records = day_records(wed, 10, 30) + day_records(thu, 10, 30)
    records.append(record(wed, "MGCM4", 2, 20, low=2500 * P))
    chunks = [Chunk(wed, wed), Chunk(thu, thu)]
    same, *_ = build(tmp_path, records, chunks, SAME_DAY, None)
    assert [c.status for c in same.chunks] == ["failed", "ok"]
    prior, *_ = build(tmp_path, records, chunks, PRIOR_DAY, D(2024, 3, 26))
    assert [c.status for c in prior.chunks] == ["failed", "failed"]
    assert "basis day 2024-03-27 of trade date 2024-03-28" in str(prior.chunks[1].error)


def test_the_content_hash_follows_the_outcome_the_lineage_hash_the_rule(tmp_path):
    """Same bars under both rules: same content hash, another lineage hash."""
    wed, thu = D(2024, 3, 27), D(2024, 3, 28)
    records = day_records(wed, 10, 30) + day_records(thu, 10, 30)
    chunks = [Chunk(wed, thu)]
    same, *_ = build(tmp_path, records, chunks, SAME_DAY, D(2024, 3, 26))
    prior, *_ = build(tmp_path, records, chunks, PRIOR_DAY, D(2024, 3, 26))
    assert same.chunks[0].content_hash == prior.chunks[0].content_hash
    assert same.chunks[0].lineage_hash != prior.chunks[0].lineage_hash

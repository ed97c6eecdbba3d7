"""Pure functions against simple references: trade dates, expiries, selection, row rules."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbn_backfill.chunks.front import select_front
from dbn_backfill.chunks.grid import plan_chunks
from dbn_backfill.chunks.rows import dedupe, invalid_mask
from dbn_backfill.symbols import expiry_key, is_outright

CHICAGO = ZoneInfo("America/Chicago")


def utc(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").as_unit("ns").value)


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2024-01-14 23:00", "2024-01-16"),  # Sunday evening of MLK weekend -> Tuesday
        ("2024-01-15 15:00", "2024-01-16"),  # MLK Monday morning -> Tuesday
        ("2024-01-16 21:59", "2024-01-16"),  # Tuesday 15:59 CT -> Tuesday
        ("2024-01-16 22:30", "2024-01-16"),  # halt hour stays with the closed session
        ("2024-01-16 23:00", "2024-01-17"),  # 17:00 CT starts the next session
        ("2024-11-27 23:30", "2024-11-29"),  # Wednesday evening before Thanksgiving -> Friday
        ("2024-03-08 22:59", "2024-03-08"),  # CST: roll at 23:00 UTC
        ("2024-03-08 23:00", "2024-03-11"),  # Friday 17:00 CT -> Monday
        ("2024-03-11 21:59", "2024-03-11"),  # CDT: roll at 22:00 UTC
        ("2024-03-11 22:00", "2024-03-12"),
        ("2024-03-09 12:00", "2024-03-11"),  # a stray Saturday bar -> Monday
        ("2020-12-28 00:00", "2020-12-28"),  # Sunday 18:00 CT -> Monday
    ],
)
def test_trade_date_examples(calendar, stamp, expected):
    assert str(calendar.trade_dates(np.array([utc(stamp)]))[0]) == expected


def reference_trade_date(calendar, ts_ns: int) -> dt.date:
    local = dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.UTC).astimezone(CHICAGO)
    day = (local.replace(tzinfo=None) + dt.timedelta(hours=7)).date()
    while not calendar.is_business_day(day):
        day += dt.timedelta(days=1)
    return day


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=utc("2005-01-01"), max_value=utc("2035-01-01")))
def test_trade_date_matches_reference(calendar, minute_ns):
    ts = minute_ns - minute_ns % 60_000_000_000
    assert pd.Timestamp(calendar.trade_dates(np.array([ts]))[0]).date() == reference_trade_date(
        calendar, ts
    )


@settings(max_examples=50, deadline=None)
@given(st.dates(min_value=dt.date(2005, 1, 1), max_value=dt.date(2035, 1, 1)))
def test_session_bounds_hold_exactly_the_trade_dates(calendar, day):
    days = calendar.business_days(day, day + dt.timedelta(days=10))
    first, last = (pd.Timestamp(d).date() for d in (days[0], days[min(3, len(days) - 1)]))
    lo, hi = calendar.session_bounds_utc(first, last)
    stamps = np.arange(lo.value - 3 * 3600 * 10**9, hi.value + 3 * 3600 * 10**9, 60 * 10**9)
    inside = (stamps >= lo.value) & (stamps < hi.value)
    td = calendar.trade_dates(stamps)
    in_range = (td >= np.datetime64(first)) & (td <= np.datetime64(last))
    assert (inside == in_range).all()


def test_outright_pattern():
    assert is_outright("MGCG4", "MGC")
    assert is_outright("MGCZ24", "MGC")
    assert not is_outright("MGCG4-MGCJ4", "MGC")
    assert not is_outright("GCG4", "MGC")
    assert not is_outright("MGCG", "MGC")
    assert not is_outright("MGCA4", "MGC")
    assert not is_outright("MGCG123", "MGC")


@pytest.mark.parametrize(
    ("raw", "year", "expected"),
    [
        ("MGCZ9", 2024, (2029, 12)),
        ("MGCG0", 2019, (2020, 2)),
        ("MGCZ3", 2024, (2023, 12)),
        ("MGCZ24", 2024, (2024, 12)),
        ("MGCF5", 2024, (2025, 1)),
    ],
)
def test_expiry_examples(raw, year, expected):
    assert expiry_key(raw, "MGC", year) == expected


@given(st.integers(2001, 2090), st.sampled_from("FGHJKMNQUVXZ"), st.integers(0, 99), st.booleans())
def test_expiry_is_smallest_year_at_least_previous(trade_year, month, digits, two):
    text = f"{digits:02d}" if two else str(digits % 10)
    year, m = expiry_key(f"MGC{month}{text}", "MGC", trade_year)
    modulus = 100 if two else 10
    candidates = [y for y in range(trade_year - 1, trade_year + 200) if y % modulus == int(text)]
    assert year == candidates[0]
    assert m == "FGHJKMNQUVXZ".index(month) + 1


def volumes(rows):
    frame = pd.DataFrame(rows, columns=["trade_date", "raw_symbol", "volume"])
    frame["trade_date"] = pd.to_datetime(frame["trade_date"])
    frame["instrument_id"] = range(len(frame))
    return frame


def test_selection_tie_breaks():
    sel = select_front(
        volumes(
            [
                ("2024-01-10", "MGCG4", 30),
                ("2024-01-10", "MGCJ4", 30),  # tie -> earliest expiry G4
                ("2024-01-11", "MGCG4", 30),
                ("2024-01-11", "MGCG24", 30),  # same expiry -> lexicographic MGCG24
                ("2024-01-12", "MGCZ9", 50),
                ("2024-01-12", "MGCZ4", 50),  # Z9 is 2029 -> Z4 wins
                ("2024-01-16", "MGCJ4", 10),
                ("2024-01-16", "MGCG4", 99),
            ]
        ),
        "MGC",
    )
    picks = dict(zip(sel["trade_date"].dt.date.astype(str), sel["source_symbol"], strict=True))
    assert picks == {
        "2024-01-10": "MGCG4",
        "2024-01-11": "MGCG24",
        "2024-01-12": "MGCZ4",
        "2024-01-16": "MGCG4",
    }
    runner = dict(zip(sel["trade_date"].dt.date.astype(str), sel["runner_up"], strict=True))
    assert runner["2024-01-16"] == "MGCJ4"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["MGCG4", "MGCJ4", "MGCM4", "MGCG24", "MGCZ9", "MGCZ3"]),
            st.integers(0, 5),
        ),
        min_size=1,
        max_size=6,
        unique_by=lambda t: t[0],
    )
)
def test_selection_matches_reference(entries):
    sel = select_front(volumes([("2024-05-01", s, v) for s, v in entries]), "MGC")

    def key(entry):
        symbol, vol = entry
        return (-vol, expiry_key(symbol, "MGC", 2024), symbol)

    assert sel["source_symbol"].tolist() == [sorted(entries, key=key)[0][0]]


def frame_of(rows):
    cols = ["ts_event", "open", "high", "low", "close", "volume"]
    frame = pd.DataFrame(rows, columns=cols)
    frame["volume"] = frame["volume"].astype("uint64")
    return frame


UNDEF = np.iinfo(np.int64).max
MIN = 60_000_000_000
P = 1_000_000_000


def test_row_rules_examples():
    frame = frame_of(
        [
            (MIN, 2 * P, 3 * P, 1 * P, 2 * P, 5),  # valid
            (MIN + 1, 2 * P, 3 * P, 1 * P, 2 * P, 5),  # not a whole minute
            (MIN, UNDEF, 3 * P, 1 * P, 2 * P, 5),  # UNDEF_PRICE
            (MIN, 2 * P, 3 * P, 0, 2 * P, 5),  # zero low
            (MIN, 2 * P, 1 * P, 1 * P, 2 * P, 5),  # high < open
            (MIN, 2 * P, 3 * P, 2 * P + 1, 2 * P, 5),  # low > close
            (MIN, -2 * P, 3 * P, 1 * P, 2 * P, 5),  # negative open
            (MIN, 2 * P, 3 * P, 1 * P, 2 * P, 2**63),  # volume > int64
        ]
    )
    mask, reasons = invalid_mask(frame)
    assert mask.tolist() == [False] + [True] * 7
    assert "whole minute" in reasons[1] and "UNDEF_PRICE" in reasons[2]


prices = st.one_of(st.integers(-5 * P, 5000 * P), st.just(UNDEF), st.just(0))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 10 * MIN), prices, prices, prices, prices, st.integers(0, 2**64 - 1)
        ),
        min_size=1,
        max_size=20,
    )
)
def test_row_rules_match_reference(rows):
    mask, _ = invalid_mask(frame_of(rows))

    def bad(row):
        ts, o, h, lo, c, v = row
        px = [x / 1e9 for x in (o, h, lo, c)]
        if ts % MIN or any(x == UNDEF for x in (o, h, lo, c)):
            return True
        if not all(np.isfinite(x) and x > 0 for x in px):
            return True
        return px[1] < max(px[0], px[3], px[2]) or px[2] > min(px[0], px[3]) or v >= 2**63

    assert mask.tolist() == [bad(r) for r in rows]


def test_dedupe_identical_and_conflicting():
    base = {
        "source": "a.dbn",
        "instrument_id": 1,
        "raw_symbol": "MGCG4",
        "ts_event": MIN,
        "open": P,
        "high": P,
        "low": P,
        "close": P,
        "volume": 1,
    }
    same = pd.DataFrame([base, {**base, "source": "b.dbn"}])
    out, errors = dedupe(same)
    assert len(out) == 1 and not errors
    differ = pd.DataFrame([base, {**base, "source": "b.dbn", "volume": 2}])
    _, errors = dedupe(differ)
    assert errors and "a.dbn" in errors[0] and "b.dbn" in errors[0]
    clash = pd.DataFrame([base, {**base, "instrument_id": 2}])
    _, errors = dedupe(clash)
    assert errors and "same raw symbol" in errors[0]


def test_chunk_grid_is_anchored(calendar):
    full = plan_chunks(calendar, dt.date(2024, 1, 1), dt.date(2024, 6, 30), 5, 4)
    later = plan_chunks(calendar, dt.date(2024, 2, 14), dt.date(2024, 5, 1), 5, 4)
    full_ids = {c.chunk_id for b in full for c in b.chunks}
    later_chunks = [c for b in later for c in b.chunks]
    # every chunk but the clipped first and last is a chunk of the full plan
    assert all(c.chunk_id in full_ids for c in later_chunks[1:-1])
    days = [d for b in later for c in b.chunks for d in calendar.business_days(c.first, c.last)]
    assert days == list(calendar.business_days(dt.date(2024, 2, 14), dt.date(2024, 5, 1)))
    assert plan_chunks(calendar, dt.date(2024, 1, 13), dt.date(2024, 1, 15), 5, 4) == []

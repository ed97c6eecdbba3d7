"""The report's contracts (raw symbol + expiry), rolls table (gap, ratio, roll-back and
stale marks, from the ``rolls`` view) and lookahead exposure, gathered from a small
hand-built database (lineage rows inserted by column, views by ``ensure_tables``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import duckdb
import pytest

from dbn_backfill.store.database import ensure_tables
from dbn_backfill.views import charts
from dbn_backfill.views.report import collect
from dbn_backfill.views.report.figures import render_charts, rolls_frame
from dbn_backfill.views.report.model import BACK, ROLL, ExposureDay, Roll
from dbn_backfill.views.report.render import CHARTS, ROLL_FOLD_ROWS, to_html

D = dt.date
SYMBOL = "MGC"
SAME = "same_day_volume"
# trade date -> (raw symbol, expiry, other_rule_pick); MGCV0 of 2010 and of 2020 are two
LINEAGE = {
    D(2010, 9, 1): ("MGCV0", "2010-10", "MGCV0"),
    D(2010, 9, 2): ("MGCZ0", "2010-12", "MGCV0"),  # roll; the other rule stays on V0
    D(2010, 9, 3): ("MGCV0", "2010-10", None),  # roll back, stale gap; other pick unknown
    D(2020, 9, 1): ("MGCV0", "2020-10", "MGCZ0"),  # same raw symbol, another contract
    D(2020, 9, 2): ("MGCZ0", "2020-12", "MGCZ0"),  # no term structure: gap unknown
}
# (trade date, raw symbol, expiry, last bar (UTC hh:mm), last close)
TERM_STRUCTURE = [
    (D(2010, 9, 1), "MGCV0", "2010-10", "20:00", 1248.0),
    (D(2010, 9, 2), "MGCZ0", "2010-12", "20:00", 1250.0),
    (D(2010, 9, 2), "MGCV0", "2010-10", "19:58", 1248.0),
    (D(2010, 9, 3), "MGCV0", "2010-10", "20:00", 1249.0),
    (D(2010, 9, 3), "MGCZ0", "2010-12", "19:50", 1251.0),  # 10 minutes apart: stale
    (D(2020, 9, 1), "MGCV0", "2020-10", "20:00", 1900.0),  # no MGCV0 (2010-10): stale
]


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rolls") / "mgc.duckdb"
    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        ensure_tables(con, path)
        for day, (raw, expiry, other) in LINEAGE.items():
            con.execute(
                "INSERT INTO bars_1m_trade_dates (symbol, trade_date, source_symbol, "
                "instrument_id, volume, chunk_id, expiry, roll_rule, basis_day, "
                "other_rule_pick) VALUES (?, ?, ?, 1, 100, ?, ?, ?, ?, ?)",
                [SYMBOL, day, raw, f"chunk_{day:%Y%m%d}", expiry, SAME, day, other],
            )
        for day, raw, expiry, last, close in TERM_STRUCTURE:
            ts = dt.datetime.fromisoformat(f"{day}T{last}:00+00:00")
            con.execute(
                "INSERT INTO bars_1m_term_structure (symbol, trade_date, source_symbol, "
                "expiry, instrument_id, volume, bars, first_ts_utc, last_ts_utc, "
                "last_close, chunk_id) VALUES (?, ?, ?, ?, 1, 10, 1, ?, ?, ?, 'c')",
                [SYMBOL, day, raw, expiry, ts, ts, close],
            )
    finally:
        con.close()
    return path


def test_contracts_are_counted_and_named_by_raw_symbol_and_expiry(db):
    model = collect(db)
    assert model.days["source_symbol"].nunique() == 2  # the old count
    assert model.contracts == 4
    assert model.contract_names == (
        "MGCV0 (2010-10)", "MGCZ0 (2010-12)", "MGCV0 (2020-10)", "MGCZ0 (2020-12)",
    )  # fmt: skip


def test_the_rolls_carry_the_views_gap_ratio_roll_back_and_stale(db):
    model = collect(db)
    got = [
        (r.trade_date, r.from_contract, r.to_contract, r.kind, r.gap, r.ratio, r.stale)
        for r in model.rolls
    ]
    assert got == [
        (D(2010, 9, 2), "MGCV0 (2010-10)", "MGCZ0 (2010-12)", ROLL, 2.0, 1250 / 1248, False),
        (D(2010, 9, 3), "MGCZ0 (2010-12)", "MGCV0 (2010-10)", BACK, -2.0, 1249 / 1251, True),
        (D(2020, 9, 1), "MGCV0 (2010-10)", "MGCV0 (2020-10)", ROLL, 0.0, 1.0, True),
        (D(2020, 9, 2), "MGCV0 (2020-10)", "MGCZ0 (2020-12)", ROLL, None, None, None),
    ]
    assert model.rolls_back == 1 and model.rolls_stale == 2
    con = duckdb.connect(str(db), read_only=True)
    try:
        view = con.execute("SELECT count(*) FROM rolls").fetchall()[0][0]
    finally:
        con.close()
    assert view == len(model.rolls)


def test_lookahead_exposure_counts_differing_same_and_unknown_trade_dates(db):
    x = collect(db).exposure
    assert (x.rule, x.other_rule) == (SAME, "prior_day_volume")
    assert (x.trade_dates, x.differs, x.same, x.unknown, x.known) == (5, 2, 2, 1, 4)
    assert x.share == 0.5
    assert x.days == (
        ExposureDay(D(2010, 9, 2), "MGCZ0 (2010-12)", "MGCV0", SAME),
        ExposureDay(D(2020, 9, 1), "MGCV0 (2020-10)", "MGCZ0", SAME),
    )


def test_the_page_marks_roll_backs_and_stale_gaps_and_shows_the_exposure(db):
    model = collect(db)
    pngs = render_charts(model)
    assert set(CHARTS) <= set(pngs) and all(p.startswith(b"\x89PNG") for p in pngs.values())
    page = to_html(model, pngs)
    assert "<b>4</b> contracts (raw symbol and expiry)" in page
    assert (
        "<tr><td>2010-09-03</td><td>MGCZ0</td><td>2010-12</td><td>MGCV0</td><td>2010-10</td>"
        '<td class="num">-2.00</td><td class="num">0.99840</td>'
        '<td><span class="fail">roll back</span></td><td><span class="stale">stale</span></td>'
    ) in page
    assert '<td class="num">+2.00</td>' in page and '<span class="muted">unknown</span>' in page
    assert 'id="exposure-section"' in page and 'id="exposure-summary"' in page
    assert "would have picked another contract on <b>2</b> of 4 trade dates (50.0%)" in page
    assert "unknown on 1</span>" in page
    assert '<table id="exposure-days">' in page and "<details>" not in page


def test_long_roll_and_exposure_lists_fold(db):
    model = collect(db)
    n = ROLL_FOLD_ROWS + 1
    many = dataclasses.replace(
        model,
        rolls=tuple(Roll(D(2010, 9, 2), "A", "B", ROLL, 1, None, None, None, 1.0)
                    for _ in range(n)),
        exposure=dataclasses.replace(model.exposure, days=model.exposure.days[:1] * n),
    )  # fmt: skip
    page = to_html(many, {name: b"png" for name in CHARTS})
    assert f"<details><summary>show all {n} rolls</summary>" in page
    assert f"<summary>show all {n} trade dates where the other rule picks" in page


def test_the_day_volume_splits_into_earlier_selected_and_later_expiries(db, tmp_path):
    split = tmp_path / "split.duckdb"
    split.write_bytes(db.read_bytes())
    con = duckdb.connect(str(split))
    try:
        con.execute(
            "UPDATE bars_1m_term_structure SET volume = 30 "
            "WHERE trade_date = '2010-09-02' AND source_symbol = 'MGCZ0'"
        )  # selected 30 of 60; MGCV0 (earlier) 10; MGCG1 (later) 20
        con.execute(
            "INSERT INTO bars_1m_term_structure SELECT symbol, trade_date, 'MGCG1', "
            "'2011-02', 2, 20, bars, first_ts_utc, last_ts_utc, last_close, chunk_id "
            "FROM bars_1m_term_structure WHERE trade_date = '2010-09-02' "
            "AND source_symbol = 'MGCZ0'"
        )
    finally:
        con.close()
    model = collect(split)
    days = model.days.set_index(model.days["trade_date"].dt.date)
    parts = ["earlier_share", "day_share", "later_share"]
    assert days.loc[D(2010, 9, 1), parts].tolist() == [0.0, 1.0, 0.0]
    assert days.loc[D(2010, 9, 2), parts].tolist() == pytest.approx([1 / 6, 1 / 2, 1 / 3])
    assert days.loc[D(2010, 9, 3), parts].tolist() == [0.0, 0.5, 0.5]  # back to MGCV0
    # MGCV0 (2020-10) is not MGCV0 (2010-10): the same raw symbol, another contract
    assert days.loc[D(2020, 9, 1), parts].tolist() == [0.0, 1.0, 0.0]
    assert days.loc[D(2020, 9, 2), parts].isna().all()  # no term structure that day
    # ... and the roll chart stacks them
    fig = charts.roll_overview_figure(model.days, rolls_frame(model), SYMBOL)
    lower = fig.axes[1]
    assert "selected contract" in [t.get_text() for t in lower.get_legend().get_texts()]
    assert lower.get_ylabel() == "share of the day's\noutright volume (%)"

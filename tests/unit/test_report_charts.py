"""The report's charts over sixteen years of trade dates: the date labels of thin days
and of roll-backs never overlap one another and stay inside their panel (bounding boxes
from matplotlib's renderer, before and after the PNG is written), and the roll chart's
lower panel stacks the term structure's split of the day's volume."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from dbn_backfill.views import charts
from dbn_backfill.views.report.days import coverage

FIRST, LAST = "2009-01-02", "2024-12-31"


def business_days() -> pd.DatetimeIndex:
    return pd.bdate_range(FIRST, LAST)


def thin_days_frame() -> pd.DataFrame:
    """16 years of trade dates, bars near the session's minutes, but a two-week outage
    in 2015 (a dozen thin days side by side) and a thin day every ~200 trade dates."""
    x = business_days()
    rng = np.random.default_rng(3)
    bars = rng.normal(1250, 40, len(x)).round()
    outage = (x >= "2015-03-02") & (x <= "2015-03-17")
    bars[outage] = rng.integers(50, 300, int(outage.sum()))
    bars[::200] = rng.integers(100, 400, len(bars[::200]))
    days = pd.DataFrame(
        {"trade_date": x, "bars": bars.astype("int64"), "session_bars": bars,
         "session_minutes": 1380.0, "expected_minutes": 1380.0, "sessions": 1,
         "holiday_bars": 0, "longest_hole": rng.integers(1, 30, len(x)).astype(float)}
    )  # fmt: skip
    return coverage(days)


def labels(fig: Figure, gid: str) -> list:
    return [t for ax in fig.axes for t in ax.texts if t.get_gid() == gid]


def assert_apart(fig: Figure, gid: str) -> list[str]:
    """Assert the ``gid`` labels overlap none of one another and lie inside their axes;
    return their texts."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    placed = labels(fig, gid)
    boxes = [t.get_window_extent(renderer) for t in placed]
    for (a, ta), (b, tb) in itertools.combinations(zip(boxes, placed, strict=True), 2):
        assert not a.overlaps(b), f"{ta.get_text()!r} overlaps {tb.get_text()!r}"
    for box, text in zip(boxes, placed, strict=True):
        frame = text.axes.get_window_extent(renderer)
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1, text.get_text()
        assert frame.y0 <= box.y0 and box.y1 <= frame.y1, text.get_text()
    return [t.get_text() for t in placed]


def test_thin_day_labels_of_sixteen_years_do_not_overlap():
    days = thin_days_frame()
    assert days["thin"].sum() > 20  # many candidates, a dozen of them side by side
    fig = charts.bars_per_day_figure(days, "MGC", "CMEGlobex_Metals", 0.5)
    shown = assert_apart(fig, "thin-label")
    assert 3 <= len(shown) <= charts.THIN_LABELS
    thinnest = days.loc[days["relative_coverage"].idxmin(), "trade_date"]
    assert f"{thinnest:%Y-%m-%d}" in shown  # the thinnest day always has its label
    fig.savefig(io.BytesIO(), format="png")  # what is written is what was checked
    assert assert_apart(fig, "thin-label") == shown


def roll_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """16 years of a bimonthly cycle, with a dozen roll-backs within a month of 2016."""
    x = business_days()
    month = (x.year * 12 + x.month - 1).to_numpy()
    expiry_month = month + 2 - (month % 2)  # the next even month
    flipping = (x >= "2016-05-02") & (x <= "2016-05-31")
    flip = flipping & (np.arange(len(x)) % 2 == 1)
    expiry_month = np.where(flip, expiry_month - 2, expiry_month)
    expiry = (expiry_month // 12) * 100 + expiry_month % 12 + 1
    symbol = [f"MGC{'FGHJKMNQUVXZ'[e % 100 - 1]}{e // 100 % 10}" for e in expiry]
    starts = pd.to_datetime([f"{e // 100}-{e % 100:02d}-01" for e in expiry])
    days = pd.DataFrame(
        {"trade_date": x, "source_symbol": symbol, "expiry": expiry.astype(float),
         "days_to_month": (starts - x).days.astype(float),
         "runner_up_days_to_month": (starts - x).days.astype(float) + 60,
         "share_top2": np.where(flipping, 0.51, 0.9)}
    )  # fmt: skip
    changed = days["source_symbol"].ne(days["source_symbol"].shift()) & days.index.to_series().gt(0)
    at = days[changed]
    back = at["expiry"].to_numpy() < days["expiry"].shift()[changed].to_numpy()
    rolls = pd.DataFrame(
        {"trade_date": at["trade_date"].to_numpy(),
         "from_symbol": days["source_symbol"].shift()[changed].to_numpy(),
         "to_symbol": at["source_symbol"].to_numpy(),
         "kind": np.where(back, "back to an earlier expiry", "roll"), "stale": False}
    )  # fmt: skip
    return days, rolls


def test_roll_back_labels_of_sixteen_years_do_not_overlap():
    days, rolls = roll_frames()
    backs = rolls[rolls["kind"] != "roll"]
    assert len(backs) >= 10
    fig = charts.roll_overview_figure(days, rolls, "MGC")
    shown = assert_apart(fig, "flip-label")
    assert 1 <= len(shown) < len(backs)  # side by side, not all of them fit
    first = backs.iloc[0]
    assert (
        shown[0] == f"{first['from_symbol']}→{first['to_symbol']}\n{first['trade_date']:%Y-%m-%d}"
    )


@pytest.mark.parametrize("with_terms", [True, False])
def test_the_roll_chart_stacks_the_term_structure_when_known(with_terms):
    days, rolls = roll_frames()
    if with_terms:
        days = days.assign(earlier_share=0.05, day_share=0.8, later_share=0.15)
    fig = charts.roll_overview_figure(days, rolls, "MGC")
    lower = fig.axes[1]
    names = [t.get_text() for t in lower.get_legend().get_texts()]
    if with_terms:
        assert names[:3] == ["selected contract", "contracts expiring before it",
                             "contracts expiring after it"]  # fmt: skip
        assert "share of the new contract on a roll day" in names
        assert len(lower.collections) >= 3 and lower.get_ylim() == (0, 100)
        selected = lower.collections[0].get_paths()[0].vertices[:, 1]
        assert selected.max() == pytest.approx(80)  # the selected band from 0 to 80 %
        earlier = lower.collections[1].get_paths()[0].vertices[:, 1]
        assert earlier.max() == pytest.approx(85)  # then 5 % of earlier expiries
    else:
        assert "the top two's volume" in lower.get_ylabel()

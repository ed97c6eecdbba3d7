"""The report's charts, drawn by :mod:`dbn_backfill.views.charts` from the model."""

from __future__ import annotations

import pandas as pd

from dbn_backfill.views import charts
from dbn_backfill.views.report.model import ReportModel


def rolls_frame(model: ReportModel) -> pd.DataFrame:
    """The rolls as the charts take them: ``trade_date`` (datetime64), ``from_symbol``,
    ``to_symbol``, ``kind``, ``stale`` (bool; unknown counts as not stale)."""
    return pd.DataFrame(
        {
            "trade_date": pd.to_datetime([r.trade_date for r in model.rolls]),
            "from_symbol": [r.from_symbol for r in model.rolls],
            "to_symbol": [r.to_symbol for r in model.rolls],
            "kind": [r.kind for r in model.rolls],
            "stale": [bool(r.stale) for r in model.rolls],
        }
    )


def render_charts(model: ReportModel) -> dict[str, bytes]:
    """The report's PNG charts by name: ``rolls`` (the roll overview),
    ``rolls_detail`` (the contract ladder of the last trade dates), ``bars_per_day``."""
    rolls = rolls_frame(model)
    return {
        "rolls": charts.roll_overview(model.days, rolls, model.symbol),
        "rolls_detail": charts.roll_detail(model.days, rolls, model.symbol),
        "bars_per_day": charts.bars_per_day(
            model.days, model.symbol, model.session_calendar, model.thin_fraction
        ),
    }

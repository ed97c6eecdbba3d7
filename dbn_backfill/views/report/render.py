"""The report model as one self-contained HTML page (Jinja2, autoescaped).

The page of one root is ``templates/report.html.j2``: the same sections, tables and
ids for every report. The page of several roots, ``templates/universe.html.j2``, starts
with an overview of the roots (``#overview``), then holds one root's sections per root,
every id led by ``<ROOT>-`` (``#MGC-rolls``, ``#GC-chart-rolls``); both take a root's
sections from ``templates/root.html.j2``. Charts come in as PNG bytes and are
embedded as ``data:`` URIs, so the page needs nothing else (no script, no stylesheet,
no external URL). This module formats values for the page; it reads and draws nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import jinja2

from dbn_backfill.views.report.model import ReportModel, UniverseModel

#: The template of one root's page, in the package's ``templates`` folder.
TEMPLATE = "report.html.j2"
#: The template of a page of several roots (an overview, then a section per root).
UNIVERSE_TEMPLATE = "universe.html.j2"
#: A table of more rows than this is folded (``<details>``).
FOLD_ROWS = 40
#: The rolls table and the list of lookahead-exposed trade dates fold above this.
ROLL_FOLD_ROWS = 20
#: The charts the page shows, by name.
CHARTS = ("rolls", "rolls_detail", "bars_per_day")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em 2em;
color:#222;max-width:1500px}
@media (max-width:600px){body{margin:1em .7em}}
h1{font-size:1.5em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;
margin-top:1.8em}
h1,h2,h3,h4,p,li,summary{overflow-wrap:anywhere}
section{border-top:3px solid #9aa5b1;margin-top:2.5em}section>h2{border-bottom:none}
div.wide{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,td.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}
.pass{color:#17803d;font-weight:600}.fail{color:#c62828;font-weight:600}
.warn{color:#b45309}.muted{color:#666}.stale{color:#7b2cbf;font-weight:600}
img.chart{max-width:100%;height:auto;box-sizing:border-box;border:1px solid #eee}
#overview td{white-space:nowrap}
nav{display:flex;flex-wrap:wrap;gap:.2em 1em}details summary{cursor:pointer;margin:.4em 0}
"""


def fmt(value: Any) -> str:
    """A table cell's text: thousands separators for integers (and integral floats),
    three decimals for other floats, ISO dates, UTC times, ``true`` / ``false``;
    empty for None and NaN."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return value.strftime("%Y-%m-%d")
    if isinstance(value, dt.date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{int(value):,}" if value.is_integer() else f"{value:,.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def pct(value: float | None, digits: int) -> str:
    """The fraction ``value`` as a percentage with ``digits`` decimals; empty if None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{float(value):.{digits}%}"


def number(value: float | None, digits: int, signed: bool = False) -> str:
    """``value`` with ``digits`` decimals and thousands separators (``+`` in front of a
    positive value when ``signed``); empty if None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{float(value):{'+' if signed else ''},.{digits}f}"


def b64(png: bytes) -> str:
    """``png`` as base64 text (for a ``data:`` URI)."""
    return base64.b64encode(png).decode("ascii")


def environment() -> jinja2.Environment:
    """The Jinja2 environment of the page: the package's templates, autoescape on,
    undefined names an error, the filters ``fmt``, ``pct``, ``number`` and ``b64``."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dbn_backfill.views.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(fmt=fmt, pct=pct, number=number, b64=b64)
    return env


def to_html(model: ReportModel, charts: Mapping[str, bytes]) -> str:
    """The whole report as one HTML document.

    Args:
        model: what the report shows.
        charts: PNG bytes of each of :data:`CHARTS`
            (:func:`dbn_backfill.views.report.figures.render_charts`).

    Returns:
        The HTML text.

    Raises:
        KeyError: a chart of :data:`CHARTS` is missing.
    """
    missing = [name for name in CHARTS if name not in charts]
    if missing:
        raise KeyError(f"charts missing: {missing}")
    template = environment().get_template(TEMPLATE)
    return template.render(
        model=model, charts=charts, css=CSS, fold_rows=FOLD_ROWS, roll_fold=ROLL_FOLD_ROWS
    )


def universe_html(universe: UniverseModel, charts: Mapping[str, Mapping[str, bytes]]) -> str:
    """The report of several roots as one HTML document: the overview, then a section
    per root (one root: :func:`to_html` of it, the page of one root as it always was).

    Args:
        universe: what the report shows.
        charts: each root's PNG bytes of :data:`CHARTS`, by root.

    Returns:
        The HTML text.

    Raises:
        KeyError: a root's charts, or a chart of :data:`CHARTS`, are missing.
    """
    if universe.single:
        (model,) = universe.roots
        return to_html(model, charts[model.symbol])
    for model in universe.roots:
        missing = [name for name in CHARTS if name not in charts[model.symbol]]
        if missing:
            raise KeyError(f"charts of {model.symbol} missing: {missing}")
    template = environment().get_template(UNIVERSE_TEMPLATE)
    return template.render(
        universe=universe, charts=charts, css=CSS, fold_rows=FOLD_ROWS, roll_fold=ROLL_FOLD_ROWS
    )

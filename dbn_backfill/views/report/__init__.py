"""``dbn-backfill report``: one self-contained HTML file showing what a backfill did.

    dbn-backfill report --db PATH [--checkpoint DIR] [--workdir DIR] [--symbol MGC]
                        --out report.html [--charts-dir DIR] [--session-calendar NAME]

It reads the database through a read-only connection (and the run records under the
work directory, the checkpoint files), writes nothing but ``--out`` (and the chart
PNGs with ``--charts-dir``), and holds:

* rolls: the selected contract per trade date, its share of the top two contracts'
  volume and the runner-up (charts), and a table of every roll;
* bars per trade date against the minutes of the CME session(s) of that trade date
  (``pandas_market_calendars``), the thinnest days, business days without bars;
* the gates of the latest run with a gates report, the runs of the work directory;
* the committed chunks (trade dates, rows, contracts, content hash, commit time) and
  the source files (size, sha256);
* the latest run's settings (its ``config.json``, or what the lineage says) and the
  versions of the key packages.

The parts, one job each: :mod:`.model` (the typed report model), :mod:`.days` (the
trade-date series: selection, rolls, bars against sessions), :mod:`.gather` (reading
the model), :mod:`.figures` (its charts, drawn by :mod:`dbn_backfill.views.charts`),
:mod:`.render` (the HTML page, ``templates/report.html.j2``); this module ties them to
the command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dbn_backfill.errors import BackfillError
from dbn_backfill.layout import find_workdir
from dbn_backfill.views.report.figures import render_charts
from dbn_backfill.views.report.gather import collect
from dbn_backfill.views.report.model import ReportError, ReportModel
from dbn_backfill.views.report.render import to_html

__all__ = ["Report", "ReportError", "ReportModel", "add_arguments", "collect", "run",
           "write_report"]  # fmt: skip


@dataclass(frozen=True)
class Report:
    """A written report: its model, its chart PNGs by name, and the HTML file."""

    model: ReportModel
    charts: Mapping[str, bytes]
    out: Path


def write_report(
    out: Path,
    db: Path,
    *,
    symbol: str | None = None,
    checkpoint: Path | None = None,
    workdir: Path | None = None,
    session_calendar: str | None = None,
    charts_dir: Path | None = None,
) -> Report:
    """Collect, draw, render and write the report.

    Args:
        out: the HTML file to write (replaced atomically; its folder is created).
        db, symbol, checkpoint, workdir, session_calendar: as for
            :func:`~dbn_backfill.views.report.gather.collect`.
        charts_dir: also write the chart PNGs there (``<name>.png``), if given.

    Returns:
        The :class:`Report` written.

    Raises:
        ReportError: no lineage in the database, no symbol or several.
        SchemaMismatchError: no such database, or not DuckDB.
        OSError: ``out`` or ``charts_dir`` cannot be written.
    """
    model = collect(
        db, symbol=symbol, checkpoint=checkpoint, workdir=workdir,
        session_calendar=session_calendar,
    )  # fmt: skip
    charts = render_charts(model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(to_html(model, charts), encoding="utf-8")
    os.replace(tmp, out)
    if charts_dir is not None:
        Path(charts_dir).mkdir(parents=True, exist_ok=True)
        for name, png in charts.items():
            (Path(charts_dir) / f"{name}.png").write_bytes(png)
    return Report(model=model, charts=charts, out=out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``report`` subcommand's options to ``parser``."""
    parser.add_argument("--db", required=True, help="DuckDB file of the backfill")
    parser.add_argument("--out", required=True, help="HTML file to write")
    parser.add_argument("--symbol", default=None, help="CME root (default: the db's only one)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder (optional)")
    parser.add_argument(
        "--workdir",
        default=None,
        help="work directory of the runs (default: the current directory if it has runs)",
    )
    parser.add_argument(
        "--session-calendar",
        default=None,
        help="pandas_market_calendars calendar of the sessions (default by root, e.g. "
        "CMEGlobex_Metals for MGC)",
    )
    parser.add_argument("--charts-dir", default=None, help="also write the chart PNGs here")


def run(args: argparse.Namespace) -> int:
    """The ``report`` subcommand: write the report, print where it is.

    Returns:
        0 when written; 2 when it cannot be made (the error printed to stderr).
    """
    workdir = Path(args.workdir) if args.workdir else find_workdir(args.symbol, Path(args.db))
    try:
        report = write_report(
            Path(args.out),
            Path(args.db),
            symbol=args.symbol,
            checkpoint=Path(args.checkpoint) if args.checkpoint else None,
            workdir=workdir,
            session_calendar=args.session_calendar,
            charts_dir=Path(args.charts_dir) if args.charts_dir else None,
        )
    except BackfillError as exc:
        print(f"dbn-backfill report: error: {exc}", file=sys.stderr)
        return 2
    model = report.model
    print(
        f"dbn-backfill report: {model.symbol}, {len(model.days):,} trade dates, "
        f"{len(model.rolls)} rolls, {len(model.chunks):,} chunks -> {Path(args.out).resolve()}"
    )
    return 0

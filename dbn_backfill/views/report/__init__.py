"""``dbn-backfill report``: one self-contained HTML file showing what a backfill did.

    dbn-backfill report --db PATH [--checkpoint DIR] [--workdir DIR] [--symbol MGC[,GC]]
                        --out report.html [--charts-dir DIR] [--session-calendar NAME]

One root (``--symbol MGC``, or a database of one root) gives that root's report; a
database of several roots (or ``--symbol MGC,GC``) one report with an overview of the
roots (spans, rows, contracts, rolls, the gates of each root's latest run) first and
then a section per root holding what one root's report holds.

It reads the database through a read-only connection (and the run records under the
work directory, the checkpoint files), writes nothing but ``--out`` (and the chart
PNGs with ``--charts-dir``), and holds:

* rolls: the selected contract per trade date, its share of the top two contracts'
  volume and the runner-up (charts, roll-backs and stale gaps marked), and a table of
  every roll of the ``rolls`` view (gap, ratio, roll back, stale); contracts counted
  and named as raw symbol + expiry;
* lookahead exposure: the trade dates on which the other roll rule would have picked
  another contract (``other_rule_pick``), unknown ones apart;
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dbn_backfill.config import parse_symbols
from dbn_backfill.errors import BackfillError
from dbn_backfill.layout import find_workdir
from dbn_backfill.views.report.figures import render_charts
from dbn_backfill.views.report.gather import collect, collect_universe
from dbn_backfill.views.report.model import ReportError, ReportModel, UniverseModel
from dbn_backfill.views.report.render import universe_html

__all__ = ["Report", "ReportError", "ReportModel", "UniverseModel", "add_arguments", "collect",
           "collect_universe", "run", "write_report"]  # fmt: skip


@dataclass(frozen=True)
class Report:
    """A written report: its model (every root shown), each root's chart PNGs by name,
    and the HTML file."""

    universe: UniverseModel
    charts: Mapping[str, Mapping[str, bytes]]
    out: Path

    @property
    def model(self) -> ReportModel:
        """The model of a report of one root.

        Raises:
            ValueError: the report shows several roots (see :attr:`universe`).
        """
        if not self.universe.single:
            raise ValueError(f"a report of {len(self.universe.roots)} roots: use universe")
        return self.universe.roots[0]


def write_report(
    out: Path,
    db: Path,
    *,
    symbol: str | Sequence[str] | None = None,
    checkpoint: Path | None = None,
    workdir: Path | None = None,
    session_calendar: str | None = None,
    charts_dir: Path | None = None,
) -> Report:
    """Collect, draw, render and write the report.

    One root (``symbol`` a root, or a database of one root) gives that root's page;
    several (a list, or None on a database of several roots) the universe page: the
    overview, then a section per root.

    Args:
        out: the HTML file to write (replaced atomically; its folder is created).
        symbol: the root, or the roots in the order shown (None: every root of the
            database).
        db, checkpoint, workdir, session_calendar: as for
            :func:`~dbn_backfill.views.report.gather.collect`.
        charts_dir: also write the chart PNGs there (``<name>.png`` for one root,
            ``<ROOT>/<name>.png`` for several), if given.

    Returns:
        The :class:`Report` written.

    Raises:
        ReportError: no lineage in the database, or no symbol.
        SchemaMismatchError: no such database, or not DuckDB.
        OSError: ``out`` or ``charts_dir`` cannot be written.
    """
    symbols = [symbol] if isinstance(symbol, str) else symbol
    universe = collect_universe(
        db, symbols=symbols, checkpoint=checkpoint, workdir=workdir,
        session_calendar=session_calendar,
    )  # fmt: skip
    charts = {m.symbol: render_charts(m) for m in universe.roots}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(universe_html(universe, charts), encoding="utf-8")
    os.replace(tmp, out)
    if charts_dir is not None:
        for root, pngs in charts.items():
            folder = Path(charts_dir) if universe.single else Path(charts_dir) / root
            folder.mkdir(parents=True, exist_ok=True)
            for name, png in pngs.items():
                (folder / f"{name}.png").write_bytes(png)
    return Report(universe=universe, charts=charts, out=out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``report`` subcommand's options to ``parser``."""
    parser.add_argument("--db", required=True, help="DuckDB file of the backfill")
    parser.add_argument("--out", required=True, help="HTML file to write")
    parser.add_argument(
        "--symbol",
        default=None,
        help="CME root(s), e.g. MGC or MGC,GC (default: every root of the database; one "
        "root: its own report, several: an overview and a section per root)",
    )
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
    try:
        symbols = parse_symbols(args.symbol) if args.symbol else None
        one = symbols[0] if symbols and len(symbols) == 1 else None
        workdir = Path(args.workdir) if args.workdir else find_workdir(one, Path(args.db))
        report = write_report(
            Path(args.out),
            Path(args.db),
            symbol=symbols,
            checkpoint=Path(args.checkpoint) if args.checkpoint else None,
            workdir=workdir,
            session_calendar=args.session_calendar,
            charts_dir=Path(args.charts_dir) if args.charts_dir else None,
        )
    except BackfillError as exc:
        print(f"dbn-backfill report: error: {exc}", file=sys.stderr)
        return 2
    shown = "; ".join(
        f"{m.symbol}, {len(m.days):,} trade dates, {len(m.rolls)} rolls, {len(m.chunks):,} chunks"
        for m in report.universe.roots
    )
    print(f"dbn-backfill report: {shown} -> {Path(args.out).resolve()}")
    return 0

"""The merge's cost per chunk transaction on a full database (issue 22).

Takes the database and work directory of a finished backfill (e.g. the 16-year MGC
run of ``make bench``), copies the database, removes the last ``chunks`` chunks from
the copy (their bars and every lineage row: as if they were never committed), and
commits them again through the real :func:`dbn_backfill.store.merge.merge` with the
built chunks of the work directory. Each statement of a chunk's transaction is timed
and put in one of these parts (milliseconds per chunk, medians over the chunks):

* ``insert``: BEGIN, the delete of the chunk's ``ts_utc`` range and the insert of its
  bars (with the Parquet read of its row group);
* ``lineage``: every lineage statement (trade dates, term structure, chunk row,
  sources);
* ``checkpoint``: the checkpoint writes of the chunk (its transitions);
* ``commit``: COMMIT;
* ``total``: the whole chunk, as :func:`merge` spends it (what the parts leave out:
  Python between the statements).

Usage::

    python -m bench.merge_cost --db DB --workdir WORKDIR [--symbol MGC] [--chunks 60]

Prints one line per part; :func:`merge_cost` returns the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb

from dbn_backfill.artifacts import BatchManifest, DecodeSummary
from dbn_backfill.config import from_mapping
from dbn_backfill.layout import BATCH_FILES, Layout
from dbn_backfill.store import checkpoints, merge
from dbn_backfill.store.database import connect
from dbn_backfill.tradedate import Calendar

PARTS = ("insert", "lineage", "checkpoint", "commit", "total")


class _Clock:
    """The milliseconds of the chunk in flight, per part."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)
        self.chunks: list[dict[str, float]] = []
        self.in_chunk = False

    def add(self, part: str, seconds: float) -> None:
        if self.in_chunk:
            self.current[part] += seconds * 1000

    @contextlib.contextmanager
    def chunk(self) -> Iterator[None]:
        self.current = defaultdict(float)
        self.in_chunk = True
        started = time.perf_counter()
        try:
            yield
        finally:
            self.current["total"] = (time.perf_counter() - started) * 1000
            self.in_chunk = False
            self.chunks.append(dict(self.current))


def _part(sql: str) -> str:
    head = " ".join(sql.split()).upper()
    if head.startswith("COMMIT"):
        return "commit"
    if head.startswith(("BEGIN", "DELETE FROM BARS_1M ", "INSERT INTO BARS_1M ")):
        return "insert"
    return "lineage"


class _TimedConnection:
    """A DuckDB connection whose ``execute`` is timed by :func:`_part`."""

    def __init__(self, con: duckdb.DuckDBPyConnection, clock: _Clock) -> None:
        self._con = con
        self._clock = clock
        # statements name Arrow tables by the merge's local variables: let DuckDB find
        # them in the frames above this wrapper
        con.execute("SET python_scan_all_frames = true").fetchall()

    def execute(self, sql: str, *args: Any) -> Any:
        started = time.perf_counter()
        out = self._con.execute(sql, *args)
        self._clock.add(_part(sql), time.perf_counter() - started)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def _timed(fn: Callable[..., Any], clock: _Clock, part: str) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            clock.add(part, time.perf_counter() - started)

    return wrapper


def _chunks(workdir: Path, symbol: str) -> list[merge.ChunkInput]:
    layout = Layout(Path(workdir))
    folder = layout.batch_file(symbol, "x", "manifest").parent
    suffix = BATCH_FILES["manifest"]
    manifests = sorted(folder.glob(f"*.{suffix}"))
    ids = [p.name[: -len(suffix) - 1] for p in manifests]
    return merge.load_chunks(
        [BatchManifest.read(p) for p in manifests],
        [layout.batch_file(symbol, i, "bars") for i in ids],
        [layout.batch_file(symbol, i, "selection") for i in ids],
        [layout.batch_file(symbol, i, "terms") for i in ids],
    )


def _forget(db: Path, symbol: str, chunks: list[merge.ChunkInput], calendar: Calendar) -> None:
    """Remove ``chunks`` from ``db``: their bars and every lineage row."""
    lo = calendar.session_bounds_utc(chunks[0].first, chunks[-1].last)[0].to_pydatetime()
    ids = [c.chunk_id for c in chunks]
    con = connect(db)
    try:
        con.execute("DELETE FROM bars_1m WHERE symbol = ? AND ts_utc >= ?", [symbol, lo])
        for table in ("bars_1m_trade_dates", "bars_1m_term_structure"):
            con.execute(
                f"DELETE FROM {table} WHERE symbol = ? AND trade_date >= ?",
                [symbol, chunks[0].first],
            )
        for table in ("bars_1m_chunks", "bars_1m_chunk_sources"):
            con.execute(
                f"DELETE FROM {table} WHERE symbol = ? AND list_contains(?, chunk_id)",
                [symbol, ids],
            )
        con.execute("CHECKPOINT")
    finally:
        con.close()


def merge_cost(db: Path, workdir: Path, symbol: str = "MGC", chunks: int = 60) -> dict[str, float]:
    """Commit the last ``chunks`` chunks of a finished backfill again into a copy of
    its database (see the module docstring).

    Args:
        db: the backfill's database (not changed); workdir: its work directory (the
            built chunks, the calendar and the decode summaries are read from it);
        symbol: the root; chunks: how many of the last chunks to commit.

    Returns:
        part -> median milliseconds per chunk (:data:`PARTS`), and ``chunks``,
        ``table_rows`` (rows of ``bars_1m`` before the chunks were committed again).

    Raises:
        FileNotFoundError: no built chunks of ``symbol`` in ``workdir``.
    """
    workdir = Path(workdir)
    layout = Layout(workdir)
    calendar = Calendar.load(layout.calendar_file)
    every = _chunks(workdir, symbol)
    if not every:
        raise FileNotFoundError(f"no built chunks of {symbol} under {workdir}")
    picked = [c for c in every if c.manifest.status == "ok"][-chunks:]
    summaries = sorted(layout.decoded("x", "json").parent.glob("*.json"))
    sources = {f.path: f for p in summaries for f in DecodeSummary.read(p).files}
    clock = _Clock()
    with tempfile.TemporaryDirectory(prefix="merge-cost-") as tmp:
        copy = Path(tmp) / "db.duckdb"
        shutil.copy(db, copy)
        _forget(copy, symbol, picked, calendar)
        con = connect(copy, read_only=True)
        (rows,) = con.execute("SELECT count(*) FROM bars_1m").fetchall()[0]
        con.close()
        cfg = from_mapping(
            {
                "dbn": str(workdir),
                "db": str(copy),
                "symbol": symbol,
                "start": str(picked[0].first),
                "end": str(picked[-1].last),
                "checkpoint": str(Path(tmp) / "checkpoints"),
                "chunk_days": (picked[0].last - picked[0].first).days + 1,
            }
        )
        patches = {
            (merge, "connect"): lambda *a, **k: _TimedConnection(connect(*a, **k), clock),
            (checkpoints, "transition"): _timed(checkpoints.transition, clock, "checkpoint"),
            (checkpoints, "load_or_create"): _timed(
                checkpoints.load_or_create, clock, "checkpoint"
            ),
        }
        one = merge._merge_one

        def timed_one(*args: Any, **kwargs: Any) -> None:
            with clock.chunk():
                one(*args, **kwargs)

        patches[(merge, "_merge_one")] = timed_one
        saved = {key: getattr(*key) for key in patches}
        try:
            for (module, name), fn in patches.items():
                setattr(module, name, fn)
            merge.merge(
                cfg=cfg, chunks=picked, calendar=calendar, sources=sources, run_id="merge-cost"
            )
        finally:
            for (module, name), fn in saved.items():
                setattr(module, name, fn)
    out = {part: statistics.median(c.get(part, 0.0) for c in clock.chunks) for part in PARTS}
    out["chunks"] = float(len(clock.chunks))
    out["table_rows"] = float(rows)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--symbol", default="MGC")
    parser.add_argument("--chunks", type=int, default=60)
    args = parser.parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    figures = merge_cost(args.db, args.workdir, args.symbol, args.chunks)
    print(
        f"merge cost per chunk transaction, median of {int(figures['chunks'])} chunks "
        f"into {int(figures['table_rows']):,} rows ({started:%Y-%m-%d %H:%M} UTC):"
    )
    for part in PARTS:
        print(f"  {part:<10} {figures[part]:7.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

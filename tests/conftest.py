"""Shared test helpers: DBN files from bar lists, real workflow runs, table hashes."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from dbn_backfill.sampledata.dbnwrite import SymbolInterval, write_ohlcv_dbn
from dbn_backfill.tradedate import CALENDAR_FIRST, CALENDAR_LAST, Calendar, build_calendar

PROJECT = Path(__file__).resolve().parent.parent
FIXTURES = PROJECT / "tests" / "data" / "databento"


def fixture_files(pattern: str) -> list[Path]:
    """The real Databento fixtures matching ``pattern`` (tests/data/databento/README.md).

    Raises:
        FileNotFoundError: none matches: a test must fail, never run on nothing.
    """
    found = sorted(FIXTURES.glob(pattern))
    if not found:
        raise FileNotFoundError(f"no Databento fixture {pattern!r} in {FIXTURES}")
    return found


def fixture_file(name: str) -> Path:
    """One real Databento fixture by name (fails loudly when it is missing)."""
    path = FIXTURES / name
    if not path.is_file():
        raise FileNotFoundError(f"Databento fixture {path} is missing")
    return path


RUN_TIMEOUT = 300

#: The line of a run's console naming its run log (the summary's, or the last line of
#: a run refused before its first job).
RUN_LOG_LINE = re.compile(r"Snakemake's output and every job's log lines: (\S+)$", re.M)


def run_log(text: str) -> str:
    """The run log a run's console ``text`` names (Snakemake's whole output: which
    jobs ran, their log lines).

    Raises:
        AssertionError: the console names none.
    """
    found = RUN_LOG_LINE.findall(text)
    assert found, f"no run log named in:\n{text[-3000:]}"
    return Path(found[-1]).read_text()


def run_output(proc: subprocess.CompletedProcess[str]) -> str:
    """A run's console, then its run log when it names one (a run refused before
    Snakemake started has none): the text to search for the jobs that ran."""
    text = proc.stdout + proc.stderr
    return text + "\n" + run_log(text) if RUN_LOG_LINE.search(text) else text


@dataclass(frozen=True)
class Bar:
    """One OHLCV-1m record to write (prices as floats; converted to fixed point)."""

    raw_symbol: str
    instrument_id: int
    ts: pd.Timestamp
    open: float = 2000.0
    high: float = 2001.0
    low: float = 1999.0
    close: float = 2000.5
    volume: int = 10
    fixed: tuple[int, int, int, int] | None = None  # raw fixed-point override

    @property
    def ts_ns(self) -> int:
        return int(self.ts.as_unit("ns").value)


def minutes(day: dt.date, n: int, hour: int = 14, minute: int = 30) -> list[pd.Timestamp]:
    """``n`` consecutive whole-minute UTC stamps on ``day`` from ``hour:minute`` UTC.

    14:30 UTC is 08:30/09:30 Chicago: inside the day session of ``day``.
    """
    base = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=hour, minutes=minute)
    return [base + pd.Timedelta(minutes=i) for i in range(n)]


def day_bars(raw: str, iid: int, day: dt.date, n: int = 3, volume: int = 10, **kw) -> list[Bar]:
    return [Bar(raw, iid, ts, volume=volume, **kw) for ts in minutes(day, n)]


def write_bars(
    path: Path,
    bars: Sequence[Bar],
    *,
    mappings: Iterable[SymbolInterval] | None = None,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    **kw,
) -> Path:
    """Write ``bars`` (sorted by time) as a real DBN file with mappings covering them."""
    bars = sorted(bars, key=lambda b: (b.ts_ns, b.instrument_id))
    if mappings is None:
        spans: dict[tuple[str, int], list[dt.date]] = {}
        for b in bars:
            spans.setdefault((b.raw_symbol, b.instrument_id), []).append(b.ts.date())
        mappings = [
            SymbolInterval(raw, iid, min(days), max(days) + dt.timedelta(days=1))
            for (raw, iid), days in sorted(spans.items())
        ]
    stamps = [b.ts for b in bars]
    start = start if start is not None else min(stamps).normalize()
    end = end if end is not None else max(stamps).normalize() + pd.Timedelta(days=1)

    def fixed(i: int) -> np.ndarray:
        return np.array(
            [
                b.fixed[i] if b.fixed else round([b.open, b.high, b.low, b.close][i] * 1e9)
                for b in bars
            ],
            dtype="int64",
        )

    path.parent.mkdir(parents=True, exist_ok=True)
    write_ohlcv_dbn(
        path,
        instrument_id=np.array([b.instrument_id for b in bars], dtype="uint32"),
        ts_event=np.array([b.ts_ns for b in bars], dtype="int64"),
        open=fixed(0),
        high=fixed(1),
        low=fixed(2),
        close=fixed(3),
        volume=np.array([b.volume for b in bars], dtype="uint64"),
        mappings=list(mappings),
        start_ns=int(start.as_unit("ns").value),
        end_ns=int(end.as_unit("ns").value),
        **kw,
    )
    return path


def business_days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [pd.Timestamp(d).date() for d in calendar_once().business_days(start, end)]


_CAL: list[Calendar] = []


def calendar_once() -> Calendar:
    if not _CAL:
        _CAL.append(
            build_calendar(
                "CME_TradeDate", "America/Chicago", "17:00", CALENDAR_FIRST, CALENDAR_LAST
            )
        )
    return _CAL[0]


@pytest.fixture(scope="session")
def calendar() -> Calendar:
    return calendar_once()


@dataclass(frozen=True)
class Run:
    """A backfill setup in a temp folder; ``run()`` calls the real CLI (Snakemake)."""

    root: Path
    dbn: Path
    symbol: str
    start: dt.date
    end: dt.date
    chunk_days: int = 5
    workers: int = 2
    db_path: Path | None = None
    checkpoint_dir: Path | None = None

    @property
    def db(self) -> Path:
        return self.db_path or self.root / "bars.duckdb"

    @property
    def checkpoint(self) -> Path:
        return self.checkpoint_dir or self.root / "checkpoints"

    @property
    def workdir(self) -> Path:
        return self.root / "work"

    def with_(self, **kw) -> Run:
        return replace(self, **kw)

    def args(self, *extra: str) -> list[str]:
        return [
            "--db", str(self.db), "--dbn", str(self.dbn), "--symbol", self.symbol,
            "--start", str(self.start), "--end", str(self.end),
            "--workers", str(self.workers), "--chunk-days", str(self.chunk_days),
            "--checkpoint", str(self.checkpoint), "--workdir", str(self.workdir), *extra,
        ]  # fmt: skip

    def popen(self, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start the backfill in its own process group (so it can be killed as a tree)."""
        return subprocess.Popen(
            [sys.executable, "-m", "dbn_backfill.cli", *self.args(*extra)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    def run(
        self,
        *extra: str,
        env: dict[str, str] | None = None,
        check: bool | None = None,
        timeout: int = RUN_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """Run the backfill; ``check=True`` asserts success, ``False`` asserts failure."""
        proc = subprocess.run(
            [sys.executable, "-m", "dbn_backfill.cli", *self.args(*extra)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        if check is True:
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
        if check is False:
            assert proc.returncode != 0, proc.stderr[-3000:]
        return proc

    def rows(self) -> pd.DataFrame:
        return read_table(self.db)

    def checkpoint_folder(self, root: str | None = None) -> Path:
        """The checkpoint folder of ``root`` (default: the run's only root)."""
        return self.checkpoint / (root or self.symbol)

    def checkpoints(self, root: str | None = None) -> dict[str, dict]:
        import json

        folder = self.checkpoint_folder(root)
        return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("chunk_*.json"))}


def read_table(db: Path, table: str = "bars_1m") -> pd.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute("SET TimeZone='UTC'").fetchall()
        return con.sql(f"SELECT * FROM {table} ORDER BY ALL").df()
    finally:
        con.close()


def db_hash(db: Path) -> str:
    """Content hash of bars_1m and the lineage tables (commit times excluded from none)."""
    if not db.exists():
        return "absent"
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:  # not a DuckDB file: its bytes are its content
        return hashlib.sha256(db.read_bytes()).hexdigest()
    digest = hashlib.sha256()
    try:
        con.execute("SET TimeZone='UTC'").fetchall()
        tables = [
            r[0]
            for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()
        ]
        for table in tables:
            digest.update(table.encode())
            for row in con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall():
                digest.update(repr(row).encode())
    finally:
        con.close()
    return digest.hexdigest()


def content_hash(db: Path) -> str:
    """Hash of bars_1m and the lineage that does not depend on when or in which run."""
    con = duckdb.connect(str(db), read_only=True)
    digest = hashlib.sha256()
    try:
        con.execute("SET TimeZone='UTC'").fetchall()
        for sql in (
            "SELECT * FROM bars_1m ORDER BY ALL",
            "SELECT * FROM bars_1m_trade_dates ORDER BY ALL",
            "SELECT symbol, chunk_id, chunk_start, chunk_end, rows, content_hash FROM bars_1m_chunks ORDER BY ALL",
            "SELECT * FROM bars_1m_chunk_sources ORDER BY ALL",
        ):
            for row in con.execute(sql).fetchall():
                digest.update(repr(row).encode())
    finally:
        con.close()
    return digest.hexdigest()

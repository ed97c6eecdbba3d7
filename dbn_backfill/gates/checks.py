"""Honesty gates (contract section 9), run at the end of every backfill.

Each gate is a query that returns what it found; a failing gate makes the run fail
with that. They do not rescan 16 years on every run: one pass over the table gives
the rows, first and last bar per contract and the rows breaking section 4; the
primary key's uniqueness is read from the metadata; the trade-date gates (one source
per trade date, completeness) scan only the trade dates this run committed when the
rows per contract match the lineage, and the whole table when they do not (a row
planted, removed or moved by hand).
The spot-check recounts the selected contract's bars of random trade dates
straight from the DBN files, through a decoder path independent of the chunks. The
recount (:mod:`dbn_backfill.gates.spot`, rule ``spot_check``) needs only the files and
the run's seed, so it runs beside the decode, build and merge; the gate compares it
with the table at the end.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import duckdb

from dbn_backfill.artifacts import GateResult, SpotCounts
from dbn_backfill.config import BackfillConfig
from dbn_backfill.errors import GateError
from dbn_backfill.gates.spot import spot_check_counts
from dbn_backfill.runtime.faults import kill_point
from dbn_backfill.schema import PRIMARY_KEY, TABLE
from dbn_backfill.sources.index import IndexedSource
from dbn_backfill.store.database import connect, first_row, table_exists
from dbn_backfill.tradedate import Calendar

log = logging.getLogger(__name__)


def _calendar_table(con: duckdb.DuckDBPyConnection, calendar: Calendar) -> None:
    days = [str(d) for d in calendar.days]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE calendar_days AS SELECT CAST(unnest(?) AS DATE) AS day",
        [days],
    ).fetchall()


def trade_date_sql(calendar: Calendar, where: str = "") -> str:
    """SQL of (symbol, trade_date, source_symbol, n) over ``bars_1m`` (section 3 in SQL);
    ``where``: a condition on its rows (``ts_utc``, ``symbol``), default all rows."""
    shift = int(calendar.shift.total_seconds())
    # bars are first counted per UTC quarter hour, and only those are converted to the
    # session's zone: every zone's offset is a multiple of 15 minutes, so a quarter hour
    # never straddles a session roll that falls on one (else: per minute)
    bucket = "15 MINUTE" if shift % 900 == 0 else "1 MINUTE"
    return f"""
        WITH q AS (
          SELECT symbol, source_symbol, time_bucket(INTERVAL {bucket}, ts_utc) AS t,
                 count(*) AS n
          FROM {TABLE} {f"WHERE {where}" if where else ""} GROUP BY ALL),
        s AS (
          SELECT symbol, source_symbol,
                 CAST(timezone('{calendar.session_tz}', t) + INTERVAL {shift} SECOND AS DATE)
                   AS session_date,
                 sum(n) AS n
          FROM q GROUP BY ALL)
        SELECT s.symbol, c.day AS trade_date, s.source_symbol, sum(s.n) AS n
        FROM s ASOF LEFT JOIN calendar_days c ON s.session_date <= c.day
        GROUP BY ALL
    """


#: Section 4 as a condition on a row of ``bars_1m`` (true: the row breaks it), in plain
#: comparisons (a third of the cost of ``greatest``/``least`` over 16 years).
ROW_RULE = """
    epoch_us(ts_utc) % 60000000 != 0
    OR NOT (open > 0 AND high > 0 AND low > 0 AND close > 0)
    OR NOT (isfinite(open) AND isfinite(high) AND isfinite(low) AND isfinite(close))
    OR high < open OR high < close OR high < low OR low > open OR low > close
    OR volume < 0
"""


@dataclass(frozen=True)
class _TableFigures:
    """What one pass over ``bars_1m`` found, with its primary key from the metadata.

    Attributes:
        contracts: ``(symbol, source_symbol, rows, first ts_utc, last ts_utc)`` per
            contract of the table, sorted.
        bad_rows: rows breaking section 4; keyed: the table has its primary key.
    """

    contracts: list[tuple[Any, ...]]
    bad_rows: int
    keyed: bool

    @property
    def rows(self) -> int:
        return sum(int(c[2]) for c in self.contracts)

    @property
    def null_source(self) -> int:
        return sum(int(c[2]) for c in self.contracts if c[1] is None)


def _table_figures(con: duckdb.DuckDBPyConnection) -> _TableFigures:
    """One scan of ``bars_1m``: rows, first and last bar per contract, rows breaking
    section 4; the primary key from ``duckdb_constraints()``."""
    contracts = con.execute(
        f"SELECT symbol, source_symbol, count(*), min(ts_utc), max(ts_utc), "
        f"count_if({ROW_RULE}) FROM {TABLE} GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    keys = con.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() "
        "WHERE table_name = ? AND schema_name = 'main' AND constraint_type = 'PRIMARY KEY'",
        [TABLE],
    ).fetchall()
    return _TableFigures(
        contracts=[tuple(c[:5]) for c in contracts],
        bad_rows=sum(int(c[5]) for c in contracts),
        keyed=[tuple(k[0]) for k in keys] == [PRIMARY_KEY],
    )


@dataclass(frozen=True)
class _Scope:
    """Which rows the trade-date gates scan.

    Attributes:
        where: a condition on ``bars_1m``'s rows ("" : all of them).
        whole: every row is scanned.
        detail: what was scanned, in words.
    """

    where: str
    whole: bool
    detail: str


def _scope(
    con: duckdb.DuckDBPyConnection, calendar: Calendar, figures: _TableFigures, run_id: str
) -> _Scope:
    """The rows the trade-date gates (one source per trade date, completeness) scan.

    When every contract of the table has exactly the rows, first bar and last bar the
    lineage gives it (the selection of each trade date joined to its term structure),
    every row is where a committed chunk put it, and the chunks of earlier runs passed
    their run's gates: only the trade dates of the chunks run ``run_id`` committed are
    scanned. Any other table (a row planted, removed or moved to another contract by
    hand, a lineage from before the term structure) is scanned whole.
    """
    lineage = con.execute(
        "SELECT d.symbol, d.source_symbol, sum(t.bars), min(t.first_ts_utc), "
        "max(t.last_ts_utc) FROM bars_1m_trade_dates d "
        "JOIN bars_1m_term_structure t USING (symbol, trade_date, source_symbol) "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    if [tuple(r) for r in lineage] != figures.contracts:
        return _Scope(
            "", True, "every trade date scanned: the rows per contract differ from the lineage"
        )
    chunks = con.execute(
        "SELECT symbol, chunk_start, chunk_end FROM bars_1m_chunks WHERE run_id = ? "
        "ORDER BY symbol, chunk_start",
        [run_id],
    ).fetchall()
    ranges: list[list[Any]] = []
    for symbol, first, last in chunks:
        lo, hi = calendar.session_bounds_utc(first, last)
        if ranges and ranges[-1][0] == symbol and ranges[-1][2] >= lo:
            ranges[-1][2] = max(ranges[-1][2], hi)
        else:
            ranges.append([symbol, lo, hi])
    where = " OR ".join(
        f"(symbol = '{_quoted(symbol)}' AND ts_utc >= TIMESTAMPTZ '{lo.isoformat()}' "
        f"AND ts_utc < TIMESTAMPTZ '{hi.isoformat()}')"
        for symbol, lo, hi in ranges
    )
    return _Scope(
        where or "FALSE",
        False,
        f"the {len(chunks)} chunks this run committed scanned; the rest: rows, first and "
        "last bar per contract match the lineage",
    )


def _quoted(text: object) -> str:
    """``text`` inside an SQL string literal."""
    return str(text).replace("'", "''")


def run_gates(
    *,
    cfg: BackfillConfig,
    calendar: Calendar,
    sources: list[IndexedSource],
    seed: str,
    spot: SpotCounts | None = None,
) -> list[GateResult]:
    """Run every gate on ``cfg.db`` (read-only) for the run's one root and range
    (:func:`run_root_gates` with one root).

    Args:
        cfg: the run's settings of one root; sources: the run's DBN files as they are
        now (header and sha256: for the spot-check and the "sources unchanged" gate);
        seed: seeds the choice of spot-checked trade dates (the run id);
        spot: the recount of :func:`spot_check_counts` when the ``spot_check`` rule
        made it; without, it is made here.

    Returns:
        one result per gate; the caller fails the run on any failure.

    Raises:
        SchemaMismatchError: the database cannot be opened.
    """
    root = cfg.symbol
    spots = {root: spot} if spot is not None else {}
    return run_root_gates(
        cfg=cfg, calendar=calendar, sources={root: sources}, seed=seed, spots=spots
    )[root]


def run_root_gates(
    *,
    cfg: BackfillConfig,
    calendar: Calendar,
    sources: dict[str, list[IndexedSource]],
    seed: str,
    spots: dict[str, SpotCounts],
) -> dict[str, list[GateResult]]:
    """Every gate for every root of the run, in one read-only pass over the database:
    the gates that hold for the whole table (types, uniqueness, NULL source symbols,
    one source per trade date, section 4 rows) are computed once and reported for each
    root; completeness, sources unchanged and the spot-check per root.

    Args:
        cfg: the run's settings (every root); sources: root -> the DBN files whose
        header names it; seed: the run id (it seeds the spot-check's trade dates and
        names the chunks this run committed); spots: root -> the spot-check's recount from
        the files (made here for a root without one).

    Returns:
        root -> its gates, in the order of the contract's section 9.

    Raises:
        SchemaMismatchError: the database cannot be opened.
    """
    kill_point("gates")
    con = connect(cfg.db, read_only=True)
    out: dict[str, list[GateResult]] = {}
    try:
        if not table_exists(con, TABLE):
            missing = GateResult("table exists", False, f"{cfg.db} has no table {TABLE}")
            return {root: [missing] for root in cfg.symbols}
        _calendar_table(con, calendar)
        figures = _table_figures(con)
        scope = _scope(con, calendar, figures, seed)
        con.execute(f"CREATE TEMP TABLE per_day AS {trade_date_sql(calendar, scope.where)}")
        table_wide = [
            _gate_types(con),
            _gate_unique(con, figures),
            _gate_no_null_source(figures),
            _gate_one_source_per_day(con, scope),
            _gate_rows(con, figures),
        ]
        for root in cfg.symbols:
            root_cfg = cfg.for_root(root)
            spot = spots.get(root)
            if spot is None:
                spot = spot_check_counts(root_cfg, calendar, sources[root], seed)
            out[root] = [
                *table_wide,
                _gate_completeness(
                    con, calendar, root, cfg.start, cfg.end, root_cfg.expected_gaps, scope
                ),
                _gate_sources_unchanged(con, root, cfg.start, cfg.end, sources[root]),
                _gate_spot_check(con, calendar, root, spot),
            ]
    finally:
        con.close()
    return out


def _gate_types(con: duckdb.DuckDBPyConnection) -> GateResult:
    declared = first_row(
        con.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_name = ? AND "
            "column_name = 'ts_utc'",
            [TABLE],
        )
    )
    typed = con.execute(f"SELECT DISTINCT typeof(ts_utc) FROM {TABLE}").fetchall()
    kinds = {str(declared[0]) if declared else "missing", *(str(r[0]) for r in typed)}
    ok = all(k.startswith("TIMESTAMP") for k in kinds)
    return GateResult("ts_utc is a timestamp", ok, f"types found: {sorted(kinds)}")


def _gate_unique(con: duckdb.DuckDBPyConnection, figures: _TableFigures) -> GateResult:
    """Read from the metadata when ``bars_1m`` has its primary key (DuckDB refuses a
    duplicate of it on every write), else counted over the whole table."""
    if figures.keyed:
        return GateResult(
            "no duplicate (symbol, ts_utc)",
            True,
            f"{figures.rows} rows; primary key (symbol, ts_utc) in place, enforced by DuckDB",
        )
    # per symbol, stamps counted and distinct stamps: the same as distinct (symbol,
    # ts_utc) pairs, and cheaper than hashing the pairs
    total, distinct = first_row(
        con.execute(
            "SELECT coalesce(sum(n), 0), coalesce(sum(d), 0) FROM "
            f"(SELECT count(*) AS n, count(DISTINCT ts_utc) AS d FROM {TABLE} GROUP BY symbol)"
        )
    ) or (0, 0)
    detail = f"{total} rows, {distinct} distinct (symbol, ts_utc) (no primary key: counted)"
    if total != distinct:
        dup = con.execute(
            f"SELECT symbol, ts_utc, count(*) FROM {TABLE} GROUP BY ALL HAVING count(*) > 1 "
            "ORDER BY 2 LIMIT 3"
        ).fetchall()
        detail += f"; duplicated, first: {dup}"
    return GateResult("no duplicate (symbol, ts_utc)", total == distinct, detail)


def _gate_no_null_source(figures: _TableFigures) -> GateResult:
    nulls = figures.null_source
    return GateResult(
        "source_symbol never NULL", nulls == 0, f"{nulls} rows with NULL source_symbol"
    )


def _gate_one_source_per_day(con: duckdb.DuckDBPyConnection, scope: _Scope) -> GateResult:
    bad = con.execute(
        "SELECT symbol, trade_date, list(DISTINCT source_symbol ORDER BY source_symbol) "
        "FROM per_day GROUP BY symbol, trade_date HAVING count(DISTINCT source_symbol) > 1 "
        "ORDER BY trade_date LIMIT 10"
    ).fetchall()
    (orphans,) = first_row(
        con.execute("SELECT count(*) FROM per_day WHERE trade_date IS NULL")
    ) or (0,)
    detail = f"{len(bad)} (symbol, trade date) with several source symbols"
    if bad:
        detail += ", first: " + "; ".join(f"{s} {d}: {list(x)}" for s, d, x in bad)
    if orphans:
        detail += f"; {orphans} groups after the calendar's last business day"
    detail += f" ({scope.detail})"
    return GateResult("one source_symbol per (symbol, trade date)", not bad and not orphans, detail)


def _gate_rows(con: duckdb.DuckDBPyConnection, figures: _TableFigures) -> GateResult:
    bad = figures.bad_rows
    detail = f"{bad} rows break section 4"
    if bad:
        first = con.execute(
            f"SELECT * FROM {TABLE} WHERE {ROW_RULE} ORDER BY ts_utc LIMIT 3"
        ).fetchall()
        detail += f", first: {first}"
    return GateResult("every row satisfies section 4", bad == 0, detail)


def _gate_completeness(
    con: duckdb.DuckDBPyConnection,
    calendar: Calendar,
    symbol: str,
    start: dt.date,
    end: dt.date,
    expected_gaps: tuple[dt.date, ...],
    scope: _Scope,
) -> GateResult:
    """The business days of ``[start, end]`` with rows of ``symbol``: those ``per_day``
    counted, and when the table's rows per contract match the lineage (``scope``
    not whole), the trade dates the lineage gives bars of the selected contract."""
    have = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT trade_date FROM per_day "
            "WHERE symbol = ? AND trade_date BETWEEN ? AND ?",
            [symbol, start, end],
        ).fetchall()
    }
    if not scope.whole:
        have.update(
            r[0]
            for r in con.execute(
                "SELECT d.trade_date FROM bars_1m_trade_dates d "
                "JOIN bars_1m_term_structure t USING (symbol, trade_date, source_symbol) "
                "WHERE d.symbol = ? AND d.trade_date BETWEEN ? AND ? AND t.bars > 0",
                [symbol, start, end],
            ).fetchall()
        )
    required = calendar.required_days(start, end, expected_gaps)
    missing = [d for d in required if d not in have]
    business = len(calendar.business_days(start, end))
    detail = f"{business} business days in [{start}, {end}], {len(missing)} without rows"
    if missing:
        detail += ": " + ", ".join(str(d) for d in missing[:20])
    return GateResult("completeness of [start, end]", not missing, detail)


def _gate_sources_unchanged(
    con: duckdb.DuckDBPyConnection,
    symbol: str,
    start: dt.date,
    end: dt.date,
    sources: list[IndexedSource],
) -> GateResult:
    """The sha256 the lineage holds for each source of the range's chunks is the
    file's as it is now: a table that no longer matches its files fails."""
    now = {str(s.path): s.sha256 for s in sources}
    rows = con.execute(
        "SELECT s.path, s.sha256, min(s.chunk_id) FROM bars_1m_chunk_sources s "
        "JOIN bars_1m_chunks c USING (symbol, chunk_id) "
        "WHERE c.symbol = ? AND c.chunk_end >= ? AND c.chunk_start <= ? GROUP BY ALL ORDER BY 1",
        [symbol, start, end],
    ).fetchall()
    problems = []
    for path, sha, chunk_id in rows:
        if path not in now:
            problems.append(f"{path} (lineage of {chunk_id}) is no longer among the sources")
        elif now[path] != sha:
            problems.append(
                f"{path} (lineage of {chunk_id}) has sha256 {now[path]}, the lineage {sha}"
            )
    detail = f"{len(rows)} source files in the lineage of [{start}, {end}]"
    if problems:
        detail += f", {len(problems)} changed since committed: " + "; ".join(problems[:10])
    return GateResult("sources unchanged", not problems, detail)


def _gate_spot_check(
    con: duckdb.DuckDBPyConnection, calendar: Calendar, symbol: str, spot: SpotCounts
) -> GateResult:
    """Each sampled trade date holds exactly the bars the DBN files have of the
    contract the table selected for it (and none when it selected none)."""
    if not spot.days:
        return GateResult("spot-check against DBN", True, "no trade date to check")
    days = sorted(dt.date.fromisoformat(d) for d in spot.days)
    marks = ", ".join("?" * len(days))
    selected = dict(
        con.execute(
            "SELECT trade_date, source_symbol FROM bars_1m_trade_dates WHERE symbol = ? "
            f"AND trade_date IN ({marks})",
            [symbol, *days],
        ).fetchall()
    )
    mismatches, checked = [], []
    for day in days:
        dbn = spot.days[str(day)]
        source_symbol = selected.get(day)
        lo, hi = calendar.session_bounds_utc(day, day)
        bounds = [symbol, lo.to_pydatetime(), hi.to_pydatetime()]
        in_range = f"FROM {TABLE} WHERE symbol = ? AND ts_utc >= ? AND ts_utc < ?"
        (all_rows,) = first_row(con.execute(f"SELECT count(*) {in_range}", bounds)) or (0,)
        if source_symbol is None:
            from_dbn = sum(dbn.values())
            checked.append(f"{day} none ({from_dbn} bars)")
            if all_rows or from_dbn:
                mismatches.append(
                    f"{day}: no selection in the table and {all_rows} rows, DBN has "
                    f"{from_dbn} outright bars ({dbn})"
                )
            continue
        (stored,) = first_row(
            con.execute(
                f"SELECT count(*) {in_range} AND source_symbol = ?", [*bounds, source_symbol]
            )
        ) or (0,)
        from_dbn = dbn.get(source_symbol, 0)
        checked.append(f"{day} {source_symbol} ({from_dbn} bars)")
        if stored != from_dbn or all_rows != from_dbn:
            mismatches.append(
                f"{day} {source_symbol}: table {all_rows} rows "
                f"({stored} of {source_symbol}), DBN {from_dbn}"
            )
    detail = f"checked {', '.join(checked)}"
    if mismatches:
        detail = "mismatch: " + "; ".join(mismatches) + f" ({detail})"
    return GateResult("spot-check against DBN", not mismatches, detail)


def log_results(results: list[GateResult], root: str = "") -> None:
    """One log line per gate: the root, the gate's name, PASS or FAIL, what it found."""
    for result in results:
        log.info(
            "gate %s%-45s %s: %s",
            f"{root} " if root else "",
            result.name,
            "PASS" if result.passed else "FAIL",
            result.detail,
            extra={"console": True},
        )


def raise_on_failure(results: dict[str, list[GateResult]]) -> None:
    """Raise when a gate of some root failed.

    Args:
        results: root -> its gates' results.

    Raises:
        GateError: naming every failed gate with its root and what it found.
    """
    failed = [(root, r) for root, rs in results.items() for r in rs if not r.passed]
    if failed:
        raise GateError(
            f"{len(failed)} honesty gates failed: "
            + " | ".join(f"{root} {r.name}: {r.detail}" for root, r in failed)
        )

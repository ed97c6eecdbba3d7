"""``dbn-backfill status``: what a backfill holds and whether it needs attention.

    dbn-backfill status --db PATH --checkpoint DIR [--symbol MGC] [--workdir DIR] [--json]

Reads only: the database through a read-only DuckDB connection (never while a
backfill holds the database's run lock: then the checkpoints are shown and the
database is left alone), the checkpoint files, and the latest run's records under
``<workdir>/results/<SYMBOL>/runs/``. It writes nothing, so it works on a read-only
database file and checkpoint folder.

Exit status: 0 when all is well, 1 when something needs attention (the reasons are
listed), 2 when the status cannot be read (no such database, a broken one).
Needing attention means any of: a chunk whose checkpoint says ``failed`` (with its
error); a checkpoint left ``in_progress`` while no backfill runs (an interrupted
run); in the latest run, a failed gate, a merge report without a gates report, or a
run record without a merge report (the run stopped before its merge finished).
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from dbn_backfill.errors import BackfillError
from dbn_backfill.layout import Layout, db_lock, find_workdir, root_checkpoint_files
from dbn_backfill.store import checkpoints as ckpt
from dbn_backfill.store.database import connect, first_row, table_exists
from dbn_backfill.tradedate import Calendar
from dbn_backfill.views.runs import RunConfig, RunRecord, latest_run, trade_calendar

EXIT_OK, EXIT_ATTENTION, EXIT_ERROR = 0, 1, 2


def lock_holder(db: Path) -> str | None:
    """Who holds the run lock of ``db`` (a running backfill), or None.

    The lock file is opened read-only and a shared lock tried for an instant; nothing
    is written. Missing lock file: no backfill has run here (or it is elsewhere).
    """
    path = db_lock(db)
    try:
        handle = open(path)  # noqa: SIM115 - closed below
    except OSError:
        return None
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "unknown process"
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return None
    finally:
        handle.close()


def read_checkpoints(checkpoint_dir: Path, symbol: str | None) -> list[dict[str, Any]]:
    """Every checkpoint of ``symbol`` (of every root when None) in the checkpoint folder."""
    out = []
    for path in root_checkpoint_files(checkpoint_dir, symbol):
        checkpoint = ckpt.read(path.parent, path.stem)
        if checkpoint is None:
            out.append({"chunk_id": path.stem, "status": "unreadable"})
            continue
        if symbol and checkpoint.symbol != symbol:
            continue
        out.append(checkpoint.to_json())
    return out


def _calendar(workdir: Path | None, symbol: str, config: RunConfig | None) -> Calendar:
    return trade_calendar(config, workdir, symbol)


def database_view(
    db: Path, symbol: str | None, workdir: Path | None, config: RunConfig | None
) -> dict[str, Any]:
    """What the database holds for ``symbol``: span, rows, chunks, missing business days.

    ``config`` is the latest run's recorded settings (for its calendar; None: the
    defaults). Returns a JSON-able dict (see :func:`collect`).

    Raises:
        BackfillError: several symbols and none chosen.
        SchemaMismatchError: the database is missing or not DuckDB.
    """
    con = connect(db, read_only=True)
    try:
        if not table_exists(con, "bars_1m_trade_dates"):
            return {"symbol": symbol, "trade_dates": 0, "rows": 0, "chunks": 0}
        if symbol is None:
            symbols = [
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT symbol FROM bars_1m_trade_dates ORDER BY 1"
                ).fetchall()
            ]
            if len(symbols) > 1:
                raise BackfillError(f"{db} holds symbols {symbols}; choose one with --symbol")
            symbol = symbols[0] if symbols else None
        first, last, n_days, contracts = first_row(
            con.execute(
                "SELECT min(trade_date), max(trade_date), count(*), "
                "count(DISTINCT source_symbol) FROM bars_1m_trade_dates WHERE symbol = ?",
                [symbol],
            )
        ) or (None, None, 0, 0)
        (rows,) = first_row(
            con.execute("SELECT count(*) FROM bars_1m WHERE symbol = ?", [symbol])
        ) or (0,)
        n_chunks, last_commit = first_row(
            con.execute(
                "SELECT count(*), max(committed_at) FROM bars_1m_chunks WHERE symbol = ?",
                [symbol],
            )
        ) or (0, None)
        committed = {
            r[0]
            for r in con.execute(
                "SELECT chunk_id FROM bars_1m_chunks WHERE symbol = ?", [symbol]
            ).fetchall()
        }
        have = {
            r[0]
            for r in con.execute(
                "SELECT trade_date FROM bars_1m_trade_dates WHERE symbol = ?", [symbol]
            ).fetchall()
        }
    finally:
        con.close()
    missing: list[str] = []
    if first is not None and symbol is not None:
        calendar = _calendar(workdir, symbol, config)
        days = (pd.Timestamp(d).date() for d in calendar.business_days(first, last))
        missing = [str(d) for d in days if d not in have]
    return {
        "symbol": symbol,
        "first_trade_date": str(first) if first is not None else None,
        "last_trade_date": str(last) if last is not None else None,
        "trade_dates": int(n_days),
        "contracts": int(contracts),
        "rows": int(rows),
        "chunks": int(n_chunks),
        "last_commit": last_commit.isoformat() if last_commit is not None else None,
        "missing_business_days": missing,
        "committed_chunk_ids": sorted(committed),
    }


def run_view(run: RunRecord | None) -> dict[str, Any] | None:
    """The latest run's summary as JSON values: settings, merge figures, gates (None
    without a run)."""
    if run is None:
        return None
    merge = run.merge.to_json() if run.merge is not None else None
    return {
        "run_id": run.run_id,
        "path": str(run.path),
        "started_at": run.started_at,
        "range": list(run.config.span) if run.config is not None and run.config.span else None,
        "merge": {
            k: merge[k]
            for k in (
                "chunks_committed",
                "chunks_skipped",
                "chunks_failed",
                "rows_inserted",
                "seconds",
            )
        }  # fmt: skip
        if merge is not None
        else None,
        "gates": {
            "passed": run.gates.passed,
            "report": str(run.gates_origin),
            "from_log": run.gates_from_log,
            "gates": [dict(sorted(asdict(g).items())) for g in run.gates.gates],  # as on disk
        }
        if run.gates is not None
        else None,
    }


def collect(
    db: Path, checkpoint: Path, symbol: str | None = None, workdir: Path | None = None
) -> dict[str, Any]:
    """The status as a JSON-able dict; ``attention`` lists what needs attention.

    Raises:
        SchemaMismatchError: the database is missing or not DuckDB.
        BackfillError: several symbols and none chosen.
    """
    db, checkpoint = Path(db), Path(checkpoint)
    holder = lock_holder(db)
    states = read_checkpoints(checkpoint, symbol)
    if symbol is None:
        named = {s.get("symbol") for s in states if s.get("symbol")}
        symbol = named.pop() if len(named) == 1 else None
    run = latest_run(workdir, symbol) if workdir is not None and symbol else None
    if holder is None:
        database = database_view(db, symbol, workdir, run.config if run else None)
        symbol = database["symbol"]
        if run is None and workdir is not None and symbol:
            run = latest_run(workdir, symbol)
    else:
        if not db.exists():
            raise BackfillError(f"database {db} does not exist")
        database = {"skipped": f"a backfill is running ({holder}); the database is not opened"}
    committed = set(database.pop("committed_chunk_ids", []))

    counts: dict[str, int] = {}
    by_status: dict[str, list[dict[str, Any]]] = {}
    for state in states:
        status = str(state.get("status"))
        counts[status] = counts.get(status, 0) + 1
        by_status.setdefault(status, []).append(state)
    chunks: dict[str, Any] = {
        "folder": str(checkpoint),
        "counts": counts,
        "failed": [
            {k: s.get(k) for k in ("chunk_id", "error", "finished_at")}
            for s in by_status.get("failed", [])
        ],
        "in_progress": [
            {k: s.get(k) for k in ("chunk_id", "started_at")}
            for s in by_status.get("in_progress", [])
        ],
        "pending": [s["chunk_id"] for s in by_status.get("pending", [])],
        "unreadable": [s["chunk_id"] for s in by_status.get("unreadable", [])],
        # committed in the database, checkpoint not (yet) saying done: the next merge
        # repairs the checkpoint from the lineage
        "committed_not_marked_done": sorted(
            s["chunk_id"]
            for s in states
            if s["chunk_id"] in committed and s.get("status") != "done"
        ),
    }

    attention = []
    for f in chunks["failed"]:
        attention.append(f"chunk {f['chunk_id']} failed: {f['error']}")
    if holder is None:
        for p in chunks["in_progress"]:
            attention.append(
                f"chunk {p['chunk_id']} is in_progress (since {p['started_at']}) but no "
                "backfill is running: a run was interrupted; rerun the same command"
            )
    for chunk_id in chunks["unreadable"]:
        attention.append(f"checkpoint {chunk_id}.json is unreadable")
    last = run_view(run)
    if run is not None and holder is None:
        if run.merge is None and run.gates is None:
            merge_log = Layout(Path(workdir or ".")).log("merge_chunks", run.run_id)
            attention.append(
                f"run {run.run_id} has no merge report: it stopped before its merge "
                f"finished (see {merge_log})"
            )
        elif run.merge is not None and run.gates is None:
            attention.append(
                f"run {run.run_id} has a merge report but no gates report: it stopped "
                "before its gates finished; rerun the same command"
            )
        for gate in run.gates_failed:
            attention.append(f"gate failed in run {run.run_id}: {gate.name}: {gate.detail}")
    return {
        "ok": not attention,
        "attention": attention,
        "db": str(db),
        "symbol": symbol,
        "running": holder,
        "checked_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "database": database,
        "chunks": chunks,
        "last_run": last,
        "workdir": str(workdir) if workdir is not None else None,
    }


def _clip(text: object, width: int = 300) -> str:
    s = str(text)
    return s if len(s) <= width else s[: width - 3] + "..."


def format_text(status: dict[str, Any]) -> str:
    """The compact human view of :func:`collect`'s result."""
    head = "OK" if status["ok"] else f"NEEDS ATTENTION ({len(status['attention'])})"
    lines = [f"dbn-backfill status: {status['symbol'] or '?'} in {status['db']}: {head}"]
    if status["running"]:
        lines.append(f"  running now: {status['running']}")
    c = status["chunks"]
    order = ["done", "failed", "in_progress", "pending"]
    counts = c["counts"]
    shown = [f"{counts.get(k, 0)} {k}" for k in order]
    shown += [f"{v} {k}" for k, v in sorted(counts.items()) if k not in order]
    lines.append(f"  chunks: {', '.join(shown)} (checkpoints in {c['folder']})")
    for f in c["failed"]:
        lines.append(f"    failed {f['chunk_id']}: {_clip(f['error'])}")
    for p in c["in_progress"]:
        lines.append(f"    in_progress {p['chunk_id']} since {p['started_at']}")
    if c["pending"]:
        more = f" .. {c['pending'][-1]}" if len(c["pending"]) > 1 else ""
        lines.append(f"    pending {len(c['pending'])}: {c['pending'][0]}{more}")
    if c["committed_not_marked_done"]:
        lines.append(
            f"    {len(c['committed_not_marked_done'])} committed chunks whose checkpoint "
            "is not yet done (the next run marks them from the database)"
        )
    d = status["database"]
    if "skipped" in d:
        lines.append(f"  database: {d['skipped']}")
    elif d.get("first_trade_date"):
        lines.append(
            f"  committed: trade dates {d['first_trade_date']} .. {d['last_trade_date']} "
            f"({d['trade_dates']:,} dates, {d['contracts']} source symbols), {d['rows']:,} rows "
            f"in {d['chunks']:,} chunks, last commit {d['last_commit']}"
        )
        missing = d["missing_business_days"]
        if missing:
            listed = ", ".join(missing[:10]) + (
                f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            )
            lines.append(f"  business days without bars in that span: {len(missing)}: {listed}")
        else:
            lines.append("  business days without bars in that span: none")
    else:
        lines.append("  committed: nothing yet")
    r = status["last_run"]
    if r is None:
        lines.append(
            "  last run: " + ("none found" if status["workdir"] else "unknown (give --workdir)")
        )
    else:
        span = f" {r['range'][0]} .. {r['range'][1]}" if r["range"] else ""
        lines.append(f"  last run {r['run_id']}{span} (started {r['started_at'] or '?'}):")
        m = r["merge"]
        if m:
            lines.append(
                f"    merge: committed {m['chunks_committed']}, skipped {m['chunks_skipped']}, "
                f"failed {m['chunks_failed']}, {m['rows_inserted']:,} rows in {m['seconds']} s"
            )
        else:
            lines.append("    merge: no report")
        g = r["gates"]
        if g:
            gates = g["gates"]
            n_pass = sum(1 for x in gates if x.get("passed"))
            word = "passed" if g["passed"] else "FAILED"
            kept = f", from {g['report']}" if g.get("from_log") else ""
            lines.append(f"    gates: {word} ({n_pass}/{len(gates)}{kept})")
            for x in gates:
                if not x.get("passed"):
                    lines.append(f"      FAIL {x['name']}: {_clip(x['detail'])}")
        else:
            lines.append("    gates: no report")
    if status["attention"]:
        lines.append("  needs attention:")
        lines += [f"    - {_clip(a, 400)}" for a in status["attention"]]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``dbn-backfill status``."""
    parser.add_argument("--db", required=True, help="DuckDB file of the backfill")
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder")
    parser.add_argument("--symbol", default=None, help="CME root (default: the only one)")
    parser.add_argument(
        "--workdir",
        default=None,
        help="work directory of the runs (default: the current directory if it has runs)",
    )
    parser.add_argument("--json", action="store_true", help="print the status as JSON")


def run(args: argparse.Namespace) -> int:
    """The ``status`` subcommand: print, return the exit status."""

    workdir = Path(args.workdir) if args.workdir else find_workdir(args.symbol, Path(args.db))
    try:
        status = collect(Path(args.db), Path(args.checkpoint), symbol=args.symbol, workdir=workdir)
    except BackfillError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}))
        print(f"dbn-backfill status: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(status, indent=1, default=str) if args.json else format_text(status))
    return EXIT_OK if status["ok"] else EXIT_ATTENTION

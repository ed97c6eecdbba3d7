"""``dbn-backfill status``: what a backfill holds and whether it needs attention.

    dbn-backfill status --db PATH --checkpoint DIR [--symbol MGC[,GC]] [--workdir DIR] [--json]

Shows every root the database, the checkpoint folder or the work directory knows
(``--symbol``: those roots only): one root as its line and details; several as a
table of the roots, then the details of those needing attention.

Reads only: the database through a read-only DuckDB connection (never while a
backfill holds the database's run lock: then the checkpoints are shown and the
database is left alone), each root's checkpoint files (its folder and the legacy
files directly in the checkpoint folder naming it), and each root's latest run
records in the work directory. It writes nothing, so it works on a read-only
database file and checkpoint folder.

Exit status over all roots: 0 when all is well, 1 when something needs attention
(the reasons are listed, each with its root), 2 when the status cannot be read (no
such database, a broken one, a bad ``--symbol``).
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
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from dbn_backfill.chunks.grid import plan_chunks
from dbn_backfill.config import parse_symbols
from dbn_backfill.errors import BackfillError
from dbn_backfill.layout import (
    Layout,
    checkpoint_files,
    checkpoint_roots,
    db_lock,
    find_workdir,
    root_checkpoint_files,
)
from dbn_backfill.store import checkpoints as ckpt
from dbn_backfill.store.database import connect, first_row, table_exists
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


def read_checkpoints(checkpoint_dir: Path, symbol: str) -> list[dict[str, Any]]:
    """Every checkpoint of root ``symbol`` in the checkpoint folder: the files of its
    own folder (an unreadable one counts as ``unreadable``) and the legacy files
    directly in the folder that name it (an unreadable legacy file names no root:
    :func:`legacy_checkpoints` reports it)."""
    out = []
    for path in root_checkpoint_files(checkpoint_dir, symbol):
        checkpoint = ckpt.read(path.parent, path.stem)
        if checkpoint is None:
            if path.parent != checkpoint_dir:
                out.append({"chunk_id": path.stem, "status": "unreadable"})
            continue
        if checkpoint.symbol != symbol:
            continue
        out.append(checkpoint.to_json())
    return out


def legacy_checkpoints(checkpoint_dir: Path) -> tuple[set[str], list[str]]:
    """The legacy checkpoint files directly in the checkpoint folder (contract section
    8): the roots they name, and the files naming no root (unreadable, or no
    ``symbol``), which no root's status can count."""
    roots: set[str] = set()
    orphans = []
    for path in checkpoint_files(checkpoint_dir):
        checkpoint = ckpt.read(path.parent, path.stem)
        if checkpoint is None or not checkpoint.symbol:
            orphans.append(path.name)
        else:
            roots.add(checkpoint.symbol)
    return roots, orphans


def database_roots(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The roots the database's lineage holds (committed trade dates or chunks), sorted."""
    found: set[str] = set()
    for table in ("bars_1m_trade_dates", "bars_1m_chunks"):
        if table_exists(con, table):
            found |= {r[0] for r in con.execute(f"SELECT DISTINCT symbol FROM {table}").fetchall()}
    return sorted(found)


def database_view(
    con: duckdb.DuckDBPyConnection, symbol: str, workdir: Path | None, config: RunConfig | None
) -> dict[str, Any]:
    """What the database holds for ``symbol``: span, rows, chunks, missing business days.

    ``config`` is the latest run's recorded settings (for its calendar; None: the
    defaults). Returns a JSON-able dict (see :func:`collect`).
    """
    if not table_exists(con, "bars_1m_trade_dates"):
        return {"symbol": symbol, "trade_dates": 0, "rows": 0, "chunks": 0}
    first, last, n_days, contracts = first_row(
        con.execute(
            "SELECT min(trade_date), max(trade_date), count(*), "
            "count(DISTINCT source_symbol) FROM bars_1m_trade_dates WHERE symbol = ?",
            [symbol],
        )
    ) or (None, None, 0, 0)
    (rows,) = first_row(con.execute("SELECT count(*) FROM bars_1m WHERE symbol = ?", [symbol])) or (
        0,
    )
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
    missing: list[str] = []
    if first is not None:
        calendar = trade_calendar(config, workdir, symbol)
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


def run_progress(
    run: RunRecord | None, done: int, workdir: Path | None, symbol: str
) -> dict[str, Any]:
    """How far the running backfill is for ``symbol``: chunks committed (checkpoints
    ``done``) of the chunks its plan holds (the grid of the run's own settings, None
    when its record is not written yet), and since when it runs."""
    config = run.config if run is not None else None
    planned = None
    if config is not None:
        try:
            start = dt.date.fromisoformat(str(config.settings["start"]))
            end = dt.date.fromisoformat(str(config.settings["end"]))
            chunk_days = int(config.settings["chunk_days"])
        except (KeyError, ValueError, TypeError):
            pass
        else:
            calendar = trade_calendar(config, workdir, symbol)
            batches = plan_chunks(calendar, start, end, chunk_days, chunks_per_job=1)
            planned = sum(len(b.chunks) for b in batches)
    return {"done": done, "planned": planned, "since": config.started_at if config else None}


def stop_line(log: Path) -> str | None:
    """The line of a step's log saying why it stopped (``... stopped: ...``), if any."""
    try:
        for line in log.read_text(errors="replace").splitlines():
            if " stopped: " in line or " crashed" in line:
                return _clip(line.split(": ", 1)[-1] if ": " in line else line, 400)
    except OSError:
        return None
    return None


def collect_root(
    con: duckdb.DuckDBPyConnection | None,
    db: Path,
    checkpoint: Path,
    symbol: str,
    workdir: Path | None,
    holder: str | None,
) -> dict[str, Any]:
    """The status of one root as a JSON-able dict; ``attention`` lists what needs
    attention. ``con``: a read-only connection to the database (None while a backfill
    holds its run lock, ``holder``: then the database is not read)."""
    states = read_checkpoints(checkpoint, symbol)
    run = latest_run(workdir, symbol) if workdir is not None else None
    if con is not None:
        database = database_view(con, symbol, workdir, run.config if run else None)
    else:
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
    steps: list[str] = []  # what to type next, once each
    for f in by_status.get("failed", []):
        attention.append(f"chunk {f['chunk_id']} failed: {f['error']}")
        if (f.get("error_kind") or "data") == "data":
            step = "fix the file named above, then rerun the same command with --retry-failed"
        else:
            step = "fix the machine's fault (disk, permissions), then rerun the same command"
        if step not in steps:
            steps.append(step)
    if holder is None:
        for p in chunks["in_progress"]:
            attention.append(
                f"chunk {p['chunk_id']} is in_progress (since {p['started_at']}) but no "
                "backfill is running: a run was interrupted; rerun the same command"
            )
            if "rerun the same command (it resumes)" not in steps:
                steps.append("rerun the same command (it resumes)")
    for chunk_id in chunks["unreadable"]:
        attention.append(f"checkpoint {chunk_id}.json is unreadable")
    last = run_view(run)
    progress = None
    if holder is not None:
        progress = run_progress(run, counts.get("done", 0), workdir, symbol)
    if run is not None and holder is None:
        if run.merge is None and run.gates is None:
            merge_log = Layout(Path(workdir or ".")).log("merge_chunks", run.run_id)
            why = stop_line(merge_log)
            attention.append(
                f"run {run.run_id} has no merge report: it stopped before its merge "
                f"finished ({why or 'see ' + str(merge_log)})"
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
        "progress": progress,
        "next": steps if attention else [],
        "checked_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "database": database,
        "chunks": chunks,
        "last_run": last,
        "workdir": str(workdir) if workdir is not None else None,
    }


def collect(
    db: Path,
    checkpoint: Path,
    symbols: Sequence[str] | None = None,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """The status of every root as a JSON-able dict: ``roots`` maps each root to its
    status (:func:`collect_root`); ``attention`` lists what needs attention over all
    roots (each reason led by its root), ``ok`` whether nothing does.

    Args:
        db, checkpoint, workdir: the database, the checkpoint folder, the work directory
            of the runs (None: no run records).
        symbols: the roots to show (None: every root the database, the checkpoint
            folder or the work directory knows).

    Raises:
        SchemaMismatchError: the database is missing or not DuckDB.
        BackfillError: the database cannot be read.
    """
    db, checkpoint = Path(db), Path(checkpoint)
    holder = lock_holder(db)  # a run holds the database: it may not exist yet
    legacy, orphans = legacy_checkpoints(checkpoint)
    con = connect(db, read_only=True) if holder is None else None
    try:
        if symbols:
            roots = list(symbols)
        else:
            known = set(legacy) | set(checkpoint_roots(checkpoint))
            if workdir is not None:
                known |= set(Layout(Path(workdir)).roots_with_runs())
            if con is not None:
                known |= set(database_roots(con))
            roots = sorted(known)
        per_root = {r: collect_root(con, db, checkpoint, r, workdir, holder) for r in roots}
    finally:
        if con is not None:
            con.close()
    shared = [
        f"checkpoint {name} directly in {checkpoint} names no root (unreadable, or no "
        "symbol): no run can use it; move or remove it"
        for name in orphans
    ]
    attention = [f"{r}: {a}" for r, s in per_root.items() for a in s["attention"]] + shared
    return {
        "ok": not attention,
        "attention": attention,
        "db": str(db),
        "symbols": roots,
        "running": holder,
        "checked_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "checkpoint": str(checkpoint),
        "workdir": str(workdir) if workdir is not None else None,
        "unassigned_checkpoints": orphans,
        "attention_shared": shared,
        "roots": per_root,
    }


def _clip(text: object, width: int = 300) -> str:
    s = str(text)
    return s if len(s) <= width else s[: width - 3] + "..."


#: The checkpoint statuses in the order the views show them.
CHUNK_ORDER = ("done", "failed", "in_progress", "pending")


def _progress_lines(status: dict[str, Any], label: str = "") -> list[str]:
    """The line saying how far a running backfill is for one root (none when its plan
    is not known yet)."""
    progress = status.get("progress") or {}
    if progress.get("planned") is None:
        return []
    since = f" (run started {progress['since']})" if progress.get("since") else ""
    return [
        f"  progress: {label}{progress['done']} of {progress['planned']} chunks committed{since}"
    ]


def format_root(status: dict[str, Any], title: str, shared: Sequence[str] = ()) -> str:
    """The human view of one root's status (:func:`collect_root`): a line ``title``:
    OK / NEEDS ATTENTION, then its details; ``shared`` are reasons for attention that
    belong to no root (listed with the root's own)."""
    attention = [*status["attention"], *shared]
    head = "OK" if not attention else f"NEEDS ATTENTION ({len(attention)})"
    lines = [f"{title}: {head}"]
    if status["running"]:
        lines.append(f"  running now: {status['running']}")
        lines += _progress_lines(status)
    c = status["chunks"]
    counts = c["counts"]
    shown = [f"{counts.get(k, 0)} {k}" for k in CHUNK_ORDER]
    shown += [f"{v} {k}" for k, v in sorted(counts.items()) if k not in CHUNK_ORDER]
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
    if attention:
        lines.append("  needs attention:")
        lines += [f"    - {_clip(a, 400)}" for a in attention]
        lines += [f"  next: {step}" for step in status.get("next", [])]
    return "\n".join(lines)


def _latest_run_cell(root: dict[str, Any]) -> str:
    """The latest run column of the roots table: its id and how it ended."""
    r = root["last_run"]
    if r is None:
        return "none" if root["workdir"] else "unknown (give --workdir)"
    g = r["gates"]
    if g:
        n_pass = sum(1 for x in g["gates"] if x.get("passed"))
        word = "passed" if g["passed"] else "FAILED"
        return f"{r['run_id']}: gates {word} ({n_pass}/{len(g['gates'])})"
    return f"{r['run_id']}: " + ("no gates report" if r["merge"] else "no merge report")


def roots_table(status: dict[str, Any]) -> list[list[str]]:
    """The rows of the roots table of :func:`collect`'s result, header first: root,
    OK or attention, chunks by status, committed trade dates, rows, business days
    without bars, latest run."""
    rows = [["root", "state", "chunks done/failed/in_progress/pending", "trade dates",
             "rows", "days without bars", "latest run"]]  # fmt: skip
    for name, root in status["roots"].items():
        counts = root["chunks"]["counts"]
        chunks = "/".join(str(counts.get(k, 0)) for k in CHUNK_ORDER)
        chunks += "".join(f" +{v} {k}" for k, v in sorted(counts.items()) if k not in CHUNK_ORDER)
        d = root["database"]
        if "skipped" in d:
            span, n_rows, missing = "(not read: a backfill is running)", "", ""
        elif d.get("first_trade_date"):
            span = f"{d['first_trade_date']} .. {d['last_trade_date']}"
            n_rows, missing = f"{d['rows']:,}", str(len(d["missing_business_days"]))
        else:
            span, n_rows, missing = "nothing committed", "0", ""
        state = "OK" if root["ok"] else f"ATTENTION ({len(root['attention'])})"
        rows.append([name, state, chunks, span, n_rows, missing, _latest_run_cell(root)])
    return rows


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(w) if i in right and n else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for n, row in enumerate(rows)
    ]


def format_text(status: dict[str, Any]) -> str:
    """The compact human view of :func:`collect`'s result.

    One root: that root's line and its details. Several: a table of the roots, then
    the details of each root that needs attention, then reasons that belong to no root.
    """
    roots = status["roots"]
    shared = status["attention_shared"]
    if len(roots) == 1:
        ((name, root),) = roots.items()
        return format_root(root, f"dbn-backfill status: {name} in {status['db']}", shared)
    head = "OK" if status["ok"] else f"NEEDS ATTENTION ({len(status['attention'])})"
    names = ", ".join(roots) or "none found"
    lines = [f"dbn-backfill status: {len(roots)} roots ({names}) in {status['db']}: {head}"]
    if status["running"]:
        lines.append(f"  running now: {status['running']}")
        for name, root in roots.items():
            lines += _progress_lines(root, f"{name} ")
    if roots:
        lines.append(f"  checkpoints in {status['checkpoint']}")
        lines += ["  " + line for line in _table(roots_table(status), right={4, 5})]
    else:
        lines.append(
            "  no root found: the database, the checkpoint folder and the work directory name none"
        )
    for name, root in roots.items():
        if not root["ok"]:
            lines += ["", format_root(root, name)]
    if shared:
        lines += ["", "needs attention (no root):"]
        lines += [f"  - {_clip(a, 400)}" for a in shared]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``dbn-backfill status``."""
    parser.add_argument("--db", required=True, help="DuckDB file of the backfill")
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder")
    parser.add_argument(
        "--symbol",
        default=None,
        help="CME root(s) to show, e.g. MGC or MGC,GC (default: every root found)",
    )
    parser.add_argument(
        "--workdir",
        default=None,
        help="work directory of the runs (default: the current directory if it has runs)",
    )
    parser.add_argument("--json", action="store_true", help="print the status as JSON")


def run(args: argparse.Namespace) -> int:
    """The ``status`` subcommand: print, return the exit status."""

    try:
        symbols = parse_symbols(args.symbol) if args.symbol else None
        one = symbols[0] if symbols and len(symbols) == 1 else None
        workdir = Path(args.workdir) if args.workdir else find_workdir(one, Path(args.db))
        status = collect(Path(args.db), Path(args.checkpoint), symbols=symbols, workdir=workdir)
    except BackfillError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}))
        print(f"dbn-backfill status: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(status, indent=1, default=str) if args.json else format_text(status))
    return EXIT_OK if status["ok"] else EXIT_ATTENTION

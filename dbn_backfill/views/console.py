"""The console of a ``dbn-backfill`` run: short, once, with the next command.

The CLI sends Snakemake's whole output (its banner, every job's block, every job's
log lines) to the run's log file (:meth:`Layout.run_log`) and feeds each line to a
:class:`RunConsole`, which decides what a person sees:

* the run's own lines (the start line, where the settings are recorded, fetch lines,
  the summary) and errors or warnings of a job, each once;
* a chunk's error is held back: the summary names every failed chunk with its error
  and the command to type next (a held error is shown only when no summary came);
* progress: on a terminal a live bar (chunks committed of planned, rows, rate, ETA),
  otherwise one line every :data:`EVERY` seconds. Chunks are counted from the
  checkpoint files (``done``), which stays true however many merge jobs run.

Snakemake's job chatter is recognized by :data:`CHATTER` and goes to the log only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from dbn_backfill.artifacts import Checkpoint, ChunkStatus
from dbn_backfill.layout import checkpoint_files

#: Environment variable: seconds between two progress lines when the console is not a
#: terminal (default 10; tests set it small).
EVERY_ENV = "DBN_BACKFILL_PROGRESS_EVERY"

#: Seconds between two progress lines in a log or a pipe (:data:`EVERY_ENV`).
EVERY = 10.0

#: A log record of one of our job scripts (dbn_backfill/runtime/step.py's format).
RECORD = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) "
    r"(?P<name>dbn_backfill[\w.]*): (?P<message>.*)$"
)
#: Snakemake's "N of M steps (X%) done".
STEPS = re.compile(r"^(?P<done>\d+) of (?P<total>\d+) steps \(\d+%\) done$")
#: The run's start line (common.smk onstart): the chunks per root.
START_LINE = re.compile(r"^dbn-backfill run \S+: \S+ .*?(?P<chunks>\d+) chunks of ")
#: Where the lines that follow a job's log record (its traceback) end.
BOUNDARY = re.compile(
    r"^(?:$|\[\w{3} |=+$|RuleException|Error in rule|Shutting down|Exiting|Finished job"
    r"|Select jobs|\d+ of \d+ steps|dbn-backfill |Complete log)"
)
CHUNK_ID = re.compile(r"\bchunk_(\d{8})_(\d{8})\b")
SUMMARY_HEAD = "dbn-backfill summary ("

#: Lines of Snakemake's own output (banner, job blocks, job stats, its error reports).
CHATTER = re.compile(
    r"""^(?:
    Using\ workflow\ specific\ profile | Assuming\ unrestricted | SNAKEMAKE$ | =+$
    | \s{2}(?:Date|Workflow\ ID|Platform|Host|User|Snakemake\ version|Python\ version
        |Command|Snakefile|Base\ directory|Run\ directory|Working\ directory
        |Config\ file\(s\)|Config\ MD5):
    | host: | Building\ DAG | Using\ shell | Provided\ (?:cores|resources) | Rules\ claiming
    | Conda\ environments | Singularity | Job\ stats: | job\s+count$ | -+\s+-+$
    | [\w.]+\s+\d+$ | Select\ jobs | Execute\ \d+\ jobs | \[\w{3}\ \w{3}\s+\d+\ [\d:]+\ \d{4}\]$
    | (?:local)?(?:rule|checkpoint)\ \w+:$ | \s{4,}\S | Finished\ job | \d+\ of\ \d+\ steps
    | Complete\ log | Elapsed\ time | Nothing\ to\ be\ done | Shutting\ down | Exiting\ because
    | Removing\ output\ files | Will\ exit\ after | Terminating\ processes | Cancelling
    | WorkflowError(?::|\ in\ file) | RuleException | CalledProcessError | Command\ '
    | Error\ in\ rule | Logfile\ | At\ least\ one\ job | \s+File\ " | Traceback
    | Waiting\ at\ most | MissingOutputException | IncompleteFilesException
    | Incomplete\ files | Job\ \d+\  | Touching\ output | Updating\ job | Trying\ to\ restart
    | KeyboardInterrupt | Keyboard\ interrupt | Will\ not\ | Removing\ temporary
    | Reason: | Retrieving | Storing | Nothing\ to\ be\ done | Building\ DAG
    )""",
    re.X,
)


#: The loggers of a chunk's failure (the build, the merge): the summary names each
#: failed chunk with its error and the next command, so these are not shown live.
CHUNK_LOGGERS = ("dbn_backfill.chunks.build", "dbn_backfill.store.merge")
#: A job's closing error that lists failed chunks, or a chunk the merge rolled back.
CHUNK_FAILURE = re.compile(r"ChunksFailed: |\bchunk_\d{8}_\d{8} rolled back: ")


def chunk_failure(logger: str, message: str) -> bool:
    """Whether the error record (``logger``, ``message``) is a chunk's failure, which
    the run summary reports (with the next command) from the chunk's checkpoint."""
    return logger in CHUNK_LOGGERS or bool(CHUNK_FAILURE.search(message))


def every_from_env() -> float:
    """The seconds between two progress lines: :data:`EVERY_ENV`, else :data:`EVERY`.

    Raises:
        ValueError: the variable is set but not a positive number (names it).
    """
    raw = os.environ.get(EVERY_ENV)
    if raw is None or not raw.strip():
        return EVERY
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ValueError(f"{EVERY_ENV}={raw!r} must be a positive number of seconds")
    return value


def duration(seconds: float) -> str:
    """``seconds`` as ``12s`` or ``3m05s`` or ``2h04m``."""
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@dataclass
class Tally:
    """What the checkpoints say at one moment: chunks ``done`` (of the run's span, by
    any run), chunks and rows committed by this run."""

    done: int = 0
    committed: int = 0
    rows: int = 0


@dataclass
class CheckpointWatch:
    """Counts the ``done`` checkpoints of the run's roots in [start, end], re-reading
    only the files that changed since the last look.

    Attributes:
        folders: the checkpoint folder of each root.
        run_id: this run's id (a checkpoint naming it was committed by this run).
        start, end: the run's span (a chunk counts when it lies inside it).
    """

    folders: Sequence[Path]
    run_id: str
    start: dt.date
    end: dt.date
    _seen: dict[Path, tuple[int, tuple[bool, bool, int]]] = field(default_factory=dict)

    def _in_span(self, path: Path) -> bool:
        match = CHUNK_ID.search(path.name)
        if match is None:
            return False
        first = dt.datetime.strptime(match.group(1), "%Y%m%d").date()
        last = dt.datetime.strptime(match.group(2), "%Y%m%d").date()
        return self.start <= first and last <= self.end

    def _state(self, path: Path) -> tuple[bool, bool, int]:
        """(done, committed by this run, rows) of one checkpoint file."""
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return (False, False, 0)
        cached = self._seen.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            checkpoint = Checkpoint.from_json(dict(json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            return (False, False, 0)  # another tool's file, or half-read: not done
        done = checkpoint.status == ChunkStatus.DONE
        ours = done and checkpoint.run_id == self.run_id
        state = (done, ours, int(checkpoint.rows_written or 0) if ours else 0)
        self._seen[path] = (mtime, state)
        return state

    def poll(self) -> Tally:
        """The counts now (unreadable files count as not done)."""
        tally = Tally()
        for folder in self.folders:
            for path in checkpoint_files(folder):
                if not self._in_span(path):
                    continue
                done, ours, rows = self._state(path)
                tally.done += done
                tally.committed += ours
                tally.rows += rows
        return tally


class Bar:
    """A live progress bar on a terminal (``rich``), lines printed above it."""

    def __init__(self, out: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console(file=out, highlight=False)
        self.progress = Progress(
            TextColumn("chunks done"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.fields[extra]}"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.task = self.progress.add_task("backfill", total=None, extra="")
        self.progress.start()

    def show(self, done: int, total: int | None, extra: str) -> None:
        self.progress.update(self.task, completed=done, total=total, extra=extra)

    def print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        self.progress.stop()


class RunConsole:
    """Decides, line by line of Snakemake's output, what the person sees.

    Args:
        out: the console (stderr).
        log: the run's log file (every line goes there).
        watch: the checkpoint counter (None: progress from Snakemake's steps only).
        roots: how many roots the run has (the start line gives chunks per root).
        live: draw a live bar (a terminal) instead of a line every ``every`` seconds.
        every: seconds between two progress lines (not live).
        verbose: show every line as Snakemake prints it (and still log it).
    """

    def __init__(
        self,
        out: TextIO,
        log: TextIO,
        watch: CheckpointWatch | None,
        roots: int,
        live: bool = False,
        every: float = EVERY,
        verbose: bool = False,
    ) -> None:
        self.out, self.log, self.watch, self.roots = out, log, watch, roots
        self.every, self.verbose = every, verbose
        self.started = time.monotonic()
        self.last_line = self.started
        self.lock = threading.Lock()
        self.shown: set[str] = set()
        self.held: list[str] = []  # chunk errors: the summary names them
        self.warnings: list[str] = []  # chunk warnings: counted at the end
        self.in_record = False  # the lines after a job's log record (its traceback)
        self.in_summary = False
        self.summary_seen = False
        self.muted = False  # after a signal: nothing more but the closing line
        self.planned: int | None = None
        self.steps: tuple[int, int] | None = None
        self.first_commit: tuple[float, int] | None = None  # when and how many first seen
        self.tally = Tally()
        self.cut = False  # the console's reader went away
        self.bar = Bar(out) if live and not verbose else None

    # --- output ------------------------------------------------------------------
    def say(self, text: str) -> None:
        """Print ``text`` on the console (above the bar when there is one)."""
        if self.cut:
            return
        try:
            if self.bar is not None:
                self.bar.print(text)
            else:
                print(text, file=self.out, flush=True)
        except (BrokenPipeError, ValueError, OSError):
            self.cut = True

    def once(self, text: str) -> None:
        """Print ``text`` unless the same text was printed already."""
        if text not in self.shown:
            self.shown.add(text)
            self.say(text)

    # --- input -------------------------------------------------------------------
    def feed(self, line: str) -> None:
        """One line of Snakemake's output (without its newline)."""
        with self.lock:
            self.log.write(line + "\n")
            self.log.flush()
            if self.verbose:
                self.say(line)
                return
            self._classify(line)
        self.tick()

    def _classify(self, line: str) -> None:
        record = RECORD.match(line)
        if record is not None:
            self.in_record, self.in_summary = True, False
            self._record(record.group("level"), record.group("name"), record.group("message"))
            return
        steps = STEPS.match(line)
        if steps is not None:
            self.steps = (int(steps.group("done")), int(steps.group("total")))
        if line.startswith(SUMMARY_HEAD):
            self.in_record, self.in_summary, self.summary_seen = False, True, True
            if not self.muted:
                self._stop_bar()
                self.say(line)
            return
        if self.in_summary and line.startswith("  "):
            if not self.muted:
                self.say(line)
            return
        self.in_summary = False
        if self.in_record and not BOUNDARY.match(line):
            return  # a traceback's or a multi-line message's rest: the log has it
        self.in_record = False
        if not line.strip() or CHATTER.match(line) or self.muted:
            return
        start = START_LINE.match(line)
        if start is not None:
            self.planned = int(start.group("chunks")) * self.roots
        self.once(line)

    def _record(self, level: str, name: str, message: str) -> None:
        if level not in ("WARNING", "ERROR", "CRITICAL") or self.muted:
            return
        text = f"{'warning' if level == 'WARNING' else 'error'}: {message}"
        if level == "WARNING" and name in CHUNK_LOGGERS:
            self.warnings.append(text)  # a chunk's detail (often another's failure)
            return
        if level != "WARNING" and chunk_failure(name, message):
            if text not in self.held:
                self.held.append(text)
            return
        self.once(text)

    # --- progress ----------------------------------------------------------------
    def progress_text(self) -> str:
        """One progress line: chunks committed of planned, rows, rate, ETA, steps."""
        t = self.tally
        elapsed = time.monotonic() - self.started
        parts = []
        if self.planned:
            parts.append(f"{min(t.done, self.planned):,} of {self.planned:,} chunks done")
        parts.append(f"{t.committed:,} committed by this run ({t.rows:,} rows)")
        rate = self.rate()
        if rate:
            parts.append(f"{rate * 60:,.1f} chunks/min")
            if self.planned and t.done < self.planned:
                parts.append(f"about {duration((self.planned - t.done) / rate)} left")
        if self.steps is not None:
            parts.append(f"step {self.steps[0]} of {self.steps[1]}")
        return "progress: " + ", ".join(parts) + f", {duration(elapsed)} elapsed"

    def rate(self) -> float | None:
        """Chunks committed per second since the first commit was seen (None before
        two looks at the checkpoints saw commits)."""
        now, committed = time.monotonic(), self.tally.committed
        if self.first_commit is None:
            if committed:
                self.first_commit = (now, committed)
            return None
        since, at_first = self.first_commit
        if now - since < 1 or committed <= at_first:
            return None
        return (committed - at_first) / (now - since)

    def tick(self) -> None:
        """Refresh the bar, or print a progress line when :attr:`every` seconds passed
        since the last one (called on every line and by a timer)."""
        with self.lock:
            if self.muted or self.summary_seen:
                return
            now = time.monotonic()
            if self.bar is None and now - self.last_line < self.every:
                return
            if self.watch is not None:
                self.tally = self.watch.poll()
            if self.bar is not None:
                t = self.tally
                extra = f"{t.rows:,} rows"
                self.bar.show(t.done, self.planned, extra)
                return
            if self.planned is None and self.steps is None:
                return  # nothing is known yet: still planning
            self.last_line = now
            self.say(self.progress_text())

    def _stop_bar(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    # --- the end -----------------------------------------------------------------
    def mute(self) -> None:
        """A signal came: from now on only the closing line is printed."""
        with self.lock:
            self.muted = True
            self._stop_bar()

    def committed(self) -> Tally:
        """The checkpoints' counts now."""
        with self.lock:
            if self.watch is not None:
                self.tally = self.watch.poll()
            return self.tally

    def finish(self, code: int, log_path: Path, rerun: str) -> None:
        """After Snakemake exited with ``code``: on success, the count of the chunks'
        warnings; on failure, the errors held back when no summary showed them, and
        the next command."""
        with self.lock:
            self._stop_bar()
            if self.muted or self.verbose:
                return
            if code == 0 and self.warnings:
                first = self.warnings[0]
                first = first if len(first) <= 200 else first[:197] + "..."
                self.say(
                    f"{len(self.warnings)} warnings of chunks in the run log; the first: {first}"
                )
            if code == 0:
                return
            if self.summary_seen:
                return  # it named the failed chunks, the next command and the log
            for text in self.held[:3]:
                self.once(text)
            if "--retry-failed" in " ".join(self.shown) and "--retry-failed" not in rerun:
                rerun += " --retry-failed"
            self.say(f"next: fix what the error says, then rerun: {rerun}")
            self.say(f"Snakemake's output and every job's log lines: {log_path}")

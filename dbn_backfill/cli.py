"""``dbn-backfill``: the ruleset's command line, mapped onto the Snakemake workflow.

    dbn-backfill --db PATH --dbn PATH --symbol MGC --start YYYY-MM-DD --end YYYY-MM-DD \\
                 --workers N --chunk-days K --checkpoint DIR [--retry-failed] [--dry-run] \\
                 [--profile DIR] [--expected-gaps D1,D2] [--workdir DIR] [--verbose]
                 [--fetch] [--databento-gateway URL] [--fetch-max-cost USD]
    dbn-backfill --configfile backfill.yaml [any flag above, overriding the file]
    dbn-backfill synth --out DIR --start ... --end ... --seed N [--layout ...]
    dbn-backfill show --db PATH [--symbol MGC]
    dbn-backfill report --db PATH --out report.html [--checkpoint DIR] [--workdir DIR]
                        [--symbol MGC]
    dbn-backfill status --db PATH --checkpoint DIR [--symbol MGC] [--workdir DIR] [--json]
    dbn-backfill rolls --db PATH [--symbol MGC] [--format table|csv|parquet|json] [--out FILE]

The backfill command runs ``snakemake --cores N --config ...`` on the project's
Snakefile, so a CLI run and a plain Snakemake run are the same run. Snakemake's own
output goes to the run's log file (``<workdir>/logs/runs/<run_id>.log``); the console
shows the start, progress, each error once and the summary
(:mod:`dbn_backfill.views.console`); ``--verbose`` shows Snakemake's output as well.
SIGTERM and SIGINT (Ctrl-C) do not kill Snakemake under the running jobs: the command
passes them on, waits for the run to stop (the merge rolls back its chunk in flight)
and prints one line: what was committed and the command that resumes.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import io
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO, cast

from dbn_backfill.config import (
    PATH_KEYS,
    from_mapping,
    load_config_file,
    make_db_folder,
    parse_gaps,
    parse_symbols,
    required_keys,
    schema_defaults,
)
from dbn_backfill.errors import ConfigError
from dbn_backfill.layout import Layout, default_workdir
from dbn_backfill.paths import profiles_dir, snakefile, workflow_dir
from dbn_backfill.planning.plan import default_run_id
from dbn_backfill.views.console import CheckpointWatch, RunConsole, every_from_env


def resolve_profile(value: str) -> Path:
    """A profile directory given by path, or by the name of a shipped profile (``slurm``).

    Raises:
        ConfigError: neither a directory nor a shipped profile.
    """
    path = Path(value).expanduser()
    if path.is_dir():
        return path.resolve()
    shipped = profiles_dir() / value
    if "/" not in value and shipped.is_dir():
        return shipped
    names = sorted(p.name for p in profiles_dir().iterdir() if p.is_dir())
    raise ConfigError(
        f"--profile {value!r} is neither a directory nor a shipped profile ({', '.join(names)})"
    )


def backfill_parser() -> argparse.ArgumentParser:
    """The parser of the backfill command (every flag of the ruleset)."""
    p = argparse.ArgumentParser(
        prog="dbn-backfill",
        description="Backfill Databento DBN ohlcv-1m files into DuckDB bars_1m "
        "(subcommands: synth, show, report, status, rolls).",
    )
    p.add_argument(
        "--configfile",
        help="YAML file of config keys (those of Snakemake's config, config/README.md; "
        "relative paths against the file's folder); flags override its keys",
    )
    # required unless --configfile gives them (checked in config_from_args)
    req = p.add_argument_group("required (unless --configfile holds them)")
    req.add_argument("--db", help="DuckDB file")
    req.add_argument("--dbn", help="DBN file or folder")
    req.add_argument("--symbol", help="CME root, or several: MGC or MGC,GC (a universe)")
    req.add_argument("--start", help="first trade date YYYY-MM-DD (inclusive)")
    req.add_argument("--end", help="last trade date YYYY-MM-DD (inclusive)")
    req.add_argument(
        "--workers",
        type=int,
        help="parallel worker processes (with --configfile: default the profile's cores)",
    )
    req.add_argument("--chunk-days", type=int, help="trading days per chunk")
    req.add_argument("--checkpoint", help="checkpoint directory")
    p.add_argument("--retry-failed", action="store_true", help="retry chunks marked failed")
    p.add_argument("--dry-run", action="store_true", help="print the plan, read no bar")
    p.add_argument(
        "--profile", help="Snakemake profile: a directory, or a shipped one by name (slurm)"
    )
    p.add_argument(
        "--expected-gaps",
        default=None,
        help="business days without bars: D1,D2 (every root) or ROOT:D (one root)",
    )
    default = schema_defaults()  # the one place of defaults: the workflow's config schema
    p.add_argument(
        "--spot-check-days",
        type=int,
        default=None,
        help=f"gate spot-check days (default {default['spot_check_days']})",
    )
    p.add_argument(
        "--chunks-per-job",
        type=int,
        default=None,
        help=f"chunks per build job (default {default['chunks_per_job']})",
    )
    p.add_argument(
        "--dataset", default=None, help=f"expected dataset (default {default['dataset']})"
    )
    p.add_argument(
        "--roll-rule",
        default=None,
        choices=["same_day_volume", "prior_day_volume"],
        help=f"front contract rule, contract section 5a (default {default['roll_rule']})",
    )
    fetch = p.add_argument_group("fetching from Databento (README: Fetching from Databento)")
    fetch.add_argument("--fetch", action="store_true", help="download missing days first")
    fetch.add_argument(
        "--databento-gateway",
        default=None,
        help=f"API base URL (default {default['databento_gateway']})",
    )
    fetch.add_argument(
        "--fetch-max-cost",
        type=float,
        default=None,
        help=f"USD limit (default {default['fetch_max_cost']})",
    )
    fetch.add_argument(
        "--fetch-retries",
        type=int,
        default=None,
        help=f"retries per request (default {default['fetch_retries']})",
    )
    fetch.add_argument(
        "--fetch-backoff",
        type=float,
        default=None,
        help=f"first retry wait in seconds (default {default['fetch_backoff']})",
    )
    p.add_argument(
        "--workdir",
        default=None,
        help="where intermediates, logs and Snakemake state live (default: <db>.work/ "
        "beside the database)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show Snakemake's own output (every job) on the console too; without it, "
        "it goes to the run's log file only",
    )
    return p


def config_from_args(args: argparse.Namespace) -> dict[str, str]:
    """The Snakemake ``--config`` entries of the CLI flags over the ``--configfile``
    keys (paths made absolute; keys left out take the schema's defaults in the
    workflow).

    Raises:
        ConfigError: a required setting is in neither the flags nor the file, or is
            empty; the file is unreadable or breaks the schema.
    """
    file = load_config_file(args.configfile) if args.configfile else {}
    flags = {
        "dbn": args.dbn,
        "db": args.db,
        "symbol": args.symbol,
        "start": args.start,
        "end": args.end,
        "chunk_days": args.chunk_days,
        "checkpoint": args.checkpoint,
        "retry_failed": True if args.retry_failed else None,
        "expected_gaps": args.expected_gaps,
        "spot_check_days": args.spot_check_days,
        "chunks_per_job": args.chunks_per_job,
        "dataset": args.dataset,
        "roll_rule": args.roll_rule,
        "fetch": True if args.fetch else None,
        "databento_gateway": args.databento_gateway,
        "fetch_max_cost": args.fetch_max_cost,
        "fetch_retries": args.fetch_retries,
        "fetch_backoff": args.fetch_backoff,
    }
    for key in PATH_KEYS:  # a flag's path: against the working directory
        if flags[key] is not None and str(flags[key]).strip():
            flags[key] = str(Path(str(flags[key])).expanduser().resolve())
    merged = {**file, **{k: v for k, v in flags.items() if v is not None}}
    missing = [k for k in required_keys() if merged.get(k) is None]
    if missing:
        where = f" nor in {args.configfile}" if args.configfile else ""
        raise ConfigError(
            "missing required settings: "
            + ", ".join(f"{k} (--{k.replace('_', '-')})" for k in missing)
            + f": not given as flags{where}"
        )
    for key in ("db", "dbn", "checkpoint", "symbol"):
        if not str(merged[key]).strip():
            raise ConfigError(f"--{key} is empty")
    common, per_root = parse_gaps(merged.get("expected_gaps"))
    merged["expected_gaps"] = [str(d) for d in common] + [f"{r}:{d}" for r, d in per_root]
    merged["symbol"] = list(parse_symbols(merged["symbol"]))
    merged.setdefault("retry_failed", False)
    return {key: config_value(value) for key, value in merged.items()}


def config_value(value: object) -> str:
    """A setting as a ``--config key=value`` value Snakemake reads back as it was."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ",".join(f'"{v}"' for v in value) + "]"
    return str(value)


def snakemake_command(args: argparse.Namespace) -> list[str]:
    """The ``snakemake`` invocation equivalent to ``args``.

    The settings are checked here by the same code the workflow runs at parse time
    (:func:`dbn_backfill.config.from_mapping`), so a bad one stops before Snakemake
    starts, with the same message.

    Raises:
        ConfigError: an empty flag, a malformed date, a start after end, a
            non-positive number.
    """
    config = config_from_args(args)
    from_mapping(config)
    if args.workers is None and not args.configfile:
        raise ConfigError("missing required settings: workers (--workers)")
    if args.workers is not None and args.workers <= 0:
        raise ConfigError(f"--workers {args.workers} must be a positive integer")
    cmd = [
        sys.executable,
        "-m",
        # Snakemake's command line, importing executor plugins only for a profile
        "dbn_backfill.runtime.launch",
        "--snakefile",
        str(snakefile()),
        "--directory",
        str(workdir_of(args, config["db"])),
    ]
    if args.workers is not None:
        cmd += ["--cores", str(args.workers)]
    if args.profile:
        cmd += ["--profile", str(resolve_profile(args.profile))]
    if args.dry_run:
        cmd.append("--dry-run")
    cmd += ["--config", *(f"{k}={v}" for k, v in config.items())]
    return cmd


def workdir_of(args: argparse.Namespace, db: str) -> Path:
    """``--workdir``, else ``<db>.work/`` beside the database (``db``: the effective one)."""
    return Path(args.workdir).expanduser().resolve() if args.workdir else default_workdir(db)


def run_backfill(argv: Sequence[str]) -> int:
    """``dbn-backfill [flags]``: run the workflow; returns the exit status (2: bad flags)."""
    args = backfill_parser().parse_args(argv)
    try:
        cmd = snakemake_command(args)
    except ConfigError as exc:
        print(f"dbn-backfill: error: {exc}", file=sys.stderr)
        return 2
    at = cmd.index("--directory") + 1
    workdir = Path(cmd[at])
    if args.dry_run:
        # a dry run writes nothing: a work directory not yet there is not created
        # (Snakemake would); an empty scratch folder stands in for it
        if workdir.is_dir():
            return run_interruptible(announce(cmd))
        with tempfile.TemporaryDirectory(prefix="dbn-backfill-dry-run-") as scratch:
            cmd[at] = scratch
            return run_interruptible(announce(cmd))
    if "run_id" not in config_of(cmd):  # the run log and the progress need it now
        cmd.append(f"run_id={default_run_id()}")
    try:
        created = make_db_folder(Path(config_of(cmd)["db"]))
        if created:
            print(created, file=sys.stderr)
        workdir.mkdir(parents=True, exist_ok=True)
    except (ConfigError, OSError) as exc:
        print(
            f"dbn-backfill: error: work directory {workdir} cannot be created: {exc}"
            if isinstance(exc, OSError)
            else f"dbn-backfill: error: {exc}",
            file=sys.stderr,
        )
        return 2
    if args.verbose:
        announce(cmd)
    return run_with_console(cmd, workdir, "dbn-backfill " + shlex.join(argv), args.verbose)


def announce(cmd: list[str]) -> list[str]:
    print("dbn-backfill: " + " ".join(cmd), file=sys.stderr)
    return cmd


def config_of(cmd: list[str]) -> dict[str, str]:
    """The ``--config`` entries of a Snakemake command line."""
    entries = cmd[cmd.index("--config") + 1 :]
    return dict(entry.split("=", 1) for entry in entries)


def run_with_console(cmd: list[str], workdir: Path, rerun: str, verbose: bool) -> int:
    """Run ``cmd`` (Snakemake, not a dry run) with its whole output sent to the run's
    log file and a short console (:class:`dbn_backfill.views.console.RunConsole`):
    a live bar on a terminal, a progress line every few seconds otherwise, each error
    once, the summary. ``rerun`` is the command that resumes. Returns the exit status
    (``128 + signal`` when interrupted: then one line says what was committed).
    """
    config = config_of(cmd)
    layout = Layout(workdir, Path(config["checkpoint"]))
    log_path = layout.run_log(config["run_id"])
    try:
        every = every_from_env()
    except ValueError as exc:
        print(f"dbn-backfill: error: {exc}", file=sys.stderr)
        return 2
    roots = [str(r) for r in json.loads(config["symbol"])]
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log: TextIO = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    except OSError:
        # an unwritable work directory: the run's own check says so, clearly; until
        # then Snakemake's output goes to a temporary file
        fd, name = tempfile.mkstemp(prefix=f"dbn-backfill-{config['run_id']}-", suffix=".log")
        log = open(fd, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
        log_path = Path(name)
    watch = CheckpointWatch(
        [layout.checkpoint_dir(r) for r in roots],
        config["run_id"],
        dt.date.fromisoformat(config["start"]),
        dt.date.fromisoformat(config["end"]),
    )
    live = sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
    console = RunConsole(sys.stderr, log, watch, len(roots), live, every, verbose)
    with log:
        child = subprocess.Popen(
            cmd, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        stream = cast(io.BufferedReader, child.stdout)
        done = threading.Event()

        def read() -> None:
            for raw in iter(stream.readline, b""):
                console.feed(raw.decode("utf-8", "replace").rstrip("\r\n"))

        def tick() -> None:
            while not done.wait(0.5):
                console.tick()

        reader = threading.Thread(target=read, daemon=True)
        ticker = threading.Thread(target=tick, daemon=True)
        reader.start()
        ticker.start()
        code, received = wait_passing_signals(child, console.mute)
        reader.join(timeout=10)
        done.set()
        ticker.join(timeout=5)
        if not received:
            console.finish(code, log_path, rerun)
            return code
    name = signal.Signals(received[0]).name
    tally = console.committed()
    planned = f" of {console.planned:,}" if console.planned else ""
    print(
        f"dbn-backfill: interrupted by {name}: {tally.committed:,} chunks committed by this "
        f"run ({tally.rows:,} rows; {tally.done:,}{planned} chunks done), any chunk in flight "
        f"rolled back; resume with: {rerun}",
        file=sys.stderr,
    )
    return 128 + received[0]


def wait_passing_signals(
    child: subprocess.Popen[bytes], on_signal: Callable[[], None] = lambda: None
) -> tuple[int, list[int]]:
    """Wait for ``child`` (Snakemake); SIGINT and SIGTERM meanwhile are passed on to it
    as SIGTERM (``on_signal`` is called first). Returns its exit status and the
    signals received."""
    received: list[int] = []

    def pass_on(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        on_signal()
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, pass_on) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code, received


def run_interruptible(cmd: list[str]) -> int:
    """Run ``cmd`` (Snakemake) and return its exit status.

    SIGINT and SIGTERM do not end this process at once (``subprocess.call`` would
    SIGKILL Snakemake under its jobs): each is passed on to Snakemake as SIGTERM,
    which lets its running jobs finish or stop by themselves (a signal to the whole
    process group, as Ctrl-C sends, reaches them too: the merge then rolls back its
    chunk in flight); this process waits, then says the run was interrupted and
    returns ``128 + signal``.
    """
    # in a pipe, Snakemake's output goes through this process (relay_output)
    relay = not sys.stdout.isatty()
    child = subprocess.Popen(cmd, env=os.environ.copy(), stdout=subprocess.PIPE if relay else None)
    cut = threading.Event()
    relayer = None
    if child.stdout is not None:
        stream = cast(io.BufferedReader, child.stdout)
        relayer = threading.Thread(target=relay_output, args=(stream, cut), daemon=True)
        relayer.start()
    code, received = wait_passing_signals(child)
    if relayer is not None:
        relayer.join(timeout=10)
    if not received:
        return code
    name = signal.Signals(received[0]).name
    print(
        f"dbn-backfill: interrupted by {name}; committed chunks stay committed and any "
        "chunk in flight rolled back; rerun the same command to resume",
        file=sys.stderr,
    )
    return 128 + received[0]


#: The exit status of a view whose reader went away: 128 + SIGPIPE, what the shell
#: reports for a program a closed pipe ended (``yes | head -1``).
BROKEN_PIPE_STATUS = 128 + signal.SIGPIPE


def quiet_in_a_pipe(command: Callable[..., int]) -> Callable[..., int]:
    """``command`` ends quietly when its reader goes away (``dbn-backfill show | head
    -1``): no traceback, exit status 141. stdout is then pointed at /dev/null, so the
    interpreter's last flush at exit cannot fail again."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            code = command(*args, **kwargs)
            sys.stdout.flush()
            return code
        except BrokenPipeError:
            _stdout_to_devnull()
            return BROKEN_PIPE_STATUS

    return wrapper


def _stdout_to_devnull() -> None:
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def relay_output(source: io.BufferedReader, cut: threading.Event) -> None:
    """Copy Snakemake's stdout to ours until it ends. When our reader goes away the
    rest is read and dropped (``cut`` set): the run goes on, never stopped by a closed
    pipe mid-merge, and Snakemake never meets the broken pipe itself."""
    out = sys.stdout.buffer
    for chunk in iter(lambda: source.read1(65536), b""):
        if cut.is_set():
            continue
        try:
            out.write(chunk)
            out.flush()
        except (BrokenPipeError, ValueError):
            cut.set()
            _stdout_to_devnull()


def run_synth(argv: Sequence[str]) -> int:
    """``dbn-backfill synth``: write sample DBN files; returns the exit status."""
    from dbn_backfill.sampledata import synth

    parser = argparse.ArgumentParser(
        prog="dbn-backfill synth", description="Write realistic sample DBN ohlcv-1m files."
    )
    synth.add_arguments(parser)
    return synth.run(parser.parse_args(argv))


def run_show(argv: Sequence[str]) -> int:
    """``dbn-backfill show``: print what the database holds; returns the exit status."""
    from dbn_backfill.views.show import show

    parser = argparse.ArgumentParser(prog="dbn-backfill show", description="Summarize bars_1m.")
    parser.add_argument("--db", required=True)
    parser.add_argument("--symbol", default=None)
    parser.add_argument("--rows", type=int, default=5)
    args = parser.parse_args(argv)
    show(Path(args.db), args.symbol, args.rows)
    return 0


def run_paths(argv: Sequence[str]) -> int:
    """``dbn-backfill paths``: print where the shipped workflow is; returns 0."""
    parser = argparse.ArgumentParser(
        prog="dbn-backfill paths", description="Where the shipped workflow files are."
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--snakefile", action="store_true", help="print the Snakefile only")
    which.add_argument("--profiles", action="store_true", help="print the profiles folder only")
    args = parser.parse_args(argv)
    if args.snakefile:
        print(snakefile())
    elif args.profiles:
        print(profiles_dir())
    else:
        print(f"workflow  {workflow_dir()}\nsnakefile {snakefile()}\nprofiles  {profiles_dir()}")
    return 0


def run_report(argv: Sequence[str]) -> int:
    """``dbn-backfill report``: write the HTML report; returns the exit status."""
    from dbn_backfill.views import report

    parser = argparse.ArgumentParser(
        prog="dbn-backfill report",
        description="Write a self-contained HTML report of a backfill (charts embedded).",
    )
    report.add_arguments(parser)
    return report.run(parser.parse_args(argv))


def run_status(argv: Sequence[str]) -> int:
    """``dbn-backfill status``: print the status; returns 0, 1 (attention) or 2 (error)."""
    from dbn_backfill.views import status

    parser = argparse.ArgumentParser(
        prog="dbn-backfill status",
        description="Show chunks, committed span and the last run, read-only; exit 1 when "
        "something needs attention.",
    )
    status.add_arguments(parser)
    return status.run(parser.parse_args(argv))


def run_rolls(argv: Sequence[str]) -> int:
    """``dbn-backfill rolls``: print or write the roll table; returns the exit status."""
    from dbn_backfill.views import rolls

    parser = argparse.ArgumentParser(
        prog="dbn-backfill rolls",
        description="One row per roll (contract section 12): symbol, trade_date, from and to "
        "contract with expiries, gap, ratio, roll_back, stale; read-only.",
    )
    rolls.add_arguments(parser)
    return rolls.run(parser.parse_args(argv))


@quiet_in_a_pipe
def main(argv: Sequence[str] | None = None) -> int:
    """The ``dbn-backfill`` entry point: dispatch on the subcommand; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "paths":
        return run_paths(argv[1:])
    if argv and argv[0] == "synth":
        return run_synth(argv[1:])
    if argv and argv[0] == "show":
        return run_show(argv[1:])
    if argv and argv[0] == "report":
        return run_report(argv[1:])
    if argv and argv[0] == "status":
        return run_status(argv[1:])
    if argv and argv[0] == "rolls":
        return run_rolls(argv[1:])
    return run_backfill(argv)


if __name__ == "__main__":
    raise SystemExit(main())

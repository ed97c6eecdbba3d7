"""Measuring one command: wall, CPU, peak RSS, and which process reached it.

Every measurement runs the command under a fresh, small wrapper process
(``python -m bench.measure RESULT.json -- CMD...``) that starts ``CMD``, waits
for it and reports ``resource.getrusage(RUSAGE_CHILDREN)``, which covers the
command *and every descendant it waited for*:

* CPU = user + system seconds of the whole process tree (Snakemake, its jobs,
  DuckDB's threads);
* peak RSS = ``ru_maxrss`` = the high-water mark of the *largest single
  process* in the tree (a maximum, not a sum).

The wrapper matters: Linux carries a parent's resident size into a child's
``ru_maxrss`` across fork/exec, so measuring straight from the benchmark process
(which holds DuckDB comparisons of millions of rows) would report its size, not
the command's. The wrapper is tiny, so its children start clean.

A light ``/proc`` sampler (stdlib only) additionally records each descendant's
``VmHWM`` so the peak can be attributed to a Snakemake rule.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Sample:
    """One measured run."""

    wall: float
    cpu: float
    maxrss_kb: int
    returncode: int
    log: Path
    started: float  # epoch seconds
    load: float  # 1-minute load average when it started
    rss_by_label: dict[str, int] = field(default_factory=dict)  # kB, sampled VmHWM
    code: str = ""  # fingerprint of the code under test (set by the caller)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def to_json(self) -> dict[str, object]:
        return {
            "wall_s": round(self.wall, 3),
            "cpu_s": round(self.cpu, 3),
            "maxrss_kb": self.maxrss_kb,
            "returncode": self.returncode,
            "log": str(self.log),
            "started": dt.datetime.fromtimestamp(self.started).isoformat(timespec="seconds"),
            "load1": round(self.load, 2),
            "sampled_peak_rss_kb_by_process": self.rss_by_label,
            "code": self.code,
        }


#: Snakemake runs a ``script:`` rule as ``python .snakemake/scripts/tmpXXXX.<script>.py``.
_JOB_SCRIPT = re.compile(r"\.snakemake/scripts/tmp[^./ ]*\.(\w+)\.py")


def _read(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


class _TreeSampler(threading.Thread):
    """Polls ``/proc`` for the descendants of ``root`` and their ``VmHWM``."""

    def __init__(self, root: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.stop = threading.Event()
        self.peak: dict[str, int] = {}

    def _label(self, pid: int) -> str:
        # not cached: between fork and exec a child still shows its parent's cmdline
        argv = _read(f"/proc/{pid}/cmdline").split("\0")
        cmd = " ".join(argv)
        match = _JOB_SCRIPT.search(cmd)
        if match:
            return f"job {match.group(1)}"
        if pid == self.root:
            return "bench wrapper"
        if " -m snakemake " in f" {cmd} ":
            return "snakemake scheduler"
        args = [a for a in argv if a]
        if args and Path(args[0]).name.startswith("python") and len(args) > 1:
            if args[1] == "-m" and len(args) > 2:
                return f"python -m {args[2]}"
            return Path(args[1]).name
        return Path(args[0]).name if args else "?"

    def scan(self) -> None:
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                stat = _read(f"/proc/{entry}/stat")
                close = stat.rfind(")")
                if close > 0:
                    fields = stat[close + 2 :].split()
                    if len(fields) > 1:
                        parents[int(entry)] = int(fields[1])
        tree = {self.root}
        changed = True
        while changed:
            changed = False
            for pid, ppid in parents.items():
                if ppid in tree and pid not in tree:
                    tree.add(pid)
                    changed = True
        for pid in tree:
            hwm = re.search(r"VmHWM:\s+(\d+)", _read(f"/proc/{pid}/status"))
            if hwm:
                label = self._label(pid)
                self.peak[label] = max(self.peak.get(label, 0), int(hwm.group(1)))

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.scan()
            except Exception:  # a process vanishing mid-scan is normal
                continue


def measure(
    cmd: Sequence[str],
    log: Path,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    sample_tree: bool = True,
) -> Sample:
    """Run ``cmd`` under the wrapper (stdout and stderr to ``log``) and measure it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    result = log.with_suffix(".rusage.json")
    result.unlink(missing_ok=True)
    load = os.getloadavg()[0]
    started = time.time()
    wrapped = [sys.executable, "-m", "bench.measure", str(result), "--", *map(str, cmd)]
    with open(log, "wb") as out:
        out.write(("$ " + " ".join(str(c) for c in cmd) + "\n").encode())
        out.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            wrapped,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
        )
        sampler = _TreeSampler(proc.pid) if sample_tree else None
        if sampler:
            sampler.start()
        rc = proc.wait()
        outer_wall = time.perf_counter() - t0
        if sampler:
            sampler.stop.set()
            sampler.join()
    try:
        usage = json.loads(result.read_text())
    except (OSError, ValueError):
        usage = {"wall": outer_wall, "cpu": 0.0, "maxrss_kb": 0, "returncode": rc or 1}
    return Sample(
        wall=float(usage["wall"]),
        cpu=float(usage["cpu"]),
        maxrss_kb=int(usage["maxrss_kb"]),
        returncode=int(usage["returncode"]),
        log=log,
        started=started,
        load=load,
        rss_by_label=dict(sorted(sampler.peak.items())) if sampler else {},
    )


def _wrapper(argv: Sequence[str]) -> int:
    """``python -m bench.measure RESULT.json -- CMD...``: run CMD, write its rusage."""
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m bench.measure RESULT.json -- CMD...", file=sys.stderr)
        return 2
    result, cmd = Path(argv[0]), list(argv[2:])
    t0 = time.perf_counter()
    try:
        rc = subprocess.call(cmd)
    except OSError as exc:
        print(f"bench.measure: cannot run {cmd[0]}: {exc}", file=sys.stderr)
        rc = 127
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    result.write_text(
        json.dumps(
            {
                "wall": wall,
                "cpu": usage.ru_utime + usage.ru_stime,
                "maxrss_kb": usage.ru_maxrss,
                "returncode": rc,
            }
        )
    )
    return rc


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log (for error reports)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- job timings

_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ dbn_backfill\.(\w+): "
    r"(start \w+|end \w+ \(([\d.]+) s\))"
)


@dataclass
class JobTiming:
    rule: str
    log: Path
    start: float  # epoch seconds (first "start" line)
    end: float  # epoch seconds ("end" line)
    seconds: float


def job_timings(workdir: Path, since: float) -> list[JobTiming]:
    """The per-rule ``start``/``end`` lines (``dbn_backfill.runtime.step``) of the job logs
    under ``workdir/logs`` written since ``since`` (epoch seconds)."""
    out: list[JobTiming] = []
    logs = workdir / "logs"
    if not logs.is_dir():
        return out
    for path in sorted(logs.rglob("*.log")):
        try:
            if path.stat().st_mtime < since:
                continue
            text = path.read_text(errors="replace")
        except OSError:
            continue
        start = end = None
        seconds = 0.0
        rule = path.parent.name if path.parent.name != workdir.name else path.stem
        for line in text.splitlines():
            m = _LINE.match(line)
            if not m:
                continue
            stamp = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if m.group(3).startswith("start"):
                start = stamp if start is None else start
                rule = m.group(3).split()[1]
            else:
                end = stamp
                seconds = float(m.group(4))
        # only jobs of this run: a log line is stamped to the millisecond, after the
        # run's command started (the previous run's last job may end just before)
        if start is not None and start >= since:
            out.append(JobTiming(rule, path, start, end if end is not None else start, seconds))
    return out


def busy_seconds(jobs: Sequence[JobTiming]) -> float:
    """Length of the union of the jobs' [start, end] intervals."""
    total = 0.0
    cur_lo = cur_hi = None
    for job in sorted(jobs, key=lambda j: j.start):
        if cur_hi is None or job.start > cur_hi:
            if cur_hi is not None and cur_lo is not None:
                total += cur_hi - cur_lo
            cur_lo, cur_hi = job.start, job.end
        else:
            cur_hi = max(cur_hi, job.end)
    if cur_hi is not None and cur_lo is not None:
        total += cur_hi - cur_lo
    return total


if __name__ == "__main__":
    raise SystemExit(_wrapper(sys.argv[1:]))

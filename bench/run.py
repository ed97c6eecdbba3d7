"""Benchmark of issue "Performance" (``make bench`` = ``python -m bench.run``).

Generates (and caches under ``bench/data/``) synthetic MGC datasets with
``dbn-backfill synth``, then measures, each as the median of ``--repeat`` runs
(wall, CPU of the whole process tree, peak RSS of the largest single process):

* ``16y``: full backfill of a 16-year single-file dataset into an empty database
  and work directory, then the same command again (no-op rerun);
* ``16y2``: the same 16-year file (it holds MGC and GC), both roots in one run
  (``--symbol MGC,GC``: one decode, a build and a merge per root and batch, one
  gates job) into an empty database and work directory, then its no-op rerun;
  compared with its own floor (one decode, both selections), with ``16y``'s
  MGC-only full run and no-op of the same sitting (issue 19);
* ``1y``: full backfill of a 1-year single-file dataset (16 y vs 1 y growth);
* ``daily``: full backfill of 1 year of daily files, a no-op rerun, then one more
  trade date's file copied in and the run repeated with ``--end`` one trade date
  later (incremental);
* per dataset two references written here (``bench/reference.py``): the minimal
  single-process ``floor`` and the ``naive`` pandas approach. Their ``bars_1m``
  must equal the workflow's row for row; a mismatch is reported loudly and makes
  the benchmark exit non-zero.

Writes ``results.md`` (and ``results.json``) into ``--out`` (default ``bench/``)
and prints it. ``--smoke`` is a tiny version (2 months of daily files, one
repetition, no 16-year data; its ``16y2`` group is one month in one file, MGC and
GC) that runs in about half a minute on an idle machine. ``--groups 16y,16y2``
runs only those groups.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from .compare import read_baseline, side_by_side
from .measure import JobTiming, Sample, busy_seconds, job_timings, measure, tail

PROJECT = Path(__file__).resolve().parent.parent
BENCH = PROJECT / "bench"
SYMBOL = "MGC"
#: the two-root group's roots: synth writes GC's outrights beside MGC's in every file
ROOTS2 = ("MGC", "GC")
SEED = 7
WORKERS = 2
CHUNK_DAYS = 5
GIB_KB = 1024 * 1024
COLUMNS = "ts_utc, symbol, source_symbol, open, high, low, close, volume"

# issue 11 ("Performance: commit while building ...")
TARGET_FLOOR_RATIO = 2.5
GOAL_FLOOR_RATIO = 2.0
TARGET_NOOP_S = 3.0
TARGET_INCR_S = 5.0
TARGET_GROWTH = 16.0
TARGET_RSS_KB = GIB_KB
# issue 19 ("Speed") and the two-root row of issue 22
TARGET_TWO_VS_FLOOR = 2.0
TARGET_TWO_VS_ONE = 1.5
TARGET_TWO_NOOP_EXTRA_S = 1.0


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DataSpec:
    """A synthetic dataset: ``dbn-backfill synth`` over UTC days ``start..end``."""

    name: str
    start: dt.date
    end: dt.date
    layout: str
    volume_scale: float = 1.0
    label: str = ""  # how the report names it (single-file groups)

    def synth_args(self, out: Path) -> list[str]:
        return [
            "synth",
            "--out",
            str(out),
            "--start",
            str(self.start),
            "--end",
            str(self.end),
            "--seed",
            str(SEED),
            "--layout",
            self.layout,
            "--volume-scale",
            str(self.volume_scale),
        ]


#: synth's volumes x 4.5: about 1.2 M records a year in one file (19.6 M over the 16
#: years), the density of a real MGC.FUT parent download
DENSITY = 4.5
SINGLE16 = DataSpec(
    "single16", dt.date(2010, 9, 13), dt.date(2026, 9, 30), "single", DENSITY, "16 y, single file"
)
FULL_DATA = {
    "16y": SINGLE16,
    "16y2": SINGLE16,  # the same file, both roots
    "1y": DataSpec(
        "single1", dt.date(2025, 9, 16), dt.date(2026, 9, 15), "single", DENSITY, "1 y, single file"
    ),
    # N+1 UTC days: the last day's file is the one the incremental scenario adds.
    # It falls mid-month, so its decode group (the UTC month) already exists: the
    # common daily case, not the cheaper first-of-month one.
    "daily": DataSpec("daily1", dt.date(2025, 9, 16), dt.date(2026, 9, 16), "daily", DENSITY),
}
SMOKE_DATA = {
    "16y2": DataSpec(
        "single_smoke",
        dt.date(2025, 9, 16),
        dt.date(2025, 10, 15),
        "single",
        1.0,
        "1 month, single file",
    ),
    "daily": DataSpec("daily_smoke", dt.date(2025, 9, 16), dt.date(2025, 11, 12), "daily"),
}
GROUPS = ("16y", "16y2", "1y", "daily")


def _source_hash() -> str:
    """Fingerprint of the generator code: cached data is regenerated when it changes."""
    digest = hashlib.sha256()
    for name in ("synth.py", "dbnwrite.py"):
        path = PROJECT / "dbn_backfill" / "sampledata" / name
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()[:16]


#: What the workflow runs: a change to any of these during the benchmark is reported.
CODE_FILES = (
    "dbn_backfill/**/*.py",
    "dbn_backfill/workflow/**/*",
    "config/config.yaml",
)


def code_fingerprint() -> str:
    """Short hash of the code under test (files of :data:`CODE_FILES`)."""
    digest = hashlib.sha256()
    for pattern in CODE_FILES:
        for path in sorted(PROJECT.glob(pattern)):
            if path.is_file():
                digest.update(str(path.relative_to(PROJECT)).encode() + b"\0")
                digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def git_head() -> str:
    """The project's commit (read-only git), plus whether tracked files differ from it."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(PROJECT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit or "unknown") + (" + uncommitted changes" if dirty else "")


def ensure_data(spec: DataSpec, data_dir: Path, cli: Path, regen: bool, log_dir: Path) -> Path:
    """The dataset's folder, generated with ``dbn-backfill synth`` unless cached."""
    path = data_dir / spec.name
    stamp = path / ".bench-stamp.json"
    want = {"args": spec.synth_args(Path(spec.name)), "generator": _source_hash()}
    if not regen and stamp.exists():
        try:
            if json.loads(stamp.read_text()) == want:
                return path
        except ValueError:
            pass
    tmp = data_dir / f".{spec.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    log = log_dir / f"synth-{spec.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    _say(f"generating {spec.name}: dbn-backfill {' '.join(spec.synth_args(path))}")
    started = time.monotonic()
    with open(log, "wb") as out:
        rc = subprocess.call(
            [str(cli), *spec.synth_args(tmp)], stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT
        )
    if rc != 0:
        raise BenchError(
            f"dbn-backfill synth failed for {spec.name} (exit {rc}); is dbn_backfill/synth.py "
            f"there and working? Log {log}:\n{tail(log)}"
        )
    (tmp / ".bench-stamp.json").write_text(json.dumps(want))
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    _say(f"generated {spec.name} in {time.monotonic() - started:.1f} s")
    return path


def dbn_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.name.endswith((".dbn", ".dbn.zst"))
    )


def business_days(first: dt.date, last: dt.date) -> list[dt.date]:
    import pandas_market_calendars as mcal

    schedule = mcal.get_calendar("CME_TradeDate").schedule(start_date=first, end_date=last)
    return [d.date() for d in schedule.index]


def complete_range(first_utc: dt.date, last_utc: dt.date) -> tuple[dt.date, dt.date]:
    """First and last trade dates whose whole session lies in UTC days ``first..last``.

    A trade date's session starts on the previous business day at 17:00 Chicago
    (22:00/23:00 UTC the same day) and ends at 16:00 Chicago on the day itself.
    """
    days = business_days(first_utc - dt.timedelta(days=10), last_utc + dt.timedelta(days=10))
    start = next(d for prev, d in zip(days, days[1:], strict=False) if prev >= first_utc)
    end = max(d for d in days if d <= last_utc)
    return start, end


# --------------------------------------------------------------------------- bench


class BenchError(RuntimeError):
    pass


@dataclass
class Scenario:
    key: str
    title: str
    data: str
    kind: str  # "workflow" | "floor" | "naive"
    floor_key: str | None = None
    note: str = ""
    rows: int | None = None
    records: int | None = None
    samples: list[Sample] = field(default_factory=list)
    jobs: list[list[JobTiming]] = field(default_factory=list)

    @property
    def ok_samples(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]

    def median_wall(self) -> float | None:
        ok = self.ok_samples
        return statistics.median(s.wall for s in ok) if ok else None

    def median_index(self) -> int | None:
        ok = [i for i, s in enumerate(self.samples) if s.ok]
        if not ok:
            return None
        ranked = sorted(ok, key=lambda i: self.samples[i].wall)
        return ranked[(len(ranked) - 1) // 2]


@dataclass
class Comparison:
    title: str
    rows: dict[str, int | None]
    only_in: dict[str, int]  # "a-b" -> rows in a and not in b
    examples: list[str]
    error: str | None = None
    by_root: dict[str, dict[str, int]] = field(default_factory=dict)  # alias -> root -> rows
    roots: tuple[str, ...] = (SYMBOL,)

    @property
    def match(self) -> bool:
        """Same rows everywhere, and every root of the run has rows."""
        return (
            self.error is None
            and all(v is not None for v in self.rows.values())
            and not any(self.only_in.values())
            and all(
                set(counts) == set(self.roots) and all(counts.values())
                for counts in self.by_root.values()
            )
        )


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out: Path = args.out
        self.runs = self.out / "runs"
        self.data_dir: Path = args.data
        self.repeat: int = args.repeat
        self.cli = _cli()
        self.python = Path(sys.executable)
        self.scenarios: dict[str, Scenario] = {}
        self.comparisons: list[Comparison] = []
        self.failures: list[str] = []
        self.datasets: dict[str, dict[str, object]] = {}
        self.started = time.time()
        self.loads: list[float] = []
        self.code_versions: dict[str, str] = {}  # fingerprint -> git commit when first seen
        self.fingerprint()
        #: issue 22's "before" column (bench/compare.py)
        self.baseline, self.baseline_name = read_baseline(getattr(args, "baseline", None))
        #: ms per chunk transaction of the merge, when measured
        self.merge_cost: dict[str, object] | None = None

    # ------------------------------------------------------------------ helpers

    def fingerprint(self) -> str:
        code = code_fingerprint()
        if code not in self.code_versions:
            self.code_versions[code] = git_head()
            if len(self.code_versions) > 1:
                _say(f"the code under test changed: now {code} ({self.code_versions[code]})")
        return code

    def scenario(self, key: str, title: str, data: str, kind: str, **kw: object) -> Scenario:
        if key not in self.scenarios:
            self.scenarios[key] = Scenario(key, title, data, kind, **kw)  # type: ignore[arg-type]
        return self.scenarios[key]

    def backfill_cmd(
        self,
        dbn: Path,
        base: Path,
        start: dt.date,
        end: dt.date,
        roots: Sequence[str] = (SYMBOL,),
    ) -> tuple[list[str], Path]:
        workdir = base / "work"
        cmd = [
            str(self.cli),
            "--db",
            str(base / "bars.duckdb"),
            "--dbn",
            str(dbn),
            "--symbol",
            ",".join(roots),
            "--start",
            str(start),
            "--end",
            str(end),
            "--workers",
            str(WORKERS),
            "--chunk-days",
            str(CHUNK_DAYS),
            "--checkpoint",
            str(base / "checkpoints"),
            "--workdir",
            str(workdir),
        ]
        return cmd, workdir

    def reference_cmd(
        self,
        kind: str,
        dbn: Path,
        db: Path,
        start: dt.date,
        end: dt.date,
        roots: Sequence[str] = (SYMBOL,),
    ) -> list[str]:
        return [
            str(self.python),
            "-m",
            "bench.reference",
            kind,
            "--dbn",
            str(dbn),
            "--db",
            str(db),
            "--symbol",
            ",".join(roots),
            "--start",
            str(start),
            "--end",
            str(end),
            "--chunk-days",
            str(CHUNK_DAYS),
        ]

    def run(self, sc: Scenario, cmd: Sequence[str], workdir: Path | None = None) -> Sample:
        index = len(sc.samples)
        log = self.runs / "logs" / f"{sc.key}-{index + 1}.log"
        before = self.fingerprint()
        sample = measure(cmd, log, cwd=PROJECT)
        after = self.fingerprint()
        sample.code = before if before == after else f"{before}->{after}"
        self.loads.append(sample.load)
        sc.samples.append(sample)
        sc.jobs.append(job_timings(workdir, sample.started) if workdir else [])
        status = "ok" if sample.ok else f"FAILED (exit {sample.returncode})"
        _say(
            f"{sc.key} #{index + 1}: {sample.wall:.2f} s wall, {sample.cpu:.2f} s CPU, "
            f"peak RSS {sample.maxrss_kb / 1024:.0f} MiB, load {sample.load:.2f}: {status}"
        )
        if not sample.ok:
            self.failures.append(
                f"{sc.title} (run {index + 1}) exited {sample.returncode}; command:\n"
                f"{' '.join(cmd)}\nlast lines of {log}:\n{tail(log, 60)}"
            )
        return sample

    def clean(self, base: Path) -> None:
        """Drop a group's databases and work dirs (GBs for 16 y) unless --keep-runs;
        the run logs (``runs/logs``) stay."""
        if not self.args.keep_runs:
            shutil.rmtree(base, ignore_errors=True)

    @staticmethod
    def wipe(base: Path) -> None:
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)

    def references(
        self,
        group: str,
        data: str,
        dbn: Path,
        start: dt.date,
        end: dt.date,
        base: Path,
        roots: Sequence[str] = (SYMBOL,),
    ) -> dict[str, Path]:
        dbs = {}
        titles = {"floor": "floor reference", "naive": "naive reference"}
        if len(roots) > 1:
            titles = {
                "floor": f"floor reference {'+'.join(roots)} (one decode, all selections)",
                "naive": f"naive reference {'+'.join(roots)} (one decode)",
            }
        for kind, title in titles.items():
            sc = self.scenario(
                f"{kind}_{group}", f"{title}, {data}", data, kind, floor_key=f"floor_{group}"
            )
            db = base / f"{kind}.duckdb"
            for _ in range(self.repeat):
                if not self.run(sc, self.reference_cmd(kind, dbn, db, start, end, roots)).ok:
                    break
            dbs[kind] = db
        return dbs

    def record_dataset(self, key: str, path: Path, start: dt.date, end: dt.date) -> None:
        files = dbn_files(path)
        self.datasets[key] = {
            "path": str(path.relative_to(PROJECT) if path.is_relative_to(PROJECT) else path),
            "files": len(files),
            "bytes": sum(f.stat().st_size for f in files),
            "trade_dates": f"{start}..{end}",
        }

    # ------------------------------------------------------------------ groups

    def group_single(
        self, group: str, spec: DataSpec, noop: bool, roots: Sequence[str] = (SYMBOL,)
    ) -> None:
        """Full backfill of a single-file dataset (and its no-op rerun) of ``roots`` in
        one run, the references on the same roots, the tables compared."""
        label = spec.label or spec.name
        path = ensure_data(spec, self.data_dir, self.cli, self.args.regen, self.runs / "logs")
        start, end = complete_range(spec.start, spec.end)
        self.record_dataset(label, path, start, end)
        base = self.runs / group
        wf = base / "workflow"
        what = f" {'+'.join(roots)} in one run" if len(roots) > 1 else ""
        full = self.scenario(
            f"full_{group}",
            f"full backfill{what}, {label}",
            label,
            "workflow",
            floor_key=f"floor_{group}",
        )
        rerun = (
            self.scenario(
                f"noop_{group}",
                f"no-op rerun{what}, {label}",
                label,
                "workflow",
                floor_key=f"floor_{group}",
                note="ratio vs. a full floor run",
            )
            if noop
            else None
        )
        for _ in range(self.repeat):
            self.wipe(wf)
            cmd, workdir = self.backfill_cmd(path, wf, start, end, roots)
            if not self.run(full, cmd, workdir).ok:
                break
            if rerun is not None and not self.run(rerun, cmd, workdir).ok:
                break
        if group == "16y" and full.ok_samples and not self.args.smoke:
            self.measure_merge_cost(wf)
        dbs = self.references(group, label, path, start, end, base, roots)
        self.compare(
            f"{label}{what}, {start}..{end}", {"workflow": wf / "bars.duckdb", **dbs}, roots
        )
        full.rows = self.comparisons[-1].rows.get("workflow")
        self.clean(base)

    def measure_merge_cost(self, wf: Path) -> None:
        """Issue 22's merge cost per chunk transaction, on the finished 16-year run
        (``bench/merge_cost.py``: its last chunks re-committed into a copy)."""
        from .merge_cost import merge_cost

        try:
            self.merge_cost = {
                **merge_cost(wf / "bars.duckdb", wf / "work", SYMBOL, chunks=100),
                "load1": os.getloadavg()[0],
            }
            self.merge_cost["ms_per_chunk"] = self.merge_cost.get("total")
            _say(f"merge cost per chunk: {self.merge_cost}")
        except Exception as exc:  # noqa: BLE001 - a figure not measured is said, not fatal
            self.failures.append(f"merge cost not measured: {type(exc).__name__}: {exc}")
            _say(f"merge cost not measured: {exc}")

    def group_daily(self, spec: DataSpec) -> None:
        path = ensure_data(spec, self.data_dir, self.cli, self.args.regen, self.runs / "logs")
        files = dbn_files(path)
        stem = spec.end.strftime("%Y%m%d")
        added = [f for f in files if stem in f.name]
        if len(added) != 1 or files[-1] != added[0]:
            raise BenchError(f"{path}: expected the last file to be the one of {spec.end}")
        new_file = added[0]
        start, end = complete_range(spec.start, spec.end - dt.timedelta(days=1))
        start2, end2 = complete_range(spec.start, spec.end)
        if start2 != start or end2 != spec.end or business_days(end, end2)[1:] != [end2]:
            raise BenchError(f"{spec.end} is not the trade date after {end}")
        n_days = len(business_days(start, end))
        label = f"{n_days} trade dates, {len(files) - 1} daily files"
        self.record_dataset(label, path, start, end2)
        base = self.runs / "daily"
        wf = base / "workflow"
        dbn = base / "dbn"
        full = self.scenario(
            "full_daily", f"full backfill, {label}", label, "workflow", floor_key="floor_daily"
        )
        noop = self.scenario(
            "noop_daily",
            f"no-op rerun, {label}",
            label,
            "workflow",
            floor_key="floor_daily",
            note="ratio vs. a full floor run",
        )
        incr = self.scenario(
            "incr_daily",
            f"+1 trade date ({end2}: 1 file added, --end extended)",
            label,
            "workflow",
            floor_key="floor_daily",
            note="ratio vs. a full floor run",
        )
        for _ in range(self.repeat):
            self.wipe(wf)
            shutil.rmtree(dbn, ignore_errors=True)
            dbn.mkdir(parents=True)
            for f in files[:-1]:
                _link(f, dbn / f.name)
            cmd, workdir = self.backfill_cmd(dbn, wf, start, end)
            if not self.run(full, cmd, workdir).ok or not self.run(noop, cmd, workdir).ok:
                break
            shutil.copy2(new_file, dbn / new_file.name)
            cmd, workdir = self.backfill_cmd(dbn, wf, start, end2)
            if not self.run(incr, cmd, workdir).ok:
                break
        dbs = self.references("daily", f"{label} + 1", dbn, start, end2, base)
        self.compare(
            f"daily files after the +1 trade date run, {start}..{end2}",
            {"workflow": wf / "bars.duckdb", **dbs},
        )
        full.rows = self.comparisons[-1].rows.get("workflow")
        self.clean(base)

    # ------------------------------------------------------------------ compare

    def compare(
        self, title: str, dbs: dict[str, Path], roots: Sequence[str] = (SYMBOL,)
    ) -> Comparison:
        import duckdb

        rows: dict[str, int | None] = {}
        by_root: dict[str, dict[str, int]] = {}
        only: dict[str, int] = {}
        examples: list[str] = []
        error = None
        con = duckdb.connect()
        try:
            present = []
            for alias, path in dbs.items():
                if not path.exists():
                    rows[alias] = None
                    continue
                con.execute(f"ATTACH '{path}' AS {alias} (READ_ONLY)")
                rows[alias] = _one(con, f"SELECT count(*) FROM {alias}.bars_1m")
                by_root[alias] = {
                    str(r): int(n)
                    for r, n in con.execute(
                        f"SELECT symbol, count(*) FROM {alias}.bars_1m GROUP BY 1 ORDER BY 1"
                    ).fetchall()
                }
                present.append(alias)
            ref = "workflow"
            for other in [a for a in present if a != ref]:
                if ref not in present:
                    break
                for a, b in ((ref, other), (other, ref)):
                    diff = (
                        f"SELECT {COLUMNS} FROM {a}.bars_1m EXCEPT ALL "
                        f"SELECT {COLUMNS} FROM {b}.bars_1m"
                    )
                    n = _one(con, f"SELECT count(*) FROM ({diff})")
                    only[f"{a} not {b}"] = n
                    if n:
                        for r in con.execute(f"{diff} ORDER BY ts_utc LIMIT 3").fetchall():
                            examples.append(f"only in {a} (vs {b}): {r}")
        except Exception as exc:  # a database that cannot be read is a mismatch too
            error = f"{type(exc).__name__}: {exc}"
        finally:
            con.close()
        result = Comparison(title, rows, only, examples, error, by_root, tuple(roots))
        self.comparisons.append(result)
        if result.match:
            _say(f"tables match: {title}: {rows} {by_root if len(roots) > 1 else ''}")
        else:
            _say(
                "!" * 78
                + f"\nTABLE MISMATCH: {title}\nrows {rows} {by_root}\ndifferences {only}\n"
                + "\n".join(examples)
                + (f"\nerror {error}" if error else "")
                + "\n"
                + "!" * 78
            )
        return result

    # ------------------------------------------------------------------ main

    def execute(self) -> int:
        specs = SMOKE_DATA if self.args.smoke else FULL_DATA
        groups = [g for g in self.args.groups if g in specs]
        self.runs.mkdir(parents=True, exist_ok=True)
        try:
            for group in groups:
                if group == "daily":
                    self.group_daily(specs["daily"])
                elif group == "16y2":
                    self.group_single(group, specs[group], noop=True, roots=ROOTS2)
                else:
                    self.group_single(group, specs[group], noop=group == "16y")
        except BenchError as exc:
            self.failures.append(str(exc))
            _say(f"error: {exc}")
        text = render(self)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "results.md").write_text(text)
        (self.out / "results.json").write_text(json.dumps(to_json(self), indent=1))
        print(text)
        ok = not self.failures and all(c.match for c in self.comparisons) and self.comparisons
        return 0 if ok else 1


# --------------------------------------------------------------------------- report


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _times(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}x"


def _row_stats(sc: Scenario) -> tuple[str, str, str, str]:
    ok = sc.ok_samples
    if not ok:
        return "FAILED", "", "", ""
    walls = [s.wall for s in ok]
    cpu = statistics.median(s.cpu for s in ok)
    rss = max(s.maxrss_kb for s in ok) / 1024
    return (
        f"{statistics.median(walls):.2f}",
        f"{min(walls):.2f}–{max(walls):.2f}",
        f"{cpu:.2f}",
        f"{rss:.0f}",
    )


def _ratio(bench: Bench, sc: Scenario) -> float | None:
    if sc.floor_key is None or sc.floor_key not in bench.scenarios:
        return None
    mine, floor = sc.median_wall(), bench.scenarios[sc.floor_key].median_wall()
    return None if mine is None or not floor else mine / floor


def targets(bench: Bench) -> list[tuple[str, str, str, str]]:
    """(target, measured, limit, status) rows."""
    out = []
    sc = bench.scenarios

    def status(value: float | None, limit: float) -> str:
        if value is None:
            return "not measured"
        return "met" if value <= limit else "**NOT met**"

    if "full_16y" in sc:
        r = _ratio(bench, sc["full_16y"])
        goal = "" if r is None else (" (goal met)" if r <= GOAL_FLOOR_RATIO else " (goal not)")
        out.append(
            (
                "full 16 y backfill vs. floor",
                f"{_fmt(r)}x",
                f"<= {TARGET_FLOOR_RATIO:g}x (goal {GOAL_FLOOR_RATIO:g}x)",
                status(r, TARGET_FLOOR_RATIO) + goal,
            )
        )
    for key in ("noop_16y", "noop_daily"):
        if key in sc:
            m = sc[key].median_wall()
            out.append(
                (
                    f"{sc[key].title} (gates included)",
                    f"{_fmt(m)} s",
                    f"<= {TARGET_NOOP_S:g} s",
                    status(m, TARGET_NOOP_S),
                )
            )
    if "incr_daily" in sc:
        m = sc["incr_daily"].median_wall()
        out.append(
            (
                sc["incr_daily"].title,
                f"{_fmt(m)} s",
                f"<= {TARGET_INCR_S:g} s",
                status(m, TARGET_INCR_S),
            )
        )
    if "full_16y" in sc and "full_1y" in sc:
        a, b = sc["full_16y"].median_wall(), sc["full_1y"].median_wall()
        g = None if a is None or not b else a / b
        extra = ""
        rows16, rows1 = sc["full_16y"].rows, sc["full_1y"].rows
        if rows16 and rows1:
            extra = f"; bars {rows16 / rows1:.1f}x"
        f16, f1 = sc.get("floor_16y"), sc.get("floor_1y")
        if f16 and f1 and f16.median_wall() and f1.median_wall():
            extra += f"; floor {f16.median_wall() / f1.median_wall():.1f}x"  # type: ignore[operator]
        out.append(
            ("16 y vs 1 y full backfill (wall)", f"{_fmt(g)}x{extra}", "<= 16x", status(g, 16))
        )
    out += two_root_targets(bench)
    wf = [s for x in sc.values() if x.kind == "workflow" for s in x.ok_samples]
    if wf:
        peak = max(s.maxrss_kb for s in wf)
        out.append(
            (
                "peak RSS of any single process (all workflow runs)",
                f"{peak / 1024:.0f} MiB",
                "<= 1024 MiB (1 GiB)",
                status(peak, TARGET_RSS_KB),
            )
        )
    return out


def two_root_figures(bench: Bench) -> dict[str, float | None] | None:
    """Issue 19's figures: the two-root run (``16y2``) against its floor and against the
    one-root run (``16y``) of the same sitting; ``None`` when ``16y2`` did not run."""
    sc = bench.scenarios
    if "full_16y2" not in sc:
        return None

    def wall(key: str) -> float | None:
        return sc[key].median_wall() if key in sc else None

    def load(key: str) -> float | None:
        ok = sc[key].ok_samples if key in sc else []
        return statistics.median(s.load for s in ok) if ok else None

    full, floor, one = wall("full_16y2"), wall("floor_16y2"), wall("full_16y")
    noop, noop_one = wall("noop_16y2"), wall("noop_16y")
    two_runs = [s for k in ("full_16y2", "noop_16y2") if k in sc for s in sc[k].ok_samples]
    return {
        "full_s": full,
        "floor_s": floor,
        "one_root_full_s": one,
        "noop_s": noop,
        "one_root_noop_s": noop_one,
        "vs_floor": full / floor if full and floor else None,
        "vs_one_root": full / one if full and one else None,
        "noop_extra_s": noop - noop_one if noop is not None and noop_one is not None else None,
        "peak_rss_mib": max(s.maxrss_kb for s in two_runs) / 1024 if two_runs else None,
        "load_full": load("full_16y2"),
        "load_floor": load("floor_16y2"),
        "load_one_root_full": load("full_16y"),
        "load_noop": load("noop_16y2"),
        "load_one_root_noop": load("noop_16y"),
    }


def two_root_targets(bench: Bench) -> list[tuple[str, str, str, str]]:
    """Issue 19 / issue 22's two-root rows."""
    f = two_root_figures(bench)
    if f is None:
        return []
    label = bench.scenarios["full_16y2"].data
    roots = " + ".join(ROOTS2)

    def status(value: float | None, limit: float) -> str:
        if value is None:
            return "not measured" + ("" if "full_16y" in bench.scenarios else " (run group 16y)")
        return "met" if value <= limit else "**NOT met**"

    vs_floor, vs_one, extra = f["vs_floor"], f["vs_one_root"], f["noop_extra_s"]
    return [
        (
            f"{label}, {roots} in one run vs. its floor (one decode, both selections)",
            f"{_times(vs_floor)} ({_fmt(f['full_s'])} s / {_fmt(f['floor_s'])} s)",
            f"<= {TARGET_TWO_VS_FLOOR:g}x",
            status(vs_floor, TARGET_TWO_VS_FLOOR),
        ),
        (
            f"{label}, {roots} in one run vs. the {SYMBOL}-only full run",
            f"{_times(vs_one)} ({_fmt(f['full_s'])} s / {_fmt(f['one_root_full_s'])} s)",
            f"<= {TARGET_TWO_VS_ONE:g}x",
            status(vs_one, TARGET_TWO_VS_ONE),
        ),
        (
            f"no-op rerun, {roots} minus {SYMBOL}-only",
            f"{'n/a' if extra is None else f'{extra:+.2f}'} s "
            f"({_fmt(f['noop_s'])} s vs {_fmt(f['one_root_noop_s'])} s)",
            f"<= +{TARGET_TWO_NOOP_EXTRA_S:g} s",
            status(extra, TARGET_TWO_NOOP_EXTRA_S),
        ),
        (
            f"peak RSS of any single process, {roots} runs",
            f"{_fmt(f['peak_rss_mib'], 0)} MiB",
            "<= 1024 MiB (1 GiB)",
            status(None if f["peak_rss_mib"] is None else f["peak_rss_mib"] * 1024, TARGET_RSS_KB),
        ),
    ]


def where_time_goes(sc: Scenario) -> list[str]:
    i = sc.median_index()
    if i is None:
        return []
    sample, jobs = sc.samples[i], sc.jobs[i]
    lines = [f"**{sc.title}** (run {i + 1}, the median: {sample.wall:.2f} s wall)", ""]
    if not jobs:
        return [*lines, "no job logs found", ""]
    first = min(j.start for j in jobs) - sample.started
    last = sample.started + sample.wall - max(j.end for j in jobs)
    busy = busy_seconds(jobs)
    gaps = sample.wall - busy - first - last
    lines += [
        "| rule | jobs | in-job s (sum) | longest job s | active from–to s | "
        "sampled peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    by_rule: dict[str, list[JobTiming]] = {}
    for j in jobs:
        by_rule.setdefault(j.rule, []).append(j)
    for rule in sorted(by_rule, key=lambda r: min(j.start for j in by_rule[r])):
        js = by_rule[rule]
        rss = sample.rss_by_label.get(f"job {rule}")
        lo = min(j.start for j in js) - sample.started
        hi = max(j.end for j in js) - sample.started
        lines.append(
            f"| {rule} | {len(js)} | {sum(j.seconds for j in js):.2f} | "
            f"{max(j.seconds for j in js):.2f} | {lo:.1f}–{hi:.1f} | "
            f"{'' if rss is None else f'{rss / 1024:.0f}'} |"
        )
    sched = sample.rss_by_label.get("snakemake scheduler")
    lines += [
        "",
        f"- before the first job body starts (CLI + Snakemake start-up, config, plan, "
        f"DAG, first job's process start-up): {first:.2f} s",
        f"- inside job bodies (union of the jobs' start..end log lines): {busy:.2f} s",
        f"- between job bodies (scheduling, job process start-up and imports, "
        f"output checks): {gaps:.2f} s",
        f"- after the last job body (Snakemake wrap-up, summary): {last:.2f} s",
    ]
    if sched:
        lines.append(f"- Snakemake scheduler process peak RSS (sampled): {sched / 1024:.0f} MiB")
    return [*lines, ""]


def machine() -> dict[str, str]:
    info = {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpus (os.cpu_count)": str(os.cpu_count()),
        "platform": platform.platform(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory"] = f"{int(line.split()[1]) / GIB_KB:.1f} GiB"
    except OSError:
        pass
    return info


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("snakemake", "duckdb", "databento", "databento-dbn", "pandas", "numpy", "pyarrow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def code_section(bench: Bench) -> list[str]:
    lines = ["## Code under test", ""]
    for code, commit in bench.code_versions.items():
        lines.append(f"- `{code}`: project commit {commit} when first seen")
    if len(bench.code_versions) > 1:
        lines += [
            "",
            f"**The workflow code changed during the benchmark** ({len(bench.code_versions)} "
            "versions; other engineers were committing). Versions per scenario "
            "(`a->b`: changed while that run was going):",
            "",
        ]
        for sc in bench.scenarios.values():
            if sc.kind == "workflow":
                lines.append(f"- {sc.title}: " + ", ".join(s.code for s in sc.samples))
    return [*lines, ""]


def render(bench: Bench) -> str:
    args = bench.args
    mode = "smoke" if args.smoke else "full"
    lines = [
        "# dbn-backfill benchmark",
        "",
        f"Mode **{mode}**, {bench.repeat} run(s) per scenario, "
        f"`--workers {WORKERS} --chunk-days {CHUNK_DAYS}`, root {SYMBOL}, synth seed {SEED}; "
        f"{dt.datetime.fromtimestamp(bench.started):%Y-%m-%d %H:%M}, "
        f"{(time.time() - bench.started) / 60:.1f} min in all. "
        "Wall and CPU are medians (CPU: user + system of the whole process tree); peak RSS "
        "is the largest single process (`ru_maxrss` of the reaped tree), the maximum over "
        "the runs. Ratio to floor: median wall / median wall of the floor reference on "
        "the same data (and roots). Load at start: the 1-minute load average when each run "
        f"started ({len(os.sched_getaffinity(0))} cores; above that, other work competed "
        "for them).",
        "",
        "| scenario | runs | median wall s | min–max s | CPU s | peak RSS MiB | ratio to floor "
        "| load at start |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for sc in bench.scenarios.values():
        wall, spread, cpu, rss = _row_stats(sc)
        r = _ratio(bench, sc)
        ratio = "" if r is None else f"{r:.2f}x"
        if sc.note and ratio:
            if sc.note not in notes:
                notes.append(sc.note)
            ratio += "*" * (notes.index(sc.note) + 1)
        runs = f"{len(sc.ok_samples)}/{len(sc.samples)}"
        loads = [s.load for s in sc.samples]
        load = f"{min(loads):.1f}" if loads else ""
        if len(set(loads)) > 1:
            load += f"–{max(loads):.1f}"
        lines.append(
            f"| {sc.title} | {runs} | {wall} | {spread} | {cpu} | {rss} | {ratio} | {load} |"
        )
    lines += [""] + [f"{'*' * (i + 1)} {n}" for i, n in enumerate(notes)]
    if notes:
        lines.append("")

    lines += ["## Targets", "", "| target | measured | limit | status |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets(bench)]
    lines += [""] + side_by_side(to_json(bench), bench.baseline, bench.baseline_name)
    lines += ["", "## Same table from all three", ""]
    for c in bench.comparisons:
        verdict = "**tables match**" if c.match else "**MISMATCH**"
        counts = ", ".join(f"{k} {v if v is not None else 'missing'}" for k, v in c.rows.items())
        lines.append(f"- {c.title}: {verdict} (rows: {counts})")
        if len(c.roots) > 1:
            for alias, per in c.by_root.items():
                parts = ", ".join(f"{r} {per.get(r, 0)}" for r in c.roots)
                lines.append(f"  - {alias} per root: {parts}")
        for k, v in c.only_in.items():
            if v:
                lines.append(f"  - {v} rows in {k}")
        lines += [f"  - `{e}`" for e in c.examples]
        if c.error:
            lines.append(f"  - error: {c.error}")
    if not bench.comparisons:
        lines.append("- no comparison ran")
    lines += [
        "",
        "Compared: `EXCEPT ALL` both ways over (ts_utc, symbol, source_symbol, open, high, "
        "low, close, volume), exact doubles; with several roots every root must have rows.",
        "",
        "## Datasets",
        "",
        "| dataset | files | MiB | trade dates |",
        "|---|---:|---:|---|",
    ]
    for name, d in bench.datasets.items():
        lines.append(
            f"| {name} (`{d['path']}`) | {d['files']} | "
            f"{int(d['bytes']) / 2**20:.1f} | {d['trade_dates']} |"  # type: ignore[call-overload]
        )
    lines += ["", "## Where the time goes", ""]
    for sc in bench.scenarios.values():
        if sc.kind == "workflow":
            lines += where_time_goes(sc)
    lines += ["## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in machine().items()]
    if bench.loads:
        lines.append(
            f"- 1-minute load average at the start of the runs: "
            f"{min(bench.loads):.2f}–{max(bench.loads):.2f} (other work on the machine "
            "inflates wall times)"
        )
    lines += ["", "## Versions", ""]
    lines += [f"- {k}: {v}" for k, v in versions().items()]
    lines += ["", *code_section(bench)]
    if bench.failures:
        lines += ["", "## FAILURES", ""]
        for f in bench.failures:
            lines += ["```", f, "```", ""]
    lines += [
        "",
        f"Run logs: `{bench.runs / 'logs'}`. Reproduce: `.venv/bin/python -m bench.run"
        + (" --smoke" if args.smoke else "")
        + f" --repeat {bench.repeat}"
        + ("" if list(args.groups) == list(GROUPS) else f" --groups {','.join(args.groups)}")
        + "`. Active from–to: seconds after the command started.",
        "",
    ]
    return "\n".join(lines)


def to_json(bench: Bench) -> dict[str, object]:
    return {
        "mode": "smoke" if bench.args.smoke else "full",
        "repeat": bench.repeat,
        "tables_match": bool(bench.comparisons) and all(c.match for c in bench.comparisons),
        "failures": bench.failures,
        "scenarios": {
            k: {
                "title": s.title,
                "kind": s.kind,
                "median_wall_s": s.median_wall(),
                "ratio_to_floor": _ratio(bench, s),
                "rows": s.rows,
                "samples": [x.to_json() for x in s.samples],
            }
            for k, s in bench.scenarios.items()
        },
        "targets": [
            dict(zip(("target", "measured", "limit", "status"), t, strict=True))
            for t in targets(bench)
        ],
        "comparisons": [
            {
                "title": c.title,
                "match": c.match,
                "rows": c.rows,
                "rows_by_root": c.by_root,
                "only_in": c.only_in,
            }
            for c in bench.comparisons
        ],
        "two_root": two_root_figures(bench),
        "datasets": bench.datasets,
        "machine": machine(),
        "versions": versions(),
        "code_versions": bench.code_versions,
        "merge_cost": bench.merge_cost,
    }


# --------------------------------------------------------------------------- CLI


def _cli() -> Path:
    for candidate in (
        PROJECT / ".venv" / "bin" / "dbn-backfill",
        Path(sys.executable).parent / "dbn-backfill",
    ):
        if candidate.exists():
            return candidate
    raise BenchError("dbn-backfill is not installed (run make setup)")


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _one(con: object, sql: str) -> int:
    row = con.execute(sql).fetchone()  # type: ignore[attr-defined]
    return int(row[0]) if row else 0


def _say(message: str) -> None:
    print(f"[bench {dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny version (< 60 s), no 16 y data")
    p.add_argument("--repeat", type=int, default=None, help="runs per scenario (3; smoke 1)")
    p.add_argument("--out", type=Path, default=None, help="results and run dirs (bench/)")
    p.add_argument("--data", type=Path, default=None, help="dataset cache (bench/data)")
    p.add_argument(
        "--groups",
        default=",".join(GROUPS),
        help=f"comma-separated subset of {','.join(GROUPS)} (default all)",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        default=BENCH / "baseline.json",
        help="results.json of an earlier commit, shown beside this sitting's figures "
        "(bench/baseline.json)",
    )
    p.add_argument("--regen", action="store_true", help="regenerate the cached datasets")
    p.add_argument(
        "--keep-runs",
        action="store_true",
        help="keep the databases and work dirs under OUT/runs (default: logs only)",
    )
    args = p.parse_args(argv)
    args.out = (args.out or BENCH).resolve()
    if args.data is None:
        args.data = args.out / "data" if args.smoke else BENCH / "data"
    args.data = args.data.resolve()
    if args.repeat is None:
        args.repeat = 1 if args.smoke else 3
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    args.groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    unknown = set(args.groups) - set(GROUPS)
    if unknown:
        p.error(f"unknown groups {sorted(unknown)}; choose from {GROUPS}")
    try:
        return Bench(args).execute()
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

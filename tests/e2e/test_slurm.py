"""The SLURM profile on a real SLURM: the one-node cluster of ``tests/slurm/up.sh``.

The backfill runs through ``dbn-backfill --profile`` with ``profiles/slurm`` plus the CI
settings of ``tests/slurm/ci-profile`` (written together into one profile, each CI key
replacing the same key whole, as a second ``--profile`` would). Checked: the cluster
jobs really ran as SLURM jobs (their ids in Snakemake's output, in ``squeue`` and in
slurmctld's job completion log), grouped into few SLURM jobs; ``merge_chunks`` and
``check_gates`` ran here; ``bars_1m`` equals a local run's; a rerun submits nothing; a
chunk with a bad bar fails the run and says so in its checkpoint.

Skipped, with the reason, when no SLURM cluster is up. Every run has a timeout: a
profile that makes Snakemake wait forever (e.g. status queries by ``sacct`` without
an accounting database) fails the test instead of hanging it.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import databento
import pandas as pd
import pytest
import yaml
from conftest import PROJECT, RUN_LOG_LINE, Bar, Run, read_table, run_log, write_bars

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]

STATE = Path(os.environ.get("DBN_BACKFILL_SLURM_STATE", "/tmp/dbn-backfill-slurm"))
SLURM_PROFILE = PROJECT / "dbn_backfill" / "workflow" / "profiles" / "slurm" / "config.yaml"
CI_PROFILE = PROJECT / "tests" / "slurm" / "ci-profile" / "config.yaml"
SLURM_RUN_TIMEOUT = 170  # a healthy run takes ~40-70 s here
LOCAL_RUN_TIMEOUT = 120
D = dt.date
START, END = D(2024, 1, 2), D(2024, 2, 29)
ROOTS = ("MGC", "GC")
UNIVERSE = ",".join(ROOTS)  # a two-root run: its table equals the local run's
BAD_DAY = D(2024, 2, 7)  # the trade date that gets a bar with high < low
FAIL_START, FAIL_END = D(2024, 2, 5), D(2024, 2, 16)


def _cmd(*args: str, timeout: int = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def _cluster_problem() -> str | None:
    """Why the SLURM tests cannot run here, or None when a node is idle."""
    problem = _no_idle_node()
    marker = STATE / "unavailable"
    if problem and marker.exists():  # up.sh said why it could not start the cluster
        return f"SLURM unavailable (tests/slurm/up.sh): {marker.read_text().strip()}"
    return problem


def _no_idle_node() -> str | None:
    if shutil.which("sinfo") is None:
        return "SLURM is not installed: run `bash tests/slurm/up.sh` (as root) first"
    try:
        ping = _cmd("scontrol", "ping")
        states = _cmd("sinfo", "--noheader", "--responding", "-o", "%t").stdout.split()
    except subprocess.TimeoutExpired:
        return "the SLURM controller does not answer: run `bash tests/slurm/up.sh`"
    if "is UP" not in ping.stdout:
        return f"no SLURM controller is up ({ping.stdout.strip() or ping.stderr.strip()})"
    if not any(s.rstrip("*~#") in ("idle", "mix") for s in states):
        return f"no idle SLURM node (sinfo states: {states or 'none'})"
    return None


@pytest.fixture(scope="module")
def cluster() -> dict[str, str]:
    problem = _cluster_problem()
    if problem:
        pytest.skip(problem)
    config = _cmd("scontrol", "show", "config").stdout
    settings = dict(
        (k.strip(), v.strip()) for k, _, v in (line.partition("=") for line in config.splitlines())
    )
    nodes = _cmd("sinfo", "--noheader", "-N", "-o", "%N").stdout.split()
    return {"jobcomp": settings.get("JobCompLoc", ""), "nodes": " ".join(nodes)}


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """profiles/slurm with the CI keys on top, as one profile directory."""
    merged = {**yaml.safe_load(SLURM_PROFILE.read_text()), **yaml.safe_load(CI_PROFILE.read_text())}
    folder = tmp_path_factory.mktemp("slurm-profile")
    (folder / "config.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two months of synthetic ohlcv-1m data of MGC and GC, one DBN file per day."""
    out = tmp_path_factory.mktemp("sample") / "dbn"
    proc = subprocess.run(
        [sys.executable, "-m", "dbn_backfill.cli", "synth", "--out", str(out), "--start",
         "2024-01-01", "--end", "2024-03-01", "--seed", "7", "--layout", "daily"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@dataclass
class Outcome:
    returncode: int
    log: str  # stdout + stderr of dbn-backfill (Snakemake's output)

    @property
    def slurm_run_id(self) -> str:
        found = re.search(r"SLURM run ID: (\S+)", self.log)
        assert found, "no 'SLURM run ID' in the output: the slurm executor did not start"
        return found.group(1)

    @property
    def slurm_jobs(self) -> dict[str, str]:
        """SLURM job id -> the SLURM log file Snakemake named for it."""
        return dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: ([^)]+)\)", self.log))

    def rules(self, kind: str) -> list[str]:
        """Jobs Snakemake started, by rule name: kind 'rule' (cluster) or 'localrule'."""
        return re.findall(rf"^\s*{kind} (\w+):$", self.log, re.M)


def run_backfill(run: Run, *extra: str, timeout: int) -> Outcome:
    """The real CLI in its own process group; on timeout the group is killed and the
    run's SLURM jobs cancelled, and the test fails with the end of the output."""
    proc = run.popen(*extra)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake ignores SIGTERM while jobs run
        out, err = proc.communicate()
        found = re.search(r"SLURM run ID: (\S+)", out + err)
        if found:
            _cmd("scancel", "--name", found.group(1))
        pytest.fail(
            f"dbn-backfill {' '.join(extra)} did not finish in {timeout} s (a SLURM status "
            f"command that never sees jobs finish hangs Snakemake):\n{(out + err)[-4000:]}"
        )
    text = out + err
    # the console is quiet: Snakemake's output (jobs, SLURM ids) is in the run log it names
    return Outcome(
        proc.returncode, text + "\n" + run_log(text) if RUN_LOG_LINE.search(text) else text
    )


def squeue_records(job_ids: list[str]) -> dict[str, dict[str, str]]:
    """What slurmctld still knows about these jobs (MinJobAge keeps finished ones)."""
    fields = ["id", "state", "name", "comment", "partition", "nodes", "cpus", "time_limit"]
    proc = _cmd(
        "squeue", "--states=all", "--noheader", "--jobs", ",".join(job_ids),
        "--format", "%i|%T|%j|%k|%P|%N|%C|%l",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    records = [dict(zip(fields, line.split("|"), strict=True)) for line in proc.stdout.splitlines()]
    return {r["id"]: r for r in records}


def jobcomp_records(path: str, job_ids: list[str]) -> dict[str, str]:
    """slurmctld's job completion log (jobcomp/filetxt): job id -> its line."""
    lines = Path(path).read_text(errors="replace").splitlines()
    found = {}
    for line in lines:
        m = re.match(r"JobId=(\d+) ", line)
        if m and m.group(1) in job_ids:
            found[m.group(1)] = line
    return found


@pytest.fixture(scope="module")
def local_rows(sample: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    run = Run(tmp_path_factory.mktemp("local"), sample, UNIVERSE, START, END)
    outcome = run_backfill(run, "--chunks-per-job", "3", timeout=LOCAL_RUN_TIMEOUT)
    assert outcome.returncode == 0, outcome.log[-5000:]
    return run.rows()


@pytest.fixture(scope="module")
def slurm_run(
    cluster: dict[str, str], profile: Path, sample: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Run, Outcome]:
    run = Run(tmp_path_factory.mktemp("slurm"), sample, UNIVERSE, START, END)
    outcome = run_backfill(
        run, "--chunks-per-job", "3", "--profile", str(profile), timeout=SLURM_RUN_TIMEOUT
    )
    assert outcome.returncode == 0, outcome.log[-6000:]
    return run, outcome


def test_cluster_jobs_ran_as_slurm_jobs(slurm_run: tuple[Run, Outcome], cluster) -> None:
    run, outcome = slurm_run
    jobs = outcome.slurm_jobs
    assert jobs, "no job was submitted to SLURM:\n" + outcome.log[-4000:]
    ids = sorted(jobs)
    records = squeue_records(ids)
    assert sorted(records) == ids, f"squeue knows {sorted(records)}, Snakemake submitted {ids}"
    for job_id, rec in records.items():
        assert rec["state"] == "COMPLETED", rec
        assert rec["name"] == outcome.slurm_run_id, rec  # the plugin names jobs by run
        assert rec["partition"] == "debug", rec  # slurm_partition of the CI profile
        assert rec["nodes"] in cluster["nodes"].split(), rec
        assert Path(jobs[job_id]).is_file(), f"no SLURM log {jobs[job_id]}"
    # every cluster rule of the run is in the comment of some SLURM job
    comments = " ".join(rec["comment"] for rec in records.values())
    cluster_rules = set(outcome.rules("rule"))
    assert "decode_sources" in cluster_rules
    assert "build_chunks" in cluster_rules
    for rule in cluster_rules:
        assert rule in comments, f"{rule} is in no SLURM job: {comments}"
    # slurmctld's own record of every job
    if cluster["jobcomp"] and Path(cluster["jobcomp"]).is_file():
        lines = jobcomp_records(cluster["jobcomp"], ids)
        assert sorted(lines) == ids, f"jobcomp log has {sorted(lines)}, expected {ids}"
        for line in lines.values():
            assert "JobState=COMPLETED" in line and f"Name={outcome.slurm_run_id}" in line, line


def test_merge_and_gates_ran_locally(slurm_run: tuple[Run, Outcome]) -> None:
    run, outcome = slurm_run
    local = outcome.rules("localrule")
    assert "merge_chunks" in local and "check_gates" in local, local
    remote = outcome.rules("rule")
    assert "merge_chunks" not in remote and "check_gates" not in remote, remote
    comments = " ".join(r["comment"] for r in squeue_records(sorted(outcome.slurm_jobs)).values())
    assert "merge_chunks" not in comments and "check_gates" not in comments
    assert "gates passed: True" in outcome.log


def test_small_jobs_are_grouped(slurm_run: tuple[Run, Outcome], profile: Path) -> None:
    """group-components packs decode and build jobs: fewer SLURM jobs than cluster jobs."""
    run, outcome = slurm_run
    components = yaml.safe_load((profile / "config.yaml").read_text())["group-components"]
    remote = outcome.rules("rule")
    decode = remote.count("decode_sources")
    build = remote.count("build_chunks")
    assert build >= 2, "the test data should make several build jobs (--chunks-per-job 3)"
    expected = math.ceil(decode / components["decode_sources"]) + math.ceil(
        build / components["build_chunks"]
    )
    # members of a group job run one after another: it asks for one member's CPUs
    # (resources: cpus_per_task, local scope), not for --workers members side by side
    cap = str(yaml.safe_load((profile / "config.yaml").read_text())["resources"]["cpus_per_task"])
    cpus = {r["id"]: r["cpus"] for r in squeue_records(sorted(outcome.slurm_jobs)).values()}
    assert set(cpus.values()) == {cap}, cpus
    assert len(outcome.slurm_jobs) == expected, (
        f"{len(outcome.slurm_jobs)} SLURM jobs for {len(remote)} cluster jobs ({decode} decode, "
        f"{build} build), expected {expected}: do rules/decode.smk and rules/chunks.smk carry "
        '`group: "decode_sources"` / `group: "build_chunks"`?'
    )


def test_table_equals_local_run(slurm_run: tuple[Run, Outcome], local_rows: pd.DataFrame) -> None:
    run, _ = slurm_run
    rows = run.rows()
    assert set(rows["symbol"]) == {"MGC", "GC"}
    assert (rows.groupby("symbol").size() > 10_000).all()
    pd.testing.assert_frame_equal(rows, local_rows)
    for root in ROOTS:
        assert {c["status"] for c in run.checkpoints(root).values()} == {"done"}


def test_rerun_submits_nothing(slurm_run: tuple[Run, Outcome], profile: Path) -> None:
    """Resuming a finished cluster run: every cluster output is there, no SLURM job."""
    run, _ = slurm_run
    before = run.rows()
    stamps = {r: {k: c["finished_at"] for k, c in run.checkpoints(r).items()} for r in ROOTS}
    outcome = run_backfill(
        run, "--chunks-per-job", "3", "--profile", str(profile), timeout=SLURM_RUN_TIMEOUT
    )
    assert outcome.returncode == 0, outcome.log[-5000:]
    assert outcome.slurm_jobs == {}, outcome.log[-4000:]
    assert outcome.rules("rule") == []
    pd.testing.assert_frame_equal(run.rows(), before)
    assert {
        r: {k: c["finished_at"] for k, c in run.checkpoints(r).items()} for r in ROOTS
    } == stamps


def _front_contract(day_file: Path, day: dt.date) -> tuple[str, int, set[pd.Timestamp]]:
    """The raw symbol and instrument id with the most volume in a daily synth file,
    and its bar times."""
    store = databento.DBNStore.from_file(day_file)
    frame = store.to_df(map_symbols=True, pretty_ts=True)
    volume = frame.groupby("symbol")["volume"].sum()
    outrights = volume[volume.index.str.fullmatch(r"MGC[FGHJKMNQUVXZ]\d{1,2}")]
    raw = str(outrights.idxmax())
    bars = frame[frame["symbol"] == raw]
    return raw, int(bars["instrument_id"].iloc[0]), set(bars.index)


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # databento's to_df on pandas 3
def test_failing_chunk_under_slurm(
    cluster: dict[str, str], profile: Path, sample: Path, tmp_path: Path
) -> None:
    dbn = tmp_path / "dbn"
    shutil.copytree(sample, dbn)
    raw, iid, taken = _front_contract(dbn / f"glbx-mdp3-{BAD_DAY:%Y%m%d}.ohlcv-1m.dbn.zst", BAD_DAY)
    # a minute of the bad day's session where the front contract has no bar yet
    # (00:00-22:59 UTC is 18:00 CT the evening before to 16:59 CT: all trade date BAD_DAY)
    session = pd.date_range(f"{BAD_DAY} 00:00", periods=23 * 60, freq="min", tz="UTC")
    ts = next(t for t in session if t not in taken)
    write_bars(
        dbn / f"glbx-mdp3-{BAD_DAY:%Y%m%d}-extra.ohlcv-1m.dbn",
        [Bar(raw, iid, ts, open=2000.0, high=1990.0, low=2010.0, close=2000.0, volume=3)],
    )
    run = Run(tmp_path, dbn, "MGC", FAIL_START, FAIL_END)
    outcome = run_backfill(run, "--profile", str(profile), timeout=SLURM_RUN_TIMEOUT)
    assert outcome.returncode != 0, outcome.log[-4000:]
    assert outcome.slurm_jobs, "the chunks were not built on SLURM:\n" + outcome.log[-4000:]
    states = {r["state"] for r in squeue_records(sorted(outcome.slurm_jobs)).values()}
    assert states == {"COMPLETED"}, states  # the data error is the chunk's, not the job's

    checkpoints = run.checkpoints()
    bad = [
        c
        for c in checkpoints.values()
        if D.fromisoformat(c["chunk_start"]) <= BAD_DAY <= D.fromisoformat(c["chunk_end"])
    ]
    assert len(bad) == 1, checkpoints
    assert bad[0]["status"] == "failed", bad[0]
    error = bad[0]["error"] or ""
    assert "high" in error and raw in error, error
    others = [c["status"] for c in checkpoints.values() if c is not bad[0]]
    assert others and set(others) == {"done"}, checkpoints
    committed = read_table(run.db, "bars_1m_chunks")
    assert bad[0]["chunk_id"] not in set(committed["chunk_id"]), committed
    assert set(committed["chunk_id"]) == {c["chunk_id"] for c in checkpoints.values()} - {
        bad[0]["chunk_id"]
    }

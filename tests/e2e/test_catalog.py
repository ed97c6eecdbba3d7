"""The Snakemake workflow catalog's "standardized usage" (README: "Use as a Snakemake
module / deploy with snakedeploy"): the `.test` run, module use with a local path, and
`.snakemake-workflow-catalog.yml`.

Real Snakemake runs on a copy of `.test/` (never in the checkout): the run of
`snakemake -s workflow/Snakefile --directory .test`, a rerun, the same settings through
the `dbn-backfill` CLI, and a Snakefile of the user's own that uses the workflow as a
module. The expected table is counted independently, with databento's own decoder.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import databento
import pandas as pd
import pytest
import yaml
from conftest import PROJECT, RUN_TIMEOUT, Run, content_hash, db_hash, read_table

from dbn_backfill.runtime.module_use import hand_over_handlers

pytestmark = pytest.mark.slow

DOT_TEST = PROJECT / ".test"
SNAKEFILE = PROJECT / "workflow" / "Snakefile"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SETTINGS = yaml.safe_load((DOT_TEST / "config" / "config.yaml").read_text())


def copy_dot_test(dest: Path) -> Path:
    """`.test/`'s config and data (what git holds) copied to ``dest``."""
    for part in ("config", "data"):
        shutil.copytree(DOT_TEST / part, dest / part)
    return dest


def snakemake(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [SNAKEMAKE, "--cores", "2", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        start_new_session=True,
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def jobs_run(proc: subprocess.CompletedProcess[str]) -> set[str]:
    """The rules whose jobs Snakemake started."""
    return set(re.findall(r"^(?:local)?rule (\w+):$", proc.stdout + proc.stderr, re.M))


def expected_front_bars(dbn: Path) -> dict[dt.date, tuple[str, int]]:
    """Per trade date of the settings: (front contract by volume, its distinct bars),
    from databento's decoder and the contract's rules, without the project's code."""
    frames = [
        databento.DBNStore.from_file(path).to_df(map_symbols=True)
        for path in sorted(dbn.rglob("*.dbn.zst"))
    ]
    bars = pd.concat(frames).reset_index()
    bars = bars[bars["symbol"].str.fullmatch(rf"{SETTINGS['symbol']}[FGHJKMNQUVXZ]\d{{1,2}}")]
    # trade date: the date of Chicago time + 24 h - 17:00 (session roll)
    local = bars["ts_event"].dt.tz_convert("America/Chicago") + pd.Timedelta(hours=7)
    bars = bars.assign(trade_date=local.dt.date)
    first, last = dt.date.fromisoformat(SETTINGS["start"]), dt.date.fromisoformat(SETTINGS["end"])
    bars = bars[(bars["trade_date"] >= first) & (bars["trade_date"] <= last)]
    expected = {}
    for day, of_day in bars.groupby("trade_date"):
        front = of_day.groupby("symbol")["volume"].sum().idxmax()
        expected[day] = (front, of_day.loc[of_day["symbol"] == front, "ts_event"].nunique())
    return expected


def table_front_bars(db: Path) -> dict[dt.date, tuple[str, int]]:
    """Per trade date: (the table's contract, its rows)."""
    table = read_table(db)
    local = table["ts_utc"].dt.tz_convert("America/Chicago") + pd.Timedelta(hours=7)
    found = {}
    for day, of_day in table.assign(trade_date=local.dt.date).groupby("trade_date"):
        (symbol,) = set(of_day["source_symbol"])
        found[day] = (symbol, len(of_day))
    return found


@pytest.fixture(scope="module")
def dot_test_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`.test` run once: (its copy, the run's output)."""
    work = copy_dot_test(tmp_path_factory.mktemp("catalog") / ".test")
    proc = snakemake("-s", str(SNAKEFILE), "--directory", str(work), cwd=PROJECT)
    return work, proc.stdout + proc.stderr


def test_dot_test_run_backfills_the_expected_table(dot_test_run: tuple[Path, str]) -> None:
    work, log = dot_test_run
    expected = expected_front_bars(work / SETTINGS["dbn"])
    assert len(expected) == 4, expected  # four business days, 2024-03-25..28
    assert {symbol for symbol, _ in expected.values()} == {"MGCJ4", "MGCM4"}  # a roll
    db = work / SETTINGS["db"]  # relative paths resolve against --directory
    assert table_front_bars(db) == expected
    rows = sum(count for _, count in expected.values())
    assert f"rows inserted: {rows}; gates passed: True" in log, log[-2000:]
    assert sorted(p.name for p in (work / SETTINGS["checkpoint"] / "MGC").glob("chunk_*.json")) == [
        "chunk_20240325_20240326.json",
        "chunk_20240327_20240328.json",
    ]


def test_dot_test_rerun_does_nothing(dot_test_run: tuple[Path, str]) -> None:
    work, _ = dot_test_run
    db = work / SETTINGS["db"]
    before = db_hash(db)
    proc = snakemake("-s", str(SNAKEFILE), "--directory", str(work), cwd=PROJECT)
    jobs = jobs_run(proc)
    assert not jobs & {"decode_sources", "build_chunks"}, jobs
    assert "committed 0, skipped (already committed) 2, failed 0" in proc.stdout + proc.stderr
    assert db_hash(db) == before  # commit times and run ids included


def test_cli_with_the_same_settings_writes_the_same_table(
    dot_test_run: tuple[Path, str], tmp_path: Path
) -> None:
    work, _ = dot_test_run
    run = Run(
        root=tmp_path,
        dbn=work / SETTINGS["dbn"],
        symbol=SETTINGS["symbol"],
        start=dt.date.fromisoformat(SETTINGS["start"]),
        end=dt.date.fromisoformat(SETTINGS["end"]),
        chunk_days=SETTINGS["chunk_days"],
    )
    run.run(check=True)
    assert content_hash(run.db) == content_hash(work / SETTINGS["db"])


MODULE_SNAKEFILE = """\
configfile: "config/config.yaml"


{before}module backfill:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from backfill{rename}
{after}"""


def user_snakefile(
    folder: Path, before: str = "", rename: str = "", after: str = "", dbn: Path | None = None
) -> Path:
    """A folder with `.test/`'s config and data and a Snakefile using the workflow as a
    module; ``dbn``: read those DBN files instead (the lineage holds their paths)."""
    copy_dot_test(folder)
    if dbn is not None:
        config = folder / "config" / "config.yaml"
        config.write_text(yaml.safe_dump({**SETTINGS, "dbn": str(dbn)}))
    (folder / "Snakefile").write_text(
        MODULE_SNAKEFILE.format(snakefile=SNAKEFILE, before=before, rename=rename, after=after)
    )
    return folder


def test_module_use_with_a_local_path_writes_the_same_table(
    dot_test_run: tuple[Path, str], tmp_path: Path
) -> None:
    work, _ = dot_test_run
    user = user_snakefile(
        tmp_path / "mine",
        before='onstart:\n    print("own onstart")\n\n\n',
        dbn=work / SETTINGS["dbn"],
    )
    proc = snakemake(cwd=user)
    assert content_hash(user / SETTINGS["db"]) == content_hash(work / SETTINGS["db"])
    # the module's handlers ran, after the user's own: the run record and the summary
    log = proc.stdout + proc.stderr
    assert log.index("own onstart") < log.index("dbn-backfill run ")
    assert "dbn-backfill summary (OK)" in log and log.count("dbn-backfill summary") == 1
    runs = list((user / "results" / SETTINGS["symbol"] / "runs").iterdir())
    assert len(runs) == 1
    assert json.loads((runs[0] / "config.json").read_text())["run_id"] == runs[0].name


def test_module_rules_renamed_stay_local(tmp_path: Path) -> None:
    """check_complete, merge_chunks, merge_report, spot_check and check_gates never go to
    a cluster, renamed or not."""
    user = user_snakefile(
        tmp_path / "mine",
        rename=" as bf_*",
        after='\nprint("local rules:", " ".join(sorted(workflow._localrules)))\n',
    )
    proc = snakemake("-n", cwd=user)
    assert (
        "local rules: bf_backfill_report bf_check_complete bf_check_gates bf_merge_chunks "
        "bf_merge_report bf_root_report bf_spot_check" in (proc.stdout)
    ), proc.stdout[-2000:]


def test_handlers_are_left_alone_in_the_main_snakefile() -> None:
    class Modifier:
        def is_main_snakefile(self) -> bool:
            return True

    class Workflow:
        modifier = Modifier()

    def own(log: object) -> None:
        pass

    workflow = Workflow()
    workflow._onstart = own  # type: ignore[attr-defined]
    assert not hand_over_handlers(workflow, {"onstart": lambda: None})
    assert workflow._onstart is own  # type: ignore[attr-defined]


def test_catalog_file_parses_and_names_files_that_exist() -> None:
    settings = yaml.safe_load((PROJECT / ".snakemake-workflow-catalog.yml").read_text())
    usage = settings["usage"]
    assert set(usage) == {"mandatory-flags", "software-stack-deployment", "report"}
    assert set(usage["mandatory-flags"]) == {"desc", "flags"}
    assert isinstance(usage["mandatory-flags"]["flags"], str | list)
    deployment = usage["software-stack-deployment"]
    assert set(deployment) <= {"conda", "apptainer", "apptainer+conda"}
    assert all(isinstance(v, bool) for v in deployment.values())
    assert usage["report"] is True
    assert (PROJECT / "workflow" / "rules" / "report.smk").read_text().count("report(") >= 1
    # the catalog's "standardized usage": workflow/Snakefile and config/README.md
    assert (PROJECT / "workflow" / "Snakefile").is_file()
    assert (PROJECT / "config" / "README.md").is_file()
    named = re.findall(r"`([^`\s]+/[^`\s]*)`", usage["mandatory-flags"]["desc"])
    assert named, usage["mandatory-flags"]["desc"]
    for path in named:
        assert (PROJECT / path).exists(), path

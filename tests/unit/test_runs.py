"""Run records (``dbn_backfill.views.runs``): typed parts, older files, gates from the log."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dbn_backfill.artifacts import GateResult, GatesReport, MergeReport
from dbn_backfill.config import from_mapping
from dbn_backfill.layout import Layout
from dbn_backfill.views.runs import (
    KEY_PACKAGES,
    RunConfig,
    latest_gates,
    latest_run,
    list_runs,
    load_run,
    trade_calendar,
    write_run_config,
)

SYMBOL = "MGC"


def settings(tmp_path: Path, **extra: object) -> dict[str, object]:
    return {
        "dbn": str(tmp_path / "dbn"), "db": str(tmp_path / "x.duckdb"), "symbol": SYMBOL,
        "start": "2024-01-02", "end": "2024-01-31", "chunk_days": 5,
        "checkpoint": str(tmp_path / "ckpt"), "expected_gaps": ["2024-01-15"], **extra,
    }  # fmt: skip


def gates(run_id: str, *passed: bool) -> GatesReport:
    results = [GateResult(f"gate {i}", ok, f"found {i}") for i, ok in enumerate(passed)]
    return GatesReport(run_id=run_id, db="x.duckdb", gates=results)


def test_run_records_round_trip(tmp_path):
    layout = Layout(tmp_path)
    cfg = from_mapping(settings(tmp_path), base=tmp_path)
    written = write_run_config(layout, "r1", cfg)
    assert written == layout.run_record(SYMBOL, "r1", "config")
    merge = MergeReport("r1", committed=["c1", "c2"], skipped=["c3"], rows_inserted=42, seconds=1.5)
    merge.write(layout.run_record(SYMBOL, "r1", "merge"))
    gates("r1", True, True).write(layout.run_record(SYMBOL, "r1", "gates"))

    run = load_run(layout, SYMBOL, "r1")
    assert run.config is not None and run.config.run_id == "r1"
    assert run.config.span == ("2024-01-02", "2024-01-31")
    assert run.config.setting("chunk_days") == 5 and run.config.setting("nope", 7) == 7
    assert run.config.expected_gaps == ("2024-01-15",)
    assert set(run.config.versions) == set(KEY_PACKAGES) and run.started_at
    assert run.merge == merge
    assert run.gates is not None and run.gates.passed and not run.gates_failed
    assert run.gates_origin == layout.run_record(SYMBOL, "r1", "gates") and not run.gates_from_log
    # the typed record writes back the file it was read from
    on_disk = json.loads(written.read_text())
    assert run.config.to_json() == on_disk
    assert RunConfig.from_json(on_disk) == run.config
    assert run.to_json()["merge"]["chunks_committed"] == 2
    assert run.to_json()["gates"]["passed"] is True


def test_an_older_config_without_some_keys_still_loads(tmp_path):
    layout = Layout(tmp_path)
    path = layout.run_record(SYMBOL, "old", "config")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"config": {"symbol": SYMBOL, "start": "2024-01-02"}}))
    config = load_run(layout, SYMBOL, "old").config
    assert config is not None
    assert config.run_id is None and config.started_at is None and dict(config.versions) == {}
    assert config.span == ("2024-01-02", None) and config.expected_gaps == ()
    # no settings at all: no span; the calendar falls back to the schema's defaults
    path.write_text(json.dumps({"run_id": "old"}))
    config = load_run(layout, SYMBOL, "old").config
    assert config is not None and config.span is None and dict(config.settings) == {}
    assert trade_calendar(config, None, SYMBOL).name == trade_calendar(None, None, SYMBOL).name


@pytest.mark.parametrize("text", ["{broken", "[1, 2]", '{"config": [1]}'])
def test_an_unreadable_config_reads_as_none(tmp_path, text):
    layout = Layout(tmp_path)
    path = layout.run_record(SYMBOL, "bad", "config")
    path.parent.mkdir(parents=True)
    path.write_text(text)
    layout.run_record(SYMBOL, "bad", "merge").write_text("{}")  # no run_id: not a report
    run = load_run(layout, SYMBOL, "bad")
    assert run.config is None and run.merge is None and run.gates is None


def test_gates_come_from_the_log_when_gates_json_is_missing(tmp_path):
    layout = Layout(tmp_path)
    layout.run_dir(SYMBOL, "r2").mkdir(parents=True)
    gates("r2", True, False).write(layout.gates_results_log(SYMBOL, "r2"))
    run = load_run(layout, SYMBOL, "r2")
    assert run.gates is not None and not run.gates.passed
    assert run.gates_from_log and run.gates_origin == layout.gates_results_log(SYMBOL, "r2")
    assert [g.name for g in run.gates_failed] == ["gate 1"]
    assert run.config is None and run.merge is None and run.started_at is None


def test_runs_are_listed_oldest_first(tmp_path):
    layout = Layout(tmp_path)
    assert list_runs(tmp_path, SYMBOL) == [] and latest_run(tmp_path, SYMBOL) is None
    for i, run_id in enumerate(("b-first", "a-second", "c-third")):
        layout.run_dir(SYMBOL, run_id).mkdir(parents=True)
        os.utime(layout.run_dir(SYMBOL, run_id), ns=(10**18 + i, 10**18 + i))
    gates("a-second", True).write(layout.gates_results_log(SYMBOL, "a-second"))
    assert [r.run_id for r in list_runs(tmp_path, SYMBOL)] == ["b-first", "a-second", "c-third"]
    assert latest_run(tmp_path, SYMBOL).run_id == "c-third"  # type: ignore[union-attr]
    assert latest_gates(tmp_path, SYMBOL).run_id == "a-second"  # type: ignore[union-attr]

"""Commit while building (contract section 11), end to end: each build batch is merged
by its own merge_chunks job as soon as it is built, one writer at a time; a rerun with
nothing new merges nothing; a marker the database no longer holds is removed before
the DAG is built, so its merge runs again and the table comes back the same."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from conftest import Run, content_hash, db_hash, run_output

from dbn_backfill.layout import Layout
from dbn_backfill.sampledata.synth import generate

pytestmark = pytest.mark.slow

D = dt.date
START, END = D(2024, 1, 2), D(2024, 3, 28)
#: 2-day chunks, 5 per build job: 7 batches, so that builds are still queued when the
#: first batch is built
ARGS = ("--chunks-per-job", "5")
STEP = re.compile(r"^(\S+ \S+) INFO dbn_backfill\.(\w+): (start|end) (\w+)", re.M)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "dbn"
    generate(out, D(2024, 1, 1), END, seed=3, layout="daily")
    return out


def steps(output: str) -> list[tuple[str, str]]:
    """``(start|end, step)`` of every job, in the order the console printed them."""
    return [(m.group(3), m.group(2)) for m in STEP.finditer(output)]


def merge_record(run: Run) -> dict:
    (runs,) = [Layout(run.workdir).runs_dir(run.symbol)]
    latest = max(runs.iterdir(), key=lambda p: p.name)
    return json.loads((latest / "merge.json").read_text())


def test_batches_commit_while_later_batches_build_and_a_noop_merges_nothing(tmp_path, sample):
    run = Run(tmp_path, sample, "MGC", START, END, chunk_days=2)
    first = run.run(*ARGS, check=True)
    order = steps(run_output(first))
    merges = [i for i, s in enumerate(order) if s == ("start", "merge_chunks")]
    builds = [i for i, s in enumerate(order) if s[1] == "build_chunks"]
    assert len(merges) == 7 + 1, order  # one per batch, then the run's merge record
    assert merges[0] < builds[-1], f"no batch was committed while others built: {order}"
    complete = order.index(("end", "check_complete"))
    assert complete < merges[0]
    assert merge_record(run)["chunks_committed"] == 31
    chunks = run.checkpoints()
    assert {s["status"] for s in chunks.values()} == {"done"}
    table = content_hash(run.db)

    # the same command again: no decode, build or merge job; the table is untouched
    before = db_hash(run.db)
    again = run.run(*ARGS, check=True)
    ran = {step for _, step in steps(run_output(again))}
    assert ran == {"spot_check", "merge_chunks", "check_gates"}, ran  # the record only
    again_out = run_output(again)
    assert "localrule merge_chunks:" not in again_out
    assert "build_chunks" not in again_out and "decode_sources" not in again_out
    assert db_hash(run.db) == before
    record = merge_record(run)
    assert record["chunks_committed"] == 0 and record["chunks_skipped"] == 31

    # the database removed: the plan drops every marker, each batch merges again
    run.db.unlink()
    third = run.run(*ARGS, check=True)
    third_out = run_output(third)
    assert third_out.count("localrule merge_chunks:") == 7
    assert "build_chunks" not in third_out
    assert content_hash(run.db) == table
    assert merge_record(run)["chunks_committed"] == 31

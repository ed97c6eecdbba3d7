"""The benchmark's smoke mode: tiny data, every scenario once (one root and MGC+GC in one
run), the three tables equal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(out)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    report = f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, report

    results = out / "results.md"
    assert results.exists(), report
    text = results.read_text()
    assert "| scenario | runs | median wall s |" in text
    for scenario in ("full backfill", "no-op rerun", "+1 trade date", "floor", "naive"):
        assert scenario in text, f"no {scenario!r} row in results.md:\n{text}"
    assert "**tables match**" in text and "MISMATCH" not in text, text

    data = json.loads((out / "results.json").read_text())
    assert data["tables_match"] is True
    assert data["failures"] == []
    rows = {c["title"]: c["rows"] for c in data["comparisons"]}
    assert rows, "no comparison ran"
    for counts in rows.values():
        assert len(set(counts.values())) == 1 and next(iter(counts.values())) > 0, counts
    for group in ("daily", "16y2"):
        kinds = (
            ("full", "noop", "incr", "floor", "naive")
            if group == "daily"
            else ("full", "noop", "floor", "naive")
        )
        for key in (f"{kind}_{group}" for kind in kinds):
            samples = data["scenarios"][key]["samples"]
            assert samples and all(s["returncode"] == 0 for s in samples), key
            assert all(s["wall_s"] > 0 and s["maxrss_kb"] > 0 for s in samples), key

    # the two-root case (MGC and GC in one run): both roots' rows, equal in all three
    two = [c for c in data["comparisons"] if "MGC+GC" in c["title"]]
    assert len(two) == 1, data["comparisons"]
    per_root = two[0]["rows_by_root"]
    assert set(per_root) == {"workflow", "floor", "naive"}, per_root
    assert per_root["workflow"] == per_root["floor"] == per_root["naive"], per_root
    assert set(per_root["workflow"]) == {"MGC", "GC"} and min(per_root["workflow"].values()) > 0
    assert data["two_root"]["full_s"] > 0 and data["two_root"]["vs_floor"] > 0
    assert "MGC + GC in one run vs. its floor" in text

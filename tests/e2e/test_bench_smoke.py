"""The benchmark's smoke mode: tiny data, every scenario once, the three tables equal."""

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
    for key in ("full_daily", "noop_daily", "incr_daily", "floor_daily", "naive_daily"):
        samples = data["scenarios"][key]["samples"]
        assert samples and all(s["returncode"] == 0 for s in samples), key
        assert all(s["wall_s"] > 0 and s["maxrss_kb"] > 0 for s in samples), key

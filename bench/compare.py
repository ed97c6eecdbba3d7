"""Issue 22's table: this sitting's figures beside a baseline's, with the targets.

Both sides are read from a bench ``results.json`` (:func:`bench.run.to_json`), so a
baseline is simply the results file of an earlier commit (``bench/baseline.json``,
kept in the repository with the commit it measured). A figure a side did not
measure (its group did not run) reads "not measured"; nothing is estimated.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Results = dict[str, Any]


def _median(results: Results, key: str) -> float | None:
    sc = results.get("scenarios", {}).get(key)
    value = sc.get("median_wall_s") if sc else None
    return float(value) if value is not None else None


def _ratio(results: Results, a: str, b: str) -> float | None:
    x, y = _median(results, a), _median(results, b)
    return x / y if x is not None and y else None


def _peak_rss_mib(results: Results, keys: tuple[str, ...]) -> float | None:
    peaks = [
        s["maxrss_kb"]
        for k in keys
        for s in results.get("scenarios", {}).get(k, {}).get("samples", [])
        if s.get("returncode") == 0
    ]
    return max(peaks) / 1024 if peaks else None


def _merge_ms(results: Results) -> float | None:
    cost = results.get("merge_cost") or {}
    value = cost.get("ms_per_chunk")
    return float(value) if value is not None else None


@dataclass(frozen=True)
class Row:
    """One line of the issue's table."""

    scenario: str
    figure: Callable[[Results], float | None]
    unit: str  # "x", "s", "ms", "MiB"
    limit: float
    limit_text: str

    def show(self, value: float | None) -> str:
        if value is None:
            return "not measured"
        if self.unit == "x":
            return f"{value:.2f}x"
        if self.unit == "MiB":
            return f"{value:.0f} MiB"
        return f"{value:.2f} {self.unit}" if self.unit == "s" else f"{value:.1f} {self.unit}"


ROWS = (
    Row(
        "16 y MGC, single file, `--workers 2 --chunk-days 5`, vs. floor",
        lambda r: _ratio(r, "full_16y", "floor_16y"),
        "x",
        2.0,
        "<= 2.0x floor",
    ),
    Row(
        "16 y MGC + GC in one run vs. its floor (one decode, both selections)",
        lambda r: _ratio(r, "full_16y2", "floor_16y2"),
        "x",
        2.0,
        "<= 2.0x",
    ),
    Row(
        "16 y MGC + GC in one run vs. the MGC-only run",
        lambda r: _ratio(r, "full_16y2", "full_16y"),
        "x",
        1.5,
        "<= 1.5x",
    ),
    Row(
        "merge cost per chunk transaction (insert + lineage + checkpoint + commit)",
        _merge_ms,
        "ms",
        12.0,
        "<= 12 ms",
    ),
    Row("no-op rerun, 16 y", lambda r: _median(r, "noop_16y"), "s", 3.0, "<= 3 s"),
    Row("+1 trade date (daily files)", lambda r: _median(r, "incr_daily"), "s", 4.0, "<= 4 s"),
    Row(
        "peak RSS, any process, with two roots",
        lambda r: _peak_rss_mib(r, ("full_16y2", "noop_16y2")),
        "MiB",
        1024.0,
        "<= 1 GiB",
    ),
)


def _load(results: Results, keys: tuple[str, ...]) -> str:
    loads = [
        s["load1"]
        for k in keys
        for s in results.get("scenarios", {}).get(k, {}).get("samples", [])
        if "load1" in s
    ]
    return f"{min(loads):.1f}–{max(loads):.1f}" if loads else "n/a"


def side_by_side(current: Results, baseline: Results | None, baseline_name: str) -> list[str]:
    """Markdown lines: the issue's rows, the baseline's figure, this sitting's, the
    target and whether it is met."""
    lines = [
        "## Issue 22: before and after",
        "",
        f"Before: {baseline_name}. After: this sitting. Same machine; the 1-minute load "
        f"average at the runs' start: before {_load(baseline or {}, ('full_16y', 'full_16y2'))}, "
        f"after {_load(current, ('full_16y', 'full_16y2'))} (2 cores).",
        "",
        "| scenario | before | after | target | status |",
        "|---|---:|---:|---|---|",
    ]
    for row in ROWS:
        before = row.figure(baseline) if baseline else None
        after = row.figure(current)
        status = (
            "not measured" if after is None else ("met" if after <= row.limit else "**NOT met**")
        )
        lines.append(
            f"| {row.scenario} | {row.show(before)} | {row.show(after)} | {row.limit_text} "
            f"| {status} |"
        )
    return lines + [""]


def read_baseline(path: Path | None) -> tuple[Results | None, str]:
    """The baseline results and how to name it; ``(None, reason)`` without one.

    Raises:
        ValueError: the file exists but is not a bench results file.
    """
    if path is None or not path.exists():
        return None, "no baseline file"
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or "scenarios" not in data:
        raise ValueError(f"{path}: not a bench results.json (no 'scenarios')")
    code = data.get("code_versions") or {}
    commit = data.get("commit") or (next(iter(code.values()), "") if code else "")
    return data, f"`{path.name}` ({commit or 'unknown commit'})"

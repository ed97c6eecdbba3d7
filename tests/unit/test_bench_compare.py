"""The bench's before/after table (bench/compare.py) reads both sides from results files."""

import json

import pytest

from bench.compare import read_baseline, side_by_side


def results(walls: dict[str, float], rss_kb: int = 500 * 1024, merge_ms: float | None = None):
    return {
        "scenarios": {
            k: {
                "median_wall_s": v,
                "samples": [{"wall_s": v, "maxrss_kb": rss_kb, "returncode": 0, "load1": 0.5}],
            }
            for k, v in walls.items()
        },
        "merge_cost": None if merge_ms is None else {"ms_per_chunk": merge_ms},
    }


def row(lines: list[str], start: str) -> list[str]:
    hit = [line for line in lines if line.startswith(f"| {start}")]
    assert len(hit) == 1, lines
    return [cell.strip() for cell in hit[0].strip("|").split("|")]


def test_before_and_after_side_by_side_with_status() -> None:
    before = results({"full_16y": 40.0, "floor_16y": 13.0, "noop_16y": 5.0}, merge_ms=21.0)
    after = results(
        {
            "full_16y": 24.0,
            "floor_16y": 13.0,
            "noop_16y": 3.5,
            "full_16y2": 40.0,
            "floor_16y2": 25.0,
            "noop_16y2": 4.0,
        },
        rss_kb=900 * 1024,
        merge_ms=9.5,
    )
    lines = side_by_side(after, before, "`baseline.json` (abc1234)")
    assert row(lines, "16 y MGC, single") == [
        "16 y MGC, single file, `--workers 2 --chunk-days 5`, vs. floor",
        "3.08x",
        "1.85x",
        "<= 2.0x floor",
        "met",
    ]
    assert row(lines, "no-op rerun, 16 y")[1:] == ["5.00 s", "3.50 s", "<= 3 s", "**NOT met**"]
    assert row(lines, "merge cost")[1:3] == ["21.0 ms", "9.5 ms"]
    # the baseline never ran two roots: said, not guessed
    assert row(lines, "16 y MGC + GC in one run vs. the MGC")[1:] == [
        "not measured",
        "1.67x",
        "<= 1.5x",
        "**NOT met**",
    ]
    assert row(lines, "peak RSS")[2:] == ["900 MiB", "<= 1 GiB", "met"]
    assert row(lines, "+1 trade date")[1:] == [
        "not measured",
        "not measured",
        "<= 4 s",
        "not measured",
    ]


def test_baseline_file(tmp_path) -> None:
    assert read_baseline(tmp_path / "none.json") == (None, "no baseline file")
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({**results({"noop_16y": 3.0}), "code_versions": {"f": "e40d276"}}))
    data, name = read_baseline(path)
    assert data is not None and name == "`baseline.json` (e40d276)"
    path.write_text("[]")
    with pytest.raises(ValueError, match="not a bench results.json"):
        read_baseline(path)

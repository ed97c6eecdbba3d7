"""The DBN side of the spot-check (dbn_backfill/gates/spot.py) on real DBN files.

Per-file counts (read once per file content, then kept by sha256) must say exactly
what the set recount straight from the files says: for daily and single files, for a
file replaced by one with other bars, and for an overlapping copy (identical bars of
two files count once).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from dbn_backfill.config import from_mapping
from dbn_backfill.gates.spot import count_file, recount_from_dbn, spot_check_counts
from dbn_backfill.sampledata.synth import generate
from dbn_backfill.sources.dbn_files import find_sources
from dbn_backfill.sources.index import scan

D = dt.date
START, END = D(2024, 1, 2), D(2024, 2, 28)


@pytest.fixture(scope="module")
def daily(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("spot") / "daily"
    generate(out, D(2024, 1, 1), D(2024, 2, 29), seed=5, layout="daily")
    return out


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("spot") / "single"
    generate(out, D(2024, 1, 1), D(2024, 2, 29), seed=5, layout="single")
    return out


def counts(folder: Path, calendar, cache: Path | None, days: int = 40, seed: str = "s"):
    cfg = from_mapping({"dbn": folder, "db": folder.parent / "x.duckdb", "symbol": "MGC",
                        "start": START, "end": END, "chunk_days": 5, "checkpoint": folder.parent / "ck",
                        "spot_check_days": days})  # fmt: skip
    sources = scan(find_sources(folder), None, write=False)
    return spot_check_counts(cfg, calendar, sources, seed, cache_dir=cache), sources


def recount(folder: Path, calendar, days: list[str]) -> dict[str, dict[str, int]]:
    headers = [s.header for s in scan(find_sources(folder), None, write=False)]
    got = recount_from_dbn(headers, calendar, "MGC", [D.fromisoformat(d) for d in days])
    return {str(d): c for d, c in got.items()}


@pytest.mark.parametrize("layout", ["daily", "single"])
def test_per_file_counts_equal_the_recount(layout, daily, single, calendar, tmp_path):
    folder = {"daily": daily, "single": single}[layout]
    first, _ = counts(folder, calendar, tmp_path / "cache")
    assert first.cached and set(first.cached) == set(first.files)
    assert sum(sum(c.values()) for c in first.days.values()) > 10_000
    assert first.days == recount(folder, calendar, list(first.days))
    # a second run reads the kept counts: no file is counted again
    kept = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}
    again, _ = counts(folder, calendar, tmp_path / "cache", days=10, seed="other")
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()} == kept
    assert again.days == recount(folder, calendar, list(again.days))
    assert again.days != first.days  # other days, same files


def test_whole_file_count_equals_the_recount_of_every_day(single, calendar):
    header = scan(find_sources(single), None, write=False)[0].header
    whole = count_file(header, calendar, "MGC")
    assert whole is not None and len(whole) > 30
    assert {str(d): c for d, c in whole.items()} == recount(single, calendar, list(map(str, whole)))


def test_a_replaced_file_is_counted_again(daily, calendar, tmp_path):
    folder = tmp_path / "dbn"
    shutil.copytree(daily, folder)
    cache = tmp_path / "cache"
    before, _ = counts(folder, calendar, cache, days=60)
    day = sorted(before.days)[len(before.days) // 2]
    # the files of that trade date, replaced in place by another seed's bars
    other = tmp_path / "other"
    generate(other, D(2024, 1, 1), D(2024, 2, 29), seed=6, layout="daily")
    replaced = 0
    for path in sorted(folder.iterdir()):
        if path.name in {p.name for p in other.iterdir()} and day.replace("-", "") in path.name:
            shutil.copy2(other / path.name, path)
            replaced += 1
    assert replaced
    after, _ = counts(folder, calendar, cache, days=60)
    assert after.days[day] != before.days[day]
    assert after.days == recount(folder, calendar, list(after.days))


def test_an_overlapping_copy_counts_once(daily, calendar, tmp_path):
    folder = tmp_path / "dbn"
    shutil.copytree(daily, folder)
    reference, _ = counts(folder, calendar, tmp_path / "cache", days=60)
    copy = sorted(folder.iterdir())[10]
    shutil.copy2(copy, folder / f"again-{copy.name}")
    with_copy, _ = counts(folder, calendar, tmp_path / "cache", days=60)
    assert with_copy.days == reference.days

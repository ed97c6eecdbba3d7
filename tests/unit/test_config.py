"""Settings at the boundary: the forms the CLI and Snakemake's --config hand over."""

from __future__ import annotations

import datetime as dt

import pytest

from dbn_backfill.config import from_mapping
from dbn_backfill.errors import ConfigError

BASE = {
    "dbn": "/tmp/dbn",
    "db": "/tmp/x.duckdb",
    "symbol": "MGC",
    "start": "2024-01-02",
    "end": "2024-01-31",
    "chunk_days": 5,
    "checkpoint": "/tmp/ckpt",
}


@pytest.mark.parametrize(
    "gaps",
    ['["2024-01-12","2024-01-17"]', "[2024-01-12,2024-01-17]", "2024-01-12,2024-01-17",
     ["2024-01-12", dt.date(2024, 1, 17)]],
)  # fmt: skip
def test_expected_gaps_in_every_form_the_interfaces_hand_over(gaps):
    cfg = from_mapping({**BASE, "expected_gaps": gaps})
    assert cfg.expected_gaps == (dt.date(2024, 1, 12), dt.date(2024, 1, 17))


def test_a_bad_gap_names_the_setting():
    with pytest.raises(ConfigError, match="expected_gaps='2024-02-31' is not a date"):
        from_mapping({**BASE, "expected_gaps": "2024-02-31"})

"""Rule check_gates: the honesty gates on the finished table."""

import datetime as dt
import logging
from pathlib import Path

from dbn_backfill.config import parse_dates
from dbn_backfill.gates.checks import raise_on_failure, run_gates, write_report
from dbn_backfill.runtime.step import run_step
from dbn_backfill.sources.dbn_files import read_header
from dbn_backfill.tradedate import Calendar


def main() -> None:
    params = snakemake.params
    results = run_gates(
        db=Path(params.db),
        symbol=params.symbol,
        start=dt.date.fromisoformat(params.start),
        end=dt.date.fromisoformat(params.end),
        expected_gaps=parse_dates(list(params.expected_gaps), "expected_gaps"),
        calendar=Calendar.load(Path(snakemake.input.calendar)),
        headers=[read_header(Path(p)) for p in params.sources],
        spot_check_days=int(params.spot_check_days),
        seed=params.run_id,
    )
    log = logging.getLogger("dbn_backfill.gates.checks")
    for result in results:
        log.info(
            "gate %-45s %s: %s", result.name, "PASS" if result.passed else "FAIL", result.detail
        )
    write_report(Path(snakemake.output.report), results, {"run_id": params.run_id, "db": params.db})
    raise_on_failure(results)


run_step("check_gates", snakemake, main)  # noqa: F821

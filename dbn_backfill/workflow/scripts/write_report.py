"""Rule backfill_report: the HTML report, its chart PNGs and a copy of the gates report."""

import shutil
from pathlib import Path

from dbn_backfill.runtime.step import run_step
from dbn_backfill.views.report import write_report


def main() -> None:
    params, output = snakemake.params, snakemake.output
    data = write_report(
        Path(output.html),
        Path(params.db),
        symbol=params.symbol,
        checkpoint=Path(params.checkpoint),
        workdir=Path.cwd(),
    )
    for name in ("rolls", "rolls_detail", "bars"):
        key = "bars_per_day" if name == "bars" else name
        Path(output[name]).write_bytes(data.charts[params.symbol][key])
    shutil.copyfile(snakemake.input.gates, output.gates)


run_step("backfill_report", snakemake, main)  # noqa: F821

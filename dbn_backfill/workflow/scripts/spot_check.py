"""Rule spot_check: recount random trade dates straight from the DBN files."""

from pathlib import Path

from dbn_backfill.config import BackfillConfig
from dbn_backfill.gates.spot import spot_check_counts
from dbn_backfill.runtime.step import run_step
from dbn_backfill.tradedate import Calendar


def main() -> None:
    cfg: BackfillConfig = snakemake.params.cfg
    counts = spot_check_counts(
        cfg,
        Calendar.load(Path(snakemake.input.calendar)),
        list(snakemake.params.sources),
        seed=snakemake.params.run_id,
        cache_dir=Path(snakemake.params.cache),
    )
    counts.write(Path(snakemake.output.counts))


run_step("spot_check", snakemake, main)  # noqa: F821

"""Rule spot_check: recount random trade dates straight from the DBN files, per root."""

from pathlib import Path

from dbn_backfill.config import BackfillConfig
from dbn_backfill.gates.spot import spot_check_counts
from dbn_backfill.runtime.step import run_step
from dbn_backfill.tradedate import Calendar


def main() -> None:
    cfg: BackfillConfig = snakemake.params.cfg
    calendar = Calendar.load(Path(snakemake.input.calendar))
    for root, out in zip(cfg.symbols, snakemake.output.counts, strict=True):
        counts = spot_check_counts(
            cfg.for_root(root),
            calendar,
            list(snakemake.params.sources[root]),
            seed=snakemake.params.run_id,
            cache_dir=Path(snakemake.params.cache),
        )
        counts.write(Path(out))


run_step("spot_check", snakemake, main)  # noqa: F821

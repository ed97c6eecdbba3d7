"""Rule merge_chunks: the single writer commits every chunk into DuckDB."""

import datetime as dt
import json
from pathlib import Path

from dbn_backfill.config import parse_dates
from dbn_backfill.store.merge import load_chunks, merge
from dbn_backfill.runtime.step import run_step
from dbn_backfill.tradedate import Calendar


def main() -> None:
    params = snakemake.params
    sources = {}
    for path in snakemake.input.summaries:
        for entry in json.loads(Path(path).read_text())["files"]:
            sources[entry["path"]] = entry
    report = merge(
        db=Path(params.db),
        symbol=params.symbol,
        chunks=load_chunks(
            [Path(p) for p in snakemake.input.manifests],
            [Path(p) for p in snakemake.input.selections],
            {Path(p).stem: Path(p) for p in snakemake.input.chunks},
        ),
        calendar=Calendar.load(Path(snakemake.input.calendar)),
        start=dt.date.fromisoformat(params.start),
        end=dt.date.fromisoformat(params.end),
        expected_gaps=parse_dates(list(params.expected_gaps), "expected_gaps"),
        checkpoint_dir=Path(params.checkpoint),
        sources=sources,
        run_id=params.run_id,
    )
    Path(snakemake.output.report).write_text(json.dumps(report.to_json(), indent=1))


run_step("merge_chunks", snakemake, main)  # noqa: F821

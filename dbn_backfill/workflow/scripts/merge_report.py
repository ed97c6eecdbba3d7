"""Rule merge_report: each root's merge record of the run, from its batches' markers;
fails the run naming every chunk that failed on its data."""

from pathlib import Path

from dbn_backfill.artifacts import MergeMarker
from dbn_backfill.runtime.step import run_step
from dbn_backfill.store.batches import merge_report


def main() -> None:
    roots = list(snakemake.params.roots)
    markers: dict[str, list[MergeMarker]] = {root: [] for root in roots}
    for path in snakemake.input.markers:
        marker = MergeMarker.read(Path(path))
        markers[marker.root].append(marker)
    reports = merge_report(markers, snakemake.params.run_id)
    for root, path in zip(roots, snakemake.output.reports, strict=True):
        reports[root].write(Path(path))


# its log is the run's merge log (logs/merge_chunks/<run_id>.log), where status looks
run_step("merge_chunks", snakemake, main)  # noqa: F821

"""The run summary a person reads at the end of every run."""

from __future__ import annotations

from dbn_backfill.planning.summary import summary_lines


def summary(**kw) -> dict:
    base = {
        "run_id": "r1",
        "roots": ["MGC", "GC"],
        "chunks": 10,
        "checkpoints": {"done": 9, "failed": 1},
        "chunks_committed": 3,
        "chunks_skipped": 6,
        "chunks_failed": 1,
        "rows_inserted": 1234,
        "gates_passed": True,
        "wall_seconds": 1.5,
        "failed": [],
    }
    return {**base, **kw}


def test_a_run_that_stopped_before_its_reports_prints_no_none():
    lines = summary_lines(
        summary(chunks_committed=None, chunks_skipped=None, rows_inserted=None,
                gates_passed=None, failed=["GC chunk_x: bad row"]),
        ok=False,
    )  # fmt: skip
    text = "\n".join(lines)
    assert "None" not in text
    assert "the merge did not finish" in text and "gates passed: not run" in text
    assert "checkpoints: done 9, failed 1" in text
    assert lines[-1].startswith("  next: ") and "--retry-failed" in lines[-1]
    assert len(lines) <= 15


def test_a_good_run_reads_as_before():
    text = "\n".join(summary_lines(summary(), ok=True))
    assert "committed 3, skipped (already committed) 6, failed 1" in text
    assert "rows inserted: 1234; gates passed: True" in text and "next:" not in text


def test_a_run_with_nothing_new_says_so():
    text = "\n".join(summary_lines(summary(chunks_committed=0, chunks_failed=0), ok=True))
    assert "nothing to do: every chunk was committed before" in text
    assert "nothing to do" not in "\n".join(summary_lines(summary(), ok=True))


def test_chunks_the_machine_failed_need_no_retry_flag():
    lines = summary_lines(summary(failed=["GC chunk_x: OSError: disk full"], failed_data=0), False)
    assert "no --retry-failed needed" in lines[-1] and "with --retry-failed" not in lines[-1]


def test_many_failed_chunks_are_counted_not_listed():
    failed = [f"GC chunk_{i}: bad row" for i in range(40)]
    lines = summary_lines(summary(failed=failed, failed_data=40), ok=False)
    assert len(lines) <= 12 and "... and 35 more failed chunks" in "\n".join(lines)


def test_the_summary_names_the_run_log():
    lines = summary_lines(summary(log="/w/logs/runs/r1.log"), ok=False)
    assert "  Snakemake's output and every job's log lines: /w/logs/runs/r1.log" in lines
    assert lines[-1].startswith("  next: ")

# Chunks -> database: the single writer. Runs on the submit host, every run; a chunk
# already committed with the same content hash is skipped without writing.


localrules:
    merge_chunks,
    check_gates,


rule merge_chunks:
    input:
        chunks=all_chunk_files(),
        selections=batch_selections(),
        manifests=batch_manifests(),
        summaries=group_summaries(),
        calendar=calendar_file(),
    output:
        report=merge_report(),
    log:
        f"{LOGS}/merge_chunks/{PLAN.run_id}.log",
    conda:
        "../envs/backfill.yaml"
    params:
        db=str(PLAN.cfg.db),
        symbol=PLAN.cfg.symbol,
        start=str(PLAN.cfg.start),
        end=str(PLAN.cfg.end),
        expected_gaps=[str(d) for d in PLAN.cfg.expected_gaps],
        checkpoint=str(PLAN.cfg.checkpoint),
        run_id=PLAN.run_id,
    script:
        "../scripts/merge_chunks.py"

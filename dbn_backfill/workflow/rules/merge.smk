# Chunks -> database: the single writer, for every root of the run. Runs on the submit
# host, every run; a chunk already committed with the same content hash is skipped
# without writing. merge_chunks, spot_check and check_gates are local rules
# (`localrule: True`, which also holds when the workflow is used as a module under
# renamed rules).


rule merge_chunks:
    input:
        bars=batch_files("bars"),
        selections=batch_files("selection"),
        terms=batch_files("terms"),
        manifests=batch_files("manifest"),
        summaries=group_summaries(),
        calendar=calendar_file(),
    output:
        reports=run_records("merge"),
    log:
        log_file("merge_chunks", RUN_ID),
    localrule: True
    conda:
        "../envs/backfill.yaml"
    params:
        cfg=PLAN.cfg,
        run_id=PLAN.run_id,
    script:
        "../scripts/merge_chunks.py"

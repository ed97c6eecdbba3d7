# Decoded -> selection + chunk bars: one job per (root, batch of consecutive chunks)
# (grid-anchored, so interior batches keep their names as start/end move). A batch's
# bars parquet holds one row group per chunk; its manifest lists every chunk.


rule build_chunks:
    input:
        decoded=batch_decoded,
        calendar=calendar_file(),
    output:
        bars=batch_file("{root}", "{batch}", "bars"),
        selection=batch_file("{root}", "{batch}", "selection"),
        terms=batch_file("{root}", "{batch}", "terms"),
        manifest=batch_file("{root}", "{batch}", "manifest"),
    log:
        log_file("build_chunks", "{batch}", "{root}"),
    wildcard_constraints:
        batch=r"batch_\d{8}_\d{8}",
        root="|".join(ROOTS),
    group:
        "build_chunks"
    conda:
        "../envs/backfill.yaml"
    params:
        # only what the step needs: a changed param re-runs the job (rerun trigger)
        chunks=lambda wildcards: PLAN.batch(wildcards.batch).chunks,
        files=batch_sources,
        roll_rule=PLAN.cfg.roll_rule,
        basis_first=lambda wildcards: PLAN.basis_day(PLAN.batch(wildcards.batch)),
    script:
        "../scripts/build_chunks.py"

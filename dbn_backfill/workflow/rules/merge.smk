# Chunks -> database, batch by batch as the builds finish (commit while building).
# check_complete checks every root's business days from the decoded records first:
# no merge starts before it passed. Then one merge_chunks job per (root, batch),
# serialized by the db_writer resource (the profiles set db_writer: 1, so the database
# has one writer at a time), writes a marker of the chunk hashes it committed; the
# plan removes a marker the database does not hold before the DAG is built, so a no-op
# run merges nothing. merge_report turns the markers into the run's merge.json per
# root, or fails the run naming every chunk that failed. All are local rules
# (`localrule: True`, which also holds when the workflow is used as a module under
# renamed rules): they read and write on the submit host.


rule check_complete:
    input:
        decoded=[decoded_file(group) for group in PLAN.used_groups()],
        calendar=calendar_file(),
    output:
        marker=str(LAYOUT.complete_marker),
    log:
        log_file("check_complete", "complete"),
    # before the builds waiting for a core: no merge starts until it passed
    priority: 20
    localrule: True
    conda:
        "../envs/backfill.yaml"
    params:
        # what the check depends on besides the decoded records (a rerun trigger)
        roots=list(ROOTS),
        span=f"{PLAN.cfg.start}..{PLAN.cfg.end}",
        gaps={
            root: [str(d) for d in PLAN.cfg.for_root(root).expected_gaps]
            for root in ROOTS
        },
    script:
        "../scripts/check_complete.py"


rule merge_chunks:
    input:
        bars=batch_file("{root}", "{batch}", "bars"),
        selection=batch_file("{root}", "{batch}", "selection"),
        terms=batch_file("{root}", "{batch}", "terms"),
        manifest=batch_file("{root}", "{batch}", "manifest"),
        summaries=batch_summaries,
        # waits for the check; a newer check (another end date) reruns no merge
        complete=ancient(str(LAYOUT.complete_marker)),
        calendar=calendar_file(),
    output:
        marker=merge_marker("{root}", "{batch}"),
    log:
        log_file("merge_chunks", "{batch}", "{root}"),
    wildcard_constraints:
        batch=r"batch_\d{8}_\d{8}",
        root="|".join(ROOTS),
    # a built batch is committed before another build starts (the writer is the tail)
    priority: 10
    localrule: True
    conda:
        "../envs/backfill.yaml"
    resources:
        db_writer=1,
    script:
        "../scripts/merge_chunks.py"


rule merge_report:
    input:
        markers=merge_markers(),
        # a plain input here (ancient for merge_chunks): when check_complete reruns,
        # Snakemake 9.27 decides the jobs after an ancient-only edge through this one
        complete=str(LAYOUT.complete_marker),
    output:
        reports=run_records("merge"),
    log:
        # the run's merge log, where `dbn-backfill status` reads why a merge stopped
        log_file("merge_chunks", RUN_ID),
    localrule: True
    conda:
        "../envs/backfill.yaml"
    params:
        roots=list(ROOTS),
        run_id=RUN_ID,
    script:
        "../scripts/merge_report.py"

# Database -> gates: contract section 9 on the whole table, for every root of the run;
# the run fails if one fails.


rule spot_check:
    # the DBN side of the spot-check: needs only the files and the run's seed, so it
    # runs beside the decode, build and merge jobs instead of after them
    input:
        stamps=source_stamps(),
        calendar=calendar_file(),
    output:
        counts=run_records("spot_check"),
    log:
        log_file("spot_check", RUN_ID),
    localrule: True
    conda:
        "../envs/backfill.yaml"
    params:
        cfg=PLAN.cfg,
        sources=root_sources(),
        run_id=RUN_ID,
        # per-file counts, by content (sha256): a file is read in whole once
        cache=str(LAYOUT.spot_counts_dir),
    script:
        "../scripts/spot_check.py"


rule check_gates:
    input:
        merge=run_records("merge"),
        spot=run_records("spot_check"),
        calendar=calendar_file(),
    output:
        reports=run_records("gates"),
    log:
        log_file("check_gates", RUN_ID),
        # the results again, per root: Snakemake removes a failed job's outputs but
        # keeps its logs
        *GATES_RESULTS,
    localrule: True
    conda:
        "../envs/backfill.yaml"
    params:
        cfg=PLAN.cfg,
        sources=root_sources(),
        run_id=RUN_ID,
        results=GATES_RESULTS,
    script:
        "../scripts/check_gates.py"

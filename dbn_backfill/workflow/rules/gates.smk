# Database -> gates: contract section 9 on the whole table; the run fails if one fails.


rule spot_check:
    # the DBN side of the spot-check: needs only the files and the run's seed, so it
    # runs beside the decode, build and merge jobs instead of after them
    input:
        stamps=source_stamps(),
        calendar=calendar_file(),
    output:
        counts=spot_counts(),
    log:
        log_file("spot_check", RUN_ID),
    localrule: True
    conda:
        "../envs/backfill.yaml"
    params:
        cfg=PLAN.cfg,
        sources=list(PLAN.sources),
        run_id=PLAN.run_id,
        # per-file counts, by content (sha256): a file is read in whole once
        cache=str(LAYOUT.spot_counts_dir),
    script:
        "../scripts/spot_check.py"


rule check_gates:
    input:
        merge=merge_report(),
        spot=spot_counts(),
        calendar=calendar_file(),
    output:
        report=gates_report(),
    log:
        log_file("check_gates", RUN_ID),
        # the results again: Snakemake removes a failed job's outputs but keeps its logs
        results=str(LAYOUT.gates_results_log(SYMBOL, RUN_ID)),
    localrule: True
    conda:
        "../envs/backfill.yaml"
    params:
        cfg=PLAN.cfg,
        sources=list(PLAN.sources),
        run_id=PLAN.run_id,
    script:
        "../scripts/check_gates.py"

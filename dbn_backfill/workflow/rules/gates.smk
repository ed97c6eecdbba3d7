# Database -> gates: contract section 9 on the whole table; the run fails if one fails.


rule check_gates:
    input:
        merge=merge_report(),
        calendar=calendar_file(),
    output:
        report=gates_report(),
    log:
        f"{LOGS}/check_gates/{PLAN.run_id}.log",
        # the results again: Snakemake removes a failed job's outputs but keeps its logs
        results=f"{LOGS}/check_gates/{PLAN.run_id}.json",
    conda:
        "../envs/backfill.yaml"
    params:
        cfg=PLAN.cfg,
        sources=list(PLAN.sources),
        run_id=PLAN.run_id,
    script:
        "../scripts/check_gates.py"

# Database -> gates: contract section 9 on the whole table; the run fails if one fails.


rule check_gates:
    input:
        merge=merge_report(),
        calendar=calendar_file(),
    output:
        report=gates_report(),
    log:
        f"{LOGS}/check_gates/{PLAN.run_id}.log",
    conda:
        "../envs/backfill.yaml"
    params:
        db=str(PLAN.cfg.db),
        symbol=PLAN.cfg.symbol,
        start=str(PLAN.cfg.start),
        end=str(PLAN.cfg.end),
        expected_gaps=[str(d) for d in PLAN.cfg.expected_gaps],
        sources=[str(h.path) for h in PLAN.headers],
        spot_check_days=PLAN.cfg.spot_check_days,
        run_id=PLAN.run_id,
    script:
        "../scripts/check_gates.py"

# The CME business days, computed once so jobs need not import the calendar library.


rule build_calendar:
    output:
        calendar_file(),
    log:
        f"{LOGS}/build_calendar.log",
    conda:
        "../envs/backfill.yaml"
    params:
        # only what the step needs: a changed param re-runs the job (rerun trigger)
        calendar=PLAN.cfg.calendar,
        session_tz=PLAN.cfg.session_tz,
        session_roll=PLAN.cfg.session_roll,
    script:
        "../scripts/build_calendar.py"

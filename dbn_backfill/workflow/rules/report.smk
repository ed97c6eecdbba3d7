# Database -> report: the HTML report of dbn_backfill.views.report, its charts and the gates,
# flagged for Snakemake's own report. Not part of a plain run (it costs seconds): ask for
# it by name, `snakemake ... backfill_report`, then `snakemake --report report.html ...
# backfill_report`. Outputs have fixed names (the latest run's), so --report finds them.


rule backfill_report:
    input:
        gates=gates_report(),
        calendar=calendar_file(),
    output:
        html=report(
            report_file("html"),
            caption="../report/report.rst",
            category="Backfill report",
        ),
        rolls=report(
            report_file("rolls"),
            caption="../report/rolls.rst",
            category="Charts",
        ),
        rolls_detail=report(
            report_file("rolls_detail"),
            caption="../report/rolls_detail.rst",
            category="Charts",
        ),
        bars=report(
            report_file("bars_per_day"),
            caption="../report/bars_per_day.rst",
            category="Charts",
        ),
        gates=report(
            report_file("gates"),
            caption="../report/gates.rst",
            category="Gates",
        ),
    log:
        log_file("backfill_report", RUN_ID),
    localrule: True
    conda:
        "../envs/backfill.yaml"
    params:
        db=str(PLAN.cfg.db),
        symbol=PLAN.cfg.symbol,
        checkpoint=str(PLAN.cfg.checkpoint),
    script:
        "../scripts/write_report.py"

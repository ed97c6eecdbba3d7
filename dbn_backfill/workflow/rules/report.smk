# Database -> report: the HTML report of dbn_backfill.views.report, its charts and the gates,
# per root, flagged for Snakemake's own report. Not part of a plain run (it costs seconds):
# ask for it by name, `snakemake ... backfill_report`, then `snakemake --report
# report.html ... backfill_report`. Outputs have fixed names (the latest run's), so
# --report finds them.


rule backfill_report:
    input:
        [report_file(root, "html") for root in ROOTS],
    localrule: True


rule root_report:
    input:
        gates=lambda wildcards: run_record(wildcards.root, "gates"),
        calendar=calendar_file(),
    output:
        html=report(
            report_file("{root}", "html"),
            caption="../report/report.rst",
            category="Backfill report",
        ),
        rolls=report(
            report_file("{root}", "rolls"),
            caption="../report/rolls.rst",
            category="Charts",
        ),
        rolls_detail=report(
            report_file("{root}", "rolls_detail"),
            caption="../report/rolls_detail.rst",
            category="Charts",
        ),
        bars=report(
            report_file("{root}", "bars_per_day"),
            caption="../report/bars_per_day.rst",
            category="Charts",
        ),
        gates=report(
            report_file("{root}", "gates"),
            caption="../report/gates.rst",
            category="Gates",
        ),
    log:
        log_file("backfill_report", RUN_ID, "{root}"),
    wildcard_constraints:
        root="|".join(ROOTS),
    localrule: True
    conda:
        "../envs/backfill.yaml"
    params:
        db=str(PLAN.cfg.db),
        symbol=lambda wildcards: wildcards.root,
        checkpoint=str(LAYOUT.checkpoint_root),
    script:
        "../scripts/write_report.py"

# Source -> decoded: each group of DBN files (by the UTC quarter its header starts in)
# becomes one parquet of the outright bars of every root its files hold, with raw
# symbol, root and trade date: decoded once, whatever the number of roots.


rule decode_sources:
    input:
        stamp=group_stamp_file,
        calendar=calendar_file(),
    output:
        parquet=decoded_file("{group}"),
        summary=decoded_file("{group}", "json"),
    log:
        log_file("decode_sources", "{group}"),
    wildcard_constraints:
        group=r"\d{4}Q[1-4]",
    group:
        "decode_sources"
    conda:
        "../envs/backfill.yaml"
    params:
        dbn=lambda wildcards: PLAN.groups[wildcards.group],
        # only what the step needs: a changed param re-runs the job (rerun trigger)
        dataset=PLAN.cfg.dataset,
    script:
        "../scripts/decode_sources.py"

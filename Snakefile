# Backfill Databento DBN ohlcv-1m files into DuckDB bars_1m (see CONTRACT.md).
# Data flow: sources -> decoded -> selection + chunk bars -> database -> gates.


configfile: f"{workflow.basedir}/config.yaml"


include: "rules/common.smk"
include: "rules/calendar.smk"
include: "rules/decode.smk"
include: "rules/chunks.smk"
include: "rules/merge.smk"
include: "rules/gates.smk"


rule all:
    default_target: True
    input:
        gates_report(),

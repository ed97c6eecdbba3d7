# Decoded -> selection + chunk bars: one job per batch of consecutive chunks (grid-
# anchored, so interior batches keep their names as start/end move). Each job lists
# every chunk parquet it writes, so `snakemake -n` shows every chunk.

for batch in PLAN.batches:

    rule:
        name:
            f"build_chunks_{batch.batch_id}"
        input:
            decoded=group_outputs(batch),
            calendar=calendar_file(),
        output:
            chunks=chunk_files(batch),
            selection=f"{ROOT}/batches/{batch.batch_id}.selection.parquet",
            manifest=f"{ROOT}/batches/{batch.batch_id}.manifest.json",
        log:
            f"{LOGS}/build_chunks/{batch.batch_id}.log",
        group:
            "build_chunks"
        conda:
            "../envs/backfill.yaml"
        params:
            symbol=PLAN.cfg.symbol,
            chunks=[(str(c.first), str(c.last)) for c in batch.chunks],
        script:
            "../scripts/build_chunks.py"

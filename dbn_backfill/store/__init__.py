"""Stage 3, store: the table definition, DuckDB access, checkpoints and the single-writer merge."""

"""Read-only views of a backfilled database: ``show`` (and the report and status)."""

"""Backfill Databento DBN ohlcv-1m files into a DuckDB ``bars_1m`` table.

The workflow (``workflow/``: Snakefile, rules, scripts, schemas, envs, profiles,
report) ships inside this package and stays thin; the logic lives here, one
subpackage per stage: :mod:`.sources` (find DBN files, read headers, decode),
:mod:`.chunks` (chunk grid, row rules, front contract, chunk bars), :mod:`.store`
(table definition, checkpoints, the single-writer merge), :mod:`.gates` (honesty
gates), plus :mod:`.runtime` (planning and step plumbing), :mod:`.views`
(read-only views) and :mod:`.sampledata` (the sample-data generator).
"""

__version__ = "0.1.0"

"""Backfill Databento DBN ohlcv-1m files into a DuckDB ``bars_1m`` table.

The workflow (``Snakefile`` and ``rules/``) is thin; the logic lives here, one
module per stage: :mod:`.sources` (find DBN files, read headers), :mod:`.decode`
(stream records into columnar intermediates), :mod:`.build` (validate, select
the front contract, write chunk bars), :mod:`.merge` (the single writer),
:mod:`.gates` (honesty gates).
"""

__version__ = "0.1.0"

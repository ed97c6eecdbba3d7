"""Stream DBN records into a columnar intermediate (the ``decode_sources`` rule).

A decode group (the files whose header starts in one UTC quarter) becomes one
parquet of the outright bars of every root its files hold, each with its raw symbol,
root and trade date, plus a JSON summary of every file (size, sha256, what was kept
or ignored). It is decoded once, whatever the number of roots a run holds: each
root's chunks then read their own rows of it.
Records are read in fixed-size blocks; nothing holds a whole history.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from databento.common.symbology import InstrumentMap

from dbn_backfill.artifacts import DecodeSummary, FileSummary
from dbn_backfill.errors import SourceError
from dbn_backfill.runtime.faults import kill_point
from dbn_backfill.runtime.progress import Progress
from dbn_backfill.sources.dbn_files import UNDEF_TIMESTAMP, DbnReader, check_header, read_header
from dbn_backfill.symbols import root_of
from dbn_backfill.tradedate import NS_PER_DAY, Calendar

log = logging.getLogger(__name__)

RTYPE_OHLCV_1M = 33

DECODED_SCHEMA = pa.schema(
    [
        ("source", pa.dictionary(pa.int32(), pa.string())),
        ("instrument_id", pa.uint32()),
        ("ts_event", pa.int64()),
        ("open", pa.int64()),
        ("high", pa.int64()),
        ("low", pa.int64()),
        ("close", pa.int64()),
        ("volume", pa.uint64()),
        ("raw_symbol", pa.dictionary(pa.int32(), pa.string())),
        ("trade_date", pa.date32()),
        ("root", pa.dictionary(pa.int32(), pa.string())),
    ]
)


def decode_group(
    paths: list[Path],
    group: str,
    out_parquet: Path,
    out_summary: Path,
    *,
    dataset: str,
    calendar: Calendar,
) -> DecodeSummary:
    """Decode every file of a group into ``out_parquet`` and ``out_summary``.

    Keeps the outright records of every root (``root`` column), and records whose
    instrument has no mapping, flagged by a null ``raw_symbol`` and ``root``: whether
    that is an error depends on the run's date range and roots, checked when chunks
    are built), with their trade date.

    Raises:
        SourceError: a file is not DBN, truncated, of another schema, dataset or
            stype_out, holds a record of another rtype, or a kept record lies outside
            the time range its header declares.
    """
    summary = DecodeSummary(group=group)
    out_parquet.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_parquet.with_suffix(".parquet.tmp")
    with pq.ParquetWriter(
        tmp,
        DECODED_SCHEMA,
        compression="lz4",
        use_dictionary=["source", "raw_symbol", "root"],
        write_statistics=["trade_date"],
    ) as parquet:
        writer = _PipelinedWriter(parquet)
        progress = Progress(f"decode {group}", sum(Path(p).stat().st_size for p in paths), "bytes")
        done = 0
        try:
            for path in paths:
                summary.files.append(
                    _decode_file(Path(path), writer, dataset, calendar, progress, done)
                )
                done += summary.files[-1].size
        finally:
            writer.close()
        records = sum(f.records for f in summary.files)
        progress.finish(done, f"{records:,} records of {len(paths)} files")
    tmp.replace(out_parquet)
    summary.write(out_summary)
    return summary


class _PipelinedWriter:
    """Writes each block's table while the next block is decompressed and decoded: one
    write in flight, in one background thread (pyarrow encodes without the GIL, and
    zstandard decompresses without it). A write's error surfaces at the next write or
    at :meth:`close`, which waits for the last one."""

    def __init__(self, writer: pq.ParquetWriter) -> None:
        self._writer = writer
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode-writer")
        self._pending: Future[None] | None = None

    def write_table(self, table: pa.Table) -> None:
        self._wait()
        self._pending = self._pool.submit(self._writer.write_table, table)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self._wait()
        finally:
            self._pool.shutdown(wait=True)


def _decode_file(
    path: Path,
    writer: _PipelinedWriter,
    dataset: str,
    calendar: Calendar,
    progress: Progress,
    done_before: int,
) -> FileSummary:
    check_header(read_header(path), dataset)
    with DbnReader(path) as reader:
        metadata = reader.metadata()
        imap = InstrumentMap()
        imap.insert_metadata(metadata)
        start_ns = int(metadata.start)
        end_ns = None if metadata.end in (None, UNDEF_TIMESTAMP) else int(metadata.end)
        summary = FileSummary(path=str(path), size=reader.size, sha256="", version=reader.version)
        first_td: np.datetime64 | None = None
        last_td: np.datetime64 | None = None
        for offset, block in reader.blocks():
            kept, counts = _keep_outrights(path, offset, block, imap)
            summary.records += len(block)
            summary.outright += counts["outright"]
            summary.spread += counts["spread"]
            summary.other += counts["other"]
            summary.unresolved += counts["unresolved"]
            progress.update(
                done_before + reader.bytes_read, f"{summary.records:,} records of {path.name}"
            )
            if kept is None:
                continue
            records, symbols, roots = kept
            _check_declared_range(path, records, start_ns, end_ns)
            try:
                trade_dates = calendar.trade_dates(records["ts_event"].astype("int64"))
            except ValueError as exc:
                raise SourceError(f"{path}: {exc}") from exc
            lo, hi = trade_dates.min(), trade_dates.max()
            first_td = lo if first_td is None else min(first_td, lo)
            last_td = hi if last_td is None else max(last_td, hi)
            writer.write_table(_to_table(str(path), records, symbols, roots, trade_dates))
            kill_point("decode")
        summary.sha256 = reader.sha256
    summary.first_trade_date = None if first_td is None else str(first_td)
    summary.last_trade_date = None if last_td is None else str(last_td)
    log.info(
        "%s: %d records (DBN v%d): %d outrights kept, %d unresolved kept, "
        "%d spreads and %d other instruments ignored; trade dates %s..%s",
        path,
        summary.records,
        summary.version,
        summary.outright,
        summary.unresolved,
        summary.spread,
        summary.other,
        summary.first_trade_date,
        summary.last_trade_date,
    )
    return summary


def _keep_outrights(
    path: Path, offset: int, block: np.ndarray, imap: InstrumentMap
) -> tuple[tuple[np.ndarray, pa.DictionaryArray, pa.DictionaryArray] | None, dict[str, int]]:
    """The block's outright records (any root) and unresolved ones, with their raw
    symbols and roots as dictionary arrays, and counts of what was kept or ignored.

    Raises:
        SourceError: a record is not OHLCV_1M.
    """
    rtype = block["rtype"]
    bad = np.flatnonzero(rtype != RTYPE_OHLCV_1M)
    if len(bad):
        i = int(bad[0])
        raise SourceError(
            f"{path}: record {offset + i} has rtype {int(rtype[i])}, expected "
            f"{RTYPE_OHLCV_1M} (OHLCV_1M); {len(bad)} such records in this block"
        )
    codes, uniq_symbols = resolve_codes(imap, block["instrument_id"], block["ts_event"])
    kinds = ("outright", "spread", "other", "unresolved")
    kind = np.empty(len(uniq_symbols), dtype="int8")
    uniq_roots: list[str | None] = []
    for i, sym in enumerate(uniq_symbols):
        root = root_of(sym) if sym is not None else None
        uniq_roots.append(root)
        if sym is None:
            kind[i] = 3
        elif root is not None:
            kind[i] = 0
        elif "-" in sym:
            kind[i] = 1
        else:
            kind[i] = 2
    row_kind = kind[codes]
    tally = np.bincount(row_kind, minlength=4)
    counts = {name: int(tally[i]) for i, name in enumerate(kinds)}
    keep = (row_kind == 0) | (row_kind == 3)
    if not keep.any():
        return None, counts
    kept_codes = codes[keep]
    symbols = pa.DictionaryArray.from_arrays(
        # unresolved: a null index (a null symbol), never a null inside the dictionary
        pa.array(kept_codes.astype("int32"), mask=kind[kept_codes] == 3),
        pa.array([s if s is not None else "" for s in uniq_symbols], pa.string()),
    )
    names = sorted({r for r in uniq_roots if r is not None})
    index = {r: i for i, r in enumerate(names)}
    root_codes = np.array([index.get(r, -1) if r else -1 for r in uniq_roots], dtype="int32")
    kept_roots = root_codes[kept_codes]
    roots = pa.DictionaryArray.from_arrays(
        pa.array(kept_roots, mask=kept_roots < 0), pa.array(names or [""], pa.string())
    )
    return (block[keep], symbols, roots), counts


def resolve_codes(
    imap: InstrumentMap, instrument_id: np.ndarray, ts_event: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Raw symbols of records through the file's mappings, on the UTC date of ``ts_event``.

    Resolves each distinct (instrument, UTC date) pair once with
    ``InstrumentMap.resolve_many``.

    Returns:
        ``(codes, symbols)``: record ``i`` has symbol ``symbols[codes[i]]`` (None when
        the instrument has no mapping on that date).
    """
    ids = np.asarray(instrument_id).astype("uint64")
    days = np.asarray(ts_event).astype("int64") // NS_PER_DAY
    keys = (ids << np.uint64(32)) | days.astype("uint64")
    codes, uniques = pd.factorize(keys)
    uniq_ids = (uniques >> np.uint64(32)).astype("uint64")
    uniq_days = (uniques & np.uint64(0xFFFFFFFF)).astype("int64").astype("datetime64[D]")
    return codes, imap.resolve_many(uniq_ids, uniq_days)


def _check_declared_range(
    path: Path, records: np.ndarray, start_ns: int, end_ns: int | None
) -> None:
    ts = records["ts_event"].astype("int64")
    outside = ts < start_ns
    if end_ns is not None:
        outside |= ts >= end_ns
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise SourceError(
            f"{path}: record instrument_id={int(records['instrument_id'][i])} "
            f"ts_event={int(ts[i])} ({pd.Timestamp(int(ts[i]), tz='UTC')}) lies outside "
            f"the file's declared range [{start_ns}, {end_ns}): the header cannot be trusted"
        )


def _to_table(
    path: str,
    records: np.ndarray,
    symbols: pa.DictionaryArray,
    roots: pa.DictionaryArray,
    trade_dates: np.ndarray,
) -> pa.Table:
    n = len(records)
    source = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype="int32")), pa.array([path], pa.string())
    )
    return pa.Table.from_arrays(
        [
            source,
            pa.array(records["instrument_id"].astype("uint32")),
            pa.array(records["ts_event"].astype("int64")),
            pa.array(records["open"].astype("int64")),
            pa.array(records["high"].astype("int64")),
            pa.array(records["low"].astype("int64")),
            pa.array(records["close"].astype("int64")),
            pa.array(records["volume"].astype("uint64")),
            symbols,
            pa.array(trade_dates.astype("datetime64[D]"), pa.date32()),
            roots,
        ],
        schema=DECODED_SCHEMA,
    )

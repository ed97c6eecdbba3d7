"""Write real DBN ``ohlcv`` files with Databento's own metadata encoder.

The metadata header is encoded by :class:`databento_dbn.Metadata` (DBN v3, the
version the installed ``databento_dbn`` encodes by default); the records are
appended as raw little-endian bytes built vectorized from a numpy structured
array with exactly the ``OhlcvMsg`` layout::

    RecordHeader: length u1 (in 4-byte words: 14 -> 56 bytes), rtype u1,
                  publisher_id u2, instrument_id u4, ts_event u8
    open i8, high i8, low i8, close i8 (fixed point, 1e-9), volume u8

``.zst`` files are one zstd frame (with content checksum), like Databento's
downloads. Files are written to a temporary name in the target directory and
renamed into place, so readers never see a half-written file.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import databento_dbn
import numpy as np
import zstandard

__all__ = ["OHLCV_DTYPE", "SymbolInterval", "write_ohlcv_dbn"]

#: The DBN ``OhlcvMsg`` record as a numpy dtype (56 bytes, little endian, no padding).
OHLCV_DTYPE = np.dtype(
    [
        ("length", "u1"),
        ("rtype", "u1"),
        ("publisher_id", "<u2"),
        ("instrument_id", "<u4"),
        ("ts_event", "<u8"),
        ("open", "<i8"),
        ("high", "<i8"),
        ("low", "<i8"),
        ("close", "<i8"),
        ("volume", "<u8"),
    ]
)
assert OHLCV_DTYPE.itemsize == 56

#: ``RecordHeader.length`` of an ``OhlcvMsg``: the record size in 4-byte words.
OHLCV_LENGTH_WORDS = OHLCV_DTYPE.itemsize // 4

_ZSTD_LEVEL = 3
_WRITE_CHUNK = 1 << 20  # records per write call (56 MiB)


@dataclass(frozen=True)
class SymbolInterval:
    """One metadata symbol mapping: ``raw_symbol`` is ``instrument_id`` on UTC dates
    ``[start_date, end_date)``.

    Written into the DBN metadata as Databento does for ``stype_out=instrument_id``:
    the mapping key is the raw symbol, the interval's ``symbol`` is
    ``str(instrument_id)``, so :meth:`databento.common.symbology.InstrumentMap.resolve`
    maps ``(instrument_id, date)`` back to ``raw_symbol``.
    """

    raw_symbol: str  # e.g. "MGCG4"
    instrument_id: int
    start_date: dt.date  # inclusive (UTC date)
    end_date: dt.date  # exclusive


@dataclass(frozen=True)
class _MappingInterval:
    """Satisfies the ``databento_dbn.MappingInterval`` protocol (attributes, not keys)."""

    start_date: dt.date
    end_date: dt.date
    symbol: str


@dataclass(frozen=True)
class _SymbolMapping:
    """Satisfies the ``databento_dbn.SymbolMapping`` protocol."""

    raw_symbol: str
    intervals: list[_MappingInterval]


def _group_mappings(mappings: Sequence[SymbolInterval]) -> list[_SymbolMapping]:
    """One entry per raw symbol (the decoded metadata is a dict keyed by raw symbol),
    intervals sorted by start date; raw symbols sorted for a deterministic header."""
    by_symbol: dict[str, list[_MappingInterval]] = {}
    for m in mappings:
        if m.end_date <= m.start_date:
            raise ValueError(f"empty mapping interval {m!r}")
        if not 0 <= int(m.instrument_id) <= 0xFFFFFFFF:
            raise ValueError(f"instrument_id out of u32 range in {m!r}")
        by_symbol.setdefault(m.raw_symbol, []).append(
            _MappingInterval(m.start_date, m.end_date, str(int(m.instrument_id)))
        )
    out = []
    for raw_symbol in sorted(by_symbol):
        intervals = sorted(by_symbol[raw_symbol], key=lambda i: (i.start_date, i.end_date))
        for a, b in zip(intervals, intervals[1:], strict=False):
            if b.start_date < a.end_date:
                raise ValueError(f"overlapping mapping intervals for {raw_symbol}: {a} {b}")
        out.append(_SymbolMapping(raw_symbol, intervals))
    return out


def _encode_metadata(
    *,
    mappings: Sequence[SymbolInterval],
    start_ns: int,
    end_ns: int | None,
    dataset: str,
    schema: str,
    stype_in: str,
    symbols: Sequence[str],
) -> bytes:
    """The DBN metadata header (``b"DBN" + version + length + body``)."""
    metadata = databento_dbn.Metadata(
        dataset=dataset,
        start=int(start_ns),
        stype_in=databento_dbn.SType(stype_in),
        stype_out=databento_dbn.SType("instrument_id"),
        schema=databento_dbn.Schema(schema),
        symbols=list(symbols),
        partial=[],
        not_found=[],
        mappings=_group_mappings(mappings),  # type: ignore[arg-type]
        end=None if end_ns is None else int(end_ns),
        ts_out=False,
    )
    return bytes(metadata.encode())


def _records(
    *,
    instrument_id: np.ndarray,
    ts_event: np.ndarray,
    open: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    rtype: int,
    publisher_id: int,
) -> np.ndarray:
    """Columns -> an ``OHLCV_DTYPE`` structured array (validates lengths)."""
    n = len(ts_event)
    cols = {
        "instrument_id": instrument_id,
        "open": open,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
    }
    for name, col in cols.items():
        if len(col) != n:
            raise ValueError(f"{name} has {len(col)} values, ts_event has {n}")
    rec = np.empty(n, dtype=OHLCV_DTYPE)
    rec["length"] = OHLCV_LENGTH_WORDS
    rec["rtype"] = rtype
    rec["publisher_id"] = publisher_id
    rec["instrument_id"] = np.asarray(instrument_id).astype("<u4", copy=False)
    rec["ts_event"] = np.asarray(ts_event).astype("<i8", copy=False).view("<u8")
    for name in ("open", "high", "low", "close"):
        rec[name] = np.asarray(cols[name]).astype("<i8", copy=False)
    rec["volume"] = np.asarray(volume).astype("<u8", copy=False)
    return rec


def _write_dbn_records(
    path: Path,
    records: Iterable[np.ndarray],
    *,
    mappings: Sequence[SymbolInterval],
    start_ns: int,
    end_ns: int | None,
    dataset: str = "GLBX.MDP3",
    schema: str = "ohlcv-1m",
    stype_in: str = "parent",
    symbols: Sequence[str] = ("MGC.FUT",),
    compress: bool | None = None,
) -> None:
    """Write the metadata header and then each ``OHLCV_DTYPE`` array of ``records``
    in order, atomically (temporary file in the same directory, then rename)."""
    path = Path(path)
    if compress is None:
        compress = path.name.endswith(".zst")
    header = _encode_metadata(
        mappings=mappings,
        start_ns=start_ns,
        end_ns=end_ns,
        dataset=dataset,
        schema=schema,
        stype_in=stype_in,
        symbols=symbols,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as raw:
            if compress:
                cctx = zstandard.ZstdCompressor(level=_ZSTD_LEVEL, write_checksum=True)
                with cctx.stream_writer(raw, closefd=False) as out:
                    _write_all(out, header, records)
            else:
                _write_all(raw, header, records)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _Writable(Protocol):
    def write(self, data: bytes | memoryview, /) -> int: ...


def _write_all(out: _Writable, header: bytes, records: Iterable[np.ndarray]) -> None:
    """Header, then the raw bytes of each record array, in bounded slices."""
    write = out.write
    write(header)
    for rec in records:
        if rec.dtype != OHLCV_DTYPE:
            raise TypeError(f"records must have dtype OHLCV_DTYPE, got {rec.dtype}")
        rec = np.ascontiguousarray(rec)
        for i in range(0, len(rec), _WRITE_CHUNK):
            write(rec[i : i + _WRITE_CHUNK].data.cast("B"))


def write_ohlcv_dbn(
    path: Path,
    *,
    instrument_id: np.ndarray,
    ts_event: np.ndarray,
    open: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    mappings: Sequence[SymbolInterval],
    start_ns: int,
    end_ns: int | None,
    dataset: str = "GLBX.MDP3",
    schema: str = "ohlcv-1m",
    rtype: int = 33,
    stype_in: str = "parent",
    symbols: Sequence[str] = ("MGC.FUT",),
    compress: bool | None = None,
    publisher_id: int = 1,
) -> None:
    """Write a DBN file of OHLCV records, readable by ``databento.DBNStore``.

    Parameters
    ----------
    path
        Target file; written to a temporary sibling and renamed into place.
    instrument_id, ts_event, open, high, low, close, volume
        Equal-length columns: ``uint32`` ids, ``int64``/``uint64`` UTC nanoseconds,
        ``int64`` fixed-point prices (1e-9 units), ``uint64`` volumes. Records are
        written in the order given (callers sort by ``(ts_event, instrument_id)``).
    mappings
        Metadata symbol mappings (raw symbol -> instrument id over UTC date ranges).
    start_ns, end_ns
        Metadata ``start`` / exclusive ``end`` in UTC nanoseconds (``None``: undefined).
    dataset, schema, stype_in, symbols
        Metadata fields (``schema`` only goes into the metadata; ``stype_out`` is
        always ``instrument_id``).
    rtype
        Record type written into every record header (33 = ``OHLCV_1M``); other
        values produce deliberately inconsistent files for tests.
    compress
        zstd-compress the whole file; ``None`` means iff ``path`` ends with ``.zst``.
    publisher_id
        Written into every record header (1 = GLBX.MDP3 Globex).
    """
    rec = _records(
        instrument_id=instrument_id,
        ts_event=ts_event,
        open=open,
        high=high,
        low=low,
        close=close,
        volume=volume,
        rtype=rtype,
        publisher_id=publisher_id,
    )
    _write_dbn_records(
        path,
        [rec],
        mappings=mappings,
        start_ns=start_ns,
        end_ns=end_ns,
        dataset=dataset,
        schema=schema,
        stype_in=stype_in,
        symbols=symbols,
        compress=compress,
    )

"""Find DBN sources and read their headers (contract section 1), without reading bars.

The header (DBN metadata) says which schema, dataset and time range a file holds;
the workflow plans from it: which decode group a file belongs to and which chunk
batches it can touch. Reading it costs one small read per file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import databento_dbn
import numpy as np
import zstandard

from dbn_backfill.errors import SourceError
from dbn_backfill.symbols import requested_root, root_of

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DBN_MAGIC = b"DBN"
UNDEF_TIMESTAMP = 2**64 - 1
OHLCV_DTYPE = np.dtype(databento_dbn.OHLCVMsg._dtypes)
BLOCK_RECORDS = 1 << 20
READ_BYTES = 1 << 22


@dataclass(frozen=True)
class SourceHeader:
    """What a DBN file's metadata says, plus where it is.

    Attributes:
        path: the file.
        version: DBN version as written in the file (1, 2 or 3).
        dataset, schema, stype_in, stype_out: metadata fields as strings (``stype_in``
            is ``"none"`` when the header leaves it undefined, as for mixed symbology).
        start_ns: first nanosecond the file covers (UTC).
        end_ns: exclusive end, or None when the header leaves it undefined.
        symbols: the symbols the file was requested for (``MGC.FUT``, ``MGCZ4``).
        roots: the roots the header names: those of its requested symbols and of the
            outrights its symbol mappings list (a file holding no mapping of a root
            holds no record of it).
    """

    path: Path
    version: int
    dataset: str
    schema: str
    stype_in: str
    stype_out: str
    start_ns: int
    end_ns: int | None
    symbols: tuple[str, ...] = ()
    roots: tuple[str, ...] = ()

    def names(self, root: str) -> bool:
        """Whether the header names root ``root`` (see :attr:`roots`)."""
        return root in self.roots

    def to_json(self) -> dict[str, Any]:
        """The fields (without ``path``) as JSON values, for the source index."""
        fields = {k: v for k, v in vars(self).items() if k != "path"}
        fields["symbols"], fields["roots"] = list(self.symbols), list(self.roots)
        return fields

    @classmethod
    def from_json(cls, path: Path, fields: dict[str, Any]) -> SourceHeader:
        """The header :meth:`to_json` wrote for ``path``."""
        return cls(
            path=path,
            **{
                **fields,
                "symbols": tuple(fields.get("symbols", ())),
                "roots": tuple(fields.get("roots", ())),
            },
        )

    @property
    def start_date(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.start_ns / 1e9, tz=dt.UTC).date()

    @property
    def group(self) -> str:
        """Decode group: the UTC quarter the file starts in (``YYYYQn``).

        Grouping daily files by quarter keeps process start-up (about a second per
        job) off the hot path, and stays stable as new files arrive: tomorrow's file
        re-decodes one quarter, not the history.
        """
        day = self.start_date
        return f"{day.year}Q{(day.month - 1) // 3 + 1}"


def find_sources(dbn: Path) -> list[Path]:
    """The DBN files of ``dbn``: the file itself, or ``*.dbn``/``*.dbn.zst`` below a folder.

    Files are returned in sorted path order; other files are ignored.

    Raises:
        SourceError: the path does not exist, or a folder holds no DBN file.
    """
    path = Path(dbn)
    if not path.exists():
        raise SourceError(f"dbn path {path} does not exist")
    if path.is_file():
        return [path.resolve()]
    found = sorted(
        p.resolve()
        for p in path.rglob("*")
        if p.is_file() and (p.name.endswith(".dbn") or p.name.endswith(".dbn.zst"))
    )
    if not found:
        raise SourceError(f"dbn folder {path} holds no *.dbn or *.dbn.zst file")
    return found


class DbnReader:
    """Decompressing, hashing reader of one DBN file.

    Yields the metadata first (:meth:`metadata`), then blocks of OHLCV records
    (:meth:`blocks`) as numpy views on the decompressed bytes (one copy per byte).
    A truncated zstd frame or a partial record is an error, never a warning: a
    half-downloaded file must stop the run.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.size = self.path.stat().st_size
        self._handle = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        self._sha = hashlib.sha256()
        first = self._handle.read(4)
        self._handle.seek(0)
        self._zstd = first == ZSTD_MAGIC
        self._dobj: Any = zstandard.ZstdDecompressor().decompressobj() if self._zstd else None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._eof = False
        self.version = 0

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> DbnReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def bytes_read(self) -> int:
        """Bytes of the file (compressed, as stored) read so far."""
        return self._handle.tell()

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def _fill(self, need: int) -> None:
        """Decompress until at least ``need`` bytes are pending (or the file ends)."""
        while self._pending_size < need and not self._eof:
            raw = self._handle.read(min(READ_BYTES, max(1 << 16, need - self._pending_size)))
            if not raw:
                self._eof = True
                if self._zstd and not self._dobj.eof:
                    raise SourceError(f"{self.path}: truncated zstd stream (incomplete frame)")
                break
            self._sha.update(raw)
            if not self._zstd:
                self._push(raw)
                continue
            while raw:
                if self._dobj.eof:
                    self._dobj = zstandard.ZstdDecompressor().decompressobj()
                self._push(self._dobj.decompress(raw))
                raw = self._dobj.unused_data if self._dobj.eof else b""

    def _push(self, data: bytes) -> None:
        if data:
            self._pending.append(data)
            self._pending_size += len(data)

    def _take(self, limit: int, multiple: int = 1) -> memoryview:
        """Up to ``limit`` pending bytes, a whole number of ``multiple``; the rest stays."""
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        take = min(limit, (len(data) // multiple) * multiple)
        view = memoryview(data)
        rest = bytes(view[take:]) if take < len(data) else b""
        self._pending = [rest] if rest else []
        self._pending_size = len(rest)
        return view[:take]

    def metadata(self) -> databento_dbn.Metadata:
        """Decode the DBN header.

        Raises:
            SourceError: not DBN, or the header is truncated or invalid.
        """
        if self.size == 0:
            raise SourceError(f"{self.path}: empty file, not a DBN file")
        try:
            self._fill(8)
        except zstandard.ZstdError as exc:
            raise SourceError(f"{self.path}: not a readable zstd/DBN file: {exc}") from exc
        head = b"".join(self._pending)[:8]
        if len(head) < 8 or head[:3] != DBN_MAGIC:
            raise SourceError(f"{self.path}: not a DBN file (no DBN header)")
        self.version = head[3]
        (length,) = struct.unpack_from("<I", head, 4)
        self._fill(8 + length)
        if self._pending_size < 8 + length:
            raise SourceError(f"{self.path}: truncated DBN header")
        decoder = databento_dbn.DBNDecoder(
            upgrade_policy=databento_dbn.VersionUpgradePolicy.UPGRADE_TO_V3  # type: ignore[arg-type]
        )
        try:
            decoder.write(bytes(self._take(8 + length)))
            items = decoder.decode()
        except databento_dbn.DBNError as exc:
            raise SourceError(f"{self.path}: invalid DBN header: {exc}") from exc
        if not items or not isinstance(items[0], databento_dbn.Metadata):
            raise SourceError(f"{self.path}: invalid DBN header")
        return items[0]

    def blocks(self, count: int = BLOCK_RECORDS) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index of first record, records)`` blocks of at most ``count`` records.

        Raises:
            SourceError: the file ends inside a record or a zstd frame.
        """
        size = OHLCV_DTYPE.itemsize
        index = 0
        while True:
            try:
                self._fill(size * count)
            except zstandard.ZstdError as exc:
                raise SourceError(f"{self.path}: corrupt zstd data: {exc}") from exc
            if self._pending_size < size:
                if self._pending_size:
                    raise SourceError(
                        f"{self.path}: truncated: {self._pending_size} trailing bytes after "
                        f"record {index} do not make a whole {size}-byte OHLCV record"
                    )
                return
            block = np.frombuffer(self._take(size * count, size), dtype=OHLCV_DTYPE)
            yield index, block
            index += len(block)


def read_header(path: Path) -> SourceHeader:
    """Decode only the metadata of ``path``.

    Raises:
        SourceError: the file is empty, not DBN, or its header is truncated.
    """
    with DbnReader(path) as reader:
        metadata = reader.metadata()
        version = reader.version
    end = metadata.end
    requested = tuple(str(s) for s in metadata.symbols)
    mapped = metadata.mappings.keys() if isinstance(metadata.mappings, dict) else ()
    roots = {requested_root(s) for s in requested} | {root_of(str(raw)) for raw in mapped}
    return SourceHeader(
        path=Path(path),
        version=int(version),
        dataset=str(metadata.dataset),
        schema=_enum_str(metadata.schema),
        stype_in=_enum_str(metadata.stype_in),
        stype_out=_enum_str(metadata.stype_out),
        start_ns=int(metadata.start),
        end_ns=None if end is None or int(end) == UNDEF_TIMESTAMP else int(end),
        symbols=requested,
        roots=tuple(sorted(r for r in roots if r)),
    )


#: Input symbologies whose mappings name each record's contract (contract section 1).
CONTRACT_STYPES_IN = ("raw_symbol", "parent")


def check_header(header: SourceHeader, dataset: str) -> None:
    """Section 1: schema ``ohlcv-1m``, the configured dataset, ``stype_out`` instrument_id,
    ``stype_in`` raw_symbol or parent (a ``continuous`` or ``instrument_id`` request
    cannot name its records' contracts).

    Raises:
        SourceError: naming the file and what it found.
    """
    problems = []
    if header.schema != "ohlcv-1m":
        problems.append(f"schema is {header.schema!r}, expected 'ohlcv-1m'")
    if header.dataset != dataset:
        problems.append(f"dataset is {header.dataset!r}, expected {dataset!r}")
    if header.stype_in not in CONTRACT_STYPES_IN:
        problems.append(
            f"stype_in is {header.stype_in!r}, expected 'raw_symbol' or 'parent' (a file "
            "requested with continuous or instrument_id symbology cannot name the contracts "
            "of its records; contract section 1)"
        )
    if header.stype_out != "instrument_id":
        problems.append(f"stype_out is {header.stype_out!r}, expected 'instrument_id'")
    if problems:
        raise SourceError(f"{header.path}: " + "; ".join(problems))


def _enum_str(value: object) -> str:
    if value is None:
        return "none"
    text = getattr(value, "value", None)
    return str(text if isinstance(text, str) else value).lower()

"""Find DBN sources and read their headers (contract section 1), without reading bars.

The header (DBN metadata) says which schema, dataset and time range a file holds;
the workflow plans from it: which decode group a file belongs to and which chunk
batches it can touch. Reading it costs one small read per file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import databento_dbn
import zstandard

from .errors import SourceError

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DBN_MAGIC = b"DBN"
UNDEF_TIMESTAMP = 2**64 - 1
HEADER_READ = 1 << 16


@dataclass(frozen=True)
class SourceHeader:
    """What a DBN file's metadata says, plus where it is.

    Attributes:
        path: the file.
        version: DBN version as written in the file (1, 2 or 3).
        dataset, schema, stype_out: metadata fields as strings.
        start_ns: first nanosecond the file covers (UTC).
        end_ns: exclusive end, or None when the header leaves it undefined.
    """

    path: Path
    version: int
    dataset: str
    schema: str
    stype_out: str
    start_ns: int
    end_ns: int | None

    @property
    def start_date(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.start_ns / 1e9, tz=dt.UTC).date()

    @property
    def group(self) -> str:
        """Decode group: the UTC month the file starts in (``YYYYMM``).

        Grouping daily files by month keeps process start-up off the hot path,
        and stays stable as new files arrive.
        """
        return self.start_date.strftime("%Y%m")


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


def open_dbn_stream(path: Path) -> io.BufferedIOBase:
    """A binary stream of the decompressed DBN bytes of ``path`` (zstd detected by magic)."""
    raw = open(path, "rb")  # noqa: SIM115 - the caller closes the returned stream
    magic = raw.read(4)
    raw.seek(0)
    if magic == ZSTD_MAGIC:
        return zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)  # type: ignore[return-value]
    return raw


def read_header(path: Path) -> SourceHeader:
    """Decode only the metadata of ``path``.

    Raises:
        SourceError: the file is empty, not DBN, or its header is truncated.
    """
    decoder = databento_dbn.DBNDecoder(
        upgrade_policy=databento_dbn.VersionUpgradePolicy.UPGRADE_TO_V3
    )
    version = 0
    try:
        with open_dbn_stream(path) as stream:
            first = True
            while True:
                block = stream.read(HEADER_READ)
                if first:
                    if not block:
                        raise SourceError(f"{path}: empty file, not a DBN file")
                    if block[:3] != DBN_MAGIC:
                        raise SourceError(f"{path}: not a DBN file (no DBN header)")
                    version = block[3]
                    first = False
                if not block:
                    raise SourceError(f"{path}: truncated DBN header")
                decoder.write(block)
                decoded = decoder.decode()
                if decoded:
                    metadata = decoded[0]
                    break
    except SourceError:
        raise
    except (databento_dbn.DBNError, zstandard.ZstdError, OSError, ValueError) as exc:
        raise SourceError(f"{path}: cannot read the DBN header: {exc}") from exc
    if not isinstance(metadata, databento_dbn.Metadata):
        raise SourceError(f"{path}: first DBN item is not metadata")
    end = metadata.end
    return SourceHeader(
        path=Path(path),
        version=int(version),
        dataset=str(metadata.dataset),
        schema=_enum_str(metadata.schema),
        stype_out=_enum_str(metadata.stype_out),
        start_ns=int(metadata.start),
        end_ns=None if end is None or int(end) == UNDEF_TIMESTAMP else int(end),
    )


def check_header(header: SourceHeader, dataset: str) -> None:
    """Section 1: schema ``ohlcv-1m``, the configured dataset, ``stype_out`` instrument_id.

    Raises:
        SourceError: naming the file and what it found.
    """
    problems = []
    if header.schema != "ohlcv-1m":
        problems.append(f"schema is {header.schema!r}, expected 'ohlcv-1m'")
    if header.dataset != dataset:
        problems.append(f"dataset is {header.dataset!r}, expected {dataset!r}")
    if header.stype_out != "instrument_id":
        problems.append(f"stype_out is {header.stype_out!r}, expected 'instrument_id'")
    if problems:
        raise SourceError(f"{header.path}: " + "; ".join(problems))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _enum_str(value: object) -> str:
    if value is None:
        return "none"
    text = getattr(value, "value", None)
    return str(text if isinstance(text, str) else value).lower()

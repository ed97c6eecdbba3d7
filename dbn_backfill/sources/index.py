"""The source index: what every DBN file held the last time it was looked at.

Like git's index, each file is remembered with a fingerprint that a rewrite cannot
hide (size, ``mtime_ns``, ``ctime_ns`` and inode together: ``cp -p`` or ``rsync -t``
can put an old modification time back, but not the change time, and a file
replaced by rename gets a new inode) plus its header and sha256. A run stats every
file; only a file whose fingerprint moved is opened again (header) and hashed.
So the no-op path costs one ``stat`` per file, and a touched file costs one hash
but changes nothing downstream, because what the workflow depends on is the
content (:func:`group_stamp`), not the modification time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dbn_backfill.sources.dbn_files import SourceHeader, read_header

log = logging.getLogger(__name__)

INDEX_VERSION = 3  # 3: headers hold the requested symbols and the roots named


@dataclass(frozen=True)
class Fingerprint:
    """What ``stat`` says of a file; equal fingerprints mean the file was not rewritten."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> Fingerprint:
        st = path.stat()
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


@dataclass(frozen=True)
class IndexedSource:
    """One DBN file as the run sees it now: its header and the sha256 of its bytes."""

    header: SourceHeader
    fingerprint: Fingerprint
    sha256: str

    @property
    def path(self) -> Path:
        return self.header.path


def file_sha256(path: Path) -> str:
    """The sha256 of the file's bytes, hex."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def scan(paths: list[Path], index_file: Path | None, write: bool) -> list[IndexedSource]:
    """Headers and sha256 of ``paths``, re-reading only files whose fingerprint moved.

    Args:
        paths: the run's DBN files.
        index_file: the index (JSON) of the work directory; None: read every file.
        write: save the refreshed index (only the main process of a run writes it).

    Raises:
        SourceError: a file that must be re-read is not a readable DBN file.
    """
    known = _load(index_file)
    fresh: dict[str, dict[str, Any]] = {}
    out = []
    rehashed = 0
    for path in paths:
        fingerprint = Fingerprint.of(path)
        entry = known.get(str(path))
        if entry is not None and entry["fingerprint"] == asdict(fingerprint):
            header = SourceHeader.from_json(path, entry["header"])
            sha = str(entry["sha256"])
        else:
            header = read_header(path)
            sha = file_sha256(path)
            # the file may have been rewritten while it was read: fingerprint again
            if Fingerprint.of(path) != fingerprint:
                header, sha, fingerprint = (
                    read_header(path),
                    file_sha256(path),
                    Fingerprint.of(path),
                )
            rehashed += 1
        out.append(IndexedSource(header=header, fingerprint=fingerprint, sha256=sha))
        fresh[str(path)] = {
            "fingerprint": asdict(fingerprint),
            "sha256": sha,
            "header": header.to_json(),
        }
    if rehashed:
        log.info("source index: %d of %d files read and hashed", rehashed, len(paths))
    if write and index_file is not None and fresh != known:
        payload = {"version": INDEX_VERSION, "files": fresh}
        _write_atomic(index_file, json.dumps(payload, sort_keys=True))
    return out


def group_stamp(sources: list[IndexedSource]) -> str:
    """The content a decode group depends on: its files' paths and sha256, nothing else."""
    return json.dumps(
        {"files": [{"path": str(s.path), "sha256": s.sha256} for s in sources]}, indent=1
    )


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it already holds exactly that (its mtime is
    what tells Snakemake the content changed); returns whether it wrote."""
    try:
        if path.read_text() == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    _write_atomic(path, text)
    return True


def _load(index_file: Path | None) -> dict[str, dict[str, Any]]:
    if index_file is None:
        return {}
    try:
        data = json.loads(index_file.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
        return {}
    return dict(data["files"])


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)

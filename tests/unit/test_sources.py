"""Real Databento fixtures: versions 1-3, plain and zstd, wrong schemas, broken files."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest
from conftest import fixture_file, fixture_files

from dbn_backfill.errors import SourceError
from dbn_backfill.sources.dbn_files import check_header, find_sources, read_header
from dbn_backfill.sources.decode import decode_group

OHLCV_1M = fixture_files("*ohlcv-1m*")
WRONG = [p for p in fixture_files("*.dbn*") if "ohlcv-1m" not in p.name]


@pytest.mark.parametrize("path", OHLCV_1M, ids=lambda p: p.name)
def test_fixture_decodes(tmp_path, calendar, path):
    summary = decode_group(
        [path],
        "g",
        tmp_path / "d.parquet",
        tmp_path / "d.json",
        dataset="GLBX.MDP3",
        calendar=calendar,
    )
    table = pq.read_table(tmp_path / "d.parquet").to_pandas()
    assert summary.files[0].records == len(table) > 0
    assert set(table["raw_symbol"]) == {"ESH1"}
    assert set(table["root"]) == {"ES"}
    assert set(table["trade_date"].astype(str)) == {"2020-12-28"}
    assert read_header(path).roots == ("ES",)
    assert summary.files[0].version == int(read_header(path).version)


@pytest.mark.parametrize("path", WRONG, ids=lambda p: p.name)
def test_wrong_schema_refused(path):
    header = read_header(path)
    with pytest.raises(SourceError, match=rf"{path.name}.*schema is '{header.schema}'"):
        check_header(header, "GLBX.MDP3")


def test_wrong_dataset_refused():
    with pytest.raises(SourceError, match="dataset is 'GLBX.MDP3', expected 'XNAS.ITCH'"):
        check_header(read_header(OHLCV_1M[0]), "XNAS.ITCH")


def test_folder_search(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    shutil.copy(OHLCV_1M[0], tmp_path / "a" / "b" / "x.dbn.zst")
    shutil.copy(OHLCV_1M[1], tmp_path / "a" / "y.dbn")
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "y.dbn.zst.part").write_text("ignored")
    found = find_sources(tmp_path)
    assert [p.name for p in found] == ["x.dbn.zst", "y.dbn"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="holds no"):
        find_sources(empty)
    with pytest.raises(SourceError, match="does not exist"):
        find_sources(tmp_path / "missing")


def test_truncated_zstd_is_an_error(tmp_path, calendar):
    source = next(p for p in OHLCV_1M if p.name.endswith(".zst"))
    cut = tmp_path / "cut.dbn.zst"
    cut.write_bytes(source.read_bytes()[:-12])
    with pytest.raises(SourceError, match="cut.dbn.zst.*truncated"):
        decode_group(
            [cut],
            "g",
            tmp_path / "d.parquet",
            tmp_path / "d.json",
            dataset="GLBX.MDP3",
            calendar=calendar,
        )


def test_truncated_plain_is_an_error(tmp_path, calendar):
    source = next(p for p in OHLCV_1M if p.name.endswith(".dbn"))
    cut = tmp_path / "cut.dbn"
    cut.write_bytes(source.read_bytes()[:-10])
    with pytest.raises(SourceError, match="cut.dbn: truncated"):
        decode_group(
            [cut],
            "g",
            tmp_path / "d.parquet",
            tmp_path / "d.json",
            dataset="GLBX.MDP3",
            calendar=calendar,
        )


def test_not_dbn(tmp_path):
    junk = tmp_path / "junk.dbn"
    junk.write_text("date,open,high\n2024-01-02,1,2\n")
    with pytest.raises(SourceError, match="junk.dbn: not a DBN file"):
        read_header(junk)
    empty = tmp_path / "empty.dbn.zst"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="empty.dbn.zst: empty file"):
        read_header(empty)


def test_source_index_rereads_only_files_whose_fingerprint_moved(tmp_path, monkeypatch):
    import os

    import dbn_backfill.sources.index as index

    a, b = tmp_path / "a.dbn.zst", tmp_path / "b.dbn"
    shutil.copy(OHLCV_1M[0], a)
    shutil.copy(OHLCV_1M[1], b)
    cache = tmp_path / "cache" / "sources.json"
    first = index.scan([a, b], cache, write=True)
    assert cache.exists() and [s.header for s in first] == [read_header(a), read_header(b)]
    assert first[0].sha256 == index.file_sha256(a)
    calls: list[str] = []
    real = index.read_header
    monkeypatch.setattr(index, "read_header", lambda p: calls.append(p.name) or real(p))
    assert index.scan([a, b], cache, write=True) == first
    assert calls == []  # nothing re-read: one stat per file
    old = b.stat()
    shutil.copy(fixture_file("dbn-repo.test_data.ohlcv-1h.dbn"), b)  # replaced in place
    os.utime(b, ns=(old.st_atime_ns, old.st_mtime_ns))  # its old mtime put back
    again = index.scan([a, b], cache, write=True)
    assert calls == ["b.dbn"] and again[1].header.schema == "ohlcv-1h"
    assert again[1].sha256 == index.file_sha256(b) != first[1].sha256
    calls.clear()
    os.utime(b)  # touched: read again, same content
    assert index.scan([a, b], cache, write=False)[1].sha256 == again[1].sha256
    assert calls == ["b.dbn"]

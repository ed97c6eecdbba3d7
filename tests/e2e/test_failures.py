"""Bad input against a database that already holds a committed backfill: each case exits
non-zero, names the file and record or the setting at fault, and changes nothing."""

from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import pandas as pd
import pytest
from conftest import (
    Bar,
    Run,
    business_days,
    day_bars,
    db_hash,
    fixture_file,
    read_table,
    run_log,
    run_output,
    write_bars,
)

D = dt.date
START, END = D(2024, 2, 5), D(2024, 2, 16)
BAD_DAY = D(2024, 2, 14)


def good_bars() -> list[Bar]:
    bars: list[Bar] = []
    for day in business_days(START, END):
        bars += day_bars("MGCJ4", 2, day, n=4, volume=30)
        bars += day_bars("MGCM4", 3, day, n=2, volume=5)
    return bars


@pytest.fixture(scope="module")
def committed(tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("committed")
    dbn = root / "dbn"
    write_bars(dbn / "good.dbn.zst", good_bars())
    run = Run(root, dbn, "MGC", START, END, chunk_days=5)
    run.run(check=True)
    return run


@pytest.fixture
def fresh(committed, tmp_path) -> Run:
    """A copy of the committed backfill (db, checkpoints, sources, work dir)."""
    for name in ("dbn", "checkpoints", "work"):
        shutil.copytree(committed.root / name, tmp_path / name)
    shutil.copy(committed.db, tmp_path / committed.db.name)
    run = committed.with_(root=tmp_path, dbn=tmp_path / "dbn")
    # the copy was backfilled from the copied files: its lineage names them
    con = duckdb.connect(str(run.db))
    con.execute(
        "UPDATE bars_1m_chunk_sources SET path = replace(path, ?, ?)",
        [str(committed.dbn.resolve()), str(run.dbn.resolve())],
    )
    con.close()
    return run


def assert_refused(run: Run, *fragments: str, extra: tuple[str, ...] = ()) -> str:
    before = db_hash(run.db)
    proc = run.run(*extra, check=False)
    text = proc.stdout + proc.stderr
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in output:\n{text[-4000:]}"
    assert db_hash(run.db) == before, "the database changed"
    return text


def test_missing_dbn_path(fresh):
    assert_refused(fresh.with_(dbn=fresh.root / "nope"), "nope does not exist")


def test_empty_dbn_setting(fresh):
    assert_refused(fresh.with_(dbn=""), "--dbn is empty")


def test_folder_without_dbn_files(fresh):
    (fresh.root / "empty").mkdir()
    (fresh.root / "empty" / "readme.txt").write_text("x")
    assert_refused(fresh.with_(dbn=fresh.root / "empty"), "holds no *.dbn or *.dbn.zst file")


def test_truncated_zst(fresh):
    extra = write_bars(fresh.root / "x.dbn.zst", day_bars("MGCJ4", 2, BAD_DAY, n=400))
    data = extra.read_bytes()
    (fresh.dbn / "cut.dbn.zst").write_bytes(data[: len(data) // 2])
    assert_refused(fresh, "cut.dbn.zst", "truncated")


def test_not_dbn(fresh):
    (fresh.dbn / "prices.dbn").write_text("ts,open\n1,2\n")
    assert_refused(fresh, "prices.dbn: not a DBN file")


@pytest.mark.parametrize(
    ("fixture", "schema"),
    [
        ("dbn-repo.test_data.ohlcv-1h.dbn", "ohlcv-1h"),
        ("databento-python.GLBX.MDP3.test_data.trades.dbn.zst", "trades"),
        ("databento-python.GLBX.MDP3.test_data.definition.dbn.zst", "definition"),
    ],
)
def test_wrong_schema(fresh, fixture, schema):
    shutil.copy(fixture_file(fixture), fresh.dbn / fixture)
    assert_refused(fresh, f"{fixture}: schema is '{schema}', expected 'ohlcv-1m'")


def test_wrong_dataset(fresh):
    write_bars(fresh.dbn / "xnas.dbn", day_bars("MGCJ4", 2, BAD_DAY), dataset="XNAS.ITCH")
    assert_refused(fresh, "xnas.dbn: dataset is 'XNAS.ITCH', expected 'GLBX.MDP3'")


def test_wrong_rtype(fresh):
    write_bars(fresh.dbn / "hourly.dbn", day_bars("MGCJ4", 2, BAD_DAY), rtype=34)
    assert_refused(fresh, "hourly.dbn: record 0 has rtype 34, expected 33")


BAD_TS = pd.Timestamp(f"{BAD_DAY} 18:00", tz="UTC")
UNDEF = 2**63 - 1


@pytest.mark.parametrize(
    ("bar", "why"),
    [
        (Bar("MGCJ4", 2, BAD_TS, fixed=(UNDEF, UNDEF, UNDEF, UNDEF)), "UNDEF_PRICE"),
        (Bar("MGCJ4", 2, BAD_TS, open=0.0, low=0.0), "open not finite and > 0"),
        (Bar("MGCJ4", 2, BAD_TS, open=-1.0, low=-2.0), "not finite and > 0"),
        (Bar("MGCJ4", 2, BAD_TS, high=1990.0, low=1999.0), "high < max(open, close, low)"),
        (Bar("MGCJ4", 2, BAD_TS + pd.Timedelta(seconds=30)), "ts_event not a whole minute"),
    ],
    ids=["undef", "zero", "negative", "high_below_low", "not_minute"],
)
def test_bad_row_fails_its_chunk(fresh, bar, why):
    write_bars(fresh.dbn / "bad.dbn", [bar])
    text = assert_refused(
        fresh, "bad.dbn", "instrument_id 2", "raw symbol MGCJ4", why, str(bar.ts_ns)
    )
    states = fresh.checkpoints()
    failed = {k: v for k, v in states.items() if v["status"] == "failed"}
    assert list(failed) == ["chunk_20240209_20240215"], text[-2000:]
    assert why in failed["chunk_20240209_20240215"]["error"]
    assert all(v["status"] == "done" for k, v in states.items() if k not in failed)


def test_failed_chunk_blocks_reruns_until_retry(fresh):
    bad = fresh.dbn / "bad.dbn"
    write_bars(bad, [Bar("MGCJ4", 2, BAD_TS, high=1990.0, low=1999.0)])
    fresh.run(check=False)
    proc = fresh.run(check=False)
    assert "chunks failed in an earlier run and retry_failed is off" in proc.stderr
    assert "chunk_20240209_20240215" in proc.stderr
    assert "build_chunks" not in proc.stdout  # stopped at once, no job ran
    bad.unlink()
    write_bars(bad, [Bar("MGCJ4", 2, BAD_TS)])  # the fixed file: a valid extra bar
    fresh.run("--retry-failed", check=True)
    assert all(v["status"] == "done" for v in fresh.checkpoints().values())
    assert BAD_TS in set(fresh.rows()["ts_utc"])


def test_conflicting_duplicates_across_files(fresh):
    twin = day_bars("MGCJ4", 2, BAD_DAY, n=1, volume=30)[0]
    write_bars(fresh.dbn / "overlap.dbn", [Bar(twin.raw_symbol, 2, twin.ts, volume=31)])
    assert_refused(fresh, "conflicting duplicate", "overlap.dbn", "good.dbn.zst")


def test_identical_duplicates_across_files_count_once(fresh):
    overlap = write_bars(fresh.dbn / "overlap.dbn", day_bars("MGCJ4", 2, BAD_DAY, n=4, volume=30))
    bars, picks = read_table(fresh.db), read_table(fresh.db, "bars_1m_trade_dates")
    commits = read_table(fresh.db, "bars_1m_chunks")
    fresh.run(check=True)
    assert read_table(fresh.db).equals(bars)
    assert read_table(fresh.db, "bars_1m_trade_dates").equals(picks)
    assert read_table(fresh.db, "bars_1m_chunks").equals(commits)  # not committed again
    # ... but its lineage names the new file too: its bars are also in that file
    assert str(overlap.resolve()) in set(read_table(fresh.db, "bars_1m_chunk_sources")["path"])


def test_two_ids_one_symbol_same_minute(fresh):
    twin = day_bars("MGCJ4", 2, BAD_DAY, n=1, volume=30)[0]
    write_bars(fresh.dbn / "clash.dbn", [Bar("MGCJ4", 99, twin.ts, volume=30)])
    assert_refused(fresh, "two instrument ids resolve to the same raw symbol", "clash.dbn")


def test_unmapped_instrument(fresh):
    bar = Bar("MGCJ4", 4242, BAD_TS)
    write_bars(fresh.dbn / "nomap.dbn", [bar], mappings=[])
    assert_refused(fresh, "no symbol mapping", "nomap.dbn", "instrument_id 4242")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"start": D(2024, 2, 20), "end": D(2024, 2, 10)}, "is after"),
        ({"start": "2024-02-31"}, "is not a date in YYYY-MM-DD form"),
        ({"start": "02/05/2024"}, "is not a date in YYYY-MM-DD form"),
        ({"chunk_days": 0}, "must be a positive integer"),
        ({"chunk_days": -3}, "must be a positive integer"),
    ],
)
def test_bad_settings(fresh, change, message):
    assert_refused(fresh.with_(**change), message)


def test_missing_required_flag(fresh):
    args = fresh.args()
    i = args.index("--symbol")
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "dbn_backfill.cli", *args[:i], *args[i + 2 :]],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "--symbol" in proc.stderr and "required" in proc.stderr


def test_table_with_another_shape(fresh):
    con = duckdb.connect(str(fresh.db))
    con.execute("ALTER TABLE bars_1m ADD COLUMN note TEXT").fetchall()
    con.close()
    assert_refused(fresh, "table bars_1m exists with another shape")


def test_table_without_primary_key(tmp_path, fresh):
    db = tmp_path / "other.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE bars_1m (ts_utc TIMESTAMPTZ NOT NULL, symbol TEXT NOT NULL, source_symbol TEXT "
        "NOT NULL, open DOUBLE NOT NULL, high DOUBLE NOT NULL, low DOUBLE NOT NULL, close DOUBLE NOT "
        "NULL, volume BIGINT NOT NULL)"
    ).fetchall()
    con.close()
    run = fresh.with_(root=tmp_path)
    shutil.move(db, run.db)
    assert_refused(run, "primary key is missing")


def test_not_a_duckdb_file(fresh):
    fresh.db.write_bytes(b"SQLite format 3\x00" + b"\x00" * 4096)
    assert_refused(fresh, "is not a DuckDB database")


def test_unwritable_checkpoint_and_db_detected_before_work(fresh):
    blocker = fresh.root / "a-file"
    blocker.write_text("x")  # as root, permission bits say nothing: use a path under a file
    text = assert_refused(fresh.with_(checkpoint_dir=blocker / "ckpt"), "checkpoint directory")
    assert "rule decode_sources" not in text and "rule decode_sources" not in run_log(text)
    proc = fresh.with_(db_path=blocker / "bars.duckdb").run(check=False)
    assert f"db {blocker / 'bars.duckdb'}" in proc.stderr and "does not exist" in proc.stderr
    assert "rule decode_sources" not in run_output(proc)


def test_missing_business_day_stops_before_writing(fresh):
    # extend the range by a week with bars on only some of its days
    week = [d for d in business_days(D(2024, 2, 20), D(2024, 2, 23))]
    write_bars(fresh.dbn / "next.dbn", [b for d in week[:2] for b in day_bars("MGCJ4", 2, d)])
    run = fresh.with_(end=D(2024, 2, 23))
    assert_refused(run, "2 CME business days", str(week[2]), str(week[3]), "Nothing was written")
    gaps = ",".join(str(d) for d in week[2:])
    run.run("--expected-gaps", gaps, check=True)

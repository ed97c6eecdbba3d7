"""Fetching from Databento (contract section 10) against a real local HTTPS gateway.

The real ``databento.Historical`` client talks to ``tests/databento_gateway.py`` over
TLS (trusted through ``REQUESTS_CA_BUNDLE``); nothing is mocked. In-process tests call
``dbn_backfill.sources.fetch.fetch_missing``; the end-to-end tests run the real CLI (Snakemake)
in a subprocess.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PROJECT, Bar, Run, business_days, db_hash, read_table, write_bars
from databento_gateway import FakeDatabento, synth_days

from dbn_backfill.cli import backfill_parser, snakemake_command
from dbn_backfill.config import from_mapping
from dbn_backfill.errors import ConfigError, FetchError
from dbn_backfill.layout import fetched_file
from dbn_backfill.sources.dbn_files import read_header
from dbn_backfill.sources.fetch import fetch_missing, file_name, needed_days

D = dt.date
START, END = D(2024, 1, 8), D(2024, 1, 12)  # Mon..Fri
NEEDED = [D(2024, 1, 5) + dt.timedelta(days=i) for i in range(8)]  # Fri 17:00 CT .. Fri


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """The synthetic MGC download the gateway serves: UTC days 2024-01-01..2024-01-31."""
    return synth_days(tmp_path_factory.mktemp("synth"), D(2024, 1, 1), D(2024, 1, 31))


@pytest.fixture
def gateway(synth_data, tmp_path, monkeypatch):
    with FakeDatabento(synth_data, tmp_path / "gateway") as gw:
        for key, value in gw.env.items():
            monkeypatch.setenv(key, value)
        yield gw


def settings(tmp_path: Path, gw: FakeDatabento, start=START, end=END, **kw):
    config = {
        "dbn": str(tmp_path / "dbn"),
        "db": str(tmp_path / "bars.duckdb"),
        "symbol": "MGC",
        "start": str(start),
        "end": str(end),
        "chunk_days": 5,
        "checkpoint": str(tmp_path / "checkpoints"),
        "fetch": "true",
        "databento_gateway": gw.url,
        "fetch_backoff": 0.01,
        **kw,
    }
    return from_mapping(config)


def fetch(cfg, calendar, **kw):
    out = io.StringIO()
    try:
        report = fetch_missing(cfg, calendar, out=out, **kw)
    except FetchError as exc:
        exc.output = out.getvalue()  # type: ignore[attr-defined]
        raise
    return report, out.getvalue()


def final(folder: Path, day: dt.date, root: str = "MGC") -> Path:
    """Where a fetch writes ``day`` of ``root``: ``<dbn>/<root>/glbx-mdp3-...``."""
    return fetched_file(folder, root, "GLBX.MDP3", day)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.part"))


def dbn_files(folder: Path) -> list[Path]:
    """Every DBN file under ``folder``, in the roots' folders too."""
    return sorted(folder.rglob("*.dbn.zst"))


# --------------------------------------------------------------------------- units


def test_needed_days_follow_the_session_roll(calendar):
    assert needed_days(calendar, START, END) == NEEDED
    # Tuesday after MLK day: the business day before is Friday 2024-01-12
    assert needed_days(calendar, D(2024, 1, 16), D(2024, 1, 16)) == [
        D(2024, 1, 12) + dt.timedelta(days=i) for i in range(5)
    ]
    # across the switch to daylight saving time (2024-03-10)
    assert needed_days(calendar, D(2024, 3, 11), D(2024, 3, 11)) == [
        D(2024, 3, 8) + dt.timedelta(days=i) for i in range(4)
    ]


def test_needed_days_with_a_late_roll():
    from dbn_backfill.tradedate import build_calendar

    late = build_calendar(
        "CME_TradeDate", "America/Chicago", "19:00", D(2024, 1, 1), D(2024, 12, 31)
    )
    # Fri 19:00 CST is Sat 01:00 UTC; Mon 19:00 CDT is Tue 00:00 UTC (exclusive)
    assert needed_days(late, D(2024, 3, 11), D(2024, 3, 11)) == [
        D(2024, 3, 9),
        D(2024, 3, 10),
        D(2024, 3, 11),
    ]


def test_config_and_cli_carry_the_fetch_settings(tmp_path):
    base = {
        "dbn": "d",
        "db": "x.duckdb",
        "symbol": "MGC",
        "start": "2024-01-08",
        "end": "2024-01-12",
        "chunk_days": 5,
        "checkpoint": "c",
    }
    cfg = from_mapping(base)
    assert (cfg.fetch, cfg.databento_gateway, cfg.fetch_max_cost) == (
        False,
        "https://hist.databento.com",
        5.0,
    )
    cfg = from_mapping(
        {
            **base,
            "fetch": "true",
            "databento_gateway": "https://127.0.0.1:1",
            "fetch_max_cost": "0.5",
        }
    )
    assert (cfg.fetch, cfg.databento_gateway, cfg.fetch_max_cost) == (
        True,
        "https://127.0.0.1:1",
        0.5,
    )
    for bad in ("-1", "abc", "inf"):
        with pytest.raises(ConfigError, match="fetch_max_cost"):
            from_mapping({**base, "fetch_max_cost": bad})
    args = [
        "--db",
        "x.duckdb",
        "--dbn",
        "d",
        "--symbol",
        "MGC",
        "--start",
        "2024-01-08",
        "--end",
        "2024-01-12",
        "--workers",
        "1",
        "--chunk-days",
        "5",
        "--checkpoint",
        "c",
    ]
    plain = snakemake_command(backfill_parser().parse_args(args))
    assert not any(a.startswith(("fetch", "databento_gateway")) for a in plain)
    cmd = snakemake_command(
        backfill_parser().parse_args(
            [
                *args,
                "--fetch",
                "--databento-gateway",
                "https://127.0.0.1:1",
                "--fetch-max-cost",
                "0.5",
                "--dry-run",
            ]
        )
    )
    assert {
        "fetch=true",
        "databento_gateway=https://127.0.0.1:1",
        "fetch_max_cost=0.5",
        "--dry-run",
    } <= set(cmd)


# --------------------------------------------------------------------------- in-process fetches


def test_everything_missing(gateway, tmp_path, calendar):
    cfg = settings(tmp_path, gateway)
    report, out = fetch(cfg, calendar)
    assert gateway.days_requested() == NEEDED
    for request in gateway.calls("timeseries.get_range"):
        assert request.method == "POST" and request.user == gateway.key
        assert request.params == {
            "dataset": "GLBX.MDP3", "schema": "ohlcv-1m", "symbols": "MGC.FUT", "stype_in": "parent",
            "stype_out": "instrument_id", "encoding": "dbn", "compression": "zstd",
            "start": str(request.day), "end": str(request.day + dt.timedelta(days=1)),
        }  # fmt: skip
    [cost] = gateway.calls("metadata.get_cost")
    assert (cost.params["start"], cost.params["end"]) == ("2024-01-05", "2024-01-13")
    assert report.cost == pytest.approx(8 * 0.0125)
    names = sorted(p.name for p in (cfg.dbn / "MGC").iterdir() if not p.name.startswith("."))
    assert names == [f"glbx-mdp3-{d:%Y%m%d}.ohlcv-1m.dbn.zst" for d in NEEDED]
    for day in NEEDED:
        assert final(cfg.dbn, day).read_bytes() == gateway.body(day)
        header = read_header(final(cfg.dbn, day))
        assert header.start_ns == pd.Timestamp(day, tz="UTC").value
    assert leftovers(cfg.dbn) == []
    assert "8 missing: 2024-01-05..2024-01-12" in out
    assert "estimated cost of the 8 missing UTC days: $0.1000" in out
    assert out.count(".ohlcv-1m.dbn.zst: ") == 8 and "fetched 8 UTC days, 234,518 bytes" in out


def test_only_missing_days_are_requested(gateway, tmp_path, calendar, synth_data):
    cfg = settings(tmp_path, gateway)
    cfg.dbn.mkdir()
    shutil.copy(synth_data / file_name("GLBX.MDP3", D(2024, 1, 8)), cfg.dbn)
    # one file whose header covers 2024-01-10..2024-01-11 under another name, in a subfolder
    write_bars(
        cfg.dbn / "older" / "mine.dbn.zst",
        [Bar("MGCG4", 1, pd.Timestamp("2024-01-10 15:00", tz="UTC"))],
        start=pd.Timestamp("2024-01-10", tz="UTC"),
        end=pd.Timestamp("2024-01-12", tz="UTC"),
    )
    # a file covering only part of 2024-01-12 does not make the day present
    write_bars(
        cfg.dbn / "partial.dbn",
        [Bar("MGCG4", 1, pd.Timestamp("2024-01-12 15:00", tz="UTC"))],
        start=pd.Timestamp("2024-01-12 12:00", tz="UTC"),
        end=pd.Timestamp("2024-01-13", tz="UTC"),
    )
    _, out = fetch(cfg, calendar)
    missing = [D(2024, 1, 5), D(2024, 1, 6), D(2024, 1, 7), D(2024, 1, 9), D(2024, 1, 12)]
    assert gateway.days_requested() == missing
    spans = [(r.params["start"], r.params["end"]) for r in gateway.calls("metadata.get_cost")]
    assert spans == [
        ("2024-01-05", "2024-01-08"),
        ("2024-01-09", "2024-01-10"),
        ("2024-01-12", "2024-01-13"),
    ]
    assert "3 present" in out and "5 missing" in out


def test_rerun_requests_nothing(gateway, tmp_path, calendar, monkeypatch):
    cfg = settings(tmp_path, gateway)
    fetch(cfg, calendar)
    before = {p: p.stat().st_mtime_ns for p in cfg.dbn.rglob("*")}
    count = len(gateway.requests)
    monkeypatch.delenv("DATABENTO_API_KEY")  # nothing missing: no key needed
    report, out = fetch(cfg, calendar)
    assert len(gateway.requests) == count
    assert report.plan.missing == () and "nothing to fetch" in out
    assert {p: p.stat().st_mtime_ns for p in cfg.dbn.rglob("*")} == before


def test_dry_run_shows_the_cost_and_downloads_nothing(gateway, tmp_path, calendar):
    cfg = settings(tmp_path, gateway)
    report, out = fetch(cfg, calendar, dry_run=True)
    assert report.cost == pytest.approx(0.1) and report.files == []
    assert "estimated cost of the 8 missing UTC days: $0.1000" in out and "dry run" in out
    assert "2024-01-05..2024-01-12" in out
    assert gateway.calls("timeseries.get_range") == []
    assert not cfg.dbn.exists()


def test_cost_over_the_limit_stops_before_any_download(gateway, tmp_path, calendar):
    cfg = settings(tmp_path, gateway, fetch_max_cost=0.05)
    with pytest.raises(
        FetchError, match=r"estimated cost \$0\.1000 .* above fetch_max_cost \$0\.05"
    ):
        fetch(cfg, calendar)
    assert gateway.calls("timeseries.get_range") == [] and not cfg.dbn.exists()


def test_degraded_day_stops(gateway, tmp_path, calendar):
    gateway.conditions[D(2024, 1, 9)] = "degraded"
    gateway.conditions[D(2024, 1, 10)] = "pending"
    cfg = settings(tmp_path, gateway)
    with pytest.raises(
        FetchError,
        match="2 needed UTC days .* not 'available': 2024-01-09 degraded, 2024-01-10 pending",
    ):
        fetch(cfg, calendar)
    assert gateway.calls("timeseries.get_range") == [] and gateway.calls("metadata.get_cost") == []


def test_range_past_the_available_end_stops(gateway, tmp_path, calendar):
    gateway.available = (D(2024, 1, 1), D(2024, 1, 11))
    cfg = settings(tmp_path, gateway)
    with pytest.raises(
        FetchError,
        match=r"2 needed UTC days lie outside .*2024-01-11T00:00:00\+00:00\): 2024-01-11..2024-01-12",
    ):
        fetch(cfg, calendar)
    assert [r.endpoint for r in gateway.requests] == ["metadata.get_dataset_range"]


def test_no_api_key_makes_no_request(gateway, tmp_path, calendar, monkeypatch):
    monkeypatch.delenv("DATABENTO_API_KEY")
    cfg = settings(tmp_path, gateway)
    with pytest.raises(FetchError, match="DATABENTO_API_KEY is not set; 8 UTC days are missing"):
        fetch(cfg, calendar)
    assert gateway.requests == []


def test_ssl_cert_file_is_trusted_too(gateway, tmp_path, calendar, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(gateway.ca_file))
    cfg = settings(tmp_path, gateway)
    fetch(cfg, calendar, dry_run=True)
    assert [r.endpoint for r in gateway.requests][:1] == ["metadata.get_dataset_range"]
    assert "REQUESTS_CA_BUNDLE" not in os.environ
    monkeypatch.delenv("SSL_CERT_FILE")  # no trust: the TLS handshake fails, not retried
    count = len(gateway.requests)
    with pytest.raises(
        FetchError,
        match=r"get_dataset_range of GLBX.MDP3 failed: no HTTP response \(SSLError.*CERTIFICATE_VERIFY_FAILED",
    ):
        fetch(settings(tmp_path, gateway), calendar)
    assert len(gateway.requests) == count  # refused in the handshake: no request got through


def test_wrong_api_key(gateway, tmp_path, calendar, monkeypatch):
    monkeypatch.setenv("DATABENTO_API_KEY", "db-wrong")
    cfg = settings(tmp_path, gateway)
    with pytest.raises(
        FetchError, match="get_dataset_range of GLBX.MDP3 failed: HTTP 401: Authentication failed"
    ):
        fetch(cfg, calendar)
    assert len(gateway.requests) == 1 and gateway.requests[0].user == "db-wrong"


def test_client_error_names_day_status_and_message(gateway, tmp_path, calendar):
    detail = "symbology_invalid_request: MGC.FUT is not entitled for ohlcv-1m"
    gateway.fail("timeseries.get_range", day=D(2024, 1, 9), status=422, detail=detail, times=None)
    cfg = settings(tmp_path, gateway)
    with pytest.raises(FetchError) as info:
        fetch(cfg, calendar)
    assert f"timeseries.get_range of UTC day 2024-01-09 failed: HTTP 422: {detail}" in str(
        info.value
    )
    assert gateway.days_requested() == NEEDED[:5]  # not retried, nothing after it
    assert all(final(cfg.dbn, d).exists() for d in NEEDED[:4])
    assert not final(cfg.dbn, D(2024, 1, 9)).exists() and leftovers(cfg.dbn) == []


def test_server_error_succeeds_on_retry(gateway, tmp_path, calendar):
    gateway.fail("timeseries.get_range", day=D(2024, 1, 9), status=500, detail="internal error")
    cfg = settings(tmp_path, gateway)
    _, out = fetch(cfg, calendar)
    assert gateway.days_requested().count(D(2024, 1, 9)) == 2
    assert "2024-01-09: HTTP 500: internal error; retry 1/4" in out
    assert final(cfg.dbn, D(2024, 1, 9)).read_bytes() == gateway.body(D(2024, 1, 9))


def test_server_error_stops_after_the_retries(gateway, tmp_path, calendar):
    gateway.fail("metadata.get_cost", status=503, detail="Service Unavailable", times=None)
    cfg = settings(tmp_path, gateway, fetch_retries=2)
    with pytest.raises(
        FetchError,
        match=r"get_cost for UTC days 2024-01-05..2024-01-12 failed \(after 3 attempts\): HTTP 503: Service Unavailable",
    ):
        fetch(cfg, calendar)
    assert (
        len(gateway.calls("metadata.get_cost")) == 3 and gateway.calls("timeseries.get_range") == []
    )


def test_rate_limit_waits_for_retry_after(gateway, tmp_path, calendar):
    gateway.fail(
        "metadata.get_dataset_condition",
        status=429,
        detail="Too many requests",
        headers={"Retry-After": "3"},
    )
    gateway.fail(
        "timeseries.get_range",
        day=D(2024, 1, 6),
        status=429,
        detail="Too many requests",
        headers={"Retry-After": "1"},
    )
    waits: list[float] = []
    cfg = settings(tmp_path, gateway)
    _, out = fetch(cfg, calendar, sleep=waits.append)
    assert waits == [3.0, 1.0]
    assert len(gateway.calls("metadata.get_dataset_condition")) == 2
    assert gateway.days_requested().count(D(2024, 1, 6)) == 2
    assert "HTTP 429: Too many requests; retry 1/4 in 3.00 s" in out


def test_dropped_connection_is_retried(gateway, tmp_path, calendar):
    gateway.fail("timeseries.get_range", day=D(2024, 1, 8), drop=True)
    cfg = settings(tmp_path, gateway)
    _, out = fetch(cfg, calendar)
    assert [r.outcome for r in gateway.calls("timeseries.get_range") if r.day == D(2024, 1, 8)] == [
        "dropped",
        "ok",
    ]
    assert "2024-01-08: HTTP 200, body cut short" in out
    assert final(cfg.dbn, D(2024, 1, 8)).read_bytes() == gateway.body(D(2024, 1, 8))


def test_dropped_connection_leaves_no_file_and_the_next_run_fetches_it(gateway, tmp_path, calendar):
    rule = gateway.fail("timeseries.get_range", day=D(2024, 1, 8), drop=True, times=None)
    cfg = settings(tmp_path, gateway, fetch_retries=1)
    with pytest.raises(
        FetchError,
        match=r"UTC day 2024-01-08 failed \(after 2 attempts\): HTTP 200, body cut short",
    ):
        fetch(cfg, calendar)
    assert not final(cfg.dbn, D(2024, 1, 8)).exists() and leftovers(cfg.dbn) == []
    assert all(final(cfg.dbn, d).exists() for d in NEEDED[:3])
    rule.times = 0
    count = len(gateway.days_requested())
    fetch(cfg, calendar)
    assert gateway.days_requested()[count:] == NEEDED[3:]
    assert final(cfg.dbn, D(2024, 1, 8)).read_bytes() == gateway.body(D(2024, 1, 8))


def test_one_fetch_per_folder(gateway, tmp_path, calendar):
    import fcntl

    cfg = settings(tmp_path, gateway)
    cfg.dbn.mkdir()
    with open(cfg.dbn / ".dbn-backfill-fetch.lock", "a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(FetchError, match="another fetch is downloading into"):
            fetch(cfg, calendar)
    assert gateway.calls("timeseries.get_range") == []
    fetch(cfg, calendar)  # released: the fetch goes ahead
    assert gateway.days_requested() == NEEDED


def test_dbn_must_be_a_folder(gateway, tmp_path, calendar):
    write_bars(tmp_path / "one.dbn", [Bar("MGCG4", 1, pd.Timestamp("2024-01-10 15:00", tz="UTC"))])
    cfg = from_mapping(
        {
            **vars(settings(tmp_path, gateway)),
            "dbn": str(tmp_path / "one.dbn"),
            "symbol": "MGC",  # the settings hold the roots as symbols
            "start": "2024-01-08",
            "end": "2024-01-12",
        }
    )
    with pytest.raises(FetchError, match="is a file; fetching needs a folder"):
        fetch(cfg, calendar)
    assert gateway.requests == []


# --------------------------------------------------------------------------- a universe of roots

GC_DAY_COST = 0.05  # MGC: 0.0125 a day


@pytest.fixture(scope="session")
def synth_gc(tmp_path_factory) -> Path:
    """The synthetic GC download the gateway serves: UTC days 2024-01-01..2024-01-31."""
    return synth_days(
        tmp_path_factory.mktemp("synth-gc"), D(2024, 1, 1), D(2024, 1, 31), symbol="GC"
    )


@pytest.fixture
def universe(synth_data, synth_gc, tmp_path, monkeypatch):
    """A gateway serving MGC.FUT and GC.FUT, GC four times MGC's price a day."""
    data = {"MGC": synth_data, "GC": synth_gc}
    costs = {"MGC": 0.0125, "GC": GC_DAY_COST}
    with FakeDatabento(data, tmp_path / "gateway", cost_per_day=costs) as gw:
        for key, value in gw.env.items():
            monkeypatch.setenv(key, value)
        yield gw


def mtimes(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in dbn_files(folder)}


def test_second_root_into_an_existing_folder_requests_only_that_root(universe, tmp_path, calendar):
    cfg = settings(tmp_path, universe)
    fetch(cfg, calendar)  # MGC alone, as before
    # an MGC file maps GC contracts too: only its requested symbols (MGC.FUT) count
    assert "GC" in read_header(final(cfg.dbn, NEEDED[3])).roots
    before, count = mtimes(cfg.dbn), len(universe.requests)
    report, out = fetch(settings(tmp_path, universe, symbol="MGC,GC"), calendar)
    new = universe.requests[count:]
    assert [(r.root, r.day) for r in new if r.endpoint == "timeseries.get_range"] == [
        ("GC", d) for d in NEEDED
    ]
    assert {r.params["symbols"] for r in new if "symbols" in r.params} == {"GC.FUT"}
    assert report.plan.missing == tuple(("GC", d) for d in NEEDED)
    assert report.costs == {"GC": pytest.approx(8 * GC_DAY_COST)}
    for day in NEEDED:
        assert final(cfg.dbn, day, "GC").read_bytes() == universe.body(day, "GC")
    assert {p: t for p, t in mtimes(cfg.dbn).items() if p in before} == before  # MGC untouched
    assert "MGC: 8 present, 0 missing" in out and "GC: 0 present, 8 missing" in out
    assert "fetched 8 UTC days of GC" in out


def test_two_roots_from_empty_fill_both_folders(universe, tmp_path, calendar, monkeypatch):
    cfg = settings(tmp_path, universe, symbol="MGC,GC")
    report, out = fetch(cfg, calendar)
    pairs = [("MGC", d) for d in NEEDED] + [("GC", d) for d in NEEDED]
    assert universe.downloads() == pairs and list(report.plan.missing) == pairs
    for root, day in pairs:
        assert final(cfg.dbn, day, root).read_bytes() == universe.body(day, root)
        assert read_header(final(cfg.dbn, day, root)).symbols == (f"{root}.FUT",)
    assert sorted(p.name for p in cfg.dbn.iterdir() if not p.name.startswith(".")) == [
        "GC",
        "MGC",
    ]
    assert report.cost == pytest.approx(8 * 0.0125 + 8 * GC_DAY_COST)
    assert "fetched 16 UTC days of MGC, GC" in out and leftovers(cfg.dbn) == []
    count = len(universe.requests)
    monkeypatch.delenv("DATABENTO_API_KEY")  # a rerun: nothing missing, no request
    report, out = fetch(cfg, calendar)
    assert report.plan.missing == () and len(universe.requests) == count


def test_two_roots_dry_run_prints_the_cost_per_root(universe, tmp_path, calendar):
    cfg = settings(tmp_path, universe, symbol="MGC,GC")
    report, out = fetch(cfg, calendar, dry_run=True)
    costs = {r.params["symbols"]: r.params["start"] for r in universe.calls("metadata.get_cost")}
    assert costs == {"MGC.FUT": "2024-01-05", "GC.FUT": "2024-01-05"}  # one request per root
    assert report.costs == {"MGC": pytest.approx(0.1), "GC": pytest.approx(0.4)}
    assert report.cost == pytest.approx(0.5) and report.files == []
    assert "MGC: estimated cost of 8 missing UTC days (MGC.FUT): $0.1000" in out
    assert "GC: estimated cost of 8 missing UTC days (GC.FUT): $0.4000" in out
    assert "estimated cost of the 16 missing UTC days of MGC, GC: $0.5000" in out
    assert "dry run: 16 UTC days of MGC, GC would be downloaded" in out
    assert universe.calls("timeseries.get_range") == [] and not cfg.dbn.exists()


def test_fetch_max_cost_applies_to_the_total_of_the_roots(universe, tmp_path, calendar):
    cfg = settings(tmp_path, universe, symbol="MGC,GC", fetch_max_cost=0.45)  # each root below
    with pytest.raises(FetchError) as info:
        fetch(cfg, calendar)
    assert (
        "estimated cost $0.5000 of 16 missing UTC days of MGC, GC (MGC: 2024-01-05..2024-01-12 "
        "($0.1000); GC: 2024-01-05..2024-01-12 ($0.4000)) is above fetch_max_cost $0.45"
    ) in str(info.value)
    assert universe.calls("timeseries.get_range") == [] and not cfg.dbn.exists()


def test_earlier_layout_files_count_for_the_root_their_header_names(universe, tmp_path, calendar):
    cfg = settings(tmp_path, universe, symbol="MGC,GC")
    cfg.dbn.mkdir()
    # what the earlier version fetched, at the top: MGC's 2024-01-05..08, GC's 2024-01-09
    for root, day in [*(("MGC", d) for d in NEEDED[:4]), ("GC", D(2024, 1, 9))]:
        (cfg.dbn / file_name("GLBX.MDP3", day)).write_bytes(universe.body(day, root))
    before = mtimes(cfg.dbn)
    _, out = fetch(cfg, calendar)
    assert universe.downloads() == [("MGC", d) for d in NEEDED[4:]] + [
        ("GC", d) for d in NEEDED if d != D(2024, 1, 9)
    ]
    assert "MGC: 4 present, 4 missing: 2024-01-09..2024-01-12" in out
    assert "GC: 1 present, 7 missing: 2024-01-05..2024-01-08, 2024-01-10..2024-01-12" in out
    assert {p: t for p, t in mtimes(cfg.dbn).items() if p in before} == before  # stay put
    assert not any(final(cfg.dbn, d).exists() for d in NEEDED[:4])
    assert not final(cfg.dbn, D(2024, 1, 9), "GC").exists()
    count = len(universe.requests)
    fetch(cfg, calendar)  # everything present now: no request
    assert len(universe.requests) == count


def test_api_error_of_one_root_names_it(universe, tmp_path, calendar):
    detail = "license_not_found: no license for GC.FUT"
    universe.fail(
        "timeseries.get_range", root="GC", day=D(2024, 1, 6), status=403, detail=detail, times=None
    )
    cfg = settings(tmp_path, universe, symbol="MGC,GC")
    with pytest.raises(FetchError) as info:
        fetch(cfg, calendar)
    assert (
        f"timeseries.get_range of UTC day 2024-01-06 of GC.FUT failed: HTTP 403: {detail}"
        in str(info.value)
    )
    assert universe.downloads()[-2:] == [("GC", D(2024, 1, 5)), ("GC", D(2024, 1, 6))]
    assert all(final(cfg.dbn, d).exists() for d in NEEDED)  # MGC came first: complete
    assert not final(cfg.dbn, D(2024, 1, 6), "GC").exists() and leftovers(cfg.dbn) == []


# --------------------------------------------------------------------------- the real CLI


E2E_START, E2E_END = D(2024, 1, 8), D(2024, 1, 19)  # two weeks around MLK day (2024-01-15)


def fetch_args(gw: FakeDatabento, *extra: str) -> tuple[str, ...]:
    return ("--fetch", "--databento-gateway", gw.url, "--fetch-backoff", "0.01", *extra)


def trade_dates(db: Path, calendar) -> list[dt.date]:
    ns = pd.DatetimeIndex(read_table(db)["ts_utc"]).as_unit("ns").asi8
    return sorted({pd.Timestamp(d).date() for d in calendar.trade_dates(np.asarray(ns))})


@pytest.mark.slow
def test_cli_backfills_an_empty_folder_from_databento(gateway, tmp_path, calendar):
    run = Run(tmp_path, tmp_path / "downloads" / "MGC", "MGC", E2E_START, E2E_END)
    proc = run.run(*fetch_args(gateway), env=gateway.env, check=True)
    needed = needed_days(calendar, E2E_START, E2E_END)
    assert gateway.days_requested() == needed
    assert "estimated cost of the 15 missing UTC days: $0.1875" in proc.stderr
    assert "fetched 15 UTC days" in proc.stderr
    for day in needed:
        assert final(run.dbn, day).read_bytes() == gateway.body(day)
    assert trade_dates(run.db, calendar) == business_days(E2E_START, E2E_END)
    assert D(2024, 1, 15) not in trade_dates(run.db, calendar)
    assert len(run.rows()) > 1000 and set(run.rows()["source_symbol"]) <= {"MGCG4", "MGCJ4"}
    count = len(gateway.requests)
    run.run(*fetch_args(gateway), env=gateway.env, check=True)  # a rerun: no request
    assert len(gateway.requests) == count


@pytest.mark.slow
def test_cli_killed_during_a_download_resumes(gateway, tmp_path, calendar):
    stalled = D(2024, 1, 10)
    gateway.fail("timeseries.get_range", day=stalled, stall=True)
    run = Run(tmp_path, tmp_path / "dbn", "MGC", E2E_START, E2E_END)
    proc = run.popen(*fetch_args(gateway), env=gateway.env)
    try:
        assert gateway.stalling.wait(timeout=120), "the download never started"
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size for p in run.dbn.rglob("*.part")):  # bytes on disk
            assert time.monotonic() < deadline, "the client wrote nothing"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        gateway.release()
    assert proc.returncode == -signal.SIGKILL
    assert not final(run.dbn, stalled).exists()
    [part] = (run.dbn / "MGC").glob("*.part")  # the half-written temporary file
    assert 0 < part.stat().st_size < len(gateway.body(stalled))
    assert final(run.dbn, D(2024, 1, 9)).exists() and not run.db.exists()
    count = len(gateway.days_requested())
    run.run(*fetch_args(gateway), env=gateway.env, check=True)
    needed = needed_days(calendar, E2E_START, E2E_END)
    assert gateway.days_requested()[count:] == [d for d in needed if d >= stalled]
    assert leftovers(run.dbn) == []
    assert final(run.dbn, stalled).read_bytes() == gateway.body(stalled)
    assert trade_dates(run.db, calendar) == business_days(E2E_START, E2E_END)


@pytest.mark.slow
def test_snakemake_dry_run_prints_the_cost(gateway, tmp_path):
    dbn = tmp_path / "dbn"
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(PROJECT / "workflow" / "Snakefile"),
        "--directory", str(tmp_path / "work"), "--cores", "1", "-n", "--config",
        f"dbn={dbn}", f"db={tmp_path / 'bars.duckdb'}", "symbol=MGC", f"start={E2E_START}",
        f"end={E2E_END}", "chunk_days=5", f"checkpoint={tmp_path / 'ck'}", "fetch=true",
        f"databento_gateway={gateway.url}",
    ]  # fmt: skip
    (tmp_path / "work").mkdir()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, **gateway.env}, timeout=300
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-4000:]
    assert "15 missing: 2024-01-05..2024-01-19" in text
    assert "estimated cost of the 15 missing UTC days: $0.1875" in text and "dry run" in text
    assert "build_chunks" in text and "batch_20240108_20240119" in text  # the plan follows
    assert gateway.calls("timeseries.get_range") == [] and not dbn.exists()
    assert not (tmp_path / "bars.duckdb").exists()


@pytest.fixture(scope="module")
def committed(synth_data, tmp_path_factory) -> Run:
    """A backfill of 2024-01-08..2024-01-12 made with --fetch."""
    root = tmp_path_factory.mktemp("committed")
    with FakeDatabento(synth_data, root / "gateway") as gw:
        run = Run(root, root / "dbn", "MGC", START, END)
        run.run(*fetch_args(gw), env=gw.env, check=True)
    return run


@pytest.fixture
def extended(committed, tmp_path) -> Run:
    """A copy of the committed backfill, asked to extend to 2024-01-19 (7 UTC days missing)."""
    for name in ("dbn", "checkpoints", "work"):
        shutil.copytree(committed.root / name, tmp_path / name)
    shutil.copy(committed.db, tmp_path / committed.db.name)
    return committed.with_(root=tmp_path, dbn=tmp_path / "dbn", end=E2E_END)


STOPS = {
    "no key": ({"DATABENTO_API_KEY": ""}, (), None, ["DATABENTO_API_KEY is not set"]),
    "wrong key": ({"DATABENTO_API_KEY": "db-wrong"}, (), None, ["HTTP 401", "Authentication failed"]),
    "cost": ({}, ("--fetch-max-cost", "0.05"), None, ["estimated cost $0.0875", "above fetch_max_cost $0.05"]),
    "degraded": ({}, (), lambda gw: gw.conditions.update({D(2024, 1, 16): "degraded"}), ["2024-01-16 degraded"]),
    "past end": ({}, (), lambda gw: setattr(gw, "available", (D(2024, 1, 1), D(2024, 1, 18))), ["outside the available", "2024-01-18..2024-01-19"]),
    "4xx": ({}, (), lambda gw: gw.fail("timeseries.get_range", day=D(2024, 1, 16), status=403, detail="license_not_found: no license for GLBX.MDP3", times=None), ["UTC day 2024-01-16 failed: HTTP 403: license_not_found"]),
    "5xx": ({}, ("--fetch-retries", "1"), lambda gw: gw.fail("timeseries.get_range", day=D(2024, 1, 13), status=502, detail="Bad Gateway", times=None), ["UTC day 2024-01-13 failed (after 2 attempts): HTTP 502: Bad Gateway"]),
    "dropped": ({}, ("--fetch-retries", "1"), lambda gw: gw.fail("timeseries.get_range", day=D(2024, 1, 13), drop=True, times=None), ["UTC day 2024-01-13 failed (after 2 attempts): HTTP 200, body cut short"]),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", list(STOPS))
def test_every_stop_leaves_the_database_untouched(case, extended, synth_data, tmp_path):
    env, extra, setup, fragments = STOPS[case]
    with FakeDatabento(synth_data, tmp_path / "gateway") as gw:
        if setup:
            setup(gw)
        before = db_hash(extended.db)
        files = dbn_files(extended.dbn)
        proc = extended.run(*fetch_args(gw, *extra), env={**gw.env, **env}, check=False)
        text = proc.stdout + proc.stderr
        for fragment in fragments:
            assert fragment in text, f"{fragment!r} not in output:\n{text[-4000:]}"
        assert "FetchError" in text
        assert db_hash(extended.db) == before, "the database changed"
        if case in ("no key",):
            assert gw.requests == []
        new = sorted(set(dbn_files(extended.dbn)) - set(files))
        if case in ("no key", "wrong key", "cost", "degraded", "past end"):
            assert gw.calls("timeseries.get_range") == [] and new == []
        else:  # the days before the failing one are complete files; nothing else
            failing = gw.days_requested()[-1]
            assert all(read_header(p).start_ns < pd.Timestamp(failing, tz="UTC").value for p in new)
            assert leftovers(extended.dbn) == []


@pytest.mark.slow
def test_cli_dry_run_downloads_nothing(extended, synth_data, tmp_path):
    with FakeDatabento(synth_data, tmp_path / "gateway") as gw:
        before = db_hash(extended.db)
        files = dbn_files(extended.dbn)
        proc = extended.run(*fetch_args(gw, "--dry-run"), env=gw.env, check=True)
        assert "8 present" in proc.stderr and "7 missing: 2024-01-13..2024-01-19" in proc.stderr
        assert "estimated cost of the 7 missing UTC days: $0.0875" in proc.stderr
        assert gw.calls("timeseries.get_range") == []
        assert dbn_files(extended.dbn) == files and db_hash(extended.db) == before


@pytest.mark.slow
def test_fetch_is_off_by_default(gateway, tmp_path):
    run = Run(tmp_path, tmp_path / "dbn", "MGC", START, END)
    (tmp_path / "dbn").mkdir()
    proc = run.run("--databento-gateway", gateway.url, env=gateway.env, check=False)
    assert "holds no *.dbn or *.dbn.zst file" in proc.stderr
    assert "fetch:" not in proc.stderr and gateway.requests == []


@pytest.mark.slow
def test_cli_dry_run_of_two_roots_prints_the_cost_per_root(universe, tmp_path):
    run = Run(tmp_path, tmp_path / "dbn", "MGC,GC", START, END)
    proc = run.run(*fetch_args(universe, "--dry-run"), env=universe.env, check=True)
    assert "MGC: estimated cost of 8 missing UTC days (MGC.FUT): $0.1000" in proc.stderr
    assert "GC: estimated cost of 8 missing UTC days (GC.FUT): $0.4000" in proc.stderr
    assert "estimated cost of the 16 missing UTC days of MGC, GC: $0.5000" in proc.stderr
    assert universe.calls("timeseries.get_range") == [] and not run.dbn.exists()
    assert not run.db.exists()

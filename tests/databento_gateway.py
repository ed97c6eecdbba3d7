"""A fake Databento historical gateway: a real HTTPS server on 127.0.0.1 for tests.

It answers what the real ``databento.Historical`` client calls, the way the client
sends it (``/v0/...``, HTTP basic auth with the API key as user name, GET query
parameters for ``metadata.get_dataset_range`` / ``get_dataset_condition``,
form-encoded POST bodies for ``metadata.get_cost`` / ``timeseries.get_range``), with
JSON answers and, for ``get_range``, zstd DBN bytes: the synthetic download of
``dbn_backfill.sampledata.synth`` of the requested root (MGC, and any other root it is
given data of, e.g. GC; daily layout, parent symbology, ``stype_in`` parent), or a
header-only file for a day without bars (as Databento answers a Saturday).

TLS: a throwaway CA from ``trustme``; clients trust it through ``REQUESTS_CA_BUNDLE``
(see :attr:`FakeDatabento.env`). Every request is recorded (:attr:`requests`), and
a test can script misbehaviour (:meth:`fail`): an HTTP error with a JSON ``detail``
(optionally ``Retry-After``), a connection dropped in the middle of a body, or a body
that stalls half-way until :meth:`release` (to SIGKILL a client mid-download).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd
import trustme

from dbn_backfill.sampledata.dbnwrite import write_ohlcv_dbn
from dbn_backfill.sampledata.synth import generate

DATASET = "GLBX.MDP3"
DAY = dt.timedelta(days=1)


def synth_days(
    folder: Path, first: dt.date, last: dt.date, seed: int = 7, symbol: str = "MGC"
) -> Path:
    """Write the synthetic daily files of root ``symbol`` the gateway serves (UTC days
    first..last)."""
    generate(folder, first, last, seed, layout="daily", compress="zst", symbol=symbol)
    return folder


@dataclass
class Request:
    """One request as the gateway saw it."""

    method: str
    endpoint: str  # e.g. "timeseries.get_range"
    params: dict[str, str]  # query parameters and form fields
    user: str | None  # basic-auth user name (the API key)
    status: int = 0  # status sent (200 also for a dropped or stalled body)
    outcome: str = ""  # "ok", "error", "dropped", "stalled"

    @property
    def day(self) -> dt.date | None:
        start = self.params.get("start") or self.params.get("start_date")
        return None if start is None else _timestamp(start).date()

    @property
    def root(self) -> str | None:
        """The root of the requested ``<root>.FUT`` (None without ``symbols``)."""
        symbols = self.params.get("symbols")
        return symbols.removesuffix(".FUT") if symbols else None


@dataclass
class Misbehaviour:
    """A scripted answer for requests to ``endpoint`` (for ``day`` only, if given)."""

    endpoint: str
    day: dt.date | None = None
    root: str | None = None  # only requests of this root (``<root>.FUT``)
    times: int | None = 1  # None: every matching request
    status: int | None = None  # an HTTP error with a JSON detail
    detail: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # send half the body, then close the connection
    stall: bool = False  # send half the body, then wait for release()


class FakeDatabento:
    """The gateway; use as a context manager (or call :meth:`close`).

    Args:
        data: folder of ``glbx-mdp3-YYYYMMDD.ohlcv-1m.dbn.zst`` files served per UTC day
            for ``MGC.FUT``, or such a folder per root (``{"MGC": ..., "GC": ...}``);
            the gateway serves the roots it has a folder of.
        work: scratch folder (CA file, header-only days).
        key: the one API key accepted.
        available: ``[start, end)`` UTC dates of the dataset's available range.
        cost_per_day: USD ``get_cost`` charges per UTC day requested, the same for
            every root or per root.
    """

    def __init__(
        self,
        data: Path | dict[str, Path],
        work: Path,
        *,
        key: str = "db-test-key-0123456789",
        available: tuple[dt.date, dt.date] = (dt.date(2024, 1, 1), dt.date(2024, 2, 1)),
        cost_per_day: float | dict[str, float] = 0.0125,
    ) -> None:
        folders = data if isinstance(data, dict) else {"MGC": data}
        self.data = {root: Path(folder) for root, folder in folders.items()}
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.key = key
        self.available = available
        self.cost_per_day = cost_per_day
        self.conditions: dict[dt.date, str] = {}
        self.requests: list[Request] = []
        self.misbehaviour: list[Misbehaviour] = []
        self.stalling = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._bodies: dict[tuple[str, dt.date], bytes] = {}

        ca = trustme.CA()
        self.ca_file = self.work / "fake-databento-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._server = _Server(("127.0.0.1", 0), _Handler, context, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    # ----------------------------------------------------------------- test API

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``: the client's ``gateway``."""
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def env(self) -> dict[str, str]:
        """Environment a client process needs: the key and the CA bundle."""
        return {"DATABENTO_API_KEY": self.key, "REQUESTS_CA_BUNDLE": str(self.ca_file)}

    def fail(self, endpoint: str, **kw: Any) -> Misbehaviour:
        """Script a misbehaviour (see :class:`Misbehaviour`); returns it."""
        rule = Misbehaviour(endpoint, **kw)
        with self._lock:
            self.misbehaviour.append(rule)
        return rule

    def release(self) -> None:
        """Let stalled bodies end (they close the connection half-way)."""
        self._release.set()

    def calls(self, endpoint: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.endpoint == endpoint]

    def days_requested(self) -> list[dt.date]:
        """UTC days of every ``timeseries.get_range`` request, in order."""
        return [r.day for r in self.calls("timeseries.get_range") if r.day is not None]

    def downloads(self) -> list[tuple[str | None, dt.date | None]]:
        """``(root, UTC day)`` of every ``timeseries.get_range`` request, in order."""
        return [(r.root, r.day) for r in self.calls("timeseries.get_range")]

    def day_cost(self, root: str) -> float:
        """What ``get_cost`` charges per UTC day of ``root``."""
        cost = self.cost_per_day
        return cost[root] if isinstance(cost, dict) else cost

    def body(self, day: dt.date, root: str = "MGC") -> bytes:
        """The DBN bytes served for ``day`` of ``root``."""
        with self._lock:
            if (root, day) not in self._bodies:
                path = self.data[root] / f"glbx-mdp3-{day:%Y%m%d}.ohlcv-1m.dbn.zst"
                if path.exists():
                    self._bodies[root, day] = path.read_bytes()
                else:
                    self._bodies[root, day] = _empty_day(self.work, day, root)
            return self._bodies[root, day]

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> FakeDatabento:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- serving

    def _take(self, request: Request) -> Misbehaviour | None:
        with self._lock:
            for rule in self.misbehaviour:
                if rule.endpoint != request.endpoint:
                    continue
                if rule.day is not None and rule.day != request.day:
                    continue
                if rule.root is not None and rule.root != request.root:
                    continue
                if rule.times is not None:
                    if rule.times <= 0:
                        continue
                    rule.times -= 1
                return rule
        return None

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _in_range(self, day: dt.date) -> bool:
        return self.available[0] <= day < self.available[1]

    def _condition(self, day: dt.date) -> str:
        return self.conditions.get(day, "available" if self._in_range(day) else "missing")

    def answer(self, request: Request) -> tuple[int, Any]:
        """Status and JSON value (or DBN bytes) of a well-authenticated request."""
        p = request.params
        if p.get("dataset") != DATASET:
            return 422, {"detail": f"dataset_invalid: unknown dataset {p.get('dataset')!r}"}
        lo, hi = self.available
        if request.endpoint == "metadata.get_dataset_range":
            span = {"start": _iso(lo), "end": _iso(hi)}
            return 200, {**span, "schema": {"ohlcv-1m": span, "trades": span}}
        if request.endpoint == "metadata.get_dataset_condition":
            first = dt.date.fromisoformat(p.get("start_date", str(lo)))
            last = dt.date.fromisoformat(p.get("end_date", str(hi - DAY)))
            days = [first + i * DAY for i in range((last - first).days + 1)]
            return 200, [
                {
                    "date": str(d),
                    "condition": self._condition(d),
                    "last_modified_date": None if self._condition(d) == "missing" else str(d + DAY),
                }
                for d in days
            ]
        if request.endpoint in ("metadata.get_cost", "timeseries.get_range"):
            problem = _check_range_request(p, request.endpoint, sorted(self.data))
            if problem:
                return 422, {"detail": problem}
            start, end = _timestamp(p["start"]), _timestamp(p["end"])
            if start < pd.Timestamp(lo, tz="UTC") or end > pd.Timestamp(hi, tz="UTC"):
                return 422, {
                    "detail": f"data_end_after_available_end: the available range is "
                    f"{_iso(lo)} to {_iso(hi)}"
                }
            root = str(request.root)
            if request.endpoint == "metadata.get_cost":
                days = (end - start) / pd.Timedelta(days=1)
                return 200, round(self.day_cost(root) * days, 6)
            if end - start != pd.Timedelta(days=1) or start != start.normalize():
                return 422, {"detail": "the fake gateway serves whole single UTC days only"}
            return 200, self.body(start.date(), root)
        return 404, {"detail": f"Not Found: {request.endpoint}"}


def _check_range_request(p: dict[str, str], endpoint: str, roots: list[str]) -> str | None:
    expected = {"schema": "ohlcv-1m", "stype_in": "parent"}
    if endpoint == "timeseries.get_range":
        expected |= {"stype_out": "instrument_id", "encoding": "dbn", "compression": "zstd"}
    for key, value in expected.items():
        if p.get(key) != value:
            return f"the fake gateway expects {key}={value!r}, got {p.get(key)!r}"
    served = [f"{root}.FUT" for root in roots]
    if p.get("symbols") not in served:
        return f"the fake gateway serves symbols {served}, got {p.get('symbols')!r}"
    if "start" not in p or "end" not in p:
        return "start and end are required"
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, context: ssl.SSLContext, fake: FakeDatabento) -> None:
        super().__init__(address, handler)
        self.context = context
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a refused TLS handshake or a client gone mid-body is part of the tests

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        # handshake in the handler thread, so a slow client never blocks accept()
        return self.context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        ), address


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        self.request.settimeout(30)
        try:
            self.request.do_handshake()
        except (OSError, ssl.SSLError):
            self.request.close()
            raise
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._serve("GET", dict(parse_qsl(urlsplit(self.path).query)))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        if "application/x-www-form-urlencoded" not in (self.headers.get("Content-Type") or ""):
            self._send_json(415, {"detail": "expected a form-encoded body"})
            return
        self._serve("POST", dict(parse_qsl(raw, keep_blank_values=True)))

    def _serve(self, method: str, params: dict[str, str]) -> None:
        fake = self.server.fake
        path = urlsplit(self.path).path
        endpoint = path.removeprefix("/v0/")
        request = Request(method, endpoint, params, _basic_user(self.headers.get("Authorization")))
        fake._record(request)
        if request.user is None:
            request.status, request.outcome = 401, "error"
            self._send_json(401, {"detail": "Authentication failed: no API key was sent"})
            return
        if request.user != fake.key:
            request.status, request.outcome = 401, "error"
            self._send_json(401, {"detail": "Authentication failed: the API key is not valid"})
            return
        if not path.startswith("/v0/"):
            request.status, request.outcome = 404, "error"
            self._send_json(404, {"detail": f"Not Found: {path}"})
            return
        expected_method = (
            "POST" if endpoint in ("metadata.get_cost", "timeseries.get_range") else "GET"
        )
        if method != expected_method:
            request.status, request.outcome = 405, "error"
            self._send_json(405, {"detail": "Method Not Allowed"})
            return
        rule = fake._take(request)
        if rule is not None and rule.status is not None:
            request.status, request.outcome = rule.status, "error"
            self._send_json(rule.status, {"detail": rule.detail}, rule.headers)
            return
        status, value = fake.answer(request)
        request.status = status
        if status != 200:
            request.outcome = "error"
            self._send_json(status, value)
            return
        if isinstance(value, bytes):
            if rule is not None and (rule.drop or rule.stall):
                request.outcome = "stalled" if rule.stall else "dropped"
                self._send_partial(value, stall=rule.stall)
                return
            request.outcome = "ok"
            self._send(200, value, "application/octet-stream")
            return
        request.outcome = "ok"
        self._send_json(200, value)

    def _send_json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(value).encode(), "application/json", headers)

    def _send(
        self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _send_partial(self, body: bytes, stall: bool) -> None:
        """Announce the whole body, send half of it, then drop the connection."""
        fake = self.server.fake
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        if stall:
            fake.stalling.set()
            fake._release.wait(timeout=120)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.request.shutdown(socket.SHUT_RDWR)


def _basic_user(header: str | None) -> str | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, _ = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return user


def _timestamp(value: str) -> pd.Timestamp:
    """A start/end parameter: ISO date or timestamp, or integer UNIX nanoseconds."""
    ts = pd.Timestamp(int(value)) if value.isdigit() else pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _iso(day: dt.date) -> str:
    return f"{day}T00:00:00.000000000Z"


def _empty_day(work: Path, day: dt.date, root: str) -> bytes:
    """A header-only DBN file for a UTC day without bars of ``root``, like Databento's
    answer."""
    lo = int(pd.Timestamp(day, tz="UTC").value)
    empty = np.zeros(0, dtype="int64")
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        path = Path(tmp) / "empty.dbn.zst"
        write_ohlcv_dbn(
            path,
            instrument_id=empty.astype("uint32"),
            ts_event=empty,
            open=empty,
            high=empty,
            low=empty,
            close=empty,
            volume=empty.astype("uint64"),
            mappings=[],
            symbols=[f"{root}.FUT"],
            start_ns=lo,
            end_ns=lo + 86_400_000_000_000,
        )
        return path.read_bytes()

"""Fetch from Databento the (root, UTC day) pairs a backfill needs and the ``dbn``
folder lacks (contract section 10), showing the estimated cost before anything is
downloaded.

The Snakefile calls :func:`fetch_from_config` at parse time in the main process,
before the plan reads the DBN headers, so the new files are planned like any other.
Order of a fetch, each step stopping the run (:class:`~dbn_backfill.errors.FetchError`)
before the next one:

1. needed UTC days: every UTC day meeting [roll time of the business day before
   ``start``, roll time of ``end``) (17:00 America/Chicago by default);
2. present days, per root R of the run: a day is present for R when one DBN file's
   header range covers all of it and that file's requested symbols name R
   (``R.FUT`` or an outright of R); a file requested for MGC does not make GC's day
   present. Wherever the file lies: files of the earlier single-root layout
   (``<dbn>/glbx-mdp3-YYYYMMDD...``) count by their header. Nothing missing for any
   root means no request at all (and no key needed);
3. ``DATABENTO_API_KEY`` must be set (checked before any request);
4. ``metadata.get_dataset_range`` must cover the needed days, and
   ``metadata.get_dataset_condition`` must say ``available`` for each of them;
5. ``metadata.get_cost`` of each root's missing days (``<root>.FUT``) is printed per
   root and in total; a total above ``fetch_max_cost`` stops; a dry run stops here,
   having downloaded nothing;
6. each missing (root, day): ``timeseries.get_range`` streamed to a hidden temporary
   file, decoded completely, fsynced, renamed to
   ``<dbn>/<root>/glbx-mdp3-YYYYMMDD.ohlcv-1m.dbn.zst``
   (:func:`dbn_backfill.layout.fetched_file`); a killed download leaves no file under
   that name, and the next run downloads the day again.

Transient failures (HTTP 429 with ``Retry-After``, 408, 5xx, a dropped connection, a
body cut short) are retried ``fetch_retries`` times with exponential backoff from
``fetch_backoff`` seconds; then, as for any other API error, the run stops naming the
day, the HTTP status and Databento's message. The fetch never touches the database.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import email.utils
import fcntl
import functools
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import pandas as pd

from dbn_backfill.config import BackfillConfig, from_mapping
from dbn_backfill.errors import FetchError, SourceError
from dbn_backfill.layout import (
    FETCH_SCHEMA,
    fetch_lock,
    fetch_partial,
    fetch_partial_glob,
    fetched_file,
    fetched_folder,
    fetched_name,
)
from dbn_backfill.sources.dbn_files import (
    DbnReader,
    SourceHeader,
    check_header,
    find_sources,
    read_header,
)
from dbn_backfill.symbols import requested_root
from dbn_backfill.tradedate import Calendar

T = TypeVar("T")

SCHEMA = FETCH_SCHEMA
DAY = dt.timedelta(days=1)
NS_PER_DAY = 86_400_000_000_000
#: Longest wait between two attempts (a larger ``Retry-After`` is cut to this).
MAX_WAIT_SECONDS = 300.0
_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class FetchPlan:
    """What a fetch has to do.

    Attributes:
        folder: the ``dbn`` folder (the files go to ``<folder>/<root>/``).
        roots: the run's roots, in the run's order.
        needed: every UTC day the run's trade dates need, ascending (the same for
            every root).
        missing: the (root, day) pairs no DBN file header covers for that root, by
            root in the run's order, then by day.
    """

    folder: Path
    roots: tuple[str, ...]
    needed: tuple[dt.date, ...]
    missing: tuple[tuple[str, dt.date], ...]

    def missing_of(self, root: str) -> tuple[dt.date, ...]:
        """The missing days of ``root``, ascending."""
        return tuple(d for r, d in self.missing if r == root)


@dataclass
class FetchReport:
    """What a fetch did: the plan, the estimated cost (in total and per root: only
    roots with missing days), the files written as ``(root, day, path, bytes,
    seconds)``."""

    plan: FetchPlan
    cost: float | None = None
    costs: dict[str, float] = field(default_factory=dict)
    files: list[tuple[str, dt.date, Path, int, float]] = field(default_factory=list)


#: The name a fetched day gets (see :func:`dbn_backfill.layout.fetched_name`).
file_name = fetched_name


def requested_for(header: SourceHeader, root: str) -> bool:
    """Whether the file's requested symbols name ``root`` (``MGC.FUT``, ``MGCZ4``):
    only such a file makes a day present for ``root``. The outrights its mappings
    list do not count (a file requested for MGC may map GC contracts too)."""
    return any(requested_root(s) == root for s in header.symbols)


def needed_days(calendar: Calendar, start: dt.date, end: dt.date) -> list[dt.date]:
    """The UTC days meeting [roll of the business day before ``start``, roll of ``end``).

    Trade date T's bars lie in [roll time of the business day before T, roll time of T)
    (contract section 10), so these are all the UTC days trade dates ``start..end`` need.

    Returns:
        the days, ascending.
    """
    lo, hi = calendar.session_bounds_utc(start, end)
    first = lo.date()
    last = (hi - pd.Timedelta(1, "ns")).date()
    return [first + i * DAY for i in range((last - first).days + 1)]


def present_days(headers: Sequence[SourceHeader], days: Sequence[dt.date]) -> set[dt.date]:
    """The ``days`` that one header's range ``[start, end)`` covers entirely.

    A header without an end (undefined in the metadata) is taken as open-ended, as the
    planner does.
    """
    spans = sorted((h.start_ns, h.end_ns if h.end_ns is not None else 2**63) for h in headers)
    starts = [s for s, _ in spans]
    reach: list[int] = []
    for _, end in spans:
        reach.append(max(end, reach[-1]) if reach else end)
    present = set()
    for day in days:
        lo = _day_ns(day)
        i = bisect.bisect_right(starts, lo)
        if i and reach[i - 1] >= lo + NS_PER_DAY:
            present.add(day)
    return present


def plan_fetch(
    cfg: BackfillConfig, calendar: Calendar, header_cache: Path | None = None
) -> FetchPlan:
    """Which UTC days the run needs and which of them the ``dbn`` folder lacks, per
    root of the run (a day is present for a root by the header of a file requested
    for that root, wherever the file lies in the folder).

    Args:
        cfg: the run's settings (``dbn`` must be a folder, or not exist yet).
        calendar: the business-day calendar of the run.
        header_cache: the planner's source index (:mod:`dbn_backfill.sources.index`).

    Returns:
        a :class:`FetchPlan`.

    Raises:
        FetchError: ``dbn`` is a file.
        SourceError: a DBN file in the folder is unreadable or not the run's schema and
            dataset (the backfill would stop on it anyway: nothing is paid for first).
    """
    from dbn_backfill.sources.index import scan

    folder = cfg.dbn
    if folder.exists() and not folder.is_dir():
        raise FetchError(f"dbn {folder} is a file; fetching needs a folder to write into")
    first = cfg.start
    if cfg.roll_rule == "prior_day_volume":  # contract section 5a: B of start too
        first = calendar.previous_business_day(cfg.start) or cfg.start
    needed = needed_days(calendar, first, cfg.end)
    headers: tuple[SourceHeader, ...] = ()
    if folder.is_dir() and any(_dbn_files(folder)):
        headers = tuple(s.header for s in scan(find_sources(folder), header_cache, write=False))
    for header in headers:
        check_header(header, cfg.dataset)
    missing: list[tuple[str, dt.date]] = []
    for root in cfg.symbols:
        present = present_days([h for h in headers if requested_for(h, root)], needed)
        missing.extend((root, d) for d in needed if d not in present)
    return FetchPlan(folder, tuple(cfg.symbols), tuple(needed), tuple(missing))


def fetch_missing(
    cfg: BackfillConfig,
    calendar: Calendar,
    *,
    dry_run: bool = False,
    header_cache: Path | None = None,
    out: IO[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchReport:
    """Download the missing (root, UTC day) pairs of ``cfg``'s run (steps in the module
    docstring).

    Args:
        cfg: the run's settings: ``dbn`` folder, ``symbols`` (one root or several),
            ``dataset``, trade dates, ``databento_gateway``, ``fetch_max_cost`` (of all
            roots together), ``fetch_retries``, ``fetch_backoff``.
        calendar: the business-day calendar of the run.
        dry_run: print the missing days and the estimated cost, download nothing.
        header_cache: the planner's header cache file (None: read every header).
        out: where progress goes (default stderr).
        sleep: waits between attempts (tests may pass a recorder).

    Returns:
        a :class:`FetchReport` (``files`` is empty for a dry run).

    Raises:
        FetchError: no API key, days outside the available range or not ``available``,
            the total cost above ``fetch_max_cost``, another fetch holds the folder, or
            an API error (after retries for transient ones). Files fetched before the
            error stay (each complete); nothing else is written.
        SourceError: see :func:`plan_fetch`.
    """
    stream = sys.stderr if out is None else out

    def say(text: str) -> None:
        print(f"fetch: {text}", file=stream, flush=True)

    plan = plan_fetch(cfg, calendar, header_cache)
    report = FetchReport(plan)
    needs = (
        f"trade dates {cfg.start}..{cfg.end} need {len(plan.needed)} UTC days "
        f"({_ranges(plan.needed)})"
    )
    if len(plan.roots) == 1:
        say(f"{needs}; {_presence(plan, plan.roots[0], f' in {plan.folder}')}")
    else:
        roots = ", ".join(plan.roots)
        say(f"{needs} for each of the {len(plan.roots)} roots ({roots}); in {plan.folder}:")
        for root in plan.roots:
            say(f"  {root}: {_presence(plan, root)}")
    if not plan.missing:
        say("nothing to fetch")
        return report
    key = os.environ.get("DATABENTO_API_KEY", "").strip()
    if not key:
        raise FetchError(
            f"DATABENTO_API_KEY is not set; {_count(plan)} are missing "
            f"({_listing(plan)}). Set the key, or add the files to {plan.folder} "
            "yourself. No request was made."
        )
    with _tls_trust():
        _fetch_with_key(cfg, plan, report, key, dry_run, say, sleep)
    return report


def _fetch_with_key(
    cfg: BackfillConfig,
    plan: FetchPlan,
    report: FetchReport,
    key: str,
    dry_run: bool,
    say: Callable[[str], None],
    sleep: Callable[[float], None],
) -> None:
    """Steps 4 to 6 of the module docstring (see :func:`fetch_missing`)."""
    api = _Api(cfg, key, say, sleep)
    api.check_available(plan.needed)
    several = len(plan.roots) > 1
    for root in _missing_roots(plan):
        days = plan.missing_of(root)
        report.costs[root] = api.cost(root, days)
        if several:
            say(
                f"  {root}: estimated cost of {len(days)} missing UTC days "
                f"({root}.FUT): ${report.costs[root]:.4f}"
            )
    report.cost = sum(report.costs.values())
    say(
        f"estimated cost of the {_count(plan, 'missing ')}: ${report.cost:.4f} "
        f"(fetch_max_cost ${cfg.fetch_max_cost:.2f})"
    )
    if report.cost > cfg.fetch_max_cost:
        raise FetchError(
            f"estimated cost ${report.cost:.4f} of {_count(plan, 'missing ')} "
            f"({_listing(plan, report.costs)}) is above fetch_max_cost "
            f"${cfg.fetch_max_cost:.2f}; nothing was downloaded. Raise fetch_max_cost "
            "(CLI --fetch-max-cost) to proceed."
        )
    if dry_run:
        say(f"dry run: {_count(plan)} would be downloaded; nothing was")
        return
    plan.folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with _folder_lock(plan.folder):
        _remove_partial(plan.folder, plan.roots, cfg.dataset)
        for number, (root, day) in enumerate(plan.missing, 1):
            final = fetched_file(plan.folder, root, cfg.dataset, day)
            if final.exists():
                raise FetchError(
                    f"{final} exists but its header does not make UTC day {day} present "
                    f"for {root} (its range or requested symbols); remove it to fetch the "
                    "day again"
                )
            final.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.monotonic()
            size = api.download(root, day, final)
            seconds = time.monotonic() - t0
            report.files.append((root, day, final, size, seconds))
            say(
                f"{day} -> {final.relative_to(plan.folder)}: {size:,} bytes in "
                f"{seconds:.2f} s ({number}/{len(plan.missing)})"
            )
    total = sum(size for *_, size, _ in report.files)
    say(
        f"fetched {_count(plan)}, {total:,} bytes in "
        f"{time.monotonic() - started:.1f} s into {plan.folder}"
    )


def _missing_roots(plan: FetchPlan) -> list[str]:
    """The roots with missing days, in the run's order."""
    return [r for r in plan.roots if plan.missing_of(r)]


def _presence(plan: FetchPlan, root: str, where: str = "") -> str:
    """``3 present<where>, 5 missing: 2024-01-05..2024-01-07, 2024-01-09``."""
    missing = plan.missing_of(root)
    return f"{len(plan.needed) - len(missing)} present{where}, {len(missing)} missing" + (
        f": {_ranges(missing)}" if missing else ""
    )


def _count(plan: FetchPlan, adjective: str = "") -> str:
    """``8 missing UTC days`` (one root), ``13 missing UTC days of MGC, GC`` (several)."""
    text = f"{len(plan.missing)} {adjective}UTC days"
    if len(plan.roots) > 1:
        text += f" of {', '.join(_missing_roots(plan))}"
    return text


def _listing(plan: FetchPlan, costs: Mapping[str, float] | None = None) -> str:
    """The missing days: ``2024-01-05..2024-01-12`` (one root), ``MGC: 2024-01-05,
    2024-01-08 ($0.0250); GC: ...`` (several; with each root's cost when known)."""
    if len(plan.roots) == 1:
        return _ranges(plan.missing_of(plan.roots[0]))
    parts = []
    for root in _missing_roots(plan):
        cost = f" (${costs[root]:.4f})" if costs and root in costs else ""
        parts.append(f"{root}: {_ranges(plan.missing_of(root))}{cost}")
    return "; ".join(parts)


def fetch_from_config(
    config: Mapping[str, Any],
    *,
    dry_run: bool,
    header_cache: Path | None = None,
    calendar_cache: Path | None = None,
) -> bool:
    """The Snakefile hook: fetch when config ``fetch`` is true (see :func:`fetch_missing`).

    Args:
        config: Snakemake's merged config.
        dry_run: Snakemake's ``--dry-run``.
        header_cache: the planner's header cache file.
        calendar_cache: the calendar a previous plan saved (used when built from the
            same settings; see :func:`dbn_backfill.tradedate.cme_calendar`).

    Returns:
        whether ``fetch`` is on.

    Raises:
        ConfigError: a bad setting. FetchError, SourceError: see :func:`fetch_missing`.
    """
    cfg = from_mapping(config)
    if not cfg.fetch:
        return False
    from dbn_backfill.tradedate import cme_calendar

    try:
        calendar = cme_calendar(cfg.calendar, cfg.session_tz, cfg.session_roll, calendar_cache)
    except ValueError as exc:
        raise FetchError(f"calendar {cfg.calendar}: {exc}") from exc
    fetch_missing(cfg, calendar, dry_run=dry_run, header_cache=header_cache)
    return True


# --------------------------------------------------------------------------- API calls


@dataclass(frozen=True)
class _Failure:
    transient: bool
    text: str
    retry_after: float | None = None


class _Incomplete(Exception):
    """A downloaded body that does not decode to the end (cut short)."""


class _Api:
    """The ``databento.Historical`` calls of a fetch, with retries."""

    def __init__(
        self,
        cfg: BackfillConfig,
        key: str,
        say: Callable[[str], None],
        sleep: Callable[[float], None],
    ) -> None:
        import databento

        self.cfg = cfg
        self.say = say
        self.sleep = sleep
        self.several = len(cfg.symbols) > 1
        try:
            self.client = databento.Historical(key=key, gateway=cfg.databento_gateway)
        except ValueError as exc:
            raise FetchError(
                f"databento_gateway {cfg.databento_gateway!r} is not usable: {exc}"
            ) from exc

    def call(self, what: str, request: Callable[[], T]) -> T:
        """``request()``, retried while it fails transiently.

        Raises:
            FetchError: naming ``what``, the HTTP status and Databento's message.
        """
        attempts = self.cfg.fetch_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return request()
            except Exception as exc:
                failure = _classify(exc)
                if failure is None:
                    raise
                if not failure.transient or attempt == attempts:
                    tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                    raise FetchError(f"{what} failed{tries}: {failure.text}") from None
                wait = self.cfg.fetch_backoff * 2 ** (attempt - 1)
                if failure.retry_after is not None:
                    wait = failure.retry_after
                wait = min(wait, MAX_WAIT_SECONDS)
                self.say(f"{what}: {failure.text}; retry {attempt}/{attempts - 1} in {wait:.2f} s")
                self.sleep(wait)
        raise AssertionError("unreachable")

    def check_available(self, needed: Sequence[dt.date]) -> None:
        """The available range covers ``needed`` and each of its days is ``available``.

        Raises:
            FetchError: naming the days and what was found.
        """
        dataset = self.cfg.dataset
        first, last = needed[0], needed[-1]
        info = self.call(
            f"metadata.get_dataset_range of {dataset}",
            lambda: self.client.metadata.get_dataset_range(dataset=dataset),
        )
        lo, hi = _available_range(info, dataset)
        outside = [d for d in needed if _day_ns(d) < lo.value or _day_ns(d) + NS_PER_DAY > hi.value]
        if outside:
            raise FetchError(
                f"{len(outside)} needed UTC days lie outside the available {SCHEMA} "
                f"range of {dataset} [{lo.isoformat()}, {hi.isoformat()}): "
                f"{_ranges(outside)}; nothing was downloaded"
            )
        rows = self.call(
            f"metadata.get_dataset_condition of {dataset} for UTC days {first}..{last}",
            lambda: self.client.metadata.get_dataset_condition(
                dataset=dataset, start_date=first, end_date=last
            ),
        )
        found = {str(row.get("date")): row.get("condition") for row in rows or []}
        bad = [(d, found.get(str(d))) for d in needed if found.get(str(d)) != "available"]
        if bad:
            listing = ", ".join(f"{d} {c or 'not listed'}" for d, c in bad)
            raise FetchError(
                f"{len(bad)} needed UTC days of {dataset} are not 'available': "
                f"{listing}; nothing was downloaded"
            )

    def _of(self, root: str) -> str:
        """`` of GC.FUT`` in the messages of a run of several roots."""
        return f" of {root}.FUT" if self.several else ""

    def cost(self, root: str, missing: Sequence[dt.date]) -> float:
        """Estimated USD cost of ``root``'s ``missing`` days: one ``get_cost`` of
        ``<root>.FUT`` per run of consecutive days."""
        total = 0.0
        for first, last in _runs(missing):
            value = self.call(
                f"metadata.get_cost for UTC days {first}..{last}{self._of(root)}",
                functools.partial(
                    self.client.metadata.get_cost,
                    dataset=self.cfg.dataset,
                    start=first,
                    end=last + DAY,
                    symbols=f"{root}.FUT",
                    schema=SCHEMA,
                    stype_in="parent",
                ),
            )
            total += float(value)
        return total

    def download(self, root: str, day: dt.date, final: Path) -> int:
        """Fetch UTC day ``day`` of ``root`` (``<root>.FUT``) into ``final`` atomically;
        returns its size in bytes.

        Raises:
            FetchError: the API refused, retries ran out, or the file is not the
                requested data; no file is left under ``final``'s name.
        """
        tmp = fetch_partial(final, os.getpid())

        def attempt() -> None:
            tmp.unlink(missing_ok=True)
            try:
                self.client.timeseries.get_range(
                    dataset=self.cfg.dataset,
                    schema=SCHEMA,
                    symbols=f"{root}.FUT",
                    stype_in="parent",
                    stype_out="instrument_id",
                    start=day,
                    end=day + DAY,
                    path=tmp,
                )
                _verify(tmp, root, day, self.cfg.dataset)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

        self.call(f"timeseries.get_range of UTC day {day}{self._of(root)}", attempt)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        size = tmp.stat().st_size
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        return size


def _classify(exc: BaseException) -> _Failure | None:
    """What an exception from the client means; None: not an API failure (re-raised)."""
    import requests
    from databento.common.error import BentoError, BentoHttpError

    if isinstance(exc, BentoHttpError):
        status = int(exc.http_status)
        message = exc.message or (exc.http_body or "").strip() or "<no message>"
        retry_after = _retry_after(exc.headers.get("Retry-After")) if exc.headers else None
        transient = status >= 500 or status in (408, 429)
        return _Failure(transient, f"HTTP {status}: {message}", retry_after)
    if isinstance(exc, BentoError):  # the body stream broke (HTTP 200 already received)
        return _Failure(True, f"HTTP 200, body cut short: {exc}")
    if isinstance(exc, _Incomplete):
        return _Failure(True, f"HTTP 200, body incomplete: {exc}")
    if isinstance(exc, requests.RequestException):
        # an untrusted certificate will not become trusted by retrying
        transient = "CERTIFICATE_VERIFY_FAILED" not in str(exc)
        return _Failure(transient, f"no HTTP response ({type(exc).__name__}: {exc})")
    return None


def _retry_after(value: object) -> float | None:
    """Seconds of a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _verify(path: Path, root: str, day: dt.date, dataset: str) -> None:
    """The file decodes to the end and its header is ``day``'s data requested for
    ``root`` (so the next run finds the day present).

    Raises:
        _Incomplete: it does not decode to the end (retried).
        FetchError: it decodes but is not what was requested.
    """
    try:
        header = read_header(path)
        with DbnReader(path) as reader:
            reader.metadata()
            for _ in reader.blocks():
                pass
    except SourceError as exc:
        raise _Incomplete(str(exc)) from None
    try:
        check_header(header, dataset)
    except SourceError as exc:
        raise FetchError(f"Databento's answer for UTC day {day}: {exc}") from None
    if not present_days([header], [day]):
        raise FetchError(
            f"Databento's answer for UTC day {day} has a header range "
            f"[{header.start_ns}, {header.end_ns}) that does not cover the day"
        )
    if not requested_for(header, root):
        raise FetchError(
            f"Databento's answer for UTC day {day} of {root}.FUT names the requested "
            f"symbols {list(header.symbols)}, not {root}"
        )


def _available_range(info: Any, dataset: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[start, end)`` of ``get_dataset_range``'s answer, for ohlcv-1m when it says."""
    source = info if isinstance(info, dict) else {}
    schemas = source.get("schema")
    if isinstance(schemas, dict) and isinstance(schemas.get(SCHEMA), dict):
        source = schemas[SCHEMA]
    start = source.get("start", source.get("start_date"))
    end = source.get("end", source.get("end_date"))
    try:
        if start is None or end is None:
            raise ValueError("no start or end")
        lo, hi = pd.Timestamp(str(start)), pd.Timestamp(str(end))
    except ValueError:
        raise FetchError(
            f"metadata.get_dataset_range of {dataset} answered {info!r}: no start/end"
        ) from None
    return (
        lo.tz_localize("UTC") if lo.tzinfo is None else lo.tz_convert("UTC"),
        hi.tz_localize("UTC") if hi.tzinfo is None else hi.tz_convert("UTC"),
    )


# --------------------------------------------------------------------------- files


@contextlib.contextmanager
def _tls_trust() -> Iterator[None]:
    """Let ``SSL_CERT_FILE`` name the CA bundle too (``requests`` reads only
    ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``), for the duration of the fetch."""
    bundle = os.environ.get("SSL_CERT_FILE")
    if not bundle or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"):
        yield
        return
    os.environ["REQUESTS_CA_BUNDLE"] = bundle
    try:
        yield
    finally:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """One fetch per folder at a time (an flock the OS drops if the process dies)."""
    path = fetch_lock(folder)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FetchError(
                f"another fetch is downloading into {folder} (lock {path}); wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _remove_partial(folder: Path, roots: Sequence[str], dataset: str) -> None:
    """Delete temporary files of downloads killed earlier, in the roots' folders and at
    the top (the earlier layout's); the folder lock is held."""
    pattern = fetch_partial_glob(dataset)
    for where in [folder, *(fetched_folder(folder, root) for root in roots)]:
        for path in where.glob(pattern):
            path.unlink(missing_ok=True)


def _dbn_files(folder: Path) -> Iterator[Path]:
    for path in folder.rglob("*"):
        if path.is_file() and (path.name.endswith(".dbn") or path.name.endswith(".dbn.zst")):
            yield path


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _day_ns(day: dt.date) -> int:
    return (day - _EPOCH).days * NS_PER_DAY


def _runs(days: Sequence[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Consecutive days as ``(first, last)`` runs."""
    runs: list[tuple[dt.date, dt.date]] = []
    for day in days:
        if runs and runs[-1][1] + DAY == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _ranges(days: Sequence[dt.date]) -> str:
    """``2024-01-05..2024-01-07, 2024-01-09``."""
    return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in _runs(days))

"""The DBN side of the spot-check gate (contract section 9), rule ``spot_check``.

For ``spot_check_days`` random business days of the run (seeded by the run id) it
counts, straight from the DBN files and through a reader path of its own (not the
decode's), the distinct bars of every outright of the root per trade date. The gate
(:mod:`dbn_backfill.gates.checks`) compares them with the table.

A ``.dbn.zst`` file cannot be seeked: recounting a day of a 16-year single file means
decompressing it up to that day. So the first time the spot-check meets a file's
content it counts *every* trade date of the file in one pass, and keeps those counts
in ``<workdir>/.dbn-backfill/spot-counts/`` under a key of the file's sha256 (the
source index's, re-hashed whenever the file's size, mtime, ctime or inode moves),
the root and the calendar settings. A later run reads its days from there: the same
bytes give the same counts, the table side is queried afresh every run, and a file
whose content changes is counted again. Exact per file only for files in time order
(duplicates of a stamp are then neighbours); a file out of order, a file without a
known sha256, or a day that several files cover (overlapping downloads, whose
identical bars count once) is recounted from the files themselves, as without a
cache.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import random
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dbn_backfill.artifacts import SpotCounts, write_json
from dbn_backfill.config import BackfillConfig
from dbn_backfill.runtime.progress import Progress
from dbn_backfill.sources.dbn_files import SourceHeader
from dbn_backfill.sources.index import IndexedSource
from dbn_backfill.tradedate import Calendar

log = logging.getLogger(__name__)

#: bump when the counting changes: older cached counts are then ignored
CACHE_VERSION = 1

DayCounts = dict[dt.date, dict[str, int]]


def spot_check_days(
    calendar: Calendar,
    start: dt.date,
    end: dt.date,
    expected_gaps: tuple[dt.date, ...],
    n: int,
    seed: str,
) -> list[dt.date]:
    """``n`` random business days of ``[start, end]`` (less ``expected_gaps``), seeded."""
    days = calendar.required_days(start, end, expected_gaps)
    return sorted(random.Random(seed).sample(days, min(n, len(days))))


def spot_check_counts(
    cfg: BackfillConfig,
    calendar: Calendar,
    sources: list[IndexedSource],
    seed: str,
    cache_dir: Path | None = None,
) -> SpotCounts:
    """The spot-check's side of the DBN files: for ``cfg.spot_check_days`` random trade
    dates of the run (seeded by ``seed``), the distinct bars of every outright of the
    root, counted straight from the files (or from ``cache_dir``, see the module doc).

    Raises:
        SourceError: a file cannot be read.
    """
    started = time.monotonic()
    days = spot_check_days(
        calendar, cfg.start, cfg.end, cfg.expected_gaps, cfg.spot_check_days, seed
    )
    headers = [s.header for s in sources]
    shas = {str(s.header.path): s.sha256 for s in sources}
    counts, files, cached = _counts(headers, shas, calendar, cfg.symbol, days, cache_dir)
    return SpotCounts(
        run_id=seed,
        days={str(d): counts[d] for d in days},
        files=files,
        cached=cached,
        seconds=time.monotonic() - started,
    )


def _counts(
    headers: list[SourceHeader],
    shas: dict[str, str],
    calendar: Calendar,
    symbol: str,
    days: list[dt.date],
    cache_dir: Path | None,
) -> tuple[DayCounts, list[str], list[str]]:
    """``(counts per day, files read or looked up, files whose counts were cached)``."""
    from dbn_backfill.chunks.grid import header_trade_span, overlaps

    out: DayCounts = {d: {} for d in days}
    if not days:
        return out, [], []
    spans = {str(h.path): header_trade_span(h, calendar) for h in headers}
    covering = {d: [h for h in headers if overlaps(spans[str(h.path)], d, d)] for d in days}
    involved = [h for h in headers if any(h in covering[d] for d in days)]
    per_file: dict[str, DayCounts] = {}
    cached: list[str] = []
    if cache_dir is not None:
        todo = [h for h in involved if str(h.path) in shas]
        progress = Progress("spot-check: counting new files", len(todo), "files")
        for done, header in enumerate(todo):
            progress.update(done)
            counts = _file_counts(header, shas[str(header.path)], calendar, symbol, cache_dir)
            if counts is not None:
                per_file[str(header.path)] = counts
                cached.append(str(header.path))
        progress.finish(len(todo))
    recount: dict[dt.date, list[SourceHeader]] = {}
    for day in days:
        readers = covering[day]
        uncounted = [h for h in readers if str(h.path) not in per_file]
        having = [h for h in readers if per_file.get(str(h.path), {}).get(day)]
        if not uncounted and _disjoint(having):
            # files whose time ranges do not overlap share no bar: their counts add up
            total: dict[str, int] = {}
            for header in having:
                for raw, n in per_file[str(header.path)][day].items():
                    total[raw] = total.get(raw, 0) + n
            out[day] = total
        else:  # files without counts, or overlapping files with bars of that day
            recount[day] = readers
    if recount:
        files = sorted({h for hs in recount.values() for h in hs}, key=lambda h: str(h.path))
        counted = recount_from_dbn(files, calendar, symbol, sorted(recount))
        for day in recount:
            out[day] = counted[day]
    return out, [str(h.path) for h in involved], cached


def _disjoint(headers: list[SourceHeader]) -> bool:
    """The files' declared time ranges do not overlap (a file's records lie in its
    range: the decode stops the run otherwise)."""
    spans = sorted((h.start_ns, h.end_ns) for h in headers)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        if end is None or end > start:
            return False
    return True


def _cache_key(sha256: str, symbol: str, calendar: Calendar) -> str:
    what = f"{CACHE_VERSION}|{sha256}|{symbol}|{calendar.name}|{calendar.session_tz}|"
    what += f"{calendar.session_roll}|{calendar.days[0]}|{calendar.days[-1]}"
    return hashlib.sha256(what.encode()).hexdigest()


def _file_counts(
    header: SourceHeader, sha256: str, calendar: Calendar, symbol: str, cache_dir: Path
) -> DayCounts | None:
    """Every trade date's outright counts of one file: cached, or counted now (and
    cached); None for a file not in time order (not countable per file)."""
    path = cache_dir / f"{_cache_key(sha256, symbol, calendar)}.json"
    try:
        raw = json.loads(path.read_text())
        if raw.get("sha256") == sha256 and raw.get("in_order"):
            return {
                dt.date.fromisoformat(d): {str(k): int(v) for k, v in c.items()}
                for d, c in raw["days"].items()
            }
        if raw.get("sha256") == sha256:
            return None
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    counts = count_file(header, calendar, symbol)
    write_json(
        path,
        {
            "version": CACHE_VERSION,
            "path": str(header.path),
            "sha256": sha256,
            "symbol": symbol,
            "in_order": counts is not None,
            "days": {str(d): c for d, c in (counts or {}).items()},
        },
    )
    log.info("spot-check: counted %s (sha256 %s)", header.path, sha256[:12])
    return counts


def count_file(header: SourceHeader, calendar: Calendar, symbol: str) -> DayCounts | None:
    """Distinct bars of every outright of ``symbol`` per trade date of one whole file,
    or None when the file is not in time order (then neighbours are not the only
    possible duplicates, and the day must be recounted as a set)."""
    from databento.common.symbology import InstrumentMap

    from dbn_backfill.sources.dbn_files import DbnReader
    from dbn_backfill.symbols import outright_pattern

    pattern = outright_pattern(symbol)
    totals: dict[tuple[dt.date, str], int] = {}
    previous = np.iinfo(np.int64).min  # the last stamp of the previous block
    tail: set[tuple[str, int]] = set()  # (raw symbol, ts) counted at that stamp
    with DbnReader(header.path) as reader:
        imap = InstrumentMap()
        imap.insert_metadata(reader.metadata())
        for _, block in reader.blocks():
            ts_all = block["ts_event"].astype("int64")
            if ts_all[0] < previous or bool((np.diff(ts_all) < 0).any()):
                return None
            codes, names, hit = _outrights(imap, block, pattern)
            if hit.any():
                ts = ts_all[hit]
                # one raw symbol may have several codes (instrument ids, UTC days)
                code_name, uniques = pd.factorize(names)
                name_id = code_name[codes[hit]]
                order = np.lexsort((name_id, ts))
                s_ts, s_id = ts[order], name_id[order]
                first = np.ones(len(order), dtype=bool)
                first[1:] = (s_ts[1:] != s_ts[:-1]) | (s_id[1:] != s_id[:-1])
                if tail and s_ts[0] == previous:
                    for i in np.flatnonzero(s_ts == previous):
                        if (str(uniques[s_id[i]]), previous) in tail:
                            first[i] = False
                block_last = int(ts_all[-1])
                at_last = np.unique(s_id[s_ts == block_last])
                lasts = {(str(uniques[i]), block_last) for i in at_last}
                tail = (lasts | tail) if block_last == previous else lasts
                previous = block_last
                stamps, at = np.unique(s_ts[first], return_inverse=True)  # a minute: once
                days = calendar.trade_dates(stamps)[at].astype("int64")
                keys = days * len(uniques) + s_id[first]
                values, sizes = np.unique(keys, return_counts=True)
                for value, n in zip(values.tolist(), sizes.tolist(), strict=True):
                    day = np.datetime64(value // len(uniques), "D").astype(dt.date)
                    key = (day, str(uniques[value % len(uniques)]))
                    totals[key] = totals.get(key, 0) + int(n)
            else:
                if int(ts_all[-1]) != previous:
                    tail = set()
                previous = int(ts_all[-1])
    out: DayCounts = {}
    for (day, raw), n in sorted(totals.items()):
        out.setdefault(day, {})[raw] = n
    return out


def _outrights(
    imap: Any, block: np.ndarray, pattern: re.Pattern[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(codes, names, hit)``: record ``i`` has raw symbol ``names[codes[i]]`` (through
    the file's mappings on its UTC date; "" when unresolved) and ``hit[i]`` says it is
    an outright of the root."""
    from dbn_backfill.sources.decode import resolve_codes

    codes, symbols = resolve_codes(imap, block["instrument_id"], block["ts_event"])
    names = np.array([str(x) if x is not None else "" for x in symbols], dtype=object)
    outright = np.array([pattern.match(n) is not None for n in names], dtype=bool)
    return codes, names, outright[codes]


def recount_from_dbn(
    headers: list[SourceHeader], calendar: Calendar, symbol: str, days: list[dt.date]
) -> DayCounts:
    """Distinct bars of every outright of ``symbol`` per trade date of ``days``, read
    from the DBN files as sets (identical bars of overlapping files count once; each
    file read only up to the end of the last day's session when it is in time order).
    """
    from databento.common.symbology import InstrumentMap

    from dbn_backfill.chunks.grid import header_trade_span, overlaps
    from dbn_backfill.sources.dbn_files import DbnReader
    from dbn_backfill.symbols import outright_pattern

    days = sorted(days)
    out: DayCounts = {d: {} for d in days}
    if not days:
        return out
    pattern = outright_pattern(symbol)
    bounds = [calendar.session_bounds_utc(d, d) for d in days]
    edges = np.array([t.value for lo, hi in bounds for t in (lo, hi)], dtype="int64")
    last_end = int(edges.max())
    to_read = [
        h for h in headers if any(overlaps(header_trade_span(h, calendar), d, d) for d in days)
    ]
    found: list[pd.DataFrame] = []
    progress = Progress(f"spot-check of {len(days)} trade dates", len(to_read), "files")
    for done, header in enumerate(to_read):
        progress.update(done)
        with DbnReader(header.path) as reader:
            imap = InstrumentMap()
            imap.insert_metadata(reader.metadata())
            in_order, previous = True, np.iinfo(np.int64).min
            for _, block in reader.blocks():
                ts_all = block["ts_event"].astype("int64")
                # only records inside one of the wanted sessions: odd positions in edges
                inside = (np.searchsorted(edges, ts_all, side="right") % 2) == 1
                if inside.any():
                    codes, symbols, hit = _outrights(imap, block[inside], pattern)
                    if hit.any():
                        ts = ts_all[inside][hit]
                        found.append(
                            pd.DataFrame(
                                {
                                    "trade_date": calendar.trade_dates(ts),
                                    "raw_symbol": symbols[codes[hit]],
                                    "ts": ts,
                                }
                            )
                        )
                # files are written in time order; once past the last session, stop early
                in_order = (
                    in_order and bool(ts_all[0] >= previous) and bool((np.diff(ts_all) >= 0).all())
                )
                previous = int(ts_all[-1])
                if in_order and previous >= last_end:
                    break
    progress.finish(len(to_read))
    if found:
        bars = pd.concat(found, ignore_index=True).drop_duplicates()
        sizes = bars.groupby(["trade_date", "raw_symbol"]).size()
        for day, raw, n in zip(
            sizes.index.get_level_values(0), sizes.index.get_level_values(1), sizes, strict=True
        ):
            when = pd.Timestamp(str(day)).date()
            if when in out:
                out[when][str(raw)] = int(n)
    return out

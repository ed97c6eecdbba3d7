"""Build the chunks of one batch (the ``build_chunks`` rule): validate, select, write bars.

For each chunk (K trade dates) of the batch, over the decoded records of those
dates only: resolve-or-stop, section 4 row rules, duplicate handling, the front
contract per trade date (section 5), and the selected contract's bars as a
parquet checked against the pandera schema. A chunk that breaks a rule is
written empty and marked ``failed`` in the batch manifest with the message; the
merge then records that in its checkpoint and commits nothing of it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dbn_backfill.artifacts import BatchManifest, ChunkResult
from dbn_backfill.chunks.front import PRIOR_DAY, SAME_DAY, select_front, term_structure
from dbn_backfill.chunks.grid import Chunk
from dbn_backfill.chunks.rows import VALUE_COLUMNS, dedupe, describe, invalid_mask, to_price
from dbn_backfill.runtime.faults import kill_point
from dbn_backfill.schema import ARROW_SCHEMA, SELECTION_SCHEMA, TERM_SCHEMA, bars_schema
from dbn_backfill.tradedate import Calendar

log = logging.getLogger(__name__)


def read_decoded(
    paths: list[Path],
    first: dt.date,
    last: dt.date,
    root: str,
    files: frozenset[str] | set[str],
) -> pd.DataFrame:
    """Decoded records of root ``root`` with trade dates in ``[first, last]`` from every
    group file: its outrights, and the unresolved records of ``files`` (the files whose
    header names the root: an unresolved record of another root's file is not its).

    Only the parquet row groups whose statistics overlap the range are read.
    """
    filters = [("trade_date", ">=", first), ("trade_date", "<=", last)]
    tables = [_of_root(pq.read_table(p, filters=filters), root, files) for p in paths]
    if not tables:
        from dbn_backfill.sources.decode import DECODED_SCHEMA

        return DECODED_SCHEMA.empty_table().drop_columns(["root"]).to_pandas()
    table = pa.concat_tables(tables, promote_options="permissive")
    frame = table.to_pandas(strings_to_categorical=True)
    frame["trade_date"] = pd.to_datetime(frame["trade_date"]).values.astype("datetime64[D]")
    return frame


def _of_root(table: pa.Table, root: str, files: frozenset[str] | set[str]) -> pa.Table:
    """The rows of ``table`` that belong to ``root`` (see :func:`read_decoded`), without
    the ``root`` column."""
    roots = table.column("root")
    unresolved = pc.is_null(table.column("raw_symbol"))
    mine = pc.equal(roots.cast(pa.string()), root)
    own_file = pc.is_in(table.column("source").cast(pa.string()), pa.array(sorted(files)))
    keep = pc.or_kleene(pc.fill_null(mine, False), pc.and_(unresolved, own_file))
    return table.filter(keep).drop_columns(["root"])


def select_bars(
    frame: pd.DataFrame,
    symbol: str,
    rule: str = SAME_DAY,
    basis: pd.DataFrame | None = None,
    basis_of: dict[dt.date, dt.date | None] | None = None,
    unknown: set[dt.date] | frozenset[dt.date] = frozenset(),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Front contract per trade date and its bars (see :func:`select`)."""
    bars, selection, _ = select(frame, symbol, rule, basis, basis_of, unknown)
    return bars, selection


def select(
    frame: pd.DataFrame,
    symbol: str,
    rule: str = SAME_DAY,
    basis: pd.DataFrame | None = None,
    basis_of: dict[dt.date, dt.date | None] | None = None,
    unknown: set[dt.date] | frozenset[dt.date] = frozenset(),
    terms: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Front contract per trade date, its bars and the days' term structure, for valid,
    de-duplicated records.

    Args:
        frame: decoded records (any number of trade dates), already checked.
        symbol: the root.
        rule, basis, basis_of, unknown: the roll rule and the basis days' volumes
            (:func:`dbn_backfill.chunks.front.select_front`).
        terms: the term structure of ``frame``, when known already.

    Returns:
        ``(bars, selection, terms)``: bars in table order sorted by ``ts_utc`` (plus the
        ``chunk`` position column when ``frame`` has it); one selection row per trade
        date; :func:`dbn_backfill.chunks.front.term_structure` of ``frame``.
    """
    if terms is None:
        terms = term_structure(frame, symbol)
    selection = select_front(terms, symbol, rule, basis, basis_of, unknown)
    chosen = frame[_is_selected(frame, selection)].sort_values("ts_event", kind="mergesort")
    bars = pd.DataFrame(
        {
            "ts_utc": pd.to_datetime(
                chosen["ts_event"].to_numpy(dtype="int64") // 1000, unit="us", utc=True
            ),
            "symbol": symbol,
            "source_symbol": chosen["raw_symbol"].astype("str").to_numpy(),
            "open": to_price(chosen["open"].to_numpy()),
            "high": to_price(chosen["high"].to_numpy()),
            "low": to_price(chosen["low"].to_numpy()),
            "close": to_price(chosen["close"].to_numpy()),
            "volume": chosen["volume"].to_numpy(dtype="int64"),
        }
    ).reset_index(drop=True)
    bars["ts_utc"] = bars["ts_utc"].astype("datetime64[us, UTC]")
    # pandas strings, not objects: pandera then checks the dtype, not every value
    bars["symbol"] = bars["symbol"].astype("str")
    bars["source_symbol"] = bars["source_symbol"].astype("str")
    if "chunk" in chosen:
        bars["chunk"] = chosen["chunk"].to_numpy()
    return bars, selection, terms


def repeated(*keys: np.ndarray) -> np.ndarray:
    """Rows whose key (one integer array per key column) occurs more than once.

    One ``lexsort`` and a comparison of neighbours: much cheaper than a hash
    ``duplicated`` over a million rows, and it finds the common case (no repeat at all)
    at once.
    """
    n = len(keys[0])
    if n < 2:
        return np.zeros(n, dtype=bool)
    order = np.lexsort(keys[::-1])
    same = np.ones(n - 1, dtype=bool)
    for key in keys:
        ordered = key[order]
        same &= ordered[1:] == ordered[:-1]
    hit = np.zeros(n, dtype=bool)
    hit[1:] |= same
    hit[:-1] |= same
    out = np.empty(n, dtype=bool)
    out[order] = hit
    return out


def _is_selected(frame: pd.DataFrame, selection: pd.DataFrame) -> np.ndarray:
    """Rows of ``frame`` of their trade date's selected contract (a join on trade date
    and raw symbol, as arrays: one selection row per trade date, sorted)."""
    codes, uniques = pd.factorize(frame["raw_symbol"])
    days = selection["trade_date"].to_numpy(dtype="datetime64[D]")
    if len(days) == 0:
        return np.zeros(len(frame), dtype=bool)
    if (np.diff(days.astype("int64")) <= 0).any():
        raise AssertionError("selection is not one row per trade date in order")
    picked = pd.Index(uniques).get_indexer(selection["source_symbol"])
    row_days = frame["trade_date"].to_numpy(dtype="datetime64[D]")
    at = np.minimum(np.searchsorted(days, row_days), len(days) - 1)
    return (days[at] == row_days) & (np.asarray(codes) == picked[at]) & (picked[at] >= 0)


def chunk_errors(
    frame: pd.DataFrame, chunks: list[Chunk], repeats: np.ndarray | None = None
) -> dict[int, str]:
    """The first broken rule of every chunk that breaks one (sections 2 and 4).

    Args:
        frame: decoded records with a ``chunk`` column (position in ``chunks``).
        repeats: :func:`repeated` of ``(instrument_id, ts_event)``, when known.

    Returns:
        chunk position -> message naming the file, instrument, raw symbol,
        ``ts_event`` and values of the first offending record.
    """
    errors: dict[int, str] = {}
    pos = frame["chunk"].to_numpy()

    def first_per_chunk(mask: np.ndarray, message: str) -> None:
        if not mask.any():
            return
        hits = frame[mask].sort_values("ts_event", kind="mergesort")
        counts = hits.groupby("chunk").size()
        firsts = hits.groupby("chunk").head(1)  # one message per failing chunk, not per row
        for position in range(len(firsts)):
            row = firsts.iloc[position]
            c = int(row["chunk"])
            if c in errors:
                continue
            why = f": {row['_reason']}" if row.get("_reason") else ""
            errors[c] = (
                f"chunk {chunks[c].chunk_id}: {int(counts[c])} {message}, "
                f"first: {describe(row)}{why}"
            )

    frame["_reason"] = ""
    first_per_chunk(
        frame["raw_symbol"].isna().to_numpy(),
        "records have no symbol mapping on their UTC date (contract section 2)",
    )
    bad, reasons = invalid_mask(frame)
    frame["_reason"] = reasons
    first_per_chunk(bad, "invalid outright records (contract section 4)")
    del frame["_reason"]
    key = ["instrument_id", "ts_event"]
    suspects = _key_repeats(frame) if repeats is None else repeats
    distinct = frame.drop_duplicates([*key, *VALUE_COLUMNS]) if suspects.any() else frame
    codes, _ = pd.factorize(distinct["raw_symbol"])  # unresolved: -1, alike, as before
    suspects_clash = repeated(
        np.asarray(codes, dtype="int64"), distinct["ts_event"].to_numpy(dtype="int64")
    )
    for c in sorted(set(pos[suspects]) | set(distinct["chunk"].to_numpy()[suspects_clash])):
        if int(c) in errors:
            continue
        _, problems = dedupe(frame[pos == c])
        if problems:
            errors[int(c)] = f"chunk {chunks[int(c)].chunk_id}: " + "; ".join(problems)
    return errors


def _key_repeats(frame: pd.DataFrame) -> np.ndarray:
    return repeated(
        frame["instrument_id"].to_numpy(dtype="int64"), frame["ts_event"].to_numpy(dtype="int64")
    )


#: The selection columns a chunk's content hash covers: the rule's outcome (which
#: contract's bars are stored), not how it was reached (rule, basis day, runner-up:
#: those are lineage, see :func:`lineage_hash`).
OUTCOME_COLUMNS = ["trade_date", "source_symbol", "expiry", "instrument_id", "volume"]


def content_hash(bars: pd.DataFrame, selection: pd.DataFrame) -> str:
    """sha256 of a chunk's bars and the outcome of its selection (:data:`OUTCOME_COLUMNS`):
    equal content, equal hash, whichever rule picked it."""
    digest = hashlib.sha256(b"content v2\n")
    digest.update(np.asarray(bars["ts_utc"].array.asi8, dtype="int64").tobytes())
    for c in ("open", "high", "low", "close"):
        digest.update(bars[c].to_numpy(dtype="float64").tobytes())
    digest.update(bars["volume"].to_numpy(dtype="int64").tobytes())
    for column in ("source_symbol", "symbol"):
        codes, uniques = pd.factorize(bars[column])
        digest.update(np.asarray(codes, dtype="int64").tobytes())
        digest.update("\n".join(str(u) for u in uniques).encode())
    outcome = selection[[c for c in OUTCOME_COLUMNS if c in selection.columns]]
    digest.update(outcome.to_json(orient="values", date_format="iso").encode())
    return digest.hexdigest()


def lineage_hash(selection: pa.Table, terms: pa.Table) -> str:
    """sha256 of a chunk's selection rows and term structure rows as stored: the merge
    rewrites the lineage of a chunk whose content is unchanged when this differs (the
    rule switched, a runner-up moved)."""
    digest = hashlib.sha256(b"lineage v1\n")
    for table in (selection, terms):
        digest.update(repr(table.to_pylist()).encode())
    return digest.hexdigest()


def build_batch(
    decoded: list[Path],
    batch_id: str,
    chunks: list[Chunk],
    bars_output: Path,
    selection_output: Path,
    manifest_output: Path,
    symbol: str,
    files: frozenset[str] | set[str] | None = None,
    *,
    terms_output: Path | None = None,
    roll_rule: str = SAME_DAY,
    basis_first: dt.date | None = None,
    calendar: Calendar | None = None,
) -> BatchManifest:
    """Build every chunk of a batch and write what the merge reads: the bars parquet
    (one row group per chunk with rows, in chunk order), the batch's selection
    parquet, its term structure parquet and its manifest
    (:class:`~dbn_backfill.artifacts.BatchManifest`).

    Checks and selection run once over the whole batch (vectorized); results are
    then cut per chunk. A chunk breaking a rule does not stop its siblings: it
    gets no rows and is reported ``failed`` with the message.

    The basis days (contract section 5a): every trade date T's basis day B is the
    business day before it; for a chunk's first day that is the previous chunk's last
    day, or ``basis_first`` for the batch's first chunk. The records of each chunk's
    basis day are checked (sections 2 and 4) as the chunk's own: under
    ``prior_day_volume`` an offending one fails the chunk holding T; under
    ``same_day_volume`` it only makes T's other-rule pick unknown. Basis-day records
    before the batch are never stored.

    Args:
        decoded: the decode groups' parquets the batch reads.
        symbol: the root the batch is built for.
        files: the DBN files whose header names the root (their unresolved records are
            the root's); None: every file of ``decoded``.
        terms_output: where the term structure goes (None: beside the selection).
        roll_rule: ``same_day_volume`` or ``prior_day_volume``.
        basis_first: the basis day of the batch's first trade date (None: not read).
        calendar: the CME business days (basis days inside the batch, session starts);
            None (tests): weekdays, and no session starts.

    Raises:
        pandera.errors.SchemaError: the bars break the table schema (a bug, never data).
    """
    if files is None:
        files = _all_sources(decoded)
    first_day = np.datetime64(chunks[0].first, "D")
    raw = read_decoded(decoded, basis_first or chunks[0].first, chunks[-1].last, symbol, files)
    early = raw["trade_date"].to_numpy() < first_day
    before = raw[early] if early.any() else raw.iloc[:0]
    frame = raw[~early].reset_index(drop=True) if early.any() else raw
    firsts = np.array([np.datetime64(c.first, "D") for c in chunks])
    frame["chunk"] = np.searchsorted(firsts, frame["trade_date"].to_numpy(), side="right") - 1
    repeats = _key_repeats(frame)
    errors = chunk_errors(frame, chunks, repeats)
    basis_days = [basis_first] + [c.last for c in chunks[:-1]]
    basis_frame = _basis_records(frame, before, basis_days)
    basis_errors = _basis_errors(basis_frame, chunks, basis_days)
    if roll_rule == PRIOR_DAY:
        for c, message in basis_errors.items():
            errors.setdefault(c, message)
    unknown = {chunks[c].first for c in basis_errors}
    good = frame[~np.isin(frame["chunk"].to_numpy(), list(errors))] if errors else frame
    if repeats.any():
        good = good.drop_duplicates(["instrument_id", "ts_event", *VALUE_COLUMNS])
    usable = basis_frame[~np.isin(basis_frame["chunk"].to_numpy(), list(basis_errors))]
    usable = usable.drop_duplicates(["instrument_id", "ts_event", *VALUE_COLUMNS])
    basis_of = _basis_of(good, chunks, basis_days, calendar)
    # a chunk's first day ranks by its basis records (which the previous chunk's failure
    # does not void); every other day by the day before it in the chunk's own records
    terms = term_structure(good, symbol)
    basis = pd.concat([term_structure(usable, symbol), terms], ignore_index=True)
    basis = basis.drop_duplicates(["trade_date", "raw_symbol"], keep="first")
    bars, selection, terms = select(good, symbol, roll_rule, basis, basis_of, unknown, terms)
    bars_schema(symbol).validate(bars.drop(columns="chunk"), lazy=False)
    if (np.diff(bars["chunk"].to_numpy()) < 0).any():
        raise AssertionError("bars are not in chunk order")  # ts order implies it
    selection = selection.assign(symbol=symbol).sort_values("trade_date", kind="mergesort")
    sel_chunk = np.searchsorted(firsts, selection["trade_date"].to_numpy(), side="right") - 1
    selection["chunk_id"] = [chunks[int(c)].chunk_id for c in sel_chunk]
    selection["session_start_utc"] = _session_starts(selection["trade_date"], calendar)
    terms = terms.assign(symbol=symbol)
    term_chunk = np.searchsorted(firsts, terms["trade_date"].to_numpy(), side="right") - 1
    terms["chunk_id"] = [chunks[int(c)].chunk_id for c in term_chunk]
    selection_table = _selection_table(selection)
    terms_table = _terms_table(terms)

    manifest = BatchManifest(batch_id=batch_id)
    bars_output.parent.mkdir(parents=True, exist_ok=True)
    tmp = bars_output.with_name(f".{bars_output.name}.tmp")
    writer = pq.ParquetWriter(tmp, ARROW_SCHEMA, compression="zstd")
    row_groups = 0
    resolved_days = frame[frame["raw_symbol"].notna()].groupby("chunk")["trade_date"].unique()
    sources = frame.groupby("chunk")["source"].unique()
    basis_sources: Any = (
        basis_frame.groupby("chunk")["source"].unique() if roll_rule == PRIOR_DAY else {}
    )
    # bars are in ts order, so each chunk's bars (and selection rows) are one slice
    bar_pos = bars["chunk"].to_numpy()
    bars = bars.drop(columns="chunk")
    table = pa.Table.from_pandas(bars, schema=ARROW_SCHEMA, preserve_index=False)
    positions = np.arange(len(chunks) + 1)
    bar_edges = np.searchsorted(bar_pos, positions, side="left")
    sel_edges = np.searchsorted(sel_chunk, positions, side="left")
    term_edges = np.searchsorted(term_chunk, positions, side="left")
    for i, chunk in enumerate(chunks):
        days = sorted(str(pd.Timestamp(d).date()) for d in resolved_days.get(i, []))
        own = {str(f) for f in sources.get(i, [])}
        chunk_files = sorted(own | {str(f) for f in basis_sources.get(i, [])})
        base: dict[str, Any] = {
            "chunk_id": chunk.chunk_id,
            "chunk_start": str(chunk.first),
            "chunk_end": str(chunk.last),
            "days_present": days,
            "sources": chunk_files,
        }
        if i in errors:
            log.error("chunk %s failed: %s", chunk.chunk_id, errors[i])
            manifest.chunks.append(
                ChunkResult(
                    **base,
                    status="failed",
                    rows=0,
                    content_hash="",
                    error=errors[i],
                    last_ts_event=_last_good_ts(frame, i, errors[i]),
                )
            )
            continue
        if i in basis_errors:
            log.warning(
                "chunk %s: %s; its first day's %s pick is unknown",
                chunk.chunk_id,
                basis_errors[i],
                PRIOR_DAY,
            )
        lo, hi = int(bar_edges[i]), int(bar_edges[i + 1])
        part = bars.iloc[lo:hi]
        s_lo, s_hi = int(sel_edges[i]), int(sel_edges[i + 1])
        picks = selection.iloc[s_lo:s_hi]
        t_lo, t_hi = int(term_edges[i]), int(term_edges[i + 1])
        row_group = None
        if hi > lo:
            writer.write_table(table.slice(lo, hi - lo))
            row_group, row_groups = row_groups, row_groups + 1
        kill_point("build")
        manifest.chunks.append(
            ChunkResult(
                **base,
                status="ok",
                rows=len(part),
                content_hash=content_hash(part, picks),
                row_group=row_group,
                lineage_hash=lineage_hash(
                    selection_table.slice(s_lo, s_hi - s_lo), terms_table.slice(t_lo, t_hi - t_lo)
                ),
            )
        )
        front = ", ".join(
            f"{pd.Timestamp(d).date()}={s}"
            for d, s in zip(picks["trade_date"], picks["source_symbol"], strict=True)
        )
        log.info("chunk %s: %d bars; front per day: %s", chunk.chunk_id, len(part), front or "none")
    writer.close()
    tmp.replace(bars_output)
    _write_table(selection_output, selection_table)
    _write_table(terms_output or _terms_path(selection_output), terms_table)
    manifest.write(manifest_output)
    return manifest


def _terms_path(selection_output: Path) -> Path:
    return selection_output.with_name(selection_output.name + ".terms")


def _basis_records(
    frame: pd.DataFrame, before: pd.DataFrame, basis_days: list[dt.date | None]
) -> pd.DataFrame:
    """The records of every chunk's basis day, each with the position of the chunk
    whose first day it is the basis of (``chunk``): ``before`` (the batch's own basis
    day) for chunk 0, the previous chunk's last day for the others."""
    parts = []
    if basis_days[0] is not None and len(before):
        parts.append(before.assign(chunk=0))
    ends = np.array([np.datetime64(d, "D") for d in basis_days[1:]], dtype="datetime64[D]")
    if len(ends):
        days = frame["trade_date"].to_numpy(dtype="datetime64[D]")
        at = np.searchsorted(ends, days)
        hit = (at < len(ends)) & (ends[np.minimum(at, len(ends) - 1)] == days)
        if hit.any():
            parts.append(frame[hit].assign(chunk=at[hit] + 1))
    if not parts:
        return frame.iloc[:0].copy()
    return pd.concat(parts, ignore_index=True)


def _basis_errors(
    basis_frame: pd.DataFrame, chunks: list[Chunk], basis_days: list[dt.date | None]
) -> dict[int, str]:
    """:func:`chunk_errors` of the basis days' records, each message naming the basis
    day and the trade date it is the basis of."""
    if basis_frame.empty:
        return {}
    found = chunk_errors(basis_frame.copy(), chunks)
    return {
        c: f"basis day {basis_days[c]} of trade date {chunks[c].first} "
        f"({PRIOR_DAY}, contract section 5a): {message}"
        for c, message in found.items()
    }


def _basis_of(
    good: pd.DataFrame,
    chunks: list[Chunk],
    basis_days: list[dt.date | None],
    calendar: Calendar | None,
) -> dict[dt.date, dt.date | None]:
    """Trade date -> its basis day, for every trade date of ``good``."""
    out: dict[dt.date, dt.date | None] = {}
    starts = {c.first: basis_days[i] for i, c in enumerate(chunks)}
    for value in np.unique(good["trade_date"].to_numpy(dtype="datetime64[D]")):
        day = pd.Timestamp(value).date()
        if day in starts:
            out[day] = starts[day]
        elif calendar is not None:
            out[day] = calendar.previous_business_day(day)
        else:  # tests without a calendar: weekdays
            out[day] = pd.Timestamp(np.busday_offset(value, -1, roll="backward")).date()
    return out


def _session_starts(days: pd.Series, calendar: Calendar | None) -> list[Any]:
    """The first instant (UTC) of each trade date's bars (None without a calendar)."""
    if calendar is None:
        return [None] * len(days)
    out = []
    for value in days:
        day = pd.Timestamp(value).date()
        out.append(calendar.session_bounds_utc(day, day)[0].to_pydatetime())
    return out


def _selection_table(selection: pd.DataFrame) -> pa.Table:
    if selection.empty:
        return SELECTION_SCHEMA.empty_table()
    frame = selection.copy()
    frame["session_start_utc"] = pd.to_datetime(frame["session_start_utc"], utc=True)
    frame["trade_date"] = pd.to_datetime(frame["trade_date"]).dt.date
    frame["basis_day"] = pd.to_datetime(frame["basis_day"]).dt.date
    for column in ("runner_up_volume", "runner_up_basis_volume"):
        frame[column] = frame[column].astype("Int64")
    return pa.Table.from_pandas(
        frame[SELECTION_SCHEMA.names], schema=SELECTION_SCHEMA, preserve_index=False
    )


def _terms_table(terms: pd.DataFrame) -> pa.Table:
    if terms.empty:
        return TERM_SCHEMA.empty_table()
    frame = pd.DataFrame(
        {
            "symbol": terms["symbol"].astype(str),
            "trade_date": pd.to_datetime(terms["trade_date"]).dt.date,
            "source_symbol": terms["raw_symbol"].astype(str),
            "expiry": [f"{e // 100:04d}-{e % 100:02d}" for e in terms["expiry"].astype(int)],
            "instrument_id": terms["instrument_id"].astype("int64"),
            "volume": terms["volume"].astype("int64"),
            "bars": terms["bars"].astype("int64"),
            "first_ts_utc": pd.to_datetime(terms["first_ts"] // 1000, unit="us", utc=True),
            "last_ts_utc": pd.to_datetime(terms["last_ts"] // 1000, unit="us", utc=True),
            "last_close": terms["last_close"].astype("float64"),
            "chunk_id": terms["chunk_id"].astype(str),
        }
    )
    return pa.Table.from_pandas(frame, schema=TERM_SCHEMA, preserve_index=False)


def _write_table(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _all_sources(paths: list[Path]) -> set[str]:
    """Every DBN file named in the ``source`` column of the decoded parquets."""
    out: set[str] = set()
    for path in paths:
        column = pq.read_table(path, columns=["source"]).column("source")
        out.update(str(v) for v in pc.unique(column.cast(pa.string())).to_pylist())
    return out


def _last_good_ts(frame: pd.DataFrame, chunk: int, message: str) -> str | None:
    """The last ``ts_event`` of the chunk before the offending record, for the log."""
    marker = "ts_event "
    if marker not in message:
        return None
    try:
        bad = int(message.split(marker, 1)[1].split(" ", 1)[0])
    except ValueError:
        return None
    ts = frame.loc[frame["chunk"] == chunk, "ts_event"].to_numpy()
    before = ts[ts < bad]
    return str(pd.Timestamp(int(before.max()), unit="ns", tz="UTC")) if len(before) else None

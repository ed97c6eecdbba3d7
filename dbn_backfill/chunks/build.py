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
from dbn_backfill.chunks.front import select_front
from dbn_backfill.chunks.grid import Chunk
from dbn_backfill.chunks.rows import VALUE_COLUMNS, dedupe, describe, invalid_mask, to_price
from dbn_backfill.runtime.faults import kill_point
from dbn_backfill.schema import ARROW_SCHEMA, SELECTION_SCHEMA, bars_schema

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


def select_bars(frame: pd.DataFrame, symbol: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Front contract per trade date and its bars, for valid, de-duplicated records.

    Args:
        frame: decoded records (any number of trade dates), already checked.
        symbol: the root.

    Returns:
        ``(bars, selection)``: bars in table order sorted by ``ts_utc`` (plus the
        ``chunk`` position column when ``frame`` has it); one selection row per trade
        date. Ranking: total volume, then earliest expiry, then raw symbol.
    """
    per_iid = (
        frame.groupby(["trade_date", "raw_symbol", "instrument_id"], sort=True)["volume"]
        .sum()
        .reset_index()
        .sort_values(
            ["trade_date", "raw_symbol", "volume", "instrument_id"],
            ascending=[True, True, False, True],
            kind="mergesort",
        )
    )
    volumes = (
        per_iid.groupby(["trade_date", "raw_symbol"], sort=True)
        .agg(volume=("volume", "sum"), instrument_id=("instrument_id", "first"))
        .reset_index()
    )
    volumes["volume"] = volumes["volume"].astype("int64")
    selection = select_front(volumes, symbol)
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
    return bars, selection


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
    frame.drop(columns="_reason", inplace=True)
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


def content_hash(bars: pd.DataFrame, selection: pd.DataFrame) -> str:
    """sha256 of a chunk's bars and selection: equal content, equal hash."""
    digest = hashlib.sha256()
    digest.update(np.asarray(bars["ts_utc"].array.asi8, dtype="int64").tobytes())
    for c in ("open", "high", "low", "close"):
        digest.update(bars[c].to_numpy(dtype="float64").tobytes())
    digest.update(bars["volume"].to_numpy(dtype="int64").tobytes())
    for column in ("source_symbol", "symbol"):
        codes, uniques = pd.factorize(bars[column])
        digest.update(np.asarray(codes, dtype="int64").tobytes())
        digest.update("\n".join(str(u) for u in uniques).encode())
    digest.update(selection.to_json(orient="values", date_format="iso").encode())
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
) -> BatchManifest:
    """Build every chunk of a batch and write what the merge reads: the bars parquet
    (one row group per chunk with rows, in chunk order), the batch's selection
    parquet and its manifest (:class:`~dbn_backfill.artifacts.BatchManifest`).

    Checks and selection run once over the whole batch (vectorized); results are
    then cut per chunk. A chunk breaking a rule does not stop its siblings: it
    gets no rows and is reported ``failed`` with the message.

    Args:
        decoded: the decode groups' parquets the batch reads.
        symbol: the root the batch is built for.
        files: the DBN files whose header names the root (their unresolved records are
            the root's); None: every file of ``decoded``.

    Raises:
        pandera.errors.SchemaError: the bars break the table schema (a bug, never data).
    """
    if files is None:
        files = _all_sources(decoded)
    frame = read_decoded(decoded, chunks[0].first, chunks[-1].last, symbol, files)
    firsts = np.array([np.datetime64(c.first, "D") for c in chunks])
    frame["chunk"] = np.searchsorted(firsts, frame["trade_date"].to_numpy(), side="right") - 1
    repeats = _key_repeats(frame)
    errors = chunk_errors(frame, chunks, repeats)
    good = frame[~np.isin(frame["chunk"].to_numpy(), list(errors))] if errors else frame
    if repeats.any():
        good = good.drop_duplicates(["instrument_id", "ts_event", *VALUE_COLUMNS])
    bars, selection = select_bars(good, symbol)
    bars_schema(symbol).validate(bars.drop(columns="chunk"), lazy=False)
    if (np.diff(bars["chunk"].to_numpy()) < 0).any():
        raise AssertionError("bars are not in chunk order")  # ts order implies it
    selection = selection.assign(symbol=symbol).sort_values("trade_date", kind="mergesort")
    sel_chunk = np.searchsorted(firsts, selection["trade_date"].to_numpy(), side="right") - 1
    selection["chunk_id"] = [chunks[int(c)].chunk_id for c in sel_chunk]

    manifest = BatchManifest(batch_id=batch_id)
    bars_output.parent.mkdir(parents=True, exist_ok=True)
    tmp = bars_output.with_name(f".{bars_output.name}.tmp")
    writer = pq.ParquetWriter(tmp, ARROW_SCHEMA, compression="zstd")
    row_groups = 0
    resolved_days = frame[frame["raw_symbol"].notna()].groupby("chunk")["trade_date"].unique()
    sources = frame.groupby("chunk")["source"].unique()
    # bars are in ts order, so each chunk's bars (and selection rows) are one slice
    bar_pos = bars["chunk"].to_numpy()
    bars = bars.drop(columns="chunk")
    table = pa.Table.from_pandas(bars, schema=ARROW_SCHEMA, preserve_index=False)
    positions = np.arange(len(chunks) + 1)
    bar_edges = np.searchsorted(bar_pos, positions, side="left")
    sel_edges = np.searchsorted(sel_chunk, positions, side="left")
    picks_all = selection.drop(columns="chunk_id")
    for i, chunk in enumerate(chunks):
        days = sorted(str(pd.Timestamp(d).date()) for d in resolved_days.get(i, []))
        chunk_files = sorted(str(f) for f in sources.get(i, []))
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
        lo, hi = int(bar_edges[i]), int(bar_edges[i + 1])
        part = bars.iloc[lo:hi]
        picks = picks_all.iloc[int(sel_edges[i]) : int(sel_edges[i + 1])]
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
            )
        )
        front = ", ".join(
            f"{pd.Timestamp(d).date()}={s}"
            for d, s in zip(picks["trade_date"], picks["source_symbol"], strict=True)
        )
        log.info("chunk %s: %d bars; front per day: %s", chunk.chunk_id, len(part), front or "none")
    writer.close()
    tmp.replace(bars_output)
    _write_selection(selection_output, [selection])
    manifest.write(manifest_output)
    return manifest


def _all_sources(paths: list[Path]) -> set[str]:
    """Every DBN file named in the ``source`` column of the decoded parquets."""
    out: set[str] = set()
    for path in paths:
        column = pq.read_table(path, columns=["source"]).column("source")
        out.update(str(v) for v in pc.unique(column.cast(pa.string())).to_pylist())
    return out


def _write_selection(path: Path, frames: list[pd.DataFrame]) -> None:
    if frames:
        frame = pd.concat(frames, ignore_index=True)
        frame["trade_date"] = pd.to_datetime(frame["trade_date"]).dt.date
        table = pa.Table.from_pandas(
            frame[SELECTION_SCHEMA.names], schema=SELECTION_SCHEMA, preserve_index=False
        )
    else:
        table = SELECTION_SCHEMA.empty_table()
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


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

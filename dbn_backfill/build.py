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
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .contracts import select_front
from .errors import RecordError
from .faults import kill_point
from .plan import Chunk
from .rows import dedupe, describe, invalid_mask, to_price
from .schema import ARROW_SCHEMA, bars_schema

log = logging.getLogger(__name__)

SELECTION_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("trade_date", pa.date32()),
        ("source_symbol", pa.string()),
        ("instrument_id", pa.int64()),
        ("volume", pa.int64()),
        ("runner_up", pa.string()),
        ("runner_up_volume", pa.int64()),
        ("chunk_id", pa.string()),
    ]
)


@dataclass
class ChunkResult:
    """What the merge needs to know about a built chunk."""

    chunk_id: str
    chunk_start: str
    chunk_end: str
    status: str  # "ok" | "failed"
    rows: int
    content_hash: str
    days_present: list[str]
    sources: list[str]
    error: str | None = None
    last_ts_event: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_decoded(paths: list[Path], first: dt.date, last: dt.date) -> pd.DataFrame:
    """Decoded records with trade dates in ``[first, last]`` from every group file.

    Only the parquet row groups whose statistics overlap the range are read.
    """
    filters = [("trade_date", ">=", first), ("trade_date", "<=", last)]
    tables = [pq.read_table(p, filters=filters) for p in paths]
    if not tables:
        from .decode import DECODED_SCHEMA

        return DECODED_SCHEMA.empty_table().to_pandas()
    table = pa.concat_tables(tables, promote_options="permissive")
    frame = table.to_pandas()
    frame["source"] = frame["source"].astype(str)
    frame["trade_date"] = pd.to_datetime(frame["trade_date"]).values.astype("datetime64[D]")
    return frame


def build_chunk(
    frame: pd.DataFrame, chunk: Chunk, symbol: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bars and selection of one chunk from its decoded records.

    Args:
        frame: decoded records whose trade date lies in the chunk.
        chunk: the chunk.
        symbol: the root.

    Returns:
        ``(bars, selection)``: bars in table order sorted by ``ts_utc``; one selection
        row per trade date with bars.

    Raises:
        RecordError: an unresolved instrument, a row breaking section 4, or a
            conflicting duplicate; the message names the file and the record.
    """
    unresolved = frame["raw_symbol"].isna()
    if unresolved.any():
        row = frame[unresolved].sort_values("ts_event").iloc[0]
        raise RecordError(
            f"chunk {chunk.chunk_id}: {int(unresolved.sum())} records have no symbol mapping "
            f"on their UTC date (contract section 2), first: {describe(row)}"
        )
    bad, reasons = invalid_mask(frame)
    if bad.any():
        order = np.argsort(frame["ts_event"].to_numpy()[bad], kind="stable")
        first = frame[bad].iloc[order[0]]
        raise RecordError(
            f"chunk {chunk.chunk_id}: {int(bad.sum())} invalid outright records (contract "
            f"section 4), first: {describe(first)}: {reasons[bad][order[0]]}"
        )
    frame, errors = dedupe(frame)
    if errors:
        raise RecordError(f"chunk {chunk.chunk_id}: " + "; ".join(errors))

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

    chosen = frame.merge(
        selection[["trade_date", "source_symbol"]],
        left_on=["trade_date", "raw_symbol"],
        right_on=["trade_date", "source_symbol"],
        how="inner",
    ).sort_values("ts_event", kind="mergesort")
    bars = pd.DataFrame(
        {
            "ts_utc": pd.to_datetime(
                chosen["ts_event"].to_numpy(dtype="int64") // 1000, unit="us", utc=True
            ),
            "symbol": symbol,
            "source_symbol": chosen["raw_symbol"].astype(str).to_numpy(),
            "open": to_price(chosen["open"].to_numpy()),
            "high": to_price(chosen["high"].to_numpy()),
            "low": to_price(chosen["low"].to_numpy()),
            "close": to_price(chosen["close"].to_numpy()),
            "volume": chosen["volume"].to_numpy(dtype="int64"),
        }
    ).reset_index(drop=True)
    bars["ts_utc"] = bars["ts_utc"].astype("datetime64[us, UTC]")
    bars["symbol"] = bars["symbol"].astype(object)
    return bars, selection


def content_hash(bars: pd.DataFrame, selection: pd.DataFrame) -> str:
    """sha256 of a chunk's bars and selection: equal content, equal hash."""
    digest = hashlib.sha256()
    digest.update(bars["ts_utc"].to_numpy().astype("datetime64[us]").astype("int64").tobytes())
    for c in ("open", "high", "low", "close"):
        digest.update(bars[c].to_numpy(dtype="float64").tobytes())
    digest.update(bars["volume"].to_numpy(dtype="int64").tobytes())
    digest.update("\n".join(bars["source_symbol"].astype(str)).encode())
    digest.update("\n".join(bars["symbol"].astype(str)).encode())
    digest.update(selection.astype(str).to_csv(index=False).encode())
    return digest.hexdigest()


def build_batch(
    decoded: list[Path],
    chunks: list[Chunk],
    chunk_outputs: list[Path],
    selection_output: Path,
    manifest_output: Path,
    symbol: str,
) -> list[ChunkResult]:
    """Build every chunk of a batch, writing each chunk's parquet, the batch's
    selection parquet and its manifest (what the merge reads).

    A chunk breaking a rule does not stop its siblings: it is written empty and
    reported ``failed`` with the message (and the last good ``ts_event`` before it).
    """
    if len(chunks) != len(chunk_outputs):
        raise ValueError("one output path per chunk is required")
    frame = read_decoded(decoded, chunks[0].first, chunks[-1].last)
    check = bars_schema(symbol)
    results: list[ChunkResult] = []
    selections: list[pd.DataFrame] = []
    dates = frame["trade_date"].to_numpy()
    for chunk, out in zip(chunks, chunk_outputs, strict=True):
        lo, hi = np.datetime64(chunk.first, "D"), np.datetime64(chunk.last, "D")
        part = frame[(dates >= lo) & (dates <= hi)]
        resolved = part[part["raw_symbol"].notna()]
        days_present = sorted(
            {str(pd.Timestamp(d).date()) for d in resolved["trade_date"].unique()}
        )
        sources = sorted(set(part["source"].unique()))
        try:
            bars, selection = build_chunk(part, chunk, symbol)
            check.validate(bars, lazy=False)
        except RecordError as exc:
            ts = np.sort(part["ts_event"].to_numpy())
            log.error("chunk %s failed: %s", chunk.chunk_id, exc)
            results.append(
                ChunkResult(
                    chunk_id=chunk.chunk_id,
                    chunk_start=str(chunk.first),
                    chunk_end=str(chunk.last),
                    status="failed",
                    rows=0,
                    content_hash="",
                    days_present=days_present,
                    sources=sources,
                    error=str(exc),
                    last_ts_event=_last_good_ts(ts, str(exc)),
                )
            )
            _write_bars(out, ARROW_SCHEMA.empty_table())
            continue
        selection = selection.assign(symbol=symbol, chunk_id=chunk.chunk_id)
        selections.append(selection)
        table = pa.Table.from_pandas(bars, schema=ARROW_SCHEMA, preserve_index=False)
        _write_bars(out, table)
        kill_point("build")
        digest = content_hash(bars, selection)
        results.append(
            ChunkResult(
                chunk_id=chunk.chunk_id,
                chunk_start=str(chunk.first),
                chunk_end=str(chunk.last),
                status="ok",
                rows=len(bars),
                content_hash=digest,
                days_present=days_present,
                sources=sources,
            )
        )
        picks = ", ".join(
            f"{pd.Timestamp(d).date()}={s}"
            for d, s in zip(selection["trade_date"], selection["source_symbol"], strict=True)
        )
        log.info("chunk %s: %d bars; front per day: %s", chunk.chunk_id, len(bars), picks or "none")
    _write_selection(selection_output, selections)
    manifest_output.write_text(json.dumps({"chunks": [r.to_json() for r in results]}, indent=1))
    return results


def _write_bars(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")


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


def _last_good_ts(sorted_ts: np.ndarray, message: str) -> str | None:
    """The last ``ts_event`` processed before the failure, for the log."""
    marker = "ts_event "
    if marker in message:
        try:
            bad = int(message.split(marker, 1)[1].split(" ", 1)[0])
        except ValueError:
            return None
        before = sorted_ts[sorted_ts < bad]
        if len(before):
            return str(pd.Timestamp(int(before[-1]), unit="ns", tz="UTC"))
    return None

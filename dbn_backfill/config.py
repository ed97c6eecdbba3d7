"""The run settings, checked at the boundary (before any work starts)."""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

REQUIRED = ("dbn", "db", "symbol", "start", "end", "chunk_days", "checkpoint")
#: Databento's historical API (config ``databento_gateway`` overrides it).
DEFAULT_GATEWAY = "https://hist.databento.com"


@dataclass(frozen=True)
class BackfillConfig:
    """One backfill: which files, which database, which root and trade dates.

    Paths are absolute (resolved against the working directory at parse time).
    """

    dbn: Path
    db: Path
    symbol: str
    start: dt.date
    end: dt.date
    chunk_days: int
    checkpoint: Path
    dataset: str = "GLBX.MDP3"
    calendar: str = "CME_TradeDate"
    session_tz: str = "America/Chicago"
    session_roll: str = "17:00"
    expected_gaps: tuple[dt.date, ...] = ()
    retry_failed: bool = False
    spot_check_days: int = 5
    chunks_per_job: int = 100
    fetch: bool = False
    databento_gateway: str = DEFAULT_GATEWAY
    fetch_max_cost: float = 5.0
    fetch_retries: int = 4
    fetch_backoff: float = 2.0
    extra: dict[str, Any] = field(default_factory=dict)


def parse_date(value: object, key: str) -> dt.date:
    """A ``YYYY-MM-DD`` string or a YAML date.

    Raises:
        ConfigError: naming the key and the value.
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"config {key}={value!r} is not a date in YYYY-MM-DD form")


def parse_dates(value: object, key: str) -> tuple[dt.date, ...]:
    """A list of dates, or a comma-separated string of them (CLI form)."""
    if value is None or value == "" or value == []:
        return ()
    if isinstance(value, str):
        items: list[object] = [v for v in value.strip("[]").split(",") if v.strip()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        items = [value]
    return tuple(sorted({parse_date(v, key) for v in items}))


def parse_bool(value: object, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "1", "yes"}:
        return True
    if isinstance(value, str) and value.lower() in {"false", "0", "no", ""}:
        return False
    raise ConfigError(f"config {key}={value!r} is not true or false")


def parse_positive_int(value: object, key: str, zero: bool = False) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise ConfigError(f"config {key}={value!r} is not an integer") from None
    if number < 0 or (number == 0 and not zero):
        raise ConfigError(
            f"config {key}={value!r} must be a {'non-negative' if zero else 'positive'} integer"
        )
    return number


def parse_amount(value: object, key: str) -> float:
    """A finite number >= 0 (USD, seconds).

    Raises:
        ConfigError: naming the key and the value.
    """
    try:
        number = float(str(value))
    except ValueError:
        raise ConfigError(f"config {key}={value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"config {key}={value!r} must be a finite number >= 0")
    return number


def from_mapping(config: Mapping[str, Any], base: Path | None = None) -> BackfillConfig:
    """Build and check a :class:`BackfillConfig` from Snakemake's ``config``.

    Args:
        config: the merged config (``config.yaml`` plus ``--config`` overrides).
        base: directory relative paths are resolved against (default: cwd).

    Raises:
        ConfigError: a required key is missing, or a value is malformed or contradictory.
    """
    missing = [k for k in REQUIRED if config.get(k) in (None, "")]
    if missing:
        raise ConfigError("missing required config: " + ", ".join(missing))
    root = Path(base) if base is not None else Path.cwd()

    def path(key: str) -> Path:
        return (root / os.path.expanduser(str(config[key]))).resolve()

    start = parse_date(config["start"], "start")
    end = parse_date(config["end"], "end")
    if start > end:
        raise ConfigError(f"config start={start} is after end={end}")
    symbol = str(config["symbol"]).strip()
    if not symbol.isalnum() or not symbol.isupper():
        raise ConfigError(f"config symbol={symbol!r} must be an upper-case root like MGC")
    spot = int(str(config.get("spot_check_days", 5)))
    if spot < 0:
        raise ConfigError(f"config spot_check_days={spot} must be >= 0")
    return BackfillConfig(
        dbn=path("dbn"),
        db=path("db"),
        symbol=symbol,
        start=start,
        end=end,
        chunk_days=parse_positive_int(config["chunk_days"], "chunk_days"),
        checkpoint=path("checkpoint"),
        dataset=str(config.get("dataset", "GLBX.MDP3")),
        calendar=str(config.get("calendar", "CME_TradeDate")),
        session_tz=str(config.get("session_tz", "America/Chicago")),
        session_roll=str(config.get("session_roll", "17:00")),
        expected_gaps=parse_dates(config.get("expected_gaps"), "expected_gaps"),
        retry_failed=parse_bool(config.get("retry_failed", False), "retry_failed"),
        spot_check_days=spot,
        chunks_per_job=parse_positive_int(config.get("chunks_per_job", 100), "chunks_per_job"),
        fetch=parse_bool(config.get("fetch", False), "fetch"),
        databento_gateway=str(config.get("databento_gateway") or DEFAULT_GATEWAY).strip(),
        fetch_max_cost=parse_amount(config.get("fetch_max_cost", 5), "fetch_max_cost"),
        fetch_retries=parse_positive_int(
            config.get("fetch_retries", 4), "fetch_retries", zero=True
        ),
        fetch_backoff=parse_amount(config.get("fetch_backoff", 2.0), "fetch_backoff"),
    )


def check_writable(cfg: BackfillConfig) -> None:
    """Fail before any work if the database or checkpoint location cannot be written.

    The check writes (and removes) a probe file, so it holds for root too, where
    permission bits alone say nothing.

    Raises:
        ConfigError: naming the path.
    """
    if cfg.db.is_dir():
        raise ConfigError(f"db {cfg.db} is a directory, not a DuckDB file")
    if cfg.db.exists() and not os.access(cfg.db, os.W_OK):
        raise ConfigError(f"db {cfg.db} is not writable")
    _probe_dir(cfg.db.parent, f"db {cfg.db}")
    try:
        cfg.checkpoint.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"checkpoint directory {cfg.checkpoint} cannot be created: {exc}"
        ) from exc
    _probe_dir(cfg.checkpoint, f"checkpoint directory {cfg.checkpoint}")


def _probe_dir(folder: Path, what: str) -> None:
    if not folder.is_dir():
        raise ConfigError(f"{what}: folder {folder} does not exist")
    probe = folder / f".dbn-backfill-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{what}: folder {folder} is not writable ({exc})") from exc

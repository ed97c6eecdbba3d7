"""The run settings, checked at the boundary (before any work starts).

Every key, its type and its default is declared once, in the workflow's config
schema (``workflow/schemas/config.schema.yaml``); Snakemake validates the config
against it at parse time, and :func:`from_mapping` turns the result into the
typed :class:`BackfillConfig` every step receives.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dbn_backfill.errors import ConfigError
from dbn_backfill.layout import probe_file
from dbn_backfill.paths import config_schema


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
    dataset: str
    calendar: str
    session_tz: str
    session_roll: str
    expected_gaps: tuple[dt.date, ...]
    retry_failed: bool
    spot_check_days: int
    chunks_per_job: int
    fetch: bool
    databento_gateway: str
    fetch_max_cost: float
    fetch_retries: int
    fetch_backoff: float


@functools.cache
def _schema() -> dict[str, Any]:
    return dict(yaml.safe_load(config_schema().read_text()))


def schema_defaults() -> dict[str, Any]:
    """``key -> default`` of every config key that has one, read from the config schema."""
    return {
        key: spec["default"] for key, spec in _schema()["properties"].items() if "default" in spec
    }


def required_keys() -> tuple[str, ...]:
    """The keys the config schema requires."""
    return tuple(_schema()["required"])


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
        items: list[object] = [
            v.strip().strip("'\"") for v in value.strip("[]").split(",") if v.strip()
        ]
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
    missing = [k for k in required_keys() if config.get(k) in (None, "")]
    if missing:
        raise ConfigError("missing required config: " + ", ".join(missing))
    root = Path(base) if base is not None else Path.cwd()
    defaults = schema_defaults()

    def value(key: str) -> Any:
        return config[key] if config.get(key) is not None else defaults[key]

    def path(key: str) -> Path:
        return (root / os.path.expanduser(str(config[key]))).resolve()

    start = parse_date(config["start"], "start")
    end = parse_date(config["end"], "end")
    if start > end:
        raise ConfigError(f"config start={start} is after end={end}")
    symbol = str(config["symbol"]).strip()
    if not symbol.isalnum() or not symbol.isupper():
        raise ConfigError(f"config symbol={symbol!r} must be an upper-case root like MGC")
    spot = int(str(value("spot_check_days")))
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
        dataset=str(value("dataset")),
        calendar=str(value("calendar")),
        session_tz=str(value("session_tz")),
        session_roll=str(value("session_roll")),
        expected_gaps=parse_dates(value("expected_gaps"), "expected_gaps"),
        retry_failed=parse_bool(value("retry_failed"), "retry_failed"),
        spot_check_days=spot,
        chunks_per_job=parse_positive_int(value("chunks_per_job"), "chunks_per_job"),
        fetch=parse_bool(value("fetch"), "fetch"),
        databento_gateway=str(value("databento_gateway")).strip(),
        fetch_max_cost=parse_amount(value("fetch_max_cost"), "fetch_max_cost"),
        fetch_retries=parse_positive_int(value("fetch_retries"), "fetch_retries", zero=True),
        fetch_backoff=parse_amount(value("fetch_backoff"), "fetch_backoff"),
    )


def check_writable(cfg: BackfillConfig, workdir: Path | None = None) -> None:
    """Fail before any work if the database file, its folder, the checkpoint folder or
    the work directory cannot be written.

    The checks open the database file for writing (writing nothing) and write (and
    remove) a probe file in each folder, so they hold for root too, where permission
    bits alone say nothing: an immutable file (``chattr +i``) or a read-only mount is
    caught.

    Raises:
        ConfigError: naming the path.
    """
    if cfg.db.is_dir():
        raise ConfigError(f"db {cfg.db} is a directory, not a DuckDB file")
    _probe_dir(cfg.db.parent, f"folder {cfg.db.parent} of db {cfg.db}")
    if cfg.db.exists():
        try:
            with open(cfg.db, "r+b"):
                pass
        except OSError as exc:
            raise ConfigError(
                f"db {cfg.db}: the database file is not writable ({exc.strerror or exc}); "
                "nothing was changed"
            ) from exc
    try:
        cfg.checkpoint.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"checkpoint directory {cfg.checkpoint} cannot be created: {exc}"
        ) from exc
    _probe_dir(cfg.checkpoint, f"checkpoint directory {cfg.checkpoint}")
    if workdir is not None:
        _probe_dir(Path(workdir).resolve(), f"work directory {Path(workdir).resolve()}")


def _probe_dir(folder: Path, what: str) -> None:
    """Raises: ConfigError: ``folder`` (named by ``what``) is missing or not writable."""
    if not folder.is_dir():
        raise ConfigError(f"{what} does not exist")
    probe = probe_file(folder, os.getpid())
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"{what} is not writable ({exc.strerror or exc}); nothing was changed"
        ) from exc

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
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from dbn_backfill.errors import ConfigError
from dbn_backfill.layout import probe_file
from dbn_backfill.paths import config_schema

#: A CME root: 1-6 upper-case letters or digits (contract section 11).
ROOT_PATTERN = re.compile(r"^[A-Z0-9]{1,6}$")


@dataclass(frozen=True)
class BackfillConfig:
    """One backfill: which files, which database, which roots and trade dates.

    Paths are absolute (resolved against the working directory at parse time).

    Attributes:
        symbols: the run's roots, in the order given (one or several: a universe).
        expected_gaps: business days without bars for every root of the run.
        root_gaps: ``(root, date)`` pairs, business days without bars for one root
            only (``ROOT:DATE`` entries of ``expected_gaps``).
    """

    dbn: Path
    db: Path
    symbols: tuple[str, ...]
    start: dt.date
    end: dt.date
    chunk_days: int
    checkpoint: Path
    dataset: str
    calendar: str
    session_tz: str
    session_roll: str
    expected_gaps: tuple[dt.date, ...]
    root_gaps: tuple[tuple[str, dt.date], ...]
    retry_failed: bool
    spot_check_days: int
    chunks_per_job: int
    fetch: bool
    databento_gateway: str
    fetch_max_cost: float
    fetch_retries: int
    fetch_backoff: float
    roll_rule: str

    @property
    def symbol(self) -> str:
        """The run's root, for a run (or a per-root view, :meth:`for_root`) of one root.

        Raises:
            ValueError: the run holds several roots: take each with :meth:`for_root`.
        """
        if len(self.symbols) != 1:
            raise ValueError(
                f"a run of {len(self.symbols)} roots has no single symbol: use for_root()"
            )
        return self.symbols[0]

    def settings(self) -> dict[str, Any]:
        """The settings under their config keys, as JSON values (dates ISO, paths
        absolute): ``symbol`` is the root (or the list of roots), ``expected_gaps`` the
        entries ``DATE`` and ``ROOT:DATE`` as given."""
        out: dict[str, Any] = {}
        for key, value in vars(self).items():
            if key == "symbols":
                out["symbol"] = value[0] if len(value) == 1 else list(value)
            elif key == "root_gaps":
                continue
            elif key == "expected_gaps":
                out[key] = [str(d) for d in value] + [f"{r}:{d}" for r, d in self.root_gaps]
            elif isinstance(value, tuple):
                out[key] = [str(v) for v in value]
            elif isinstance(value, bool | int | float):
                out[key] = value
            else:
                out[key] = str(value)
        return out

    def for_root(self, root: str) -> BackfillConfig:
        """The settings of root ``root`` of the run: ``symbols`` is ``(root,)`` and
        ``expected_gaps`` holds the run's gaps plus that root's own.

        Raises:
            ValueError: ``root`` is not one of the run's roots.
        """
        if root not in self.symbols:
            raise ValueError(f"{root} is not a root of this run ({', '.join(self.symbols)})")
        own = {d for r, d in self.root_gaps if r == root}
        return replace(
            self,
            symbols=(root,),
            expected_gaps=tuple(sorted(set(self.expected_gaps) | own)),
            root_gaps=(),
        )


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


def _items(value: object) -> list[object]:
    """A YAML list, or a comma-separated string of items (``[A,B]`` or ``A,B``)."""
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        return [v.strip().strip("'\"") for v in value.strip().strip("[]").split(",") if v.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def parse_symbols(value: object) -> tuple[str, ...]:
    """The run's roots: one root, a YAML list, or a comma-separated string of them.

    Raises:
        ConfigError: no root, a root that is not 1-6 upper-case letters or digits, or a
            root given twice.
    """
    roots = [str(v).strip() for v in _items(value)]
    if not roots:
        raise ConfigError("config symbol is empty: give a root like MGC, or a list [MGC,GC]")
    for root in roots:
        if not ROOT_PATTERN.match(root):
            raise ConfigError(
                f"config symbol={root!r} must be an upper-case root like MGC "
                "(1-6 letters or digits)"
            )
    twice = sorted({r for r in roots if roots.count(r) > 1})
    if twice:
        raise ConfigError(f"config symbol names {', '.join(twice)} twice")
    return tuple(roots)


def parse_gaps(value: object) -> tuple[tuple[dt.date, ...], tuple[tuple[str, dt.date], ...]]:
    """``expected_gaps``: entries ``DATE`` (every root) or ``ROOT:DATE`` (that root).

    Returns:
        ``(dates of every root, (root, date) pairs)``, each sorted, without repeats.

    Raises:
        ConfigError: an entry that is neither, naming it.
    """
    common: set[dt.date] = set()
    per_root: set[tuple[str, dt.date]] = set()
    for item in _items(value):
        if isinstance(item, str) and ":" in item:
            root, _, day = item.partition(":")
            root = root.strip()
            if not ROOT_PATTERN.match(root):
                raise ConfigError(
                    f"config expected_gaps entry {item!r} is neither DATE nor ROOT:DATE"
                )
            per_root.add((root, parse_date(day, "expected_gaps")))
        else:
            common.add(parse_date(item, "expected_gaps"))
    return tuple(sorted(common)), tuple(sorted(per_root))


def parse_bool(value: object, key: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, a YAML bool).

    Raises:
        ConfigError: naming the key and the value.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "1", "yes"}:
        return True
    if isinstance(value, str) and value.lower() in {"false", "0", "no", ""}:
        return False
    raise ConfigError(f"config {key}={value!r} is not true or false")


def parse_positive_int(value: object, key: str, zero: bool = False) -> int:
    """An integer > 0 (>= 0 with ``zero``).

    Raises:
        ConfigError: naming the key and the value.
    """
    try:
        number = int(str(value))
    except ValueError:
        raise ConfigError(f"config {key}={value!r} is not an integer") from None
    if number < 0 or (number == 0 and not zero):
        raise ConfigError(
            f"config {key}={value!r} must be a {'non-negative' if zero else 'positive'} integer"
        )
    return number


#: The roll rules of contract section 5a (the schema's enum, in its order).
ROLL_RULES = ("same_day_volume", "prior_day_volume")


def parse_roll_rule(value: object) -> str:
    """``roll_rule``: one of :data:`ROLL_RULES`.

    Raises:
        ConfigError: naming the value and the rules.
    """
    rule = str(value).strip()
    if rule not in ROLL_RULES:
        raise ConfigError(f"config roll_rule={value!r} must be one of {', '.join(ROLL_RULES)}")
    return rule


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
    symbols = parse_symbols(config["symbol"])
    gaps, root_gaps = parse_gaps(value("expected_gaps"))
    spot = int(str(value("spot_check_days")))
    if spot < 0:
        raise ConfigError(f"config spot_check_days={spot} must be >= 0")
    return BackfillConfig(
        dbn=path("dbn"),
        db=path("db"),
        symbols=symbols,
        start=start,
        end=end,
        chunk_days=parse_positive_int(config["chunk_days"], "chunk_days"),
        checkpoint=path("checkpoint"),
        dataset=str(value("dataset")),
        calendar=str(value("calendar")),
        session_tz=str(value("session_tz")),
        session_roll=str(value("session_roll")),
        expected_gaps=gaps,
        root_gaps=root_gaps,
        retry_failed=parse_bool(value("retry_failed"), "retry_failed"),
        spot_check_days=spot,
        chunks_per_job=parse_positive_int(value("chunks_per_job"), "chunks_per_job"),
        fetch=parse_bool(value("fetch"), "fetch"),
        databento_gateway=str(value("databento_gateway")).strip(),
        fetch_max_cost=parse_amount(value("fetch_max_cost"), "fetch_max_cost"),
        fetch_retries=parse_positive_int(value("fetch_retries"), "fetch_retries", zero=True),
        fetch_backoff=parse_amount(value("fetch_backoff"), "fetch_backoff"),
        roll_rule=parse_roll_rule(value("roll_rule")),
    )


def make_db_folder(db: Path) -> str | None:
    """Create the missing folder of database ``db`` (a real run asked for a database
    there; the CLI and the Snakefile both do it); returns the line saying so, or None
    when the folder exists.

    Raises:
        ConfigError: the folder cannot be created.
    """
    folder = Path(db).parent
    if folder.is_dir():
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"folder {folder} of db {db} does not exist and cannot be created "
            f"({exc.strerror or exc}); nothing was changed"
        ) from exc
    return f"dbn-backfill: created folder {folder} for database {Path(db).name}"


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
    created = make_db_folder(cfg.db)
    if created:
        print(created, file=sys.stderr)
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


#: The keys holding a path: relative ones in a config file resolve against its folder.
PATH_KEYS = ("dbn", "db", "checkpoint")


def load_config_file(path: Path | str) -> dict[str, Any]:
    """The settings of a config file (``dbn-backfill --configfile``): the keys of
    Snakemake's config, checked against the same schema (less its required keys: flags
    may give those). Relative paths of ``dbn``, ``db`` and ``checkpoint`` are resolved
    against the file's folder, so a file means the same from any working directory.

    Raises:
        ConfigError: the file cannot be read, is not a YAML mapping, holds a key the
            schema does not know (naming it and the closest known key), or a value of
            the wrong type.
    """
    import difflib

    import jsonschema

    path = Path(path).expanduser()
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} is not a mapping of config keys")
    known = list(_schema()["properties"])
    unknown = [str(k) for k in raw if k not in known]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            hints.append(f"{key} (did you mean {close[0]}?)" if close else key)
        raise ConfigError(
            f"config file {path}: unknown keys {', '.join(hints)}; the keys are those of "
            "config/README.md"
        )

    def plain(value: Any) -> Any:  # YAML dates as the strings Snakemake's --config gives
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value.isoformat() if isinstance(value, dt.date) else value

    data = {str(k): plain(v) for k, v in raw.items()}
    schema = {k: v for k, v in _schema().items() if k != "required"}
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path)
    )
    if errors:
        where = ".".join(str(p) for p in errors[0].absolute_path) or "(top)"
        raise ConfigError(f"config file {path}: {where}: {errors[0].message}")
    for key in PATH_KEYS:
        if data.get(key) not in (None, ""):
            data[key] = str((path.parent / os.path.expanduser(str(data[key]))).resolve())
    return data

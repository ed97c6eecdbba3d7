"""Typed errors. Every stop condition of the contract raises one of these.

Each message names what broke: the file, the record or the setting, and the
rule of the contract (``docs/contract.md``) it broke, so a user can act on it without a debugger.
"""

from __future__ import annotations


class BackfillError(Exception):
    """Base class: a backfill must stop, with this message."""


class ConfigError(BackfillError):
    """A setting is missing, malformed or contradictory (checked before any work)."""


class SourceError(BackfillError):
    """A DBN source cannot be used: missing, not DBN, truncated, wrong schema/dataset."""


class ChunksFailed(BackfillError):
    """Chunks broke a row rule and were not committed; the valid ones were.

    Attributes:
        failed: ``(root, chunk_id, error)`` of every failed chunk.
    """

    def __init__(self, message: str, failed: list[tuple[str, str, str]]) -> None:
        super().__init__(message)
        self.failed = failed


class CompletenessError(BackfillError):
    """A CME business day in range has no outright bars (contract section 5)."""


class SchemaMismatchError(BackfillError):
    """``bars_1m`` exists with another shape, or the database is not DuckDB (section 6)."""


class CheckpointError(BackfillError):
    """A chunk checkpoint blocks the run (failed without ``retry_failed``)."""


class CheckpointTransitionError(CheckpointError):
    """A checkpoint was asked for a transition its status does not allow (e.g. starting
    a chunk that failed on its data without ``retry_failed``, committing one that never
    started); ``transition`` names it, ``status`` is the chunk's status."""

    def __init__(self, message: str, *, chunk_id: str, transition: str, status: str) -> None:
        super().__init__(message)
        self.chunk_id = chunk_id
        self.transition = transition
        self.status = status


class LockError(BackfillError):
    """Another backfill holds the run lock of this database or work directory."""


class GateError(BackfillError):
    """An honesty gate failed (section 9)."""


class FetchError(BackfillError):
    """Fetching from Databento must stop (section 10): no key, a day not available,
    the cost over the limit, or an API error (naming the day, HTTP status and message)."""


class Interrupted(BackfillError):
    """The run got SIGTERM or SIGINT; the chunk in flight rolled back."""

    def __init__(self, message: str, signal_name: str) -> None:
        super().__init__(message)
        self.signal_name = signal_name

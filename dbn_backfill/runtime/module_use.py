"""The workflow used as a Snakemake module (README: "Use as a Snakemake module").

A Snakefile of the user's own can use the shipped workflow with ``module backfill:
snakefile: ...`` and ``use rule * from backfill``. Snakemake then registers only the
main Snakefile's ``onstart`` / ``onsuccess`` / ``onerror`` handlers; a module's are
parsed and dropped. The backfill's handlers write the run's record
(``runs/<run_id>/config.json``, read by ``status`` and ``report``) and print the run
summary, so :func:`hand_over_handlers` appends them to the main workflow's: after any
the user's Snakefile defined before its ``use rule`` statement (one defined after it
replaces the chain, as Snakemake keeps one handler of each kind).

It uses ``workflow.modifier`` and the ``workflow._onstart`` / ``_onsuccess`` /
``_onerror`` attributes of Snakemake 9 (where ``Workflow.onstart`` itself sets them);
a Snakemake without them raises, so that a test notices, rather than a run silently
losing its record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

HANDLERS = ("onstart", "onsuccess", "onerror")
# set on the workflow once the handlers are handed over: each `use rule` statement of
# the user's Snakefile includes the module's Snakefile again
MARK = "_dbn_backfill_handlers"

# what a Snakefile's ``onstart:`` block leaves in its globals: the handler with
# Snakemake's ``log`` argument bound, called without arguments
Handler = Callable[[], object]


def hand_over_handlers(workflow: Any, handlers: dict[str, Handler]) -> bool:
    """Run ``handlers`` (``{"onstart": onstart, ...}`` of the calling Snakefile's globals)
    after the main workflow's own when that Snakefile is included as a module.

    Returns:
        True if they were handed over; False in the main Snakefile (Snakemake runs its
        handlers itself: nothing changes) or when already done by an earlier include.
    """
    if workflow.modifier.is_main_snakefile() or getattr(workflow, MARK, False):
        return False
    for name, ours in handlers.items():
        if name not in HANDLERS:
            raise ValueError(f"not a Snakemake handler: {name!r}")
        attribute = f"_{name}"
        if not hasattr(workflow, attribute):
            raise RuntimeError(
                f"this Snakemake has no Workflow.{attribute}: the backfill's {name} "
                "handler cannot run when the workflow is used as a module"
            )
        setattr(workflow, attribute, _chain(getattr(workflow, attribute), ours))
    setattr(workflow, MARK, True)
    return True


def _chain(first: Callable[[Any], object], then: Handler) -> Callable[[Any], object]:
    def both(log: Any) -> None:
        first(log)
        then()

    return both

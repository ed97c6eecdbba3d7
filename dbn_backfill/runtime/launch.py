"""``python -m dbn_backfill.runtime.launch ARGS``: Snakemake's command line (``python -m
snakemake ARGS``), except that the installed executor plugins are imported only when
the command line asks for an executor or a profile.

Snakemake imports every installed ``snakemake_executor_plugin_*`` package when it
starts, whatever the run uses. The SLURM plugin asks the cluster for its settings
(``sacct``, ``squeue``, ``scontrol show config``) while it is imported: seconds on
a machine with SLURM installed, before a local run has done anything. A command line
without ``--executor``/``-e`` and without ``--profile`` (nor ``SNAKEMAKE_PROFILE``)
runs on Snakemake's built-in local executor, so the launcher then registers only the
built-in executors (local, dryrun, touch). With any of them, all plugins are
imported as usual.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

#: Options that may choose an executor other than the built-in local one.
EXECUTOR_OPTIONS = ("--executor", "-e", "--profile", "--workflow-profile")


def needs_plugins(argv: Sequence[str], env: dict[str, str] | None = None) -> bool:
    """Whether the Snakemake command line ``argv`` (without the program) may use an
    executor plugin: it names an executor or a profile (``--opt value``,
    ``--opt=value``, ``-eVALUE``), or ``SNAKEMAKE_PROFILE`` is set in ``env``
    (default: the environment).

    A workflow profile (``workflow/profiles/default``) is read by Snakemake whatever
    the command line says; the shipped one names no executor.
    """
    environ = os.environ if env is None else env
    if environ.get("SNAKEMAKE_PROFILE"):
        return True
    for arg in argv:
        if arg == "--":
            break
        name = arg.split("=", 1)[0]
        if name in EXECUTOR_OPTIONS or (arg.startswith("-e") and not arg.startswith("--")):
            return True
    return False


def builtin_executors_only() -> None:
    """Make Snakemake's executor registry hold only its built-in executors (no
    installed plugin is imported)."""
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    def collect(self: ExecutorPluginRegistry) -> None:
        from snakemake.executors import dryrun, local, touch

        self.plugins = {}
        self.register_plugin("local", local)
        self.register_plugin("dryrun", dryrun)
        self.register_plugin("touch", touch)

    ExecutorPluginRegistry.collect_plugins = collect  # type: ignore[method-assign]


def main(argv: Sequence[str] | None = None) -> None:
    """Run Snakemake's command line on ``argv`` (default ``sys.argv[1:]``); exits with
    Snakemake's status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not needs_plugins(args):
        builtin_executors_only()
    from snakemake.cli import main as snakemake_main

    snakemake_main(args)


if __name__ == "__main__":
    main()

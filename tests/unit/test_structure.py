"""The shape of the package: no import cycles, and no path of the work directory,
the checkpoint folder or the database's neighbours spelled outside ``layout.py``.

The layer order itself is the import-linter contract in ``pyproject.toml`` (run by
``make lint`` and by :func:`test_import_contract_is_kept`).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import grimp
import pytest
from conftest import PROJECT

PACKAGE = PROJECT / "dbn_backfill"

#: Path parts only the layout module may spell: folders of the work directory and
#: file names of its records, as whole path segments.
LAYOUT_SEGMENTS = re.compile(
    r"(^|/)(results|logs|runs|batches|decoded|spot-counts)/|/(results|logs|runs)$"
    r"|\.dbn-backfill"
    r"|(calendar|sources|manifest|merge|gates|config|spot_check)\.json$"
    r"|\.(lock|work)$|chunk_\*"
)


def _import_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph("dbn_backfill", exclude_type_checking_imports=True)
    modules = {m for m in graph.modules if not m.startswith("dbn_backfill.workflow")}
    return {m: set(graph.find_modules_directly_imported_by(m)) & modules for m in modules}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (modules in order), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    """Lazy imports inside functions count too: a cycle is a cycle."""
    cycle = _find_cycle(_import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_import_contract_is_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.fail("lint-imports is not installed: `make setup` installs the lint extras")
    proc = subprocess.run([lint], cwd=PROJECT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]


def _string_literals(path: Path) -> list[tuple[int, str]]:
    """``(line, text)`` of every string literal of a Python or Snakemake file that could
    be a path: docstrings and messages (anything with a space) are not paths."""
    out = []
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    for tok in tokens:
        if tok.type != tokenize.STRING:
            continue
        body = re.sub(r"^[rbfuRBFU]*('''|\"\"\"|'|\")", "", tok.string)
        body = re.sub(r"('''|\"\"\"|'|\")$", "", body)
        if " " in body or "\n" in body:
            continue
        out.append((tok.start[0], body))
    return out


def test_no_path_literal_outside_the_layout_module():
    files = [
        p
        for p in [*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.smk"), PACKAGE / "workflow/Snakefile"]
        if p.name != "layout.py" and "sampledata" not in p.parts
    ]
    hits = [
        f"{path.relative_to(PROJECT)}:{line}: {text!r}"
        for path in files
        for line, text in _string_literals(path)
        if LAYOUT_SEGMENTS.search(text)
    ]
    assert not hits, "paths spelled outside dbn_backfill/layout.py:\n" + "\n".join(hits)


@pytest.mark.parametrize(
    "literal",
    [
        "results/MGC/runs",
        "logs/MGC",
        ".dbn-backfill/sources.json",
        "x.duckdb.lock",
        "calendar.json",
        "chunk_*.json",
    ],
)
def test_path_pattern_catches_layout_paths(literal):
    assert LAYOUT_SEGMENTS.search(literal)


@pytest.mark.parametrize(
    "literal", ["results are in", "symbol", "bars_1m_chunks", "runs", "runs_dir"]
)
def test_path_pattern_leaves_other_strings(literal):
    assert not LAYOUT_SEGMENTS.search(literal)


def test_no_two_test_modules_share_a_name():
    # pytest imports test modules by their base name (rootdir-relative packages are
    # not used here): two tiers holding the same name stop the whole run at collection
    names: dict[str, list[str]] = {}
    for path in sorted((PROJECT / "tests").rglob("test_*.py")):
        names.setdefault(path.name, []).append(str(path.relative_to(PROJECT)))
    assert not {k: v for k, v in names.items() if len(v) > 1}

"""The layout's import rules, read from the source with `ast` (nothing is imported):

- the graph between irob_bench's parts (each subpackage, and each top-level module) has no cycle;
- every module's file path is its import name (no package-dir renaming), and datasets/ and leaderboard/ hold no code;
- the CLI imports no torch until a command runs.

Imports under `if TYPE_CHECKING:` are left out: they exist for annotations only and never run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "benchmark"
PACKAGE = "irob_bench"


def module_name(path: Path, root: Path = SOURCE) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_nodes(tree: ast.AST) -> Iterable[ast.AST]:
    """Every node except the bodies of `if TYPE_CHECKING:` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
            else:
                stack.append(child)


def imported_modules(path: Path, known: set[str], root: Path = SOURCE) -> set[str]:
    """The project modules `path` imports at run time (module level or inside functions)."""
    this = module_name(path, root)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = this.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in known)
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


def part_of(module: str) -> str:
    """The node a module belongs to: irob_bench.<subpackage> for subpackage members, else the module itself."""
    parts = module.split(".")
    if len(parts) <= 2:
        return module
    return ".".join(parts[:2])


def part_graph(root: Path = SOURCE) -> dict[str, set[str]]:
    """part -> parts it imports (self-imports dropped)."""
    files = sorted((root / PACKAGE).rglob("*.py"))
    known = {module_name(f, root) for f in files}
    graph: dict[str, set[str]] = {}
    for f in files:
        source = part_of(module_name(f, root))
        targets = {part_of(m) for m in imported_modules(f, known, root)}
        graph.setdefault(source, set()).update(t for t in targets if t != source and t != PACKAGE)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as a path [a, b, ..., a], or None if it is acyclic (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_import_graph_between_parts_has_no_cycle():
    graph = part_graph()
    assert {"irob_bench.datasets", "irob_bench.generators", "irob_bench.attacks", "irob_bench.evaluate"} <= set(graph)
    assert "irob_bench.generators" in graph["irob_bench.datasets"], "the graph sees real edges"
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle():
    """Control: a synthetic graph with a cycle, and the same graph with the closing edge removed."""
    cyclic = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(cyclic) == ["a", "b", "c", "a"]
    assert find_cycle({**cyclic, "c": set()}) is None
    assert find_cycle({"x": {"x"}}) == ["x", "x"]


def test_the_graph_reader_sees_a_real_cycle(tmp_path):
    """Control on files: two subpackages importing each other (one inside a function) form a cycle; an import
    under TYPE_CHECKING does not."""
    pkg = tmp_path / PACKAGE
    for sub in ("a", "b"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "one.py").write_text("from irob_bench.b.two import f\n")
    (pkg / "b" / "two.py").write_text("def f():\n    from irob_bench.a import one\n")
    assert find_cycle(part_graph(tmp_path)) in (
        ["irob_bench.a", "irob_bench.b", "irob_bench.a"],
        ["irob_bench.b", "irob_bench.a", "irob_bench.b"],
    )
    (pkg / "b" / "two.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from irob_bench.a import one\n"
    )
    assert find_cycle(part_graph(tmp_path)) is None


def test_every_file_path_is_its_import_name_and_data_folders_hold_no_code():
    assert (SOURCE / PACKAGE / "__init__.py").is_file()
    assert [p.name for p in SOURCE.iterdir() if p.suffix == ".py"] == [], "benchmark/ is a source root, not a package"
    for folder in ("datasets", "leaderboard"):
        code = sorted(str(p.relative_to(REPO)) for p in (REPO / folder).rglob("*.py"))
        assert code == [], f"{folder}/ holds data only"
    assert (SOURCE / PACKAGE / "data").resolve() == REPO / "datasets", "the shipped data is package data by a symlink"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'package-dir = { "" = "benchmark" }' in pyproject


def test_the_cli_imports_no_torch_until_a_command_runs():
    code = "import sys, irob_bench.cli; irob_bench.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    control = "import sys, irob_bench.evaluate; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", control], capture_output=True, text=True).stdout.strip() == "True"


def test_commands_that_only_read_cards_import_no_torch():
    """`datasets list` and `ceiling` read cards and do arithmetic: importing torch made them take 4 s, and scipy.stats
    (for the binomial cdf that validates a card's confidence) 0.7 s more (found by audits). Control: asking for a
    generator (BenchmarkDataset) does import torch."""
    code = ("import sys; from irob_bench import datasets; "
            "from irob_bench.cli import main; main(['datasets', 'list']); main(['ceiling', '--lipschitz', '10', '--alpha', "
            "'0.1', '--delta', '0.01', '--eps', '1']); print('torch' in sys.modules, 'scipy.stats' in sys.modules, "
            "file=sys.stderr); datasets.BenchmarkDataset; print('torch' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.split() == ["False", "False", "True"], done.stderr

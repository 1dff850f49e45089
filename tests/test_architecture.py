"""The package's structure stays as designed.

The import graph is read from the source with ``ast`` (imports at module level
and inside functions alike, of ``telegraph`` modules only):

- it has no cycle;
- no module imports a telegraph module inside a function (an import that no
  cycle forces belongs at the top of the module, where a reader sees it);
- imports run one way, down the layers: the kernels and the foundation
  (config, inputs) import nothing above them; the model maths no inference;
  inference no adapter; nothing imports the command line;
- every submodule is reachable as ``tg.<name>`` in a fresh interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "telegraph"

#: layer of each top-level module (subpackages by their first name); an import
#: may only point to the same layer or one below
LAYERS = {
    0: {"config", "inputs", "kernels"},
    1: {"stationary", "joint", "ssa", "network", "gradient", "histogram", "blocks",
        "goodness", "labelled"},
    2: {"likelihood_fit", "fitting", "layerfit", "jointfit", "labelfit", "differential", "calibration", "multitest", "study", "datasets",
        "design"},
    3: {"io", "ondisk", "get", "cluster", "backed", "tl", "pl"},
    4: {"cli", "__main__"},
}
LAYER_OF = {name: layer for layer, names in LAYERS.items() for name in names}


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(name: str, path: Path, known: set[str]):
    """(target module, line, inside a function) for each telegraph import."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                      ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name == "telegraph" or alias.name.startswith("telegraph."):
                        found.append((alias.name, child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(child, name, is_package)
                if not (base == "telegraph" or base.startswith("telegraph.")):
                    continue
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.append((sub if sub in known else base, child.lineno, in_function))
            visit(child, inner)

    visit(tree, False)
    return found


@pytest.fixture(scope="module")
def graph():
    mods = modules()
    known = set(mods)
    return {name: imports(name, path, known) for name, path in mods.items()}


def _cycles(edges: dict[str, set[str]]):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in list(edges):
        if v not in index:
            strong(v)
    return out


def test_graph_is_read(graph):
    """The reader sees the imports it must (so the checks below can fail)."""
    targets = {t for t, _, _ in graph["telegraph.fitting"]}
    assert {"telegraph.inputs", "telegraph.blocks", "telegraph.kernels.fit"} <= targets
    assert any(t == "telegraph.cluster" for t, _, _ in graph["telegraph.backed"])
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]


def test_no_import_cycle(graph):
    edges = {m: {t for t, _, _ in found if t in graph and t != m and not m.startswith(t + ".")}
             for m, found in graph.items()}
    assert _cycles(edges) == []


def test_no_function_level_imports_of_telegraph_modules(graph):
    inside = [f"{m}:{line} imports {t}" for m, found in graph.items()
              for t, line, in_function in found if in_function]
    assert inside == []


def _top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_imports_run_down_the_layers(graph):
    assert set(LAYER_OF) >= {_top(m) for m in graph if _top(m)}, \
        "a new module needs a layer in LAYERS"
    upward = []
    for m, found in graph.items():
        src = _top(m)
        if not src:
            continue
        for t, line, _ in found:
            dst = _top(t)
            if dst and dst != src and LAYER_OF[dst] > LAYER_OF[src]:
                upward.append(f"{m}:{line} imports {t} (layer {LAYER_OF[src]} -> "
                              f"{LAYER_OF[dst]})")
    assert upward == []


def test_kernels_are_arrays_in_arrays_out(graph):
    """Numba kernels import no other part of telegraph (they may import each other)."""
    outside = [f"{m}:{line} imports {t}" for m, found in graph.items()
               if m.startswith("telegraph.kernels") for t, line, _ in found
               if not t.startswith("telegraph.kernels")]
    assert outside == []


def test_every_submodule_is_an_attribute_in_a_fresh_interpreter():
    top = sorted({_top(m) for m in modules()} - {"", "__main__"})
    code = ("import sys, types, telegraph as tg\n"
            f"names = {top!r}\n"
            "missing = [n for n in names if not isinstance(getattr(tg, n, None), types.ModuleType)]\n"
            "bad = [n for n in tg.__all__ if getattr(tg, n, None) is None and n != '__version__']\n"
            "print(missing, bad)\n"
            "sys.exit(1 if missing or bad else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_commands_imported_by_name_are_cli_modules():
    """``telegraph.cli`` imports its subcommands by name (so that ``telegraph
    --version`` imports nothing else), which the graph read above cannot see:
    each must be a module of the command-line package, the top layer."""
    from telegraph.cli import COMMANDS
    mods = modules()
    assert COMMANDS
    assert [c for c in COMMANDS if not (c.startswith("telegraph.cli.") and c in mods)] == []

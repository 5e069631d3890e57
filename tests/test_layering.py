"""Imports flow one way, and this test proves it (AST only: nothing is imported, well under a second).

- Every import between first-party packages follows ALLOWED (README, "Layout": the same table, checked below).
- No cycle between modules, function-level imports and string tables of modules (`_LAZY`, `COMMAND_MODULES`)
  counted as edges.
- A function-level import loads a heavy optional library (HEAVY, each with its reason) or a first-party module
  that is heavy itself (it imports one at module level, directly or through others): nothing else hides an edge
  inside a function.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from functools import cache
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("data_specs", "filters", "sources", "pipelines", "model", "train", "report", "eval", "glamkit")

# package -> the first-party packages it may import. Nothing imports glamkit (the CLIs, the recipe, the study).
ALLOWED: dict[str, set[str]] = {
    "data_specs": set(),
    "filters": {"data_specs"},
    "model": {"data_specs"},
    "sources": {"data_specs", "filters"},
    "pipelines": {"data_specs", "filters", "sources"},
    "train": {"data_specs", "model"},
    "report": {"data_specs", "filters", "sources", "pipelines"},
    "eval": {"data_specs", "filters", "sources", "model", "train", "report"},
    "glamkit": {"data_specs", "filters", "sources", "pipelines", "model", "train", "report", "eval"},
}

# Libraries a function may import: loading them costs seconds or pulls in a framework a command may not need.
HEAVY: dict[str, str] = {
    "apache_beam": "Beam: 1-2 s and hundreds of modules; only the Beam jobs and remote paths need it",
    "jax": "JAX: compiles and claims devices; only training, the model and eval need it",
    "jaxlib": "JAX's backend (as jax)",
    "flax": "the model's layers, built on JAX",
    "optax": "the optimiser, built on JAX",
    "orbax": "checkpoints, built on JAX",
    "grain": "the training data loader",
    "tensorboardX": "training logs only",
    "matplotlib": "plots: ~1 s to import",
    "scipy": "statistics of the study and calibration only: ~0.5 s",
    "sklearn": "one classifier backend of two",
    "fasttext": "the other classifier backend",
    "sentencepiece": "tokenizer training and encoding only",
    "trafilatura": "HTML extraction: ~1 s and lxml",
    "resiliparse": "the fast HTML extractor, when chosen",
    "lxml": "XML and HTML parsing of some readers only",
    "py3langid": "language identification: loads a model",
    "lm_eval": "lm-evaluation-harness: seconds to import, eval only",
    "datasets": "Hugging Face datasets, lm-eval's tasks only",
    "tqdm": "progress bars on a terminal only",
    "psutil": "memory probes of the Beam jobs only",
}

# The README's import table lies between these markers.
README_TABLE = re.compile(r"<!-- imports -->\n(.*?)<!-- /imports -->", re.S)


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(REPO).with_suffix("").parts)
    return name.removesuffix(".__init__")


@cache
def _sources() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def _resolve(target: str) -> str | None:
    """The first-party module an import names (its longest existing prefix), or None."""
    modules = _sources()
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


@cache
def _imports() -> list[tuple[str, str, bool, int]]:
    """(module, imported name, inside a function, line) for every import and string table entry."""
    out = []
    for module, path in _sources().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        in_function: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                in_function |= {id(n) for n in ast.walk(node) if n is not node}
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(tree):
            inner = id(node) in in_function
            if isinstance(node, ast.Import):
                out += [(module, a.name, inner, node.lineno) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
                out += [(module, f"{base}.{a.name}" if _sources().get(f"{base}.{a.name}") else base, inner,
                         node.lineno) for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and not inner:
                value = node.value  # a module named in a string table (_LAZY, COMMAND_MODULES)
                if re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", value) and value in _sources():
                    out.append((module, value, False, node.lineno))
    return out


def _edges() -> list[tuple[str, str, bool, int]]:
    """First-party edges (module, module it imports, function-level, line); an import of a module's own package
    (Python initialises the parent first, harmlessly) is not an edge."""
    edges = []
    for module, name, inner, line in _imports():
        target = _resolve(name)
        if target is None or target == module or module.startswith(target + "."):
            continue
        edges.append((module, target, inner, line))
    return edges


@cache
def _heavy_modules() -> frozenset[str]:
    """First-party modules that load a HEAVY library at module level, directly or through other modules."""
    direct = {m for m, name, inner, _ in _imports() if not inner and name.split(".")[0] in HEAVY}
    graph = defaultdict(set)
    for a, b, inner, _ in _edges():
        if not inner:
            graph[a].add(b)
    heavy = set(direct)
    changed = True
    while changed:
        changed = False
        for module, targets in graph.items():
            if module not in heavy and targets & heavy:
                heavy.add(module)
                changed = True
    return frozenset(heavy)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_imports_follow_the_table() -> None:
    wrong = [f"{_sources()[a].relative_to(REPO)}:{line}: {a} imports {b}" for a, b, _, line in _edges()
             if b.split(".")[0] != a.split(".")[0] and b.split(".")[0] not in ALLOWED[a.split(".")[0]]]
    assert not wrong, "imports against the layering table (README, Layout):\n" + "\n".join(wrong)


def test_no_cycle_between_modules() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b, _, _ in _edges():
        graph[a].add(b)
        graph[b]
    assert not _cycles(graph)


def test_function_level_imports_are_heavy_only() -> None:
    heavy = _heavy_modules()
    light = []
    for module, name, inner, line in _imports():
        if not inner or name.split(".")[0] in HEAVY:
            continue
        target = _resolve(name)
        if target is not None and target in heavy:
            continue
        light.append(f"{_sources()[module].relative_to(REPO)}:{line}: {name}")
    assert not light, "function-level imports of light modules (import them at the top):\n" + "\n".join(light)


def test_readme_import_table_is_the_tests() -> None:
    match = README_TABLE.search((REPO / "README.md").read_text(encoding="utf-8"))
    assert match, "README.md has no import table between <!-- imports --> markers"
    table = {}
    for row in match.group(1).splitlines():
        cells = [c.strip().strip("`") for c in row.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] in PACKAGES:
            table[cells[0]] = {c.strip().strip("`") for c in cells[1].split(",") if c.strip() not in ("", "—")}
    assert table == ALLOWED

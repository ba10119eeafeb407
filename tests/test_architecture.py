"""The module map of docs/ARCHITECTURE.md, enforced: which package may import what.

Every module of the package is parsed with `ast` (nothing is imported or run), and every
import is checked, at module level and inside functions alike: an import deferred into a
function is still a dependency, it only runs later. A rule that breaks fails here with the
file, line and import; the breaks that are known today are listed in EXCEPTIONS, each with
its reason, so only a NEW break fails. An exception that is no longer needed fails too, so
the list only shrinks.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]  # the repository root is the `synth` package
PACKAGES = ("generator", "blender_assets", "nets", "measure", "classifier", "diffusion")

# Blender's own modules: importing any of them needs the bpy wheel and starts Blender.
BLENDER = ("bpy", "mathutils", "bmesh", "bpy_extras", "gpu", "idprop", "freestyle")
# The torch stack: deep-learning code lives in nets/, measure/ (the judge, FID), classifier/ and diffusion/.
TORCH = ("torch", "torchvision", "torchmetrics", "diffusers", "transformers", "peft", "accelerate", "timm",
         "segmentation_models_pytorch", "safetensors")
# What `synth --help` must never load (the CLI imports these inside its commands).
HEAVY = BLENDER + TORCH + ("cv2", "ray", "scipy", "sklearn", "matplotlib")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. "synth.measure.judge"
    target: str  # what it imports, absolute, e.g. "synth.nets.models.build_model"
    line: int
    at_import: bool  # runs when the module is imported (not inside a function)

    def __str__(self) -> str:
        where = "" if self.at_import else " (inside a function)"
        return f"{self.module}:{self.line} imports {self.target}{where}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("synth",) + parts)


def _modules() -> dict[str, Path]:
    files = sorted(ROOT.glob("*.py")) + [p for pkg in PACKAGES for p in sorted((ROOT / pkg).glob("*.py"))]
    return {_module_name(p): p for p in files}


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool):
        self.module, self.is_package = module, is_package
        self.depth = 0  # how many function bodies we are inside
        self.found: list[Import] = []

    def _in_function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _in_function

    def _add(self, target: str, node) -> None:
        self.found.append(Import(self.module, target, node.lineno, self.depth == 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            package = self.module.split(".") if self.is_package else self.module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join(package + ([node.module] if node.module else []))
        self._add(base, node)
        for alias in node.names:  # `from synth import classifier` imports the subpackage
            if alias.name != "*":
                self._add(f"{base}.{alias.name}", node)


def _imports() -> list[Import]:
    out: list[Import] = []
    for name, path in _modules().items():
        c = _Collector(name, path.name == "__init__.py")
        c.visit(ast.parse(path.read_text(), filename=str(path)))
        out += c.found
    return out


IMPORTS = _imports()


def _within(name: str, prefixes) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@dataclass(frozen=True)
class Rule:
    name: str
    applies: Callable[[str], bool]  # to which importing modules
    forbidden: tuple[str, ...]  # module prefixes they may not import


RULES = [
    Rule("only the Blender package (blender_assets) imports Blender's modules",
         lambda m: not _within(m, "synth.blender_assets"),
         BLENDER),
    Rule("only rendering code (the Blender package and the render worker) imports the Blender package",
         lambda m: not (_within(m, "synth.blender_assets") or m == "synth.generator.worker"),
         ("synth.blender_assets",)),
    Rule("generator is the pure layer: no torch stack, no nets, classifier, diffusion or measure",
         lambda m: _within(m, ("synth.generator", "synth.blender_assets")),
         TORCH + ("synth.nets", "synth.classifier", "synth.diffusion", "synth.measure")),
    Rule("nets (the networks and their input normalisation) imports none of synth's parts",
         lambda m: _within(m, "synth.nets"),
         BLENDER + ("synth.generator", "synth.blender_assets", "synth.measure", "synth.classifier",
                    "synth.diffusion")),
    Rule("measure sits below classifier and diffusion",
         lambda m: _within(m, "synth.measure"),
         BLENDER + ("synth.classifier", "synth.diffusion")),
    Rule("classifier does not import diffusion",
         lambda m: _within(m, "synth.classifier"),
         ("synth.diffusion",)),
    Rule("diffusion does not import classifier (shared code goes to generator or measure)",
         lambda m: _within(m, "synth.diffusion"),
         ("synth.classifier",)),
    Rule("the package root and its primitives (synth.rng) import nothing of its parts",
         lambda m: m in ("synth", "synth.rng"),
         ("synth.generator", "synth.blender_assets", "synth.nets", "synth.measure", "synth.classifier",
          "synth.diffusion")),
]

# Known breaks of the rules above: (importing module, imported module prefix) -> why it is
# still there. Each one is debt to pay, not a licence; remove the line when the import goes.
EXCEPTIONS: dict[tuple[str, str], str] = {
}


def _violations() -> list[tuple[Rule, Import]]:
    out = []
    for rule in RULES:
        for imp in IMPORTS:
            if rule.applies(imp.module) and _within(imp.target, rule.forbidden):
                out.append((rule, imp))
    return out


def _excused(imp: Import) -> bool:
    return any(imp.module == m and _within(imp.target, t) for m, t in EXCEPTIONS)


def test_every_module_is_parsed():
    names = _modules()
    assert "synth.cli" in names and "synth.rng" in names and "synth.generator.spec" in names and "synth.blender_assets.geometry" in names
    # The collector sees imports inside functions too (the CLI defers nearly all of its own).
    assert any(i.module == "synth.cli" and not i.at_import and _within(i.target, "synth.generator") for i in IMPORTS)


def test_import_rules_hold():
    broken = [f"{rule.name}: {imp}" for rule, imp in _violations() if not _excused(imp)]
    assert not broken, "imports that break docs/ARCHITECTURE.md:\n" + "\n".join(broken)


def test_no_stale_exceptions():
    used = {(m, t) for m, t in EXCEPTIONS
            for _, imp in _violations() if imp.module == m and _within(imp.target, t)}
    # An exception for a module that is not there (yet, or any more) is not checked.
    present = {k for k in EXCEPTIONS if k[0] in _modules()}
    stale = sorted(present - used)
    assert not stale, f"these exceptions no longer happen; remove them from EXCEPTIONS: {stale}"


def test_cli_start_imports_nothing_heavy():
    """What `import synth.cli` runs, module-level imports followed through synth's own modules,
    never reaches Blender, torch, OpenCV, Ray or SciPy (`synth --help` stays instant)."""
    modules = _modules()
    at_import: dict[str, list[Import]] = {}
    for imp in IMPORTS:
        if imp.at_import:
            at_import.setdefault(imp.module, []).append(imp)
    seen, todo, heavy = set(), ["synth.cli"], []
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        # Importing a.b.c imports the packages a.b and a first.
        parts = m.split(".")
        todo += [".".join(parts[:k]) for k in range(1, len(parts)) if ".".join(parts[:k]) in modules]
        for imp in at_import.get(m, []):
            if _within(imp.target, HEAVY):
                heavy.append(str(imp))
            elif imp.target in modules:
                todo.append(imp.target)
    assert "synth.diffusion.commands" in seen and "synth.classifier.commands" in seen
    assert not heavy, "loaded by `synth --help`:\n" + "\n".join(heavy)


@pytest.mark.parametrize("source, target", [
    ("import torch\n", "torch"),
    ("def f():\n    from torch import nn\n", "torch"),
    ("def f():\n    from ..measure.judge import Judge\n", "synth.measure.judge"),
])
def test_collector_finds_deferred_and_relative_imports(source, target):
    c = _Collector("synth.generator.spec", is_package=False)
    c.visit(ast.parse(source))
    assert any(i.target == target for i in c.found)
    rule = RULES[2]
    assert rule.applies(c.module) and any(_within(i.target, rule.forbidden) for i in c.found)


def _module_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (deferred imports too), each import resolved to the
    module that defines it; a module's own parent packages are left out (they are imported first anyway)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in IMPORTS:
        target = imp.target
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != imp.module and not imp.module.startswith(target + "."):
            graph[imp.module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    """No module imports itself back through others, deferred imports included: a cycle hidden
    in a function is how a lower module comes to need the one above it."""
    cycles = _cycles(_module_graph())
    assert not cycles, "modules that import each other:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []

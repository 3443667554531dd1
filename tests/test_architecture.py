"""The package's imports point one way and never go round in a circle.

The import graph is read from the source with `ast`: every `import` / `from ... import` of a
`stage1_5` module, function-local ones included. The layers, lowest first:

    low modules (errors, io, hashing, paths, config, runtime, torch_utils, sources, distributed, the package root)
    data → backbone → features → probes → decision → stage2 → report → orchestration (pipeline, preflight) → cli

A module may import its own layer and the layers below it, never one above (`backbone` is a provider
of models beside `features`: features use it, it never uses features; `stage2`, the Stage 2 handoff,
reads the decision and computes with the probes' estimator, so it sits between decision and report).
Decision and report read results, never the machinery that computes them: they import no backbone,
features or probes module (so that they load without torch). Circles are looked for among imports that run: an import under
`if TYPE_CHECKING:` never executes and is there precisely to name a type without one (it still
counts for the layer order).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import networkx as nx

import stage1_5

PACKAGE = Path(stage1_5.__file__).resolve().parent

LOW_MODULES = frozenset(
    f"stage1_5{suffix}"
    for suffix in ("", ".errors", ".io", ".hashing", ".paths", ".config", ".runtime", ".torch_utils", ".sources", ".columns", ".distributed", ".locks", ".names")
)
ORCHESTRATION_MODULES = frozenset({"stage1_5.pipeline", "stage1_5.preflight", "stage1_5.planted_demo"})
LAYERS = ("low", "data", "backbone", "features", "probes", "decision", "stage2", "report", "orchestration", "cli")
RESULT_READERS = frozenset({"decision", "report"})
COMPUTING_LAYERS = frozenset({"backbone", "features", "probes"})

KNOWN_VIOLATIONS: frozenset = frozenset()
"""Edges that break the rules today and are being fixed elsewhere; emptied when those fixes merge."""


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    where: str  # path:line, for the failure message
    type_only: bool  # under `if TYPE_CHECKING:`

    @property
    def edge(self) -> tuple[str, str]:
        return (self.importer, self.imported)


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside `if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`) bodies."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        test = getattr(node, "test", None)
        if isinstance(node, ast.If) and (getattr(test, "id", None) or getattr(test, "attr", None)) == "TYPE_CHECKING":
            inside |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    return inside


@lru_cache(maxsize=1)
def package_imports() -> tuple[Import, ...]:
    """Every import of one stage1_5 module by another, read from the source."""
    modules = _module_names()

    def owner(name: str) -> str | None:
        """The module that `name` (a module, or a name inside one) lives in."""
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    found = []
    for importer, path in sorted(modules.items()):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        type_only = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                imported = owner(target) if target.split(".")[0] == "stage1_5" else None
                if imported is not None and imported != importer:
                    where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
                    found.append(Import(importer, imported, where, id(node) in type_only))
    return tuple(found)


def layer_of(module: str) -> str:
    if module in LOW_MODULES:
        return "low"
    if module in ORCHESTRATION_MODULES:
        return "orchestration"
    if module == "stage1_5.__main__":
        return "cli"
    top = module.split(".")[1]
    if top in LAYERS and top not in ("low", "orchestration"):
        return top
    raise AssertionError(f"{module}: no layer; add it to LOW_MODULES, ORCHESTRATION_MODULES or a layer package")


def _rank(module: str) -> int:
    return LAYERS.index(layer_of(module))


def _report(imports) -> str:
    return "\n".join(f"  {i.where}: {i.importer} -> {i.imported}" for i in imports)


def test_the_walk_sees_function_local_and_type_checking_imports():
    edges = {i.edge: i for i in package_imports()}
    local = edges[("stage1_5.features.extract", "stage1_5.features.external")]  # inside _load_external
    typed = edges[("stage1_5.paths", "stage1_5.config")]  # under if TYPE_CHECKING
    assert not local.type_only and typed.type_only


def test_every_module_has_a_layer():
    for module in _module_names():
        layer_of(module)


def test_no_import_circles():
    graph = nx.DiGraph(i.edge for i in package_imports() if not i.type_only and i.edge not in KNOWN_VIOLATIONS)
    circles = sorted(cycle[cycle.index(min(cycle)) :] + cycle[: cycle.index(min(cycle))] for cycle in nx.simple_cycles(graph))
    assert not circles, "import circles:\n" + "\n".join("  " + " -> ".join([*cycle, cycle[0]]) for cycle in circles)


def test_no_import_points_up_the_layer_order():
    backward = [i for i in package_imports() if _rank(i.imported) > _rank(i.importer) and i.edge not in KNOWN_VIOLATIONS]
    assert not backward, f"imports of a higher layer ({' < '.join(LAYERS)}):\n{_report(backward)}"


def test_decision_and_report_never_import_the_computing_layers():
    reaching = [
        i
        for i in package_imports()
        if layer_of(i.importer) in RESULT_READERS and layer_of(i.imported) in COMPUTING_LAYERS and i.edge not in KNOWN_VIOLATIONS
    ]
    assert not reaching, f"decision/report importing {', '.join(sorted(COMPUTING_LAYERS))}:\n{_report(reaching)}"


def test_every_known_violation_is_still_there():
    """A fixed edge must leave KNOWN_VIOLATIONS, so that the exemption cannot outlive the fault."""
    edges = {i.edge for i in package_imports()}
    assert not KNOWN_VIOLATIONS - edges, f"fixed, remove from KNOWN_VIOLATIONS: {sorted(KNOWN_VIOLATIONS - edges)}"


def test_decision_and_report_load_without_torch():
    code = "import sys, stage1_5.decision, stage1_5.report, stage1_5.report.figures; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

"""The import graph of ``ketaclinic``, read from the source (no import runs): no cycles.

A cycle means two modules each need the other to exist first; Python papers over it until a
new import order turns it into an ImportError or a half-initialised module. The fix is to move
what both need into a small module both import (``services/actor.py``,
``clinical/outcome_config.py``, ``clinical/dose_limits.py``), not to hide one side of the cycle
inside a function.

Module-level imports must form no cycle at all. Imports inside functions are counted apart:
the cycles they close are listed in ``KNOWN_LOCAL_CYCLES``, which may only shrink. Imports under
``if TYPE_CHECKING:`` do not run and are ignored.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import kcsource

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = SRC / "ketaclinic"

# Cycles closed only through function-local imports. The CLI's app loads its command modules
# when it first runs (they register on the app they import: Typer's pattern, and it keeps
# ``ketaclinic --help`` fast), so ``ketaclinic.cli`` and its command modules form one.
_CLI = ("", ".chair", ".commands", ".core", ".dosing", ".imports", ".mbc", ".ops", ".outcomes",
        ".pk", ".reference", ".scoring", ".tokens", ".webhooks")
KNOWN_LOCAL_CYCLES: set[frozenset[str]] = {frozenset(f"ketaclinic.cli{m}" for m in _CLI)}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _targets(node: ast.Import | ast.ImportFrom, name: str, is_package: bool) -> set[str]:
    """Every dotted name an import statement may refer to (module, or module.attribute)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = node.module or ""
    if node.level:
        package = name.split(".") if is_package else name.split(".")[:-1]
        keep = len(package) - (node.level - 1)
        base = ".".join(package[:keep] + ([node.module] if node.module else []))
    return {base} | {f"{base}.{alias.name}" for alias in node.names}


def imports(path: Path, name: str) -> tuple[set[str], set[str]]:
    """(module-level, function-local) dotted names imported by the module at ``path``."""
    top: set[str] = set()
    local: set[str] = set()
    is_package = path.name == "__init__.py"

    def visit(nodes: list[ast.stmt], inside_function: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                (local if inside_function else top).update(_targets(node, name, is_package))
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.orelse, inside_function)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(node.body, True)  # type: ignore[arg-type]
            else:
                for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                    children = getattr(node, field, None)
                    if isinstance(children, list):
                        visit([c for c in children if isinstance(c, ast.AST)], inside_function)

    visit(kcsource.tree(path).body, False)
    return top, local


def graphs() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module-level graph, graph with function-local imports too) over ketaclinic's modules."""
    modules = _modules()
    top_graph: dict[str, set[str]] = {}
    all_graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        top, local = imports(path, name)
        top_graph[name] = {m for m in top if m in modules and m != name}
        all_graph[name] = top_graph[name] | {m for m in local if m in modules and m != name}
    return top_graph, all_graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_module_level_imports_form_no_cycle():
    top, _ = graphs()
    found = [sorted(c) for c in cycles(top)]
    assert not found, f"import cycles: {found}; move what both sides need into a small module"


def test_function_local_imports_close_no_new_cycle():
    _, everything = graphs()
    found = set(cycles(everything))
    new = sorted(sorted(c) for c in found - KNOWN_LOCAL_CYCLES)
    gone = sorted(sorted(c) for c in KNOWN_LOCAL_CYCLES - found)
    assert not new, f"new import cycles through function-local imports: {new}"
    assert not gone, f"these cycles are gone; remove them from KNOWN_LOCAL_CYCLES: {gone}"


def test_the_cycle_finder_sees_a_cycle_and_ignores_type_checking(tmp_path):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [frozenset({"a", "b", "c"})]
    module = tmp_path / "m.py"
    module.write_text("from typing import TYPE_CHECKING\nimport x\nif TYPE_CHECKING:\n"
                      "    import y\ndef f():\n    from . import z\n", "utf-8")
    top, local = imports(module, "pkg.m")
    assert top == {"typing", "typing.TYPE_CHECKING", "x"}
    assert local == {"pkg", "pkg.z"}


def test_neither_the_json_api_nor_the_shared_plumbing_imports_the_web_pages():
    """api/ and http/ never reach into web/, whether by absolute, relative or local import."""
    offenders = []
    for name, path in _modules().items():
        if not name.startswith(("ketaclinic.api", "ketaclinic.http")):
            continue
        top, local = imports(path, name)
        offenders += [f"{name} -> {m}" for m in sorted(top | local)
                      if m == "ketaclinic.web" or m.startswith("ketaclinic.web.")]
    assert not offenders, f"api/ or http/ imports web/: {offenders}"
    routes = PACKAGE / "api" / "routes.py"
    assert "ketaclinic.http.deps" in imports(routes, "ketaclinic.api.routes")[0], \
        "the scan no longer sees api/'s imports"


# --- layers (README, "Architecture") -------------------------------------------------------
# The front ends: nothing below them imports them.
FRONT_ENDS = {"web", "api", "http", "cli"}
# What bootstrap wires (the services and everything below them) does not import it.
BELOW_BOOTSTRAP = {"clinical", "renderers", "store", "config", "schemas", "schemas_chair",
                   "services"}
# Top-level package -> the ketaclinic packages it may import besides itself. The clinical core
# is pure; renderers turn the core's plain data into documents; the store knows only its tables
# (and the settings).
ONLY_IMPORTS = {
    "clinical": set(),
    "renderers": {"clinical"},
    "store": {"config"},
}
# Third-party packages a layer may import (the standard library always).
ONLY_THIRD_PARTY = {
    "clinical": {"numpy", "scipy"},  # "standard library, numpy and scipy only"
}
# Third-party packages a layer must not import.
NEVER_THIRD_PARTY = {
    "renderers": {"sqlalchemy", "alembic", "psycopg"},  # documents, no database
}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_errors(graph: dict[str, set[str]]) -> list[str]:
    """Every import in ``graph`` (module -> ketaclinic modules it imports) that crosses a layer
    the wrong way."""
    errors = []
    for module, targets in sorted(graph.items()):
        layer = _package(module)
        for target in sorted(targets):
            other = _package(target)
            if other == layer:
                continue
            if layer in ONLY_IMPORTS and other not in ONLY_IMPORTS[layer]:
                errors.append(f"{module} -> {target}: {layer}/ may import only "
                              f"{sorted(ONLY_IMPORTS[layer]) or 'itself'}")
            elif layer not in FRONT_ENDS and layer != "demo" and other in FRONT_ENDS | {"demo"}:
                errors.append(f"{module} -> {target}: {other}/ is above {layer or 'the root'}")
            elif other == "bootstrap" and layer in BELOW_BOOTSTRAP:
                errors.append(f"{module} -> {target}: bootstrap wires {layer}/, not the reverse")
            elif other == "demo" and layer != "cli":
                errors.append(f"{module} -> {target}: only the command line seeds the demo")
            elif layer == "demo" and other in FRONT_ENDS:
                errors.append(f"{module} -> {target}: the demo seeds through the services")
    return errors


def test_the_layer_check_catches_an_import_the_wrong_way():
    graph = {"ketaclinic.clinical.a": {"ketaclinic.services.b"},
             "ketaclinic.renderers.c": {"ketaclinic.store.d", "ketaclinic.clinical.e"},
             "ketaclinic.services.f": {"ketaclinic.web.g", "ketaclinic.demo.h"},
             "ketaclinic.bootstrap": {"ketaclinic.demo.h"},
             "ketaclinic.web.g": {"ketaclinic.demo.h"},
             "ketaclinic.demo.h": {"ketaclinic.http.i", "ketaclinic.services.f"},
             "ketaclinic.cli.j": {"ketaclinic.demo.h", "ketaclinic.services.f"},
             "ketaclinic.services.k": {"ketaclinic.bootstrap"}}
    found = layer_errors(graph)
    assert [e.split(":")[0] for e in found] == [
        "ketaclinic.bootstrap -> ketaclinic.demo.h",
        "ketaclinic.clinical.a -> ketaclinic.services.b",
        "ketaclinic.demo.h -> ketaclinic.http.i",
        "ketaclinic.renderers.c -> ketaclinic.store.d",
        "ketaclinic.services.f -> ketaclinic.demo.h",
        "ketaclinic.services.f -> ketaclinic.web.g",
        "ketaclinic.services.k -> ketaclinic.bootstrap",
        "ketaclinic.web.g -> ketaclinic.demo.h",
    ], found


def test_the_core_renderers_store_services_and_demo_import_only_downwards():
    """The core imports no other layer; renderers only the core; nothing below the front ends
    imports them, nor bootstrap, which wires the services; the demo seeding sits above
    bootstrap and only the command line imports it (function-local imports count: they are
    dependencies too)."""
    _, everything = graphs()
    errors = layer_errors(everything)
    assert not errors, "\n".join(errors)


def _third_party(path: Path) -> set[str]:
    return {m for m in kcsource.top_level_imports(path)
            if m not in sys.stdlib_module_names and m != "ketaclinic"}


def test_the_core_uses_only_numpy_and_scipy_and_the_renderers_no_database():
    offenders = []
    for name, path in _modules().items():
        layer = _package(name)
        used = _third_party(path)
        if layer in ONLY_THIRD_PARTY:
            offenders += [f"{name}: {m}" for m in sorted(used - ONLY_THIRD_PARTY[layer])]
        if layer in NEVER_THIRD_PARTY:
            offenders += [f"{name}: {m}" for m in sorted(used & NEVER_THIRD_PARTY[layer])]
    assert not offenders, f"third-party imports across a layer: {offenders}"

"""The clinical core is the only place that decides a hard stop (issue 12).

An AST scan of ``src/ketaclinic/services`` (every feature package, recursively), ``renderers``
and ``demo``: a service may load data, call the core's gates and enforce their findings, but it
may not build a HARD finding itself, compare a clinical quantity with a number, or compare
anything with a rule set's threshold.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kcsource

import ketaclinic

PACKAGE = Path(ketaclinic.__file__).parent
# services (every feature package, recursively), and the renderers and demo seeding above them:
# none of them is clinical/, so none of them may decide a stop.
SCANNED = ("services", "renderers", "demo")
UNIT_SUFFIXES = ("_mg", "_kg", "_mmhg", "_bpm", "_pct", "_min", "_h", "_ml", "_per_h",
                 "_per_ml", "_per_kg", "_per_min")
CLINICAL_NAMES = {"sbp", "dbp", "hr", "spo2", "rr", "moaas", "rass", "cadss", "dose", "weight",
                  "bmi", "age_years", "mg_per_kg", "elapsed", "gap"}
RULE_ROOTS = {"rules", "rs", "ruleset", "rule_set", "session_rules", "chain_rules",
              "scheduling_rules", "need", "limit", "tolerance"}


def _names(node: ast.AST) -> set[str]:
    out = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            out.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            out.add(sub.attr)
    return out


def _clinical(name: str) -> bool:
    low = name.lower()
    return low in CLINICAL_NAMES or low.endswith(UNIT_SUFFIXES)


def _number(node: ast.AST) -> bool:
    """A numeric literal other than 0 and 1 anywhere in the expression (``x * 1.05``)."""
    return any(isinstance(sub, ast.Constant) and isinstance(sub.value, int | float)
               and not isinstance(sub.value, bool) and sub.value not in (0, 1)
               for sub in ast.walk(node))


def _rule_value(node: ast.AST) -> bool:
    """``rules.x.value``, ``rs.param("x").value``, ``session_rules().discharge[...]``."""
    return bool(_names(node) & RULE_ROOTS) and any(
        isinstance(sub, ast.Attribute) and sub.attr == "value" for sub in ast.walk(node))


def violations(source: str | ast.Module, where: str = "<string>") -> list[str]:
    """Every place in ``source`` (text, or its parsed tree) where a service decides a clinical
    stop itself."""
    out = []
    tree = ast.parse(source) if isinstance(source, str) else source
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _called(node) == "Finding" and any(
                isinstance(a, ast.Attribute) and a.attr == "HARD"
                for a in [*node.args, *(k.value for k in node.keywords)]):
            out.append(f"{where}:{node.lineno}: builds a HARD finding outside clinical/")
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_number(s) for s in sides) and any(
                    _clinical(n) for s in sides for n in _names(s)):
                out.append(f"{where}:{node.lineno}: compares a clinical value with a number")
            if any(_rule_value(s) for s in sides):
                out.append(f"{where}:{node.lineno}: compares with a rule-set threshold")
    return out


def _called(node: ast.Call) -> str:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def test_the_scanner_catches_a_service_that_decides_a_stop_itself():
    bad = (
        "if data.sbp_mmhg > 180:\n    raise InvalidInput('BP too high')\n"
        "if dose_mg != order.dose_mg * 1.05:\n    pass\n"
        "f = Finding('x', Level.HARD, 'stop')\n"
        "if elapsed < rules.discharge['min'].value:\n    pass\n"
    )
    found = violations(bad)
    assert len(found) == 4, found
    assert violations("if len(key) > 100:\n    pass\nif f.level is Level.HARD:\n    pass\n") == []


def test_no_service_decides_a_hard_stop_itself():
    found = []
    paths = sorted(p for area in SCANNED for p in (PACKAGE / area).rglob("*.py"))
    assert len(paths) > 70, "the scan lost the services' modules"
    for path in paths:
        found += violations(kcsource.tree(path), path.relative_to(PACKAGE).as_posix())
    assert found == [], "\n".join(found)


# The layers above the services (and the schemas and store beside them) hand data to the
# services and show what the core decided: none of them decides a stop either.
FRONT = ("web", "api", "http", "cli", "store")
FRONT_MODULES = ("bootstrap.py", "config.py", "schemas.py", "schemas_chair.py")


def test_no_page_route_command_or_schema_decides_a_hard_stop_itself():
    paths = sorted([p for area in FRONT for p in (PACKAGE / area).rglob("*.py")]
                   + [PACKAGE / m for m in FRONT_MODULES])
    assert len(paths) > 50, "the scan lost the front ends' modules"
    found = []
    for path in paths:
        found += violations(kcsource.tree(path), path.relative_to(PACKAGE).as_posix())
    assert found == [], "\n".join(found)

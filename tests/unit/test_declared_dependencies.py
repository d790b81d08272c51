"""Every third-party package that src/ imports is declared in pyproject.toml's dependencies.

An undeclared import works on a developer's machine (some other package pulled it in) and breaks
a clean install the day that other package drops it.
"""

from __future__ import annotations

import re
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import kcsource

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "ketaclinic"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared_runtime_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = set()
    for requirement in project["dependencies"]:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        assert match, f"cannot read the requirement {requirement!r}"
        names.add(_normalise(match.group(1)))
    return names


@cache
def third_party_imports() -> dict[str, list[str]]:
    """Top-level module name -> the src files that import it (stdlib and ketaclinic left out)."""
    where: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for module in kcsource.top_level_imports(path):
            if module in sys.stdlib_module_names or module in ("ketaclinic", "__future__"):
                continue
            where.setdefault(module, []).append(str(path.relative_to(ROOT)))
    return where


def test_the_scan_finds_the_imports_it_is_meant_to_check():
    imports = third_party_imports()
    assert {"sqlalchemy", "fastapi", "numpy", "scipy"} <= set(imports)
    assert "json" not in imports and "ketaclinic" not in imports


def test_every_third_party_import_in_src_is_a_declared_dependency():
    declared = _declared_runtime_distributions()
    providers = packages_distributions()
    undeclared = {}
    for module, files in third_party_imports().items():
        distributions = {_normalise(d) for d in providers.get(module, [])}
        if not distributions:
            undeclared[module] = f"not installed (imported by {files[0]})"
        elif not distributions & declared:
            undeclared[module] = f"from {sorted(distributions)}, imported by {files[0]}"
    assert not undeclared, f"imported by src/ but not in [project] dependencies: {undeclared}"


def _make_rule(makefile: str, target: str) -> tuple[list[str], list[str]]:
    """(prerequisites, recipe lines) of ``target`` in the Makefile's text."""
    lines = makefile.splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"^{re.escape(target)}\s*:(?!=)", line):
            prerequisites = line.split(":", 1)[1].replace("|", " ").split()
            recipe = []
            for body in lines[i + 1:]:
                if not body.startswith("\t"):
                    break
                recipe.append(body.strip())
            return prerequisites, recipe
    raise AssertionError(f"no rule for {target} in the Makefile")


def test_make_run_installs_the_runtime_dependencies_only():
    """A fresh clone's `make run` installs what running imports, not the dev extras (browser
    driver, fuzzer, linters): they were most of its first-run time."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert _make_rule("a: b | c\n\techo x\nd: a\n", "a") == (["b", "c"], ["echo x"])
    run_needs, _ = _make_rule(makefile, "run")
    assert "$(RUN_STAMP)" in run_needs and "$(DEV_STAMP)" not in run_needs, run_needs
    _, runtime_install = _make_rule(makefile, "$(RUN_STAMP)")
    assert any(step.startswith("$(INSTALL) -e .") for step in runtime_install), runtime_install
    assert not any("[dev]" in step for step in runtime_install), runtime_install
    dev_only = {"playwright", "schemathesis", "hypothesis", "pytest", "ruff", "mypy"}
    assert not dev_only & _declared_runtime_distributions()

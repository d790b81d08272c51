"""Conventions of the source tree that a reviewer would otherwise have to remember.

* A module that declares ``__all__`` (every one in the clinical core's packages, and any other in
  src/) lists every public name it defines (and, for a package, every name its ``__init__``
  imports), and nothing that does not exist.
* Source text names what things are, not the issue that asked for them: "issue 4" means nothing
  to a nurse reading a rule's source, nor to the next developer. Nor is a module named for the
  step that built it ("foundation", "harden", "care", "load").
"""

from __future__ import annotations

import ast
import collections
import importlib
import re
from pathlib import Path

import kcsource
import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
CLINICAL = SRC / "ketaclinic" / "clinical"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules_with_all() -> list[Path]:
    return sorted(p for p in (SRC / "ketaclinic").rglob("*.py")
                  if "__all__" in p.read_text("utf-8"))


def public_names(path: Path) -> set[str]:
    """Names a module offers: its top-level definitions; for a package, also what it imports."""
    names: set[str] = set()
    for node in kcsource.tree(path).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif (isinstance(node, ast.ImportFrom) and path.name == "__init__.py"
              and node.module != "__future__"):
            names.update(alias.asname or alias.name for alias in node.names)
    return {n for n in names if not n.startswith("_")}


def test_the_clinical_packages_declare_their_public_names():
    declared = {_module_name(p) for p in _modules_with_all()}
    assert {"ketaclinic.clinical.pk", "ketaclinic.clinical.instruments",
            "ketaclinic.clinical.cohort"} <= declared


@pytest.mark.parametrize("path", _modules_with_all(), ids=_module_name)
def test_all_lists_every_public_name_and_only_names_that_exist(path):
    module = importlib.import_module(_module_name(path))
    listed = list(module.__all__)
    assert len(listed) == len(set(listed)), f"duplicates in {module.__name__}.__all__"
    missing = sorted(public_names(path) - set(listed))
    stale = sorted(n for n in listed if not hasattr(module, n))
    assert not missing, f"{module.__name__} offers names its __all__ leaves out: {missing}"
    assert not stale, f"{module.__name__}.__all__ lists names it does not have: {stale}"


def test_public_names_finds_definitions_and_package_imports():
    assert {"proportion_ci", "Proportion"} <= public_names(CLINICAL / "cohort.py")
    assert "_check_confidence" not in public_names(CLINICAL / "cohort.py")
    assert "simulate_regimen" in public_names(CLINICAL / "pk" / "__init__.py")


ISSUE_REFERENCE = re.compile(r"\bissue ?#?\d+", re.IGNORECASE)


def test_no_source_file_names_an_issue_number():
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((SRC / "ketaclinic").rglob("*"))
        if path.suffix in {".py", ".json", ".html", ".md", ".toml", ".css", ".js", ".txt"}
        for n, line in enumerate(path.read_text("utf-8").splitlines(), start=1)
        if ISSUE_REFERENCE.search(line)
    ]
    assert not found, f"say what the thing is instead of which issue asked for it: {found}"


# Names a module once had for the step of the project that wrote it (or names that say nothing
# of what it holds).
STEP_NAMES = {"foundation", "harden", "hardening", "care", "load", "misc", "utils", "helpers",
              "new", "old"}


def step_named(parts: tuple[str, ...]) -> list[str]:
    """The parts of a module's dotted path named for a step of the project, not a thing."""
    return [p for p in parts if p in STEP_NAMES]


def test_no_module_or_package_is_named_for_the_step_that_built_it():
    assert step_named(("ketaclinic", "services", "care", "alerts")) == ["care"]
    assert step_named(("ketaclinic", "clinical", "instruments", "loading")) == []
    found = [str(path.relative_to(ROOT))
             for path in sorted((SRC / "ketaclinic").rglob("*.py"))
             if step_named(path.relative_to(SRC).with_suffix("").parts)]
    assert not found, f"name these for what they hold: {found}"


CLINICAL_MODULE_MAX_LINES = 600


def test_no_module_of_the_clinical_core_reaches_600_lines():
    """A long module holds two ideas; the core is read by clinicians, so split it on its seams."""
    long = {
        str(path.relative_to(ROOT)): n
        for path in sorted(CLINICAL.rglob("*.py"))
        if (n := len(path.read_text("utf-8").splitlines())) >= CLINICAL_MODULE_MAX_LINES
    }
    assert not long, f"split these along a seam: {long}"


# Public functions and classes of the core that no production module calls: the clinic runs
# without them, so either a use case restates what they decide, or they are dead. This list
# only shrinks (wire the function into its use case, or delete it with its tests).
CORE_WITHOUT_PRODUCTION_CALLER = {
    "clinical/instruments/scoring.py:replace_alert_threshold":
        "a clinic's own alert threshold: no setting or page offers it yet",
    "clinical/ledger_reports.py:check_count_method":
        "exact counts only matter under US-IA; the ledger service's policy is US-federal",
    "clinical/rems.py:forms_due_within":
        "the due-forms list is one SQL query on the stored due dates (form_due_date's)",
    "clinical/scheduling.py:find_slots": "no free-slot search on the schedule page yet",
    "clinical/scheduling.py:cancel_booking":
        "the schedule service cancels the session row itself (after validate_change_reason)",
    "clinical/scheduling.py:reschedule_booking":
        "the schedule service moves the session row itself (after validate_change_reason)",
}


def core_without_production_caller(sources: dict[str, str], core: str = "clinical/") -> set[str]:
    """``module:name`` of every public top-level function or class of the core (modules under
    ``core``) that appears in no other module and only once (its definition) in its own."""
    words = {rel: collections.Counter(re.findall(r"\w+", text)) for rel, text in sources.items()}
    modules_with = collections.Counter(w for counts in words.values() for w in counts)
    found = set()
    for rel, text in sources.items():
        if not rel.startswith(core):
            continue
        for node in ast.parse(text).body:
            if (isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_")
                    and words[rel][node.name] == 1 and modules_with[node.name] == 1):
                found.add(f"{rel}:{node.name}")
    return found


def test_every_function_of_the_core_has_a_production_caller_but_the_listed_ones():
    assert core_without_production_caller({
        "clinical/a.py": "def used():\n    pass\ndef unused():\n    pass\n"
                         "def _private():\n    pass\n",
        "services/b.py": "from ketaclinic.clinical.a import used\n"}) == {"clinical/a.py:unused"}
    package = SRC / "ketaclinic"
    sources = {p.relative_to(package).as_posix(): p.read_text("utf-8")
               for p in sorted(package.rglob("*.py"))}
    found = core_without_production_caller(sources)
    new = sorted(found - set(CORE_WITHOUT_PRODUCTION_CALLER))
    wired = sorted(set(CORE_WITHOUT_PRODUCTION_CALLER) - found)
    assert not new, f"core code that production never calls (wire it in, or delete it): {new}"
    assert not wired, f"these have a production caller now; drop them from the list: {wired}"

"""Guard: patients are loaded in one place and keyed creates replay through the unit of work.

Fails when a service module defines its own patient loader again (a function returning a
``Patient`` that it fetched by id, or one named like ``load_patient``/``_patient``) or runs
the idempotency machinery (``run_once``, ``IdempotencyRepository``) outside
``services/unit_of_work.py``.
"""

from __future__ import annotations

import ast
import pathlib

import kcsource

SERVICES = pathlib.Path(__file__).resolve().parents[2] / "src" / "ketaclinic" / "services"
HOME = SERVICES / "unit_of_work.py"
LOADER_NAMES = {"load_patient", "_patient", "_load_patient", "get_patient", "_load"}
# Functions with a loader-like name that load something else (not a Patient).
NOT_PATIENT_LOADERS = {
    ("interop/fhir_import_parse.py", "_patient"),  # parses a FHIR Patient resource
    ("interop/fhir_import.py", "_patient"),  # imports one parsed patient item
    ("dosing/rulesets.py", "_load"),  # a rule set
    ("chair/view.py", "_load"),  # a chair view of a session
}


def _modules() -> list[tuple[str, ast.Module]]:
    return [(str(p.relative_to(SERVICES)), kcsource.tree(p))
            for p in sorted(SERVICES.rglob("*.py")) if p != HOME]


def _returns_patient(fn: ast.FunctionDef) -> bool:
    return isinstance(fn.returns, ast.Name) and fn.returns.id == "Patient"


def test_no_service_defines_its_own_patient_loader() -> None:
    found = []
    for rel, tree in _modules():
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef):
                continue
            if (rel, fn.name) in NOT_PATIENT_LOADERS:
                continue
            if fn.name in LOADER_NAMES or _returns_patient(fn):
                found.append(f"{rel}:{fn.lineno} {fn.name}")
    assert not found, ("load patients with uow.patients.get (or PatientRepository(session)"
                       f".get), not a loader of your own: {found}")


def test_idempotent_creates_run_only_through_the_unit_of_work() -> None:
    found = []
    for rel, tree in _modules():
        for node in ast.walk(tree):
            name = (node.id if isinstance(node, ast.Name)
                    else node.attr if isinstance(node, ast.Attribute) else None)
            if name in {"run_once", "IdempotencyRepository"} and rel != "idempotency.py":
                found.append(f"{rel}:{node.lineno} {name}")
    assert not found, f"use uow.idempotency.run / .replay: {found}"


# A "no such patient" 404 written by hand is an inline loader; only bulk id checks may.
INLINE_NOT_FOUND_ALLOWED = {"interop/exports.py"}  # a bulk export's set of ids


def test_no_service_writes_its_own_no_such_patient() -> None:
    found = []
    for rel, tree in _modules():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and node.value == "no such patient"
                    and rel not in INLINE_NOT_FOUND_ALLOWED):
                found.append(f"{rel}:{node.lineno}")
    assert not found, f"use uow.patients.get / PatientRepository(session).get: {found}"

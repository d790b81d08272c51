"""Guard: use cases run in the unit of work, which is the one home of their plumbing.

Fails when a service module defines its own patient loader again (a function returning a
``Patient`` that it fetched by id, or one named like ``load_patient``/``_patient``), runs
the idempotency machinery (``run_once``, ``IdempotencyRepository``) outside
``services/unit_of_work.py``, opens a transaction by hand (``ctx.db.transaction()``) or
audits at a clock it reads itself (``audit.record(..., at=ctx.clock())``) beyond what the
shrinking allow-lists below still permit.
"""

from __future__ import annotations

import ast
import collections
import pathlib
from collections.abc import Callable, Iterator

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


# ``session.get(Patient, id)`` is the loader inlined: it skips the one NotFound. Where a
# missing patient means something else than "no such patient", say why.
INLINE_PATIENT_GET_ALLOWED = {
    "registry/patients.py":
        "the replay of a keyed registration whose patient is gone says so, not 'no such patient'",
}
DEMO = SERVICES.parent / "demo"


def patient_gets(tree: ast.Module) -> list[int]:
    """Lines of ``<x>.get(Patient, ...)`` in ``tree``."""
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get" and node.args
            and isinstance(node.args[0], ast.Name) and node.args[0].id == "Patient"]


def test_no_service_or_demo_seeding_gets_a_patient_row_by_hand() -> None:
    assert patient_gets(ast.parse("p = s.get(Patient, 1)\nq = d.get(User, 2)\n")) == [1]
    modules = _modules() + [(f"../demo/{p.name}", kcsource.tree(p))
                            for p in sorted(DEMO.rglob("*.py"))]
    found = [f"{rel}:{line}" for rel, tree in modules if rel not in INLINE_PATIENT_GET_ALLOWED
             for line in patient_gets(tree)]
    assert not found, f"use uow.patients.get / PatientRepository(session).get: {found}"
    assert all(patient_gets(kcsource.tree(SERVICES / rel))
               for rel in INLINE_PATIENT_GET_ALLOWED), "stale entry: drop it"


# --- hand-written transactions and clock readings ------------------------------------------
# Service modules still opening a transaction by hand (``with self.ctx.db.transaction() as
# s:`` plus ``ctx.require`` plus ``audit.record(..., at=clock())``), with how many they open.
# This list only shrinks: convert a module's use cases to ``ctx.unit_of_work(...)`` and lower
# its count (drop the entry at zero). The test fails when a module opens more than listed
# AND when it opens fewer, so a conversion cannot leave slack for a new hand-written one.
HAND_TRANSACTIONS_TO_CONVERT: dict[str, int] = {}

# Audit rows stamped with a clock reading of their own (``at=self.ctx.clock()``) instead of the
# unit's one reading (``uow.now``, which ``uow.audit`` binds). Shrinks the same way.
CLOCK_AUDITS_TO_CONVERT: dict[str, int] = {}

# For good: (module, function) that open a transaction by hand because no unit of work fits.
HAND_TRANSACTIONS_FOR_GOOD = {
    ("unit_of_work.py", "UnitOfWork.__enter__"): "the unit of work is where it is opened",
    ("context.py", "Context.require"):
        "a denial is audited in its own transaction, before any unit is made",
    ("context.py", "Context.record_failure"):
        "a failure is audited in its own transaction, after the unit rolled back",
    ("audit/trail.py", "AuditLog.verify"):
        "reads the whole chain to verify it, writes nothing; the CLI operator has no actor",
    ("audit/trail.py", "AuditLog.checkpoint"):
        "the operator's signed checkpoint of the committed tips: no actor, no audit row",
    ("accounts/auth.py", "AuthService.login"):
        "establishes who the actor is: the password is checked between two transactions and "
        "a failure is audited for an anonymous actor with the failed attempt it records",
    ("accounts/auth.py", "AuthService.resolve"):
        "resolves the session cookie to its user (the actor) and locks or ends that session "
        "in the same transaction as the lookup",
    ("accounts/auth.py", "AuthService.logout"):
        "the user is known only from the cookie's session row, which the same transaction ends",
    ("accounts/auth.py", "AuthService.reauthenticate"):
        "checks a second person's (witness, co-signer) credentials: who they are is what it "
        "establishes; it audits nothing (the caller's unit does)",
    ("accounts/auth.py", "AuthService._throttle_wait"):
        "counts failed attempts before a login or token check, when there is no actor yet",
    ("accounts/auth.py", "AuthService.count_users"):
        "the command line's first-run check, before any account exists: no actor, no audit",
    ("accounts/api_tokens.py", "ApiTokenService.authenticate"):
        "resolves a bearer token to its service account (the actor); a failure is audited for "
        "the token's or an anonymous actor with the failed attempt it records",
    ("accounts/lock_screen.py", "LockScreenService.locked_info"):
        "the lock screen's facts for a cookie token, before any actor is known; no audit",
    ("accounts/lock_screen.py", "LockScreenService.unlock"):
        "its first transaction finds the session's user (the actor) from the cookie; the "
        "unlock itself is that user's unit of work",
    ("interop/fhir_import.py", "ImportService.actor_for"):
        "resolves who the actor is (the CLI's --as); there is no actor to make a unit for",
    ("outcomes/summary.py", "ensure_current"):
        "rebuilds derived summary tables after a migration; takes only the database",
}
CLOCK_AUDITS_FOR_GOOD = {
    ("context.py", "Context.require"): "the denial's own transaction has no unit and no uow.now",
    ("context.py", "Context.record_failure"):
        "the failure's own transaction has no unit and no uow.now",
}


def _reads_clock(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) and (
        (isinstance(n.func, ast.Name) and n.func.id == "clock")
        or (isinstance(n.func, ast.Attribute) and n.func.attr == "clock"))
        for n in ast.walk(node))


def _scoped_calls(node: ast.AST, scope: tuple[str, ...] = ()) -> Iterator[tuple[str, ast.Call]]:
    """Every call in ``node`` with the dotted name of the function (or class) around it."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield from _scoped_calls(child, (*scope, child.name))
            continue
        if isinstance(child, ast.Call):
            yield ".".join(scope), child
        yield from _scoped_calls(child, scope)


def _is_hand_transaction(call: ast.Call) -> bool:
    return (isinstance(call.func, ast.Attribute) and call.func.attr == "transaction"
            and not call.args and not call.keywords)


def _is_clock_audit(call: ast.Call) -> bool:
    return (isinstance(call.func, ast.Attribute) and call.func.attr in {"record", "record_list"}
            and any(kw.arg == "at" and _reads_clock(kw.value) for kw in call.keywords))


def _sites(is_site: Callable[[ast.Call], bool]) -> dict[tuple[str, str], list[int]]:
    found: dict[tuple[str, str], list[int]] = collections.defaultdict(list)
    for p in sorted(SERVICES.rglob("*.py")):
        rel = str(p.relative_to(SERVICES))
        for scope, call in _scoped_calls(kcsource.tree(p)):
            if is_site(call):
                found[(rel, scope)].append(call.lineno)
    return found


def _allow_list_errors(sites: dict[tuple[str, str], list[int]], to_convert: dict[str, int],
                       for_good: dict[tuple[str, str], str], what: str) -> list[str]:
    per_module: dict[str, list[str]] = collections.defaultdict(list)
    for (rel, scope), lines in sites.items():
        if (rel, scope) not in for_good:
            per_module[rel] += [f"{rel}:{n} {scope}" for n in lines]
    errors = [f"{key[0]} {key[1]} is listed for good but no longer {what}: drop it"
              for key in for_good if key not in sites]
    for rel in sorted(set(per_module) | set(to_convert)):
        found, allowed = len(per_module[rel]), to_convert.get(rel, 0)
        if found > allowed:
            errors.append(f"{rel} {what} {found} times, {allowed} allowed: use ctx.unit_of_work "
                          f"(uow.session, uow.audit, uow.now): {per_module[rel]}")
        elif found < allowed:
            errors.append(f"{rel} now {what} {found} times: lower its allow-list count from "
                          f"{allowed} to {found} (the list only shrinks)")
    return errors


def test_services_open_no_transaction_by_hand_beyond_the_shrinking_allow_list() -> None:
    errors = _allow_list_errors(_sites(_is_hand_transaction), HAND_TRANSACTIONS_TO_CONVERT,
                                HAND_TRANSACTIONS_FOR_GOOD, "opens a transaction by hand")
    assert not errors, "\n".join(errors)


def test_services_stamp_no_audit_with_their_own_clock_beyond_the_shrinking_allow_list() -> None:
    errors = _allow_list_errors(_sites(_is_clock_audit), CLOCK_AUDITS_TO_CONVERT,
                                CLOCK_AUDITS_FOR_GOOD, "audits at a clock it reads")
    assert not errors, "\n".join(errors)


def test_the_allow_list_check_fails_on_an_extra_site_and_on_slack() -> None:
    """The check itself: one site more than listed fails, one fewer fails, exact passes."""
    tree = ast.parse("class S:\n    def a(self):\n        with self.ctx.db.transaction() as s:"
                     "\n            pass\n")
    sites = {("m.py", scope): [call.lineno] for scope, call in _scoped_calls(tree)
             if _is_hand_transaction(call)}
    assert list(sites) == [("m.py", "S.a")]
    assert _allow_list_errors(sites, {"m.py": 1}, {}, "opens") == []
    assert _allow_list_errors(sites, {}, {}, "opens")  # not listed: fails
    assert _allow_list_errors(sites, {"m.py": 2}, {}, "opens")  # slack: fails
    assert _allow_list_errors(sites, {}, {("m.py", "S.a"): "why"}, "opens") == []
    assert _allow_list_errors({}, {}, {("m.py", "S.a"): "why"}, "opens")  # stale for good

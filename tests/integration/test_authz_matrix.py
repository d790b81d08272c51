"""Authorization matrix: every API operation × every role × own/other patient.

Operations come from the OpenAPI schema, so an endpoint added later is checked too: without an
explicit entry in EXPECTED it falls back to a DEFAULT rule derived from its path
(/api/users*, /api/audit*, /api/admin* admin-only; /api/patients* needs patient.read or
patient.write, so analysts get 403; everything under /api needs a login). Every 403 must leave
a "denied" audit row naming the user, and no response to an analyst may carry an identifier.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kcroutes import all_routes
from kctest import USERS
from sqlalchemy import func, select

from ketaclinic.schemas import PatientCreate
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.store.tables import AuditEvent

ROLES = ["admin", "prescriber", "nurse", "analyst", "anonymous"]
CLINICAL = {"admin", "prescriber", "nurse"}
ANY_USER = {"admin", "prescriber", "nurse", "analyst"}
IDENTIFIER_KEYS = {"mrn", "family_name", "given_name", "birth_date", "phone", "email",
                   "address", "full_name_of_patient", "name"}
OWN = {"family_name": "Zyxwhistle", "given_name": "Quorvina", "mrn_prefix": "AZ-OWN"}
OTHER = {"family_name": "Plumbrook", "given_name": "Vexalind", "mrn": "AZ-OTHER-1"}
SECRETS = ("Zyxwhistle", "Quorvina", "Plumbrook", "Vexalind", "AZ-OWN", "AZ-OTHER")
ALLOWED = "allowed"  # not 401/403/5xx (used where a generated body may be refused with 422)
ALLOWED_OR_403 = "allowed-or-403"  # the area decides (e.g. prescribe-only writes); 403 audited


@dataclass(frozen=True)
class Rule:
    """Expected outcome per role: an exact status, ALLOWED or ALLOWED_OR_403."""

    cells: dict[str, int | str]
    body: Callable[[Any, int | None], Any] | None = None


def only(roles: set[str], ok: int) -> dict[str, int | str]:
    return {r: (ok if r in roles else 401 if r == "anonymous" else 403) for r in ROLES}


def _patient_body(_ctx, _pid):  # type: ignore[no-untyped-def]
    return {"mrn": f"AZ-N-{uuid.uuid4().hex[:8]}", "family_name": "Newby", "given_name": "Al",
            "birth_date": "1985-03-04", "sex": "male"}


def _update_body(ctx, pid):  # type: ignore[no-untyped-def]
    p = ctx.patients.get(SYSTEM, pid)
    return {"mrn": p.mrn, "family_name": p.family_name, "given_name": p.given_name,
            "birth_date": p.birth_date.isoformat(), "sex": p.sex, "notes": "checked",
            "version": p.version}


def _user_body(_ctx, _pid):  # type: ignore[no-untyped-def]
    return {"username": f"u{uuid.uuid4().hex[:8]}", "full_name": "New User", "role": "nurse",
            "password": "a-long-password-1"}


EXPECTED: dict[str, Rule] = {
    "GET /api/me": Rule(only(ANY_USER, 200)),
    "GET /api/patients": Rule(only(CLINICAL, 200)),
    "POST /api/patients": Rule(only(CLINICAL, 201), _patient_body),
    "GET /api/patients/{patient_id}": Rule(only(CLINICAL, 200)),
    "PUT /api/patients/{patient_id}": Rule(only(CLINICAL, 200), _update_body),
    "GET /api/patients/{patient_id}/history": Rule(only(CLINICAL, 200)),
    "POST /api/patients/{patient_id}/weights": Rule(only(CLINICAL, 201),
                                                    lambda c, p: {"weight": "71 kg"}),
    "POST /api/patients/{patient_id}/diagnoses": Rule(only(CLINICAL, 201), lambda c, p: {
        "system": "icd10", "code": "F33.2", "display": "Recurrent depression"}),
    "POST /api/patients/{patient_id}/medications": Rule(only(CLINICAL, 201), lambda c, p: {
        "name": "sertraline", "daily_dose_mg": "100"}),
    "POST /api/patients/{patient_id}/allergies": Rule(only(CLINICAL, 201), lambda c, p: {
        "substance": "latex"}),
    # Row ids in paths are 1: the diagnosis/medication/allergy 1 is whichever patient's the
    # POSTs above created first, so a clinical role gets 200 (its patient's row) or 404 (not this
    # patient's); never 401/403 for them, 403 (audited) for the analyst.
    "POST /api/patients/{patient_id}/diagnoses/{diagnosis_id}/deactivate": Rule(
        only(CLINICAL, ALLOWED), lambda c, p: {"reason": "entered-in-error"}),  # type: ignore[arg-type]
    "POST /api/patients/{patient_id}/allergies/{allergy_id}/deactivate": Rule(
        only(CLINICAL, ALLOWED), lambda c, p: {"reason": "refuted"}),  # type: ignore[arg-type]
    "POST /api/patients/{patient_id}/medications/{medication_id}/stop": Rule(
        only(CLINICAL, ALLOWED), lambda c, p: {"reason": "completed"}),  # type: ignore[arg-type]
    "GET /api/users": Rule(only({"admin"}, 200)),
    "POST /api/users": Rule(only({"admin"}, 201), _user_body),
    "GET /api/audit": Rule(only({"admin"}, 200)),
    "GET /api/audit/verify": Rule(only({"admin"}, 200)),
    # Account lifecycle. The bodies carry a wrong password, so nothing changes for anyone (a
    # wrong current password is 422 and counts towards the login throttle: one per role here).
    # The admin cells target user 1, the admin itself, which an admin may not reset: 422.
    "POST /api/me/password": Rule(only(ANY_USER, 422), lambda c, p: {
        "current_password": "not-the-current-password", "new_password": "a-long-new-password-9"}),
    "POST /api/me/recovery-codes": Rule(only(ANY_USER, 422),
                                        lambda c, p: {"password": "not-the-password"}),
    # Your own lock-screen PIN: a wrong password changes nothing (422, audited).
    "GET /api/me/lock-pin": Rule(only(ANY_USER, 200)),
    "PUT /api/me/lock-pin": Rule(only(ANY_USER, 422), lambda c, p: {
        "password": "not-the-password", "pin": "482915"}),
    "DELETE /api/me/lock-pin": Rule(only(ANY_USER, 200)),
    "POST /api/users/{user_id}/reset-password": Rule(only({"admin"}, 422), lambda c, p: {}),
    "POST /api/users/{user_id}/reset-two-factor": Rule(only({"admin"}, 422)),
    # Machine access. User 1 is the admin, a person: no token for it (422); no token 1 (404).
    "POST /api/service-accounts": Rule(only({"admin"}, 201), lambda c, p: {
        "username": f"svc{uuid.uuid4().hex[:8]}", "full_name": "Feed", "role": "nurse"}),
    "GET /api/tokens": Rule(only({"admin"}, 200)),
    "GET /api/tokens/scopes": Rule(only(ANY_USER, 200)),
    "POST /api/service-accounts/{user_id}/tokens": Rule(only({"admin"}, 422), lambda c, p: {
        "label": "x", "scopes": ["patient.read"], "expires_in_days": 1}),
    "POST /api/tokens/{token_id}/revoke": Rule(only({"admin"}, 404)),
    # A patient's self-report link needs no login: the link token is the credential. With a
    # made-up token every caller, logged in or not, gets 410 and learns nothing.
    "GET /api/self-report/{token}": Rule({r: 410 for r in ROLES}),
    "POST /api/self-report/{token}": Rule({r: 410 for r in ROLES}, lambda c, p: {
        "answers": [0] * 9, "form_key": "x" * 43}),
}
# Tested on their own (test_auth.py, test_session_security.py): logging in needs no session and
# logging out would end the session the matrix runs on.
NOT_IN_MATRIX = {"POST /api/auth/login", "POST /api/auth/logout"}


def default_rule(method: str, path: str) -> Rule:
    """The rule for an operation nobody declared: derived from its path."""
    if path.startswith(("/api/users", "/api/audit", "/api/admin")):
        return Rule(only({"admin"}, ALLOWED))  # type: ignore[arg-type]
    if path.startswith("/api/patients"):
        if method == "GET":
            return Rule(only(CLINICAL, ALLOWED))  # type: ignore[arg-type]
        return Rule(only(CLINICAL, ALLOWED_OR_403))  # type: ignore[arg-type]
    cells: dict[str, int | str] = {r: ALLOWED_OR_403 for r in ANY_USER}
    cells["anonymous"] = 401
    return Rule(cells)


# --- a minimal valid-looking body for operations without an explicit one -----------------
def example(schema: dict, components: dict, depth: int = 0) -> Any:
    if "$ref" in schema:
        return example(components[schema["$ref"].split("/")[-1]], components, depth)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return example(options[0], components, depth)
    if "allOf" in schema:
        return example(schema["allOf"][0], components, depth)
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if depth > 4:
            return {}
        props = schema.get("properties", {})
        return {k: example(props[k], components, depth + 1) for k in schema.get("required", [])
                if k in props}
    if kind == "array":
        n = schema.get("minItems", 0)
        return [example(schema.get("items", {}), components, depth + 1) for _ in range(n)]
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1)
    if kind == "number":
        return max(float(schema.get("minimum", 1)), 1.0)
    if kind == "boolean":
        return True
    fmt = schema.get("format")
    if fmt == "date":
        return dt.date(2026, 11, 1).isoformat()
    if fmt == "date-time":
        return "2026-11-01T09:00:00Z"
    return "x" * max(1, int(schema.get("minLength", 1)))


@dataclass
class Operation:
    method: str
    path: str
    spec: dict

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


def api_operations(app) -> list[Operation]:  # type: ignore[no-untyped-def]
    ops = []
    for path, items in app.openapi()["paths"].items():
        for method, spec in items.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                ops.append(Operation(method.upper(), path, spec))
    return ops


def _denied_count(services) -> int:
    with services.db.transaction() as s:
        return s.execute(select(func.count(AuditEvent.id)).where(
            AuditEvent.outcome == "denied")).scalar_one()


def _last_denied(services) -> AuditEvent:
    with services.db.transaction() as s:
        return s.execute(select(AuditEvent).where(AuditEvent.outcome == "denied")
                         .order_by(AuditEvent.id.desc()).limit(1)).scalar_one()


def _identifiers_in(payload: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(payload, dict):
        for k, v in payload.items():
            if k in IDENTIFIER_KEYS and v not in (None, "", []):
                found.add(k)
            found |= _identifiers_in(v)
    elif isinstance(payload, list):
        for item in payload:
            found |= _identifiers_in(item)
    return found


@pytest.fixture
def world(app, services, users):  # type: ignore[no-untyped-def]
    """One logged-in client per role, an own patient per clinical role and another patient."""
    clients: dict[str, tuple[TestClient, dict[str, str]]] = {}
    own: dict[str, int] = {}
    assert users["admin"].id == 1  # path ids other than patient_id are filled with 1
    for role in ROLES:
        # Entered: one event-loop thread for all of this client's requests, not one each.
        c = TestClient(app, raise_server_exceptions=False).__enter__()
        headers: dict[str, str] = {}
        if role != "anonymous":
            username, _n, _r, password = USERS[role]
            r = c.post("/api/auth/login", json={"username": username, "password": password})
            headers = {"X-CSRF-Token": r.json()["csrf_token"]}
        clients[role] = (c, headers)
        if role in CLINICAL:
            p, _ = services.patients.create(users[role].actor, PatientCreate(
                mrn=f"{OWN['mrn_prefix']}-{role}", family_name=OWN["family_name"],
                given_name=OWN["given_name"], birth_date="1979-09-09", sex="female"))
            own[role] = p.id
    other, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn=OTHER["mrn"], family_name=OTHER["family_name"], given_name=OTHER["given_name"],
        birth_date="1966-06-06", sex="male"))
    yield clients, own, other.id
    for c, _h in clients.values():
        c.__exit__(None, None, None)


def _request(op: Operation, rule: Rule, client, headers, services, components,  # type: ignore[no-untyped-def]
             patient_id: int | None):
    url = op.path
    for name in re.findall(r"{(\w+)}", op.path):
        url = url.replace("{" + name + "}", str(patient_id if name == "patient_id" else 1))
    params = {p["name"]: example(p.get("schema", {}), components)
              for p in op.spec.get("parameters", []) if p.get("in") == "query" and p.get(
                  "required")}
    kwargs: dict[str, Any] = {"params": params, "headers": headers}
    if op.method in {"POST", "PUT", "PATCH"}:
        if rule.body is not None:
            kwargs["json"] = rule.body(services, patient_id)
        else:
            content = op.spec.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            kwargs["json"] = example(schema, components) if schema else None
    return client.request(op.method, url, **kwargs)


def test_every_operation_for_every_role_gives_the_declared_status(app, services, world):
    clients, own, other = world
    components = app.openapi().get("components", {}).get("schemas", {})
    problems: list[str] = []
    cells = 0
    for op in api_operations(app):
        if op.key in NOT_IN_MATRIX:
            continue
        rule = EXPECTED.get(op.key) or default_rule(op.method, op.path)
        for role in ROLES:
            client, headers = clients[role]
            targets: list[tuple[str, int | None]] = [("-", None)]
            if "{patient_id}" in op.path:
                targets = [("other", other)] + ([("own", own[role])] if role in own else [])
            seen: dict[str, int] = {}
            for which, pid in targets:
                before = _denied_count(services)
                r = _request(op, rule, client, headers, services, components, pid)
                cells += 1
                where = f"{op.key} as {role} ({which} patient)"
                want = rule.cells[role]
                got = r.status_code
                seen[which] = got
                if got >= 500:
                    problems.append(f"{where}: server error {got}")
                elif want == ALLOWED and got in (401, 403):
                    problems.append(f"{where}: refused with {got}, expected to be allowed")
                elif want == ALLOWED_OR_403 and got == 401:
                    problems.append(f"{where}: 401 for a logged-in user")
                elif isinstance(want, int) and got != want:
                    problems.append(f"{where}: {got}, expected {want}: {r.text[:200]}")
                if got == 403:
                    if _denied_count(services) != before + 1:
                        problems.append(f"{where}: 403 without a 'denied' audit row")
                    elif _last_denied(services).username != USERS[role][0]:
                        problems.append(f"{where}: the denied audit row names someone else")
                if role == "analyst":
                    leaked = {s for s in SECRETS if s in r.text}
                    try:
                        leaked |= _identifiers_in(r.json())
                    except ValueError:  # not JSON (a download, a page)
                        pass
                    if leaked:
                        problems.append(f"{where}: analyst received identifiers {leaked}")
            if len(set(seen.values())) > 1 and op.method == "GET":
                problems.append(f"{op.key} as {role}: own and other patient differ {seen}")
    assert cells > 40
    assert not problems, "\n".join(problems)


def test_a_new_endpoint_without_an_entry_falls_back_to_the_path_rule():
    assert default_rule("GET", "/api/users/7").cells["nurse"] == 403
    assert default_rule("GET", "/api/audit/export").cells["prescriber"] == 403
    assert default_rule("GET", "/api/patients/{patient_id}/vitals").cells["analyst"] == 403
    assert default_rule("GET", "/api/patients/{patient_id}/vitals").cells["nurse"] == ALLOWED
    assert default_rule("POST", "/api/patients/{patient_id}/doses").cells["nurse"] == (
        ALLOWED_OR_403)
    assert default_rule("GET", "/api/dashboard").cells["anonymous"] == 401


def _page_paths(app) -> list[str]:  # type: ignore[no-untyped-def]
    paths = []
    for path, methods in all_routes(app.routes):
        if "GET" not in methods or path.startswith(("/api", "/static", "/docs")) or path in (
                "/login", "/healthz", "/readyz", "/", "/favicon.ico",
                "/metrics"):  # public (metrics: loopback or token), no patient data
            continue
        if set(re.findall(r"{(\w+)}", path)) <= {"patient_id"}:
            paths.append(path)
    return paths


def test_pages_refuse_analysts_patient_data_and_send_anonymous_users_to_login(app, services,
                                                                              world):
    clients, _own, other = world
    problems = []
    pages = _page_paths(app)
    assert "/patients" in pages and "/patients/{patient_id}" in pages
    for path in pages:
        url = path.replace("{patient_id}", str(other))
        c, _ = clients["anonymous"]
        r = c.get(url, follow_redirects=False)
        if r.status_code != 303 or not r.headers["location"].startswith("/login"):
            problems.append(f"{path} anonymous: {r.status_code}")
        c, _ = clients["analyst"]
        before = _denied_count(services)
        r = c.get(url, follow_redirects=False)
        if r.status_code >= 500:
            problems.append(f"{path} analyst: server error")
        if path.startswith("/patients") and r.status_code != 403:
            problems.append(f"{path} analyst: {r.status_code}, expected 403")
        if r.status_code == 403 and _denied_count(services) != before + 1:
            problems.append(f"{path} analyst: 403 without a 'denied' audit row")
        leaked = {s for s in SECRETS if s in r.text}
        if leaked:
            problems.append(f"{path} analyst: page shows identifiers {leaked}")
    assert not problems, "\n".join(problems)

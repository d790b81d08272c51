"""API fuzzing with schemathesis, in-process through the ASGI app, once per role.

Every operation of the OpenAPI schema (so endpoints added later are fuzzed too) gets positive
and negative generated requests with the role's session cookie and CSRF header: no 5xx, invalid
input always 4xx, status codes, content types and bodies match the schema. The CI run is short
(KETACLINIC_FUZZ_EXAMPLES, default 8 per operation and role); `make fuzz` runs 100
(SQLite; set KETACLINIC_TEST_DATABASES for both).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from kctest import USERS
from schemathesis import GenerationMode

from ketaclinic.schemas import PatientCreate
from ketaclinic.services.audit.trail import SYSTEM

EXAMPLES = int(os.environ.get("KETACLINIC_FUZZ_EXAMPLES", "8"))
ROLES = ["admin", "prescriber", "nurse", "analyst", "anonymous"]
# Logging out would end the session the rest of the run depends on (tested in test_auth).
SKIP_PATHS = ["/api/auth/logout"]

checks = schemathesis.checks
pytestmark = [pytest.mark.slow, pytest.mark.fuzz]

CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance,
          checks.negative_data_rejection]


def _seed(services) -> None:
    # A few patients so that generated ids sometimes hit a real record.
    for i in range(3):
        services.patients.create(SYSTEM, PatientCreate(
            mrn=f"FZ-{i}", family_name="Fuzz", given_name=f"P{i}", birth_date="1970-01-01",
            sex="unknown"))


def _auth(client, role: str) -> tuple[dict[str, str], dict[str, str]]:
    if role == "anonymous":
        return {}, {}
    username, _n, _r, password = USERS[role]
    r = client.post("/api/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200
    return {"X-CSRF-Token": r.json()["csrf_token"]}, {"kc_session": r.cookies["kc_session"]}


# The generated cases of each operation and mode, drawn once per worker and sent for every
# role and database. Drawing them (two thirds of a role's run) depends on the schema alone,
# and with derandomize=True every role and database got these same cases before, each role's
# run drawing them again.
_DRAWN: dict[tuple[str, str, str], list | str] = {}


def _draw(operation, mode) -> list | str:  # type: ignore[no-untyped-def]
    """The cases of one operation in one generation mode, or the report of a failed draw."""
    key = (operation.method, operation.path, mode.value)
    if key not in _DRAWN:
        cases: list = []

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck), phases=[Phase.generate])
        def draw(case):  # type: ignore[no-untyped-def]
            cases.append(case)

        try:
            draw()
            _DRAWN[key] = cases
        except Unsatisfiable:
            _DRAWN[key] = cases  # nothing to make invalid (an operation without parameters)
        except Exception as exc:  # noqa: BLE001 - reported by every role's run
            _DRAWN[key] = f"drawing the cases failed: {exc}"
    return _DRAWN[key]


def _fuzz_operation(app, operation, mode, headers, cookies) -> str | None:  # type: ignore[no-untyped-def]
    """Send one operation's cases of one generation mode to ``app`` (whichever app drew them);
    the first failure's report, or None."""
    cases = _draw(operation, mode)
    try:
        if isinstance(cases, str):
            raise RuntimeError(cases)
        for case in cases:
            case.call_and_validate(headers=headers, cookies=cookies, checks=CHECKS, app=app)
    except Exception as exc:  # noqa: BLE001 - collected and reported below
        return f"{operation.method.upper()} {operation.path} [{mode.value}]: {exc}"[:3000]
    return None


@pytest.mark.parametrize("role", ROLES)
def test_no_operation_fails_or_breaks_its_schema_for_the_role(role, app, services, client):
    _seed(services)
    headers, cookies = _auth(client, role)
    # Generous: on a loaded CI machine the first schema build can take longer than the 10 s default.
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app, timeout=120)
    failures, fuzzed = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIP_PATHS:
            continue
        fuzzed += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            problem = _fuzz_operation(app, operation, mode, headers, cookies)
            if problem:
                failures.append(problem)
        if role != "anonymous":  # a login or throttling in the run must not log us out
            assert client.get("/api/me", cookies=cookies).status_code == 200
    assert fuzzed >= 10
    assert not failures, "\n\n".join(failures)

"""The ``app`` fixture is built once per worker and rebound to each test's services: nothing
of one test (login throttling, the audit checkpoint's schedule, the services) reaches the next.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from kctest import USERS, make_settings, wipe

from ketaclinic.bootstrap import build_services
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.web.app import create_app, rebind
from ketaclinic.web.audit_checkpoints import PeriodicAuditCheckpoint

WRONG = "wrong-password-0"
# The pair below: when both run on one worker (always without xdist, usually with `-n 2
# --dist load`, which hands a worker neighbouring tests), the second gets the first's app object.
SEEN: dict[str, object] = {}


def login(c: TestClient, password: str = WRONG) -> int:
    return c.post("/api/auth/login", json={"username": "nurse", "password": password}
                  ).status_code


def throttle_the_nurse(c: TestClient) -> None:
    statuses = [login(c) for _ in range(6)]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    assert login(c, USERS["nurse"][3]) == 429


def test_a_test_on_the_shared_app_throttles_the_nurse(app, client, backend):
    SEEN[backend] = app
    throttle_the_nurse(client)


def test_the_next_test_on_the_same_app_starts_with_no_throttling(app, client, backend):
    if backend in SEEN:  # the test before ran on this worker: this is the same app object
        assert SEEN[backend] is app
    assert login(client, USERS["nurse"][3]) == 200


def checkpoint_middleware(app) -> PeriodicAuditCheckpoint:  # type: ignore[no-untyped-def]
    layer = app.middleware_stack
    while not isinstance(layer, PeriodicAuditCheckpoint):
        layer = layer.app
    return layer


def test_rebinding_gives_new_services_and_new_middleware(services, users, database_url, clock):
    app = create_app(services)
    with TestClient(app, raise_server_exceptions=False) as c:
        throttle_the_nurse(c)
    first = checkpoint_middleware(app)
    assert first.services is services and first.next_due is not None
    services.close()
    wipe(database_url)
    second = build_services(make_settings(database_url), clock=clock)
    try:
        second.auth.create_user(SYSTEM, *USERS["nurse"])
        rebind(app, second)
        assert app.state.services is second and app.middleware_stack is None
        with TestClient(app, raise_server_exceptions=False) as c:
            assert login(c, USERS["nurse"][3]) == 200
        again = checkpoint_middleware(app)
        assert again is not first and again.services is second
    finally:
        second.close()


def test_rebinding_refuses_other_settings(services, database_url):
    app = create_app(services)
    other = build_services(make_settings(database_url, clinic_name="Another clinic"))
    try:
        with pytest.raises(ValueError, match="equal settings"):
            rebind(app, other)
    finally:
        other.close()


def test_an_app_a_test_added_a_route_to_is_not_shared(app, client):
    """test_logging adds a crash route to its app: the next test must not see it."""
    from fastapi import APIRouter

    extra = APIRouter()

    @extra.get("/api/only-in-this-test")
    def _only() -> dict[str, str]:
        return {"ok": "yes"}

    app.include_router(extra)
    assert client.get("/api/only-in-this-test").status_code == 200
    SEEN["extended"] = app


def test_the_next_test_gets_an_app_without_that_route(app, client):
    if "extended" in SEEN:
        assert SEEN["extended"] is not app
    assert client.get("/api/only-in-this-test").status_code == 404


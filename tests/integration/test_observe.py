"""/metrics and the JSON access log: useful to an operator, and never a patient's data."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient
from kctest import USERS

CANARY_NAME = "Quillon-Vexabarre"
CANARY_MRN = "CANARY-7731"
LOOPBACK = ("127.0.0.1", 40000)


@pytest.fixture
def make_app(services_for, users, app_for):  # type: ignore[no-untyped-def]
    def _make(**overrides):  # type: ignore[no-untyped-def]
        return app_for(services_for(**overrides))

    return _make


def _nurse(app, client=("testclient", 50000)):  # type: ignore[no-untyped-def]
    c = TestClient(app, raise_server_exceptions=False, client=client)
    username, _n, _r, password = USERS["nurse"]
    r = c.post("/api/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200
    return c, r.json()["csrf_token"]


def _a_day_with_the_canary(c, csrf) -> int:  # type: ignore[no-untyped-def]
    body = {"mrn": CANARY_MRN, "family_name": CANARY_NAME, "given_name": "Ann",
            "birth_date": "1970-01-01", "sex": "female", "weight": "70 kg"}
    r = c.post("/api/patients", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code in (200, 201), r.text
    pid = r.json()["id"]
    assert c.get(f"/api/patients?q={CANARY_NAME}").status_code == 200
    assert c.get(f"/api/patients/{pid}").status_code == 200
    assert c.get(f"/patients/{pid}").status_code == 200
    c.get(f"/patients?q={CANARY_MRN}")
    c.get(f"/no/such/{CANARY_MRN}")  # a 404 on a path made of patient data
    c.post("/api/patients", json=body | {"weight": "150 lb"}, headers={"X-CSRF-Token": csrf})
    return pid


def test_metrics_are_refused_to_a_remote_client_without_a_token(make_app):
    with TestClient(make_app(), client=("10.1.2.3", 5000)) as c:
        assert c.get("/metrics").status_code == 403


def test_metrics_count_requests_by_route_template_never_by_raw_path(make_app):
    app = make_app()
    c, csrf = _nurse(app, LOOPBACK)
    pid = _a_day_with_the_canary(c, csrf)
    r = c.get("/metrics")
    assert r.status_code == 200
    text = r.text
    assert 'route="/api/patients/{patient_id}"' in text
    assert "ketaclinic_http_request_duration_seconds_bucket" in text
    assert 'status="422"' in text
    assert f"/api/patients/{pid}" not in text and f"/patients/{pid}" not in text
    assert CANARY_NAME not in text and CANARY_MRN not in text
    assert "ketaclinic_outbox_pending" in text and "ketaclinic_db_pool_checked_out" in text


def test_with_a_metrics_token_only_its_bearer_reads_metrics(make_app):
    app = make_app(metrics_token="scrape-token-0123456789")
    with TestClient(app, client=LOOPBACK) as c:
        assert c.get("/metrics").status_code == 403  # loopback is no longer enough
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
        ok = c.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
        assert ok.status_code == 200 and "ketaclinic_http_requests_total" in ok.text


def test_the_access_log_is_one_json_line_per_request_without_patient_data(make_app, caplog):
    app = make_app(access_log=True)
    caplog.set_level(logging.INFO, logger="ketaclinic.access")
    c, csrf = _nurse(app)
    pid = _a_day_with_the_canary(c, csrf)
    lines = [r.getMessage() for r in caplog.records if r.name == "ketaclinic.access"]
    assert len(lines) == 8  # the login and the seven requests of the day
    entries = [json.loads(line) for line in lines]
    assert all(set(e) == {"time", "method", "route", "status", "duration_ms", "request_id"}
               for e in entries)
    routes = {e["route"] for e in entries}
    assert {"/api/patients/{patient_id}", "/patients/{patient_id}", "(unmatched)"} <= routes
    everything = "\n".join(lines)
    for canary in (CANARY_NAME, CANARY_MRN, f"/patients/{pid}", "q="):
        assert canary not in everything


def test_the_access_log_is_off_by_default(make_app, caplog):
    caplog.set_level(logging.INFO, logger="ketaclinic.access")
    with TestClient(make_app()) as c:
        c.get("/healthz")
    assert not [r for r in caplog.records if r.name == "ketaclinic.access"]


def test_every_answer_carries_a_request_id_and_keeps_a_well_formed_one(make_app):
    with TestClient(make_app()) as c:
        mine = c.get("/healthz", headers={"X-Request-ID": "lb-0123456789abcdef"})
        assert mine.headers["X-Request-ID"] == "lb-0123456789abcdef"
        forged = c.get("/healthz", headers={"X-Request-ID": f"<{CANARY_NAME}>"})
        assert forged.headers["X-Request-ID"] != f"<{CANARY_NAME}>"
        assert len(forged.headers["X-Request-ID"]) == 32

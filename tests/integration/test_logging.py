"""Application logs never contain patient data, even when something crashes."""

from __future__ import annotations

import logging

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

SECRET_NAME = "Zebediah-Quillfeather"
CLIENT_LOGGERS = ("httpx", "httpcore")  # the test's own HTTP client, not the application


def server_log(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records
                     if not r.name.startswith(CLIENT_LOGGERS))


def test_a_day_of_requests_logs_no_patient_data(login, caplog):
    caplog.set_level(logging.DEBUG)
    c, csrf = login("nurse")
    body = {"mrn": "LOG-1", "family_name": SECRET_NAME, "given_name": "Ann",
            "birth_date": "1970-01-01", "sex": "female", "weight": "70 kg"}
    pid = c.post("/api/patients", json=body, headers={"X-CSRF-Token": csrf}).json()["id"]
    c.get(f"/patients?q={SECRET_NAME}")
    c.get(f"/patients/{pid}")
    c.post("/api/patients", json=body | {"weight": "150 lb"}, headers={"X-CSRF-Token": csrf})
    logged = server_log(caplog)
    assert SECRET_NAME not in logged and "LOG-1" not in logged


def test_a_crash_answers_500_without_a_traceback_and_logs_no_patient_data(app, caplog):
    boom = APIRouter()

    @boom.get("/api/boom")
    def _boom() -> None:
        raise RuntimeError(f"patient {SECRET_NAME} broke it")

    app.include_router(boom)
    caplog.set_level(logging.DEBUG)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/api/boom")
    assert r.status_code == 500
    assert "reference" in r.json()["detail"] and "Traceback" not in r.text
    assert SECRET_NAME not in r.text and SECRET_NAME not in server_log(caplog)
    assert "RuntimeError" in server_log(caplog)


def test_a_crash_is_handled_once_and_not_raised_on_to_the_server(app, caplog):
    """Raised on, the exception reaches uvicorn, which logs its message and traceback."""
    boom = APIRouter()

    @boom.post("/api/boom")
    def _boom() -> None:
        raise RuntimeError(f"patient {SECRET_NAME} broke it")

    app.include_router(boom)
    caplog.set_level(logging.DEBUG)
    with TestClient(app, raise_server_exceptions=True) as c:
        r = c.post("/api/boom")
    assert r.status_code == 500 and SECRET_NAME not in server_log(caplog)
    assert [rec.exc_info for rec in caplog.records if rec.exc_info] == []


def test_a_database_error_message_carries_no_parameter_values(services):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError) as caught, services.db.transaction() as s:
        s.execute(text("INSERT INTO no_such_table (name) VALUES (:name)"), {"name": SECRET_NAME})
    assert SECRET_NAME not in str(caught.value)

"""Accounts, sessions, throttling, CSRF and roles — on every database backend."""

from __future__ import annotations

import datetime as dt

import pytest
from kctest import USERS, csrf_from, make_settings
from sqlalchemy import func, select

from ketaclinic.bootstrap import build_services
from ketaclinic.config import SettingsError
from ketaclinic.store.tables import AuditEvent, Patient

PATIENT = {"mrn": "T-1", "family_name": "Doe", "given_name": "Jo", "birth_date": "1980-04-30",
           "sex": "female"}


def audit_rows(services, **where):
    with services.db.transaction() as s:
        stmt = select(AuditEvent)
        for key, value in where.items():
            stmt = stmt.where(getattr(AuditEvent, key) == value)
        return s.execute(stmt.order_by(AuditEvent.id)).scalars().all()


def count_patients(services) -> int:
    with services.db.transaction() as s:
        return s.execute(select(func.count(Patient.id))).scalar_one()


def test_login_with_the_right_password_opens_a_session_and_is_audited(client, services):
    r = client.post("/api/auth/login", json={"username": "nurse", "password": "nurse-password-1"})
    assert r.status_code == 200
    assert client.get("/api/me").json()["role"] == "nurse"
    assert [e.outcome for e in audit_rows(services, action="login")] == ["ok"]


def test_the_slow_password_check_holds_no_database_connection(client, services, monkeypatch):
    # argon2id takes tens of milliseconds on purpose; inside a transaction it held a pooled
    # connection (and on SQLite the write lock) and every other request waited behind logins.
    from ketaclinic.services.accounts import auth

    held: list[int] = []
    real_verify = auth.verify_password

    def observed(stored_hash: str, password: str) -> bool:
        held.append(services.db.engine.pool.checkedout())
        return real_verify(stored_hash, password)

    monkeypatch.setattr(auth, "verify_password", observed)
    assert client.post("/api/auth/login", json={"username": "nurse", "password": "nope-nope-1"}
                       ).status_code == 401
    assert client.post("/api/auth/login", json={"username": "nurse",
                                                "password": "nurse-password-1"}).status_code == 200
    assert held == [0, 0]


def test_wrong_password_is_refused_and_audited_as_failed_login(client, services):
    r = client.post("/api/auth/login", json={"username": "nurse", "password": "wrong-password"})
    assert r.status_code == 401
    assert [e.outcome for e in audit_rows(services, action="login")] == ["failed"]


def test_repeated_wrong_passwords_are_throttled_even_with_the_right_one(client, services):
    for _ in range(5):
        assert client.post("/api/auth/login", json={
            "username": "nurse", "password": "nope-nope-nope"}).status_code == 401
    r = client.post("/api/auth/login", json={"username": "nurse", "password": "nurse-password-1"})
    assert r.status_code == 429
    assert "too many failed logins" in r.json()["detail"]
    assert audit_rows(services, outcome="throttled")


def test_throttling_ends_after_the_window(client, services, clock):
    for _ in range(5):
        client.post("/api/auth/login", json={"username": "nurse", "password": "nope-nope-nope"})
    clock.advance(minutes=16)
    r = client.post("/api/auth/login", json={"username": "nurse", "password": "nurse-password-1"})
    assert r.status_code == 200


def test_a_nurse_cannot_manage_users_and_the_denial_is_audited(login, services):
    c, csrf = login("nurse")
    r = c.post("/api/users", json={"username": "eve", "full_name": "Eve", "role": "admin",
                                   "password": "long-enough-pw"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403
    assert c.get("/admin/users").status_code == 403
    denied = audit_rows(services, outcome="denied")
    assert {e.action for e in denied} == {"user.create", "user.list"}
    assert all(e.username == "nurse" for e in denied)


def test_an_admin_can_create_a_user_through_the_web_form(login, services):
    c, _ = login("admin")
    page = c.get("/admin/users")
    r = c.post("/admin/users", data={"csrf_token": csrf_from(page.text), "username": "nell",
                                     "full_name": "Nell N", "role": "nurse",
                                     "password": "nell-password-1"}, follow_redirects=False)
    assert r.status_code == 303
    assert "nell" in c.get("/admin/users").text


def test_an_api_post_without_a_csrf_token_is_refused_and_changes_nothing(login, services):
    c, _ = login("nurse")
    r = c.post("/api/patients", json=PATIENT)
    assert r.status_code == 403
    assert "CSRF" in r.json()["detail"]
    assert count_patients(services) == 0


def test_a_form_post_without_a_csrf_token_is_refused_and_changes_nothing(login, services):
    c, _ = login("nurse")
    r = c.post("/patients/new", data=PATIENT)
    assert r.status_code == 403
    r = c.post("/patients/new", data={**PATIENT, "csrf_token": "forged"})
    assert r.status_code == 403
    assert count_patients(services) == 0


def test_an_idle_session_locks(login, clock):
    # Issue 12: idle locks the session (re-authentication with a PIN or the password) instead
    # of ending it, so a nurse is not thrown out of a 2-hour observation.
    c, _ = login("nurse")
    clock.advance(minutes=14)
    assert c.get("/api/me").status_code == 200
    clock.advance(minutes=16)
    r = c.get("/api/me")
    assert r.status_code == 401
    assert "locked" in r.json()["detail"] and r.json()["locked"] is True
    assert c.get("/patients", follow_redirects=False).headers["location"].startswith("/unlock")


def test_an_active_session_still_ends_at_the_absolute_timeout(login, clock):
    c, _ = login("nurse")
    started = clock.now
    while c.get("/api/me").status_code == 200 and clock.now - started < dt.timedelta(hours=13):
        clock.advance(minutes=10)
    assert c.get("/api/me").status_code == 401
    assert dt.timedelta(hours=12) <= clock.now - started <= dt.timedelta(hours=12, minutes=10)


def test_logout_invalidates_the_session_on_the_server(login):
    c, csrf = login("nurse")
    cookie = c.cookies.get("kc_session")
    assert c.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    c.cookies.set("kc_session", cookie)  # replay the old cookie
    assert c.get("/api/me").status_code == 401


def test_login_issues_a_new_session_id_each_time(login):
    a, _ = login("nurse")
    b, _ = login("nurse")
    assert a.cookies.get("kc_session") != b.cookies.get("kc_session")


def test_session_cookie_is_httponly_samesite_and_secure_over_https(login):
    c, _ = login("nurse", base_url="https://testserver")
    raw = [v for k, v in c.post("/api/auth/login", json={
        "username": "nurse", "password": USERS["nurse"][3]}).headers.multi_items()
        if k == "set-cookie"][0].lower()
    assert "httponly" in raw and "samesite=lax" in raw and "secure" in raw


def test_web_login_form_logs_in_and_redirects(client):
    page = client.get("/login")
    prelogin = page.text.split('name="prelogin" value="')[1].split('"')[0]
    r = client.post("/login", data={"prelogin": prelogin, "username": "nurse",
                                    "password": "nurse-password-1", "next": "/patients"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/patients"


def test_web_login_without_the_login_form_token_is_refused(client):
    r = client.post("/login", data={"username": "nurse", "password": "nurse-password-1"})
    assert r.status_code == 403


def test_security_headers_are_set_on_patient_pages(login):
    c, _ = login("nurse")
    r = c.get("/patients")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_a_placeholder_secret_refuses_to_start_outside_dev(database_url):
    settings = make_settings(database_url).model_copy(update={"env": "production"})
    settings = settings.model_copy(update={"secret_key": type(settings.secret_key)(
        "change-me-not-a-secret")})
    with pytest.raises(SettingsError, match="placeholder"):
        build_services(settings)

"""Two-factor login (TOTP): enrolment, login with a code, replay refused, throttling, policy."""

from __future__ import annotations

import datetime as dt

import pyotp
from fastapi.testclient import TestClient
from kctest import USERS, csrf_from, make_settings
from kctotp import code_at, enrol_via_page
from sqlalchemy import select

from ketaclinic.services.accounts.auth import match_totp_step
from ketaclinic.store.tables import AuditEvent, User


def api_login(c: TestClient, role: str, code: str | None = None):  # type: ignore[no-untyped-def]
    body = {"username": USERS[role][0], "password": USERS[role][3]}
    if code is not None:
        body["totp_code"] = code
    return c.post("/api/auth/login", json=body)


def test_enrolment_shows_a_secret_and_uri_and_turns_on_after_a_valid_code(login, services,
                                                                          clock):
    c, _ = login("prescriber")
    secret = enrol_via_page(c, clock)
    assert "Two-factor login is on" in c.get("/account/totp").text
    with services.db.transaction() as s:
        user = s.execute(select(User).where(User.username == "prescriber")).scalar_one()
        assert user.totp_secret.startswith("v1.") and secret not in user.totp_secret
        assert services.auth.box.decrypt(user.totp_secret, f"users.totp_secret|{user.id}") == (
            secret)
        assert user.totp_pending_secret is None
        assert [e.action for e in s.execute(select(AuditEvent)).scalars()][-1] == "totp.enrol"


def test_a_wrong_enrolment_code_leaves_two_factor_off(login, services):
    c, _ = login("admin")
    page = c.get("/account/totp")
    r = c.post("/account/totp", data={"csrf_token": csrf_from(page.text), "code": "000000"})
    assert r.status_code == 422 and "did not match" in r.text
    with services.db.transaction() as s:
        assert s.execute(select(User.totp_secret).where(User.username == "admin")
                         ).scalar_one() is None


def test_an_enrolled_user_needs_the_code_and_each_code_works_once(login, app, clock):
    c, _ = login("prescriber")
    secret = enrol_via_page(c, clock)
    fresh = TestClient(app, raise_server_exceptions=False)
    r = api_login(fresh, "prescriber")
    assert r.status_code == 401 and "6-digit code" in r.json()["detail"]
    clock.advance(minutes=1)
    code = code_at(secret, clock.now)
    assert api_login(fresh, "prescriber", code).status_code == 200
    replay = TestClient(app, raise_server_exceptions=False)
    r = api_login(replay, "prescriber", code)
    assert r.status_code == 401 and "already used" in r.json()["detail"]
    clock.advance(seconds=30)
    assert api_login(replay, "prescriber", code_at(secret, clock.now)).status_code == 200
    fresh.close()
    replay.close()


def test_an_older_code_is_refused_after_a_newer_one(login, app, clock):
    c, _ = login("admin")
    secret = enrol_via_page(c, clock)
    clock.advance(minutes=2)
    older = code_at(secret, clock.now - dt.timedelta(seconds=30))
    newer = code_at(secret, clock.now)
    fresh = TestClient(app, raise_server_exceptions=False)
    assert api_login(fresh, "admin", newer).status_code == 200
    assert api_login(fresh, "admin", older).status_code == 401
    fresh.close()


def test_the_web_login_form_takes_the_code(login, app, clock):
    c, _ = login("prescriber")
    secret = enrol_via_page(c, clock)
    clock.advance(minutes=1)
    web = TestClient(app, raise_server_exceptions=False)
    page = web.get("/login")
    assert 'name="totp_code"' in page.text and 'for="totp_code"' in page.text
    prelogin = page.text.split('name="prelogin" value="')[1].split('"')[0]
    form = {"prelogin": prelogin, "username": "prescriber", "password": USERS["prescriber"][3],
            "next": "/patients"}
    assert web.post("/login", data=form).status_code == 401
    r = web.post("/login", data={**form, "totp_code": code_at(secret, clock.now)},
                 follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/patients"
    web.close()


def test_wrong_codes_are_throttled_like_wrong_passwords(login, app, clock, services):
    c, _ = login("prescriber")
    secret = enrol_via_page(c, clock)
    clock.advance(minutes=1)
    fresh = TestClient(app, raise_server_exceptions=False)
    for _ in range(5):
        assert api_login(fresh, "prescriber", "123456").status_code == 401
    r = api_login(fresh, "prescriber", code_at(secret, clock.now))
    assert r.status_code == 429
    with services.db.transaction() as s:
        details = s.execute(select(AuditEvent.detail).where(
            AuditEvent.outcome == "failed")).scalars().all()
    assert "authenticator code wrong or already used" in details
    fresh.close()


def test_a_malformed_code_is_refused_as_invalid_input(client):
    r = client.post("/api/auth/login", json={"username": "nurse", "password": "x",
                                             "totp_code": "12ab"})
    assert r.status_code == 422


def test_match_totp_step_accepts_one_step_of_clock_drift_and_no_more():
    secret = pyotp.random_base32()
    now = dt.datetime(2026, 11, 2, 9, 0, 15)
    step = int(now.replace(tzinfo=dt.UTC).timestamp()) // 30
    for drift, ok in ((-30, True), (0, True), (30, True), (-60, False), (60, False)):
        code = code_at(secret, now + dt.timedelta(seconds=drift))
        assert (match_totp_step(secret, code, now, None) is not None) is ok
    assert match_totp_step(secret, code_at(secret, now), now, step) is None


def test_in_production_required_roles_must_enrol_before_anything_else(production_app, clock):
    c = TestClient(production_app, raise_server_exceptions=False)
    assert api_login(c, "prescriber").status_code == 200
    r = c.get("/patients", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/account/totp"
    r = c.get("/api/patients")
    assert r.status_code == 403 and "two-factor" in r.json()["detail"]
    assert c.get("/api/me").status_code == 200
    page = c.get("/account/totp")
    assert "must use two-factor" in page.text
    enrol_via_page(c, clock)
    assert c.get("/api/patients").status_code == 200
    nurse = TestClient(production_app, raise_server_exceptions=False)
    assert api_login(nurse, "nurse").status_code == 200
    assert nurse.get("/api/patients").status_code == 200  # nurses are not in the policy
    c.close()
    nurse.close()


def test_the_policy_is_off_outside_production_and_when_empty(database_url):
    assert make_settings(database_url).totp_required_roles == frozenset()
    prod = make_settings(database_url).model_copy(update={"env": "production"})
    assert prod.totp_required_roles == {"admin", "prescriber"}
    off = prod.model_copy(update={"require_totp_for": ""})
    assert off.totp_required_roles == frozenset()

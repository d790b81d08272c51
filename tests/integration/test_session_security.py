"""Session security beyond test_auth.py: CSRF on every state change (API operations from the
OpenAPI schema and every form route of the app, so new ones are covered), session fixation,
logout replay through the page, expiry bookkeeping, cookie flags and security headers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from kcroutes import fill_path, form_post_routes, state_changing_operations
from kctest import USERS, csrf_from
from sqlalchemy import select

from ketaclinic.schemas import PatientCreate
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.store.backup import table_digests
from ketaclinic.store.tables import AuthSession

# Logging in has no session yet; the login form carries its own pre-login token instead.
# A patient's self-report link has no session either: the unguessable single-use link token
# (and, on the form, a key derived from it) is what authorises the submission; without a
# valid link it is refused (410/422) and nothing changes (checked in test_mbc_services.py).
NO_SESSION = {("POST", "/api/auth/login"), ("POST", "/login"),
              ("POST", "/api/self-report/{token}"), ("POST", "/r/{token}")}


def _patient(services) -> int:
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn="CS-1", family_name="Csrf", given_name="Case", birth_date="1970-01-01",
        sex="unknown"))
    return p.id


def _web_login(client: TestClient, role: str):  # type: ignore[no-untyped-def]
    page = client.get("/login")
    prelogin = page.text.split('name="prelogin" value="')[1].split('"')[0]
    username, _n, _r, password = USERS[role]
    return client.post("/login", data={"prelogin": prelogin, "username": username,
                                       "password": password, "next": "/patients"},
                       follow_redirects=False)


@pytest.mark.parametrize("role", ["admin", "prescriber"])
def test_every_api_state_change_without_the_csrf_token_is_refused_and_changes_nothing(
        login, services, role):
    c, csrf = login(role)
    pid = _patient(services)
    before = table_digests(services.db.engine)
    problems = []
    operations = [op for op in state_changing_operations(c.app) if op not in NO_SESSION]
    assert ("POST", "/api/patients") in operations
    assert {("POST", "/api/me/password"), ("POST", "/api/me/recovery-codes"),
            ("POST", "/api/users/{user_id}/reset-password"),
            ("POST", "/api/users/{user_id}/reset-two-factor")} <= set(operations)
    for method, path in operations:
        url = fill_path(path, pid)
        for headers in ({}, {"X-CSRF-Token": "forged-" + csrf[:10]}):
            r = c.request(method, url, json={}, headers=headers)
            if r.status_code != 403 or "CSRF" not in r.text:
                problems.append(f"{method} {path} {headers or 'no token'}: {r.status_code}")
    assert not problems, "\n".join(problems)
    assert table_digests(services.db.engine) == before
    assert c.get("/api/me").status_code == 200  # the refused logout did not log us out


@pytest.mark.parametrize("role", ["admin", "prescriber"])
def test_every_form_post_without_the_csrf_token_is_refused_and_changes_nothing(
        login, services, role):
    c, _csrf = login(role)
    pid = _patient(services)
    before = table_digests(services.db.engine)
    routes = [p for p in form_post_routes(c.app) if ("POST", p) not in NO_SESSION]
    assert "/patients/new" in routes and "/logout" in routes
    assert {"/account/password", "/account/recovery-codes", "/account/totp",
            "/admin/users/{user_id}/reset-password",
            "/admin/users/{user_id}/reset-two-factor"} <= set(routes)
    problems = []
    for path in routes:
        url = fill_path(path, pid)
        for data in ({"x": "1"}, {"csrf_token": "forged"}):
            r = c.post(url, data=data, follow_redirects=False)
            if r.status_code != 403:
                problems.append(f"POST {path} {data}: {r.status_code}")
    assert not problems, "\n".join(problems)
    assert table_digests(services.db.engine) == before


def test_a_csrf_token_of_another_session_is_refused(login, services):
    a, _csrf_a = login("nurse")
    _b, csrf_b = login("nurse")
    r = a.post("/api/patients", json={"mrn": "X-1", "family_name": "A", "given_name": "B",
                                      "birth_date": "1970-01-01", "sex": "male"},
               headers={"X-CSRF-Token": csrf_b})
    assert r.status_code == 403


@pytest.mark.parametrize("how", ["api", "page"])
def test_a_session_cookie_set_before_login_is_not_adopted(app, services, how):
    c = TestClient(app, raise_server_exceptions=False)
    planted = "attacker-chosen-session-value-0123456789"
    c.cookies.set("kc_session", planted)
    if how == "api":
        r = c.post("/api/auth/login", json={"username": "nurse",
                                            "password": USERS["nurse"][3]})
    else:
        r = _web_login(c, "nurse")
    assert r.status_code in (200, 303)
    issued = r.cookies.get("kc_session")
    assert issued and issued != planted
    attacker = TestClient(app, raise_server_exceptions=False)
    attacker.cookies.set("kc_session", planted)
    assert attacker.get("/api/me").status_code == 401
    c.close()
    attacker.close()


def test_logout_through_the_page_ends_the_session_for_a_replayed_cookie(app, services):
    c = TestClient(app, raise_server_exceptions=False)
    assert _web_login(c, "prescriber").status_code == 303
    cookie = c.cookies.get("kc_session")
    token = csrf_from(c.get("/patients").text)
    r = c.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    replay = TestClient(app, raise_server_exceptions=False)
    replay.cookies.set("kc_session", cookie)
    assert replay.get("/api/me").status_code == 401
    assert replay.get("/patients", follow_redirects=False).headers["location"].startswith(
        "/login")
    with services.db.transaction() as s:
        ended = s.execute(select(AuthSession.end_reason)).scalars().all()
    assert ended == ["logout"]
    c.close()
    replay.close()


def test_an_idle_session_is_locked_on_the_server_and_stays_locked(login, services, clock):
    # Issue 12: idle locks (not ends) the session; only the user's PIN or password unlocks it.
    c, _ = login("nurse")
    clock.advance(minutes=16)
    assert c.get("/api/me").status_code == 401
    clock.advance(minutes=-16)  # even if the clock went back, the locked session stays locked
    assert c.get("/api/me").status_code == 401
    with services.db.transaction() as s:
        row = s.execute(select(AuthSession)).scalar_one()
        assert row.locked_at is not None and row.ended_at is None


def test_deactivating_a_user_ends_their_sessions_at_once(login, services, users):
    c, _ = login("nurse")
    assert c.get("/api/me").status_code == 200
    services.auth.set_active(users["admin"].actor, users["nurse"].id, False)
    assert c.get("/api/me").status_code == 401


def test_web_login_cookies_are_httponly_samesite_and_scoped(app):
    c = TestClient(app, raise_server_exceptions=False, base_url="https://testserver")
    page = c.get("/login")
    prelogin = [v for k, v in page.headers.multi_items() if k == "set-cookie"][0].lower()
    assert "kc_prelogin=" in prelogin and "httponly" in prelogin
    assert "samesite=strict" in prelogin and "path=/login" in prelogin and "secure" in prelogin
    r = _web_login(c, "nurse")
    session = [v for k, v in r.headers.multi_items() if k == "set-cookie"
               and v.startswith("kc_session=")][0].lower()
    assert "httponly" in session and "samesite=lax" in session and "path=/" in session
    assert "secure" in session
    c.close()


def test_cookies_over_plain_http_are_not_secure_unless_configured(app):
    c = TestClient(app, raise_server_exceptions=False)
    r = _web_login(c, "nurse")
    session = [v for k, v in r.headers.multi_items() if k == "set-cookie"
               and v.startswith("kc_session=")][0].lower()
    assert "secure" not in session
    c.close()


def test_hsts_is_sent_over_https_only(app):
    https = TestClient(app, raise_server_exceptions=False, base_url="https://testserver")
    http = TestClient(app, raise_server_exceptions=False)
    assert "max-age=31536000" in https.get("/login").headers["strict-transport-security"]
    assert "strict-transport-security" not in http.get("/login").headers
    https.close()
    http.close()


@pytest.mark.parametrize("path", ["/login", "/patients", "/patients/{id}", "/api/me",
                                  "/api/patients", "/api/patients/{id}", "/no-such-page",
                                  "/api/no-such-endpoint"])
def test_every_answer_carries_the_security_headers_and_patient_data_is_not_cached(
        login, services, path):
    c, _ = login("nurse")
    pid = _patient(services)
    r = c.get(path.replace("{id}", str(pid)))
    h = r.headers
    csp = h["content-security-policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "object-src 'none'",
                      "frame-ancestors 'none'", "base-uri 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert h["x-content-type-options"] == "nosniff"
    assert h["x-frame-options"] == "DENY"
    assert h["referrer-policy"] == "no-referrer"
    assert h["cache-control"] == "no-store"


def test_static_files_may_be_cached_but_are_not_sniffed(client):
    r = client.get("/static/app.css")
    assert r.status_code == 200
    assert r.headers.get("cache-control") != "no-store"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_an_oversized_body_is_refused_before_it_is_read(login, services):
    c, csrf = login("nurse")
    r = c.post("/api/patients", content=b"{" + b" " * 1_100_000 + b"}",
               headers={"X-CSRF-Token": csrf, "content-type": "application/json"})
    assert r.status_code == 413

"""Changing one's password and an administrator's password reset — on every backend."""

from __future__ import annotations

import datetime as dt
import logging
import re

import pytest
from fastapi.testclient import TestClient
from kctest import TEST_SECRET, USERS, csrf_from
from sqlalchemy import select

from ketaclinic.cli import main
from ketaclinic.services.accounts.auth import verify_password
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.errors import InvalidInput, NotAuthenticated
from ketaclinic.store.tables import AuditEvent, AuthSession, User

NEW = "ride the tram to the blue clinic"


def api_login(app, username: str, password: str) -> tuple[TestClient, object]:  # type: ignore[no-untyped-def]
    c = TestClient(app, raise_server_exceptions=False)
    return c, c.post("/api/auth/login", json={"username": username, "password": password})


def web_login(c: TestClient, username: str, password: str):  # type: ignore[no-untyped-def]
    page = c.get("/login")
    prelogin = page.text.split('name="prelogin" value="')[1].split('"')[0]
    return c.post("/login", data={"prelogin": prelogin, "username": username,
                                  "password": password, "next": "/patients"},
                  follow_redirects=False)


def audit(services, action: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return list(s.execute(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id)).scalars())


def user_row(services, username: str) -> User:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        user = s.execute(select(User).where(User.username == username)).scalar_one()
        s.expunge(user)
        return user


def open_sessions(services, username: str) -> int:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return len(s.execute(select(AuthSession.id).join(User).where(
            User.username == username, AuthSession.ended_at.is_(None))).all())


def change(c: TestClient, csrf: str, current: str, new: str):  # type: ignore[no-untyped-def]
    return c.post("/api/me/password", json={"current_password": current, "new_password": new},
                  headers={"X-CSRF-Token": csrf})


# --- changing one's own password --------------------------------------------------------------
def test_changing_ones_password_ends_the_other_sessions_keeps_this_one_and_is_audited(
        login, app, services):
    here, csrf = login("nurse")
    elsewhere, _ = login("nurse")
    r = change(here, csrf, USERS["nurse"][3], NEW)
    assert r.status_code == 200 and r.json()["must_change_password"] is False
    assert here.get("/api/me").status_code == 200
    assert elsewhere.get("/api/me").status_code == 401
    assert api_login(app, "nurse", USERS["nurse"][3])[1].status_code == 401
    assert api_login(app, "nurse", NEW)[1].status_code == 200
    [row] = audit(services, "user.password.change")
    assert row.outcome == "ok" and row.username == "nurse" and "1 other sessions" in row.detail


def test_a_wrong_current_password_is_refused_audited_and_changes_nothing(login, services):
    c, csrf = login("nurse")
    other, _ = login("nurse")
    before = user_row(services, "nurse").password_hash
    r = change(c, csrf, "not-my-password-at-all", NEW)
    assert r.status_code == 422 and "current password is not correct" in r.json()["detail"]
    assert user_row(services, "nurse").password_hash == before
    assert other.get("/api/me").status_code == 200 and open_sessions(services, "nurse") == 2
    [row] = audit(services, "user.password.change")
    assert row.outcome == "failed" and row.detail == "current password wrong"


def test_wrong_current_passwords_are_throttled_like_failed_logins(login, services):
    c, csrf = login("nurse")
    for _ in range(5):
        assert change(c, csrf, "not-my-password-at-all", NEW).status_code == 422
    r = change(c, csrf, USERS["nurse"][3], NEW)
    assert r.status_code == 429
    assert verify_password(user_row(services, "nurse").password_hash, USERS["nurse"][3])


@pytest.mark.parametrize("new, reason", [
    ("short-pw-1", "12"), ("Password2026!", "common word"), ("nurse-2026-2026", "username"),
    ("x" * 129, "128"),
])
def test_a_new_password_against_the_policy_is_refused_and_nothing_changes(
        login, services, new, reason):
    c, csrf = login("nurse")
    before = user_row(services, "nurse").password_hash
    r = change(c, csrf, USERS["nurse"][3], new)
    assert r.status_code == 422 and reason in r.json()["detail"]
    assert user_row(services, "nurse").password_hash == before
    assert audit(services, "user.password.change") == []


def test_the_new_password_must_differ_from_the_current_one(login):
    c, csrf = login("nurse")
    r = change(c, csrf, USERS["nurse"][3], USERS["nurse"][3])
    assert r.status_code == 422 and "differ" in r.json()["detail"]


def test_a_long_password_is_not_truncated(login, app):
    c, csrf = login("nurse")
    long = "the blue tram stops at the clinic gate " * 3  # 117 characters
    assert change(c, csrf, USERS["nurse"][3], long).status_code == 200
    assert api_login(app, "nurse", long)[1].status_code == 200
    assert api_login(app, "nurse", long[:72])[1].status_code == 401
    assert api_login(app, "nurse", long[:-1] + "X")[1].status_code == 401


def test_the_change_password_page_works_and_the_passwords_never_reach_logs_or_audit(
        login, services, caplog):
    caplog.set_level(logging.DEBUG)
    c, _ = login("nurse")
    page = c.get("/account/password")
    assert page.status_code == 200
    for field in ("current_password", "new_password", "confirm_password"):
        assert f'for="{field}"' in page.text and f'id="{field}"' in page.text
    form = {"csrf_token": csrf_from(page.text), "current_password": USERS["nurse"][3],
            "new_password": NEW, "confirm_password": NEW + "!"}
    r = c.post("/account/password", data=form)
    assert r.status_code == 422 and "not the same" in r.text
    r = c.post("/account/password", data=form | {"confirm_password": NEW},
               follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/account?msg=")
    assert "password was changed" in c.get(r.headers["location"]).text
    with services.db.transaction() as s:
        details = " ".join(s.execute(select(AuditEvent.detail)).scalars())
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (NEW, USERS["nurse"][3]):
        assert secret not in details and secret not in logged


# --- an administrator's reset ---------------------------------------------------------------
def reset(c: TestClient, csrf: str, user_id: int, temporary: str | None = None):  # type: ignore[no-untyped-def]
    body = {} if temporary is None else {"temporary_password": temporary}
    return c.post(f"/api/users/{user_id}/reset-password", json=body,
                  headers={"X-CSRF-Token": csrf})


def test_an_admin_reset_ends_the_users_sessions_and_the_user_must_change_it_first(
        login, app, services, users):
    nurse, _ = login("nurse")
    admin, csrf = login("admin")
    r = reset(admin, csrf, users["nurse"].id)
    assert r.status_code == 200
    body = r.json()
    temporary = body["temporary_password"]
    assert re.fullmatch(r"[0-9a-z]{4}(-[0-9a-z]{4}){3}", temporary)
    assert body["sessions_ended"] == 1 and body["user"]["must_change_password"] is True
    assert nurse.get("/api/me").status_code == 401
    assert api_login(app, "nurse", USERS["nurse"][3])[1].status_code == 401
    c, r = api_login(app, "nurse", temporary)
    assert r.status_code == 200 and r.json()["user"]["must_change_password"] is True
    csrf_n = r.json()["csrf_token"]
    assert c.get("/api/me").json()["must_change_password"] is True
    for method, path in (("GET", "/api/patients"), ("GET", "/api/users"),
                         ("POST", "/api/me/recovery-codes")):
        refused = c.request(method, path, headers={"X-CSRF-Token": csrf_n},
                            json={"password": temporary} if method == "POST" else None)
        assert refused.status_code == 403, path
        assert "password was reset" in refused.json()["detail"]
        assert "/api/me/password" in refused.json()["detail"]
    assert change(c, csrf_n, temporary, NEW).status_code == 200
    assert c.get("/api/patients").status_code == 200
    [row] = audit(services, "user.password.reset")
    assert row.username == "admin" and "user nurse" in row.detail and temporary not in row.detail
    assert "generated" in row.detail


def test_a_reset_without_a_body_generates_the_temporary_password(login, users):
    admin, csrf = login("admin")
    r = admin.post(f"/api/users/{users['prescriber'].id}/reset-password",
                   headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and len(r.json()["temporary_password"]) == 19


def test_a_forced_web_login_lands_on_the_change_password_page_and_nowhere_else(
        login, app, services, users):
    admin, csrf = login("admin")
    temporary = "a temporary phrase for nina"
    assert reset(admin, csrf, users["nurse"].id, temporary).json()["temporary_password"] is None
    c = TestClient(app, raise_server_exceptions=False)
    r = web_login(c, "nurse", temporary)
    assert r.status_code == 303 and r.headers["location"] == "/account/password"
    for page in ("/patients", "/account", "/account/totp", "/schedule"):
        r = c.get(page, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/account/password", page
    page = c.get("/account/password")
    assert "An administrator reset your password" in page.text
    assert "Temporary password" in page.text
    r = c.post("/account/password", follow_redirects=False, data={
        "csrf_token": csrf_from(page.text), "current_password": temporary,
        "new_password": NEW, "confirm_password": NEW})
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert c.get("/patients").status_code == 200
    assert user_row(services, "nurse").must_change_password is False


def test_the_admin_pages_confirm_then_reset_and_show_a_generated_password_once(
        login, app, services, users):
    admin, _ = login("admin")
    listing = admin.get("/admin/users").text
    nurse_id = users["nurse"].id
    assert f'href="/admin/users/{nurse_id}/reset-password"' in listing
    assert f'href="/admin/users/{users["admin"].id}/reset-password"' not in listing
    confirm = admin.get(f"/admin/users/{nurse_id}/reset-password")
    assert confirm.status_code == 200 and "Reset the password of Nina Nurse?" in confirm.text
    assert 'for="temporary_password"' in confirm.text
    r = admin.post(f"/admin/users/{nurse_id}/reset-password",
                   data={"csrf_token": csrf_from(confirm.text), "temporary_password": ""})
    assert r.status_code == 200 and "shown only this once" in r.text
    temporary = re.search(r'class="temporary-password"[^>]*>([^<]+)<', r.text).group(1)
    assert api_login(app, "nurse", temporary)[1].status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert temporary not in admin.get("/admin/users").text
    assert "must change password" in admin.get("/admin/users").text
    weak = admin.post(f"/admin/users/{nurse_id}/reset-password",
                      data={"csrf_token": csrf_from(confirm.text),
                            "temporary_password": "Password2026!"})
    assert weak.status_code == 422 and "common word" in weak.text


def test_an_admin_cannot_reset_their_own_password_this_way(login, services, users):
    admin, csrf = login("admin")
    before = user_row(services, "admin").password_hash
    r = reset(admin, csrf, users["admin"].id)
    assert r.status_code == 422 and "your own" in r.json()["detail"]
    page = admin.get(f"/admin/users/{users['admin'].id}/reset-password")
    r = admin.post(f"/admin/users/{users['admin'].id}/reset-password",
                   data={"csrf_token": csrf_from(page.text)})
    assert r.status_code == 422
    assert user_row(services, "admin").password_hash == before
    assert admin.get("/api/me").status_code == 200


def test_other_roles_cannot_reset_a_password_and_the_denial_is_audited(login, services, users):
    for role in ("prescriber", "nurse", "analyst"):
        c, csrf = login(role)
        assert reset(c, csrf, users["admin"].id).status_code == 403
        assert c.get(f"/admin/users/{users['admin'].id}/reset-password").status_code == 403
    denied = [e for e in audit(services, "user.password.reset") if e.outcome == "denied"]
    assert {e.username for e in denied} == {"prescriber", "nurse", "analyst"}
    assert not user_row(services, "admin").must_change_password


def test_a_temporary_password_expires_and_so_does_a_session_still_using_it(
        services, users, services_for, clock, app_for):
    short = services_for(temporary_password_hours=1)
    app = app_for(short)
    temporary = short.accounts.reset_password(SYSTEM, users["nurse"].id).generated
    c, r = api_login(app, "nurse", temporary)
    assert r.status_code == 200
    for _ in range(5):  # active every 10 minutes: no idle timeout
        clock.advance(minutes=10)
        assert c.get("/api/me").status_code == 200
    clock.advance(minutes=10)
    me = c.get("/api/me")
    assert me.status_code == 401 and "temporary password has expired" in me.json()["detail"]
    _, again = api_login(app, "nurse", temporary)
    assert again.status_code == 401 and "expired" in again.json()["detail"]
    with services.db.transaction() as s:
        reasons = s.execute(select(AuthSession.end_reason)).scalars().all()
    assert reasons == ["temporary expired"]


def test_a_temporary_password_does_not_count_as_a_witness_signature(login, services, users):
    admin, csrf = login("admin")
    temporary = reset(admin, csrf, users["nurse"].id).json()["temporary_password"]
    with pytest.raises(NotAuthenticated):
        services.auth.reauthenticate("nurse", temporary)


def test_the_service_refuses_a_reset_of_an_unknown_user(services, users):
    from ketaclinic.services.errors import NotFound

    with pytest.raises(NotFound):
        services.accounts.reset_password(users["admin"].actor, 999_999)
    with pytest.raises(InvalidInput):
        services.accounts.reset_password(users["admin"].actor, users["nurse"].id, "short")


def cli_env(services) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"KETACLINIC_ENV": "test", "KETACLINIC_SECRET_KEY": TEST_SECRET,
            "KETACLINIC_DATABASE_URL": services.settings.database_url}


def test_the_command_line_resets_a_locked_out_admin_and_prints_the_password_once(
        login, services, users, capsys):
    c, _ = login("admin")
    assert main(["user", "reset-password", "admin"], environ=cli_env(services)) == 0
    out = capsys.readouterr().out
    temporary = out.strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-z]{4}(-[0-9a-z]{4}){3}", temporary)
    row = user_row(services, "admin")
    assert row.must_change_password and verify_password(row.password_hash, temporary)
    assert c.get("/api/me").status_code == 401
    [event] = audit(services, "user.password.reset")
    assert event.username == "system" and temporary not in event.detail
    assert main(["user", "reset-password", "nobody"], environ=cli_env(services)) == 4  # not found
    assert "no user named 'nobody'" in capsys.readouterr().err


def test_deactivated_users_keep_their_state_and_a_reset_does_not_reactivate(services, users):
    services.auth.set_active(users["admin"].actor, users["nurse"].id, False)
    reset_ = services.accounts.reset_password(SYSTEM, users["nurse"].id)
    assert reset_.user.active is False and reset_.user.must_change_password
    assert reset_.expires_at == services.ctx.clock() + dt.timedelta(
        hours=services.settings.temporary_password_hours)

"""Two-factor recovery (one-time codes, admin reset) and TOTP keys encrypted at rest — on
every backend."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from kctest import (
    TEST_SECRET,
    USERS,
    csrf_from,
)
from kctotp import code_at, enrol_with_codes
from sqlalchemy import select, text, update

from ketaclinic.cli import main
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.secretbox import SecretBox, totp_context
from ketaclinic.store.tables import AuditEvent, AuthSession, RecoveryCode, User


def login_with(app, role: str, **second) -> tuple[TestClient, object]:  # type: ignore[no-untyped-def]
    c = TestClient(app, raise_server_exceptions=False)
    body = {"username": USERS[role][0], "password": USERS[role][3], **second}
    return c, c.post("/api/auth/login", json=body)


def actions(services, action: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return list(s.execute(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id)).scalars())


def raw_users(services) -> list[tuple]:  # type: ignore[no-untyped-def]
    """The users table as the database holds it (no ORM in between)."""
    with services.db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT username, totp_secret, totp_pending_secret FROM users ORDER BY id"))]


@pytest.fixture
def enrolled(login, clock):  # type: ignore[no-untyped-def]
    """The prescriber, enrolled: (secret, recovery codes)."""
    c, _ = login("prescriber")
    secret, codes = enrol_with_codes(c, clock)
    clock.advance(minutes=1)
    return secret, codes


# --- recovery codes ---------------------------------------------------------------------------
def test_a_recovery_code_stands_in_for_the_authenticator_once_and_its_use_is_audited(
        app, services, enrolled):
    _secret, codes = enrolled
    c, r = login_with(app, "prescriber", recovery_code=codes[3])
    assert r.status_code == 200
    assert c.get("/api/me").status_code == 200
    _, replay = login_with(app, "prescriber", recovery_code=codes[3])
    assert replay.status_code == 401 and "recovery code" in replay.json()["detail"]
    [used] = actions(services, "totp.recovery_code.used")
    assert used.username == "prescriber" and used.detail == "9 unused recovery codes left"
    failed = [e.detail for e in actions(services, "login") if e.outcome == "failed"]
    assert failed == ["recovery code wrong or already used"]


def test_a_code_is_accepted_as_typed_in_capitals_and_spaces_but_a_made_up_one_is_not(
        app, enrolled):
    _secret, codes = enrolled
    typed = codes[0].upper().replace("-", " ")
    assert login_with(app, "prescriber", recovery_code=typed)[1].status_code == 200
    assert login_with(app, "prescriber",
                      recovery_code="0000-0000-0000-0000")[1].status_code == 401


def test_only_salted_digests_of_the_codes_are_stored(services, enrolled):
    _secret, codes = enrolled
    with services.db.engine.connect() as conn:
        stored = " ".join(" ".join(map(str, row)) for row in conn.execute(text(
            "SELECT salt, digest FROM recovery_codes")))
    assert stored.count(" ") + 1 == 20
    for code in codes:
        assert code not in stored and code.replace("-", "") not in stored


def test_the_web_login_takes_a_recovery_code_and_says_how_many_are_left(app, enrolled):
    _secret, codes = enrolled
    web = TestClient(app, raise_server_exceptions=False)
    page = web.get("/login")
    assert 'for="recovery_code"' in page.text and 'name="recovery_code"' in page.text
    prelogin = page.text.split('name="prelogin" value="')[1].split('"')[0]
    r = web.post("/login", follow_redirects=False, data={
        "prelogin": prelogin, "username": "prescriber", "password": USERS["prescriber"][3],
        "recovery_code": codes[5], "next": "/patients"})
    assert r.status_code == 303 and r.headers["location"].startswith("/account?msg=")
    account = web.get(r.headers["location"])
    assert "9 left" in account.text
    assert '<strong class="codes-left">9</strong>' in account.text
    web.close()


def test_regenerating_needs_the_password_and_replaces_every_earlier_code(
        app, services, login, enrolled):
    _secret, codes = enrolled
    c, _ = login_with(app, "prescriber", recovery_code=codes[0])
    csrf = csrf_from(c.get("/account").text)
    r = c.post("/api/me/recovery-codes", json={"password": "not-the-password"},
               headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422
    assert login_with(app, "prescriber", recovery_code=codes[1])[1].status_code == 200
    r = c.post("/api/me/recovery-codes", json={"password": USERS["prescriber"][3]},
               headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201
    fresh = r.json()["codes"]
    assert len(fresh) == 10 and not set(fresh) & set(codes)
    assert login_with(app, "prescriber", recovery_code=codes[2])[1].status_code == 401
    assert login_with(app, "prescriber", recovery_code=fresh[0])[1].status_code == 200
    regenerations = actions(services, "totp.recovery_codes.regenerate")
    assert [e.outcome for e in regenerations] == ["failed", "ok"]


def test_the_account_page_regenerates_codes_and_shows_them_once(login, app, enrolled):
    _secret, codes = enrolled
    c, _ = login_with(app, "prescriber", recovery_code=codes[0])
    page = c.get("/account")
    assert 'for="rc-password"' in page.text
    wrong = c.post("/account/recovery-codes", data={"csrf_token": csrf_from(page.text),
                                                    "password": "nope-nope-nope"})
    assert wrong.status_code == 422 and "not correct" in wrong.text
    r = c.post("/account/recovery-codes", data={"csrf_token": csrf_from(page.text),
                                                "password": USERS["prescriber"][3]})
    assert r.status_code == 200 and "only this once" in r.text
    assert r.text.count("<li><code>") == 10
    assert "<li><code>" not in c.get("/account").text


def test_without_two_factor_there_are_no_codes_to_regenerate(login):
    c, csrf = login("nurse")
    r = c.post("/api/me/recovery-codes", json={"password": USERS["nurse"][3]},
               headers={"X-CSRF-Token": csrf})
    assert r.status_code == 409 and "not set up" in r.json()["detail"]
    assert "Set up two-factor login" in c.get("/account").text


# --- an administrator's two-factor reset ------------------------------------------------------
def test_an_admin_reset_of_two_factor_clears_the_key_and_codes_and_ends_sessions(
        login, app, services, users, enrolled):
    secret, _codes = enrolled
    prescriber, _ = login_with(app, "prescriber", totp_code=code_at(secret, services.ctx.clock()))
    assert prescriber.get("/api/me").status_code == 200
    admin, csrf = login("admin")
    r = admin.post(f"/api/users/{users['prescriber'].id}/reset-two-factor",
                   headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["totp_enrolled"] is False
    assert prescriber.get("/api/me").status_code == 401
    with services.db.transaction() as s:
        row = s.execute(select(User).where(User.username == "prescriber")).scalar_one()
        assert row.totp_secret is None and row.totp_pending_secret is None
        assert s.execute(select(RecoveryCode)).first() is None
        reasons = set(s.execute(select(AuthSession.end_reason).where(
            AuthSession.user_id == row.id)).scalars())
    assert reasons == {"2fa reset"}
    assert login_with(app, "prescriber")[1].status_code == 200  # password alone again
    [event] = actions(services, "user.totp.reset")
    assert event.username == "admin" and "user prescriber" in event.detail
    again = admin.post(f"/api/users/{users['prescriber'].id}/reset-two-factor",
                       headers={"X-CSRF-Token": csrf})
    assert again.status_code == 409


def test_the_admin_page_confirms_before_resetting_two_factor(login, services, users, enrolled):
    admin, _ = login("admin")
    pid = users["prescriber"].id
    assert f'href="/admin/users/{pid}/reset-two-factor"' in admin.get("/admin/users").text
    confirm = admin.get(f"/admin/users/{pid}/reset-two-factor")
    assert confirm.status_code == 200 and "lost the phone" in confirm.text
    r = admin.post(f"/admin/users/{pid}/reset-two-factor",
                   data={"csrf_token": csrf_from(confirm.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert "was reset" in admin.get(r.headers["location"]).text
    assert services.accounts.get_user(SYSTEM, pid).totp_enrolled is False


def test_an_admin_cannot_reset_their_own_two_factor_and_others_may_not_at_all(
        login, app, services, users, clock):
    admin, csrf = login("admin")
    enrol_with_codes(admin, clock)
    r = admin.post(f"/api/users/{users['admin'].id}/reset-two-factor",
                   headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422 and "your own" in r.json()["detail"]
    nurse, ncsrf = login("nurse")
    r = nurse.post(f"/api/users/{users['admin'].id}/reset-two-factor",
                   headers={"X-CSRF-Token": ncsrf})
    assert r.status_code == 403
    assert services.accounts.get_user(SYSTEM, users["admin"].id).totp_enrolled


def test_in_production_a_reset_user_goes_straight_to_enrolment(
        production_app, services, users, clock):
    c = TestClient(production_app, raise_server_exceptions=False)
    c.post("/api/auth/login", json={"username": "prescriber",
                                    "password": USERS["prescriber"][3]})
    enrol_with_codes(c, clock)
    clock.advance(minutes=1)
    services.accounts.reset_two_factor(SYSTEM, users["prescriber"].id)
    again = TestClient(production_app, raise_server_exceptions=False)
    r = again.post("/api/auth/login", json={"username": "prescriber",
                                            "password": USERS["prescriber"][3]})
    assert r.status_code == 200
    r = again.get("/patients", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/account/totp"
    assert "must use two-factor" in again.get("/account/totp").text


def test_a_reset_password_in_production_is_changed_first_and_enrolment_follows(
        production_app, services, users):
    temporary = services.accounts.reset_password(SYSTEM, users["prescriber"].id).generated
    c = TestClient(production_app, raise_server_exceptions=False)
    r = c.post("/api/auth/login", json={"username": "prescriber", "password": temporary})
    csrf = r.json()["csrf_token"]
    assert c.get("/account/totp", follow_redirects=False).headers["location"] == (
        "/account/password")
    r = c.post("/api/me/password", headers={"X-CSRF-Token": csrf}, json={
        "current_password": temporary, "new_password": "ride the tram to the blue clinic"})
    assert r.status_code == 200
    assert c.get("/patients", follow_redirects=False).headers["location"] == "/account/totp"


def cli_env(services, **extra: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"KETACLINIC_ENV": "test", "KETACLINIC_SECRET_KEY": TEST_SECRET,
            "KETACLINIC_DATABASE_URL": services.settings.database_url, **extra}


def test_the_command_line_resets_two_factor(services, enrolled, capsys):
    assert main(["user", "reset-2fa", "prescriber"], environ=cli_env(services)) == 0
    assert "was reset" in capsys.readouterr().out
    # nothing to reset any more: a conflict, exit 1 (docs/cli.md)
    assert main(["user", "reset-2fa", "prescriber"], environ=cli_env(services)) == 1
    assert "not set up" in capsys.readouterr().err
    [event] = actions(services, "user.totp.reset")
    assert event.username == "system"


# --- keys encrypted at rest -------------------------------------------------------------------
def test_the_stored_key_is_encrypted_and_never_the_base32_secret(services, enrolled, login):
    secret, _codes = enrolled
    c, _ = login("admin")
    c.get("/account/totp")  # a pending enrolment key, too
    values = [v for _user, *cols in raw_users(services) for v in cols if v is not None]
    assert len(values) == 2  # the prescriber's key and the admin's pending one
    for value in values:
        assert value.startswith("v1.") and secret not in value
        assert secret.lower() not in value.lower()


def test_a_key_that_does_not_decrypt_refuses_the_login_clearly_and_logs_no_secret(
        app, services, users, enrolled, caplog):
    secret, _codes = enrolled
    other = SecretBox.for_secrets("a-different-instance-secret-" + "q" * 30)
    with services.db.transaction() as s:
        s.execute(update(User).where(User.username == "prescriber").values(
            totp_secret=other.encrypt(secret, totp_context(users["prescriber"].id))))
    caplog.set_level(logging.DEBUG)
    _, r = login_with(app, "prescriber", totp_code=code_at(secret, services.ctx.clock()))
    assert r.status_code == 401
    assert "cannot be decrypted" in r.json()["detail"] and "administrator" in r.json()["detail"]
    failed = [e.detail for e in actions(services, "login") if e.outcome == "failed"]
    assert failed == ["two-factor key could not be decrypted"]
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "unreadable" in logged and other.current_id in logged and secret not in logged
    wrong = TestClient(app).post("/api/auth/login", json={"username": "prescriber",
                                                          "password": "not-the-password"})
    assert "decrypted" not in wrong.json()["detail"]  # nothing is said before the password


def test_a_plaintext_key_fails_closed_until_encrypt_secrets_runs(
        app, services, users, enrolled, capsys):
    secret, _codes = enrolled
    with services.db.transaction() as s:
        s.execute(update(User).where(User.username == "prescriber").values(totp_secret=secret))
    now = services.ctx.clock()
    assert login_with(app, "prescriber", totp_code=code_at(secret, now))[1].status_code == 401
    assert main(["user", "encrypt-secrets"], environ=cli_env(services)) == 0
    assert "1 encrypted" in capsys.readouterr().out
    assert raw_users(services)[1][1].startswith("v1.")
    assert login_with(app, "prescriber", totp_code=code_at(secret, now))[1].status_code == 200
    assert main(["user", "encrypt-secrets"], environ=cli_env(services)) == 0
    assert "0 encrypted, 0 re-encrypted, 1 already current" in capsys.readouterr().out


def test_encrypt_secrets_re_encrypts_keys_of_a_previous_secret_and_names_unreadable_ones(
        services, users, enrolled, capsys):
    secret, _codes = enrolled
    old = "the-previous-instance-secret-" + "p" * 30
    sealed = SecretBox.for_secrets(old).encrypt(secret, totp_context(users["prescriber"].id))
    with services.db.transaction() as s:
        s.execute(update(User).where(User.username == "prescriber").values(totp_secret=sealed))
    assert main(["user", "encrypt-secrets"], environ=cli_env(services)) == 1
    assert "prescriber" in capsys.readouterr().err
    assert main(["user", "encrypt-secrets"], environ=cli_env(
        services, KETACLINIC_PREVIOUS_SECRET_KEY=old)) == 0
    assert "1 re-encrypted" in capsys.readouterr().out
    stored = raw_users(services)[1][1]
    assert services.auth.box.decrypt(stored, totp_context(users["prescriber"].id)) == secret

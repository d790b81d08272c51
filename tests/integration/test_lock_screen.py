"""The lock screen on every backend (issue 12 item 7): idle locks the session (no data), the
user unlocks with a hashed, throttled PIN or the password, and the session goes on."""

from __future__ import annotations

import datetime as dt

import pytest
from kctest import csrf_from
from sqlalchemy import select

from ketaclinic.schemas import PatientCreate
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.errors import InvalidInput
from ketaclinic.store.tables import AuditEvent, AuthSession, User

PIN = "482915"


def _set_pin(c, csrf, pin=PIN, password="nurse-password-1"):  # type: ignore[no-untyped-def]
    return c.post("/account/pin", data={"csrf_token": csrf, "password": password, "pin": pin},
                  follow_redirects=False)


def _patient(services) -> int:  # type: ignore[no-untyped-def]
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn="LOCK-1", family_name="Lockwood", given_name="Secret", birth_date=dt.date(1980, 1, 1),
        sex="female", weight="70 kg"))
    return p.id


def test_the_pin_is_set_on_my_account_hashed_and_checked(services, users, login):
    c, csrf = login("nurse")
    assert "Lock-screen PIN" in c.get("/account").text
    for bad, needle in (("12345", "6 to 8 digits"), ("111111", "repeated digit"),
                        ("123456", "run"), ("12ab56", "6 to 8 digits")):
        r = _set_pin(c, csrf, bad)
        assert r.status_code == 422 and needle in r.text, bad
    r = _set_pin(c, csrf, PIN, password="wrong-password")
    assert r.status_code == 422 and "current password was not accepted" in r.text
    assert _set_pin(c, csrf).status_code == 303
    with services.db.transaction() as s:
        stored = s.execute(select(User.pin_hash).where(User.username == "nurse")).scalar_one()
    assert stored and PIN not in stored and stored.startswith("$argon2")
    assert "<strong id=\"pin-state\">set</strong>" in c.get("/account").text


def test_idle_locks_the_session_with_no_data_and_the_pin_unlocks_it(
        services, users, login, clock):
    pid = _patient(services)
    c, csrf = login("nurse")
    assert _set_pin(c, csrf).status_code == 303
    assert c.get(f"/api/patients/{pid}").status_code == 200
    clock.advance(minutes=16)
    r = c.get(f"/api/patients/{pid}")
    assert r.status_code == 401 and r.json()["locked"] is True and "Lockwood" not in r.text
    page = c.get(f"/patients/{pid}", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/unlock?next=")
    lock = c.get(page.headers["location"])
    assert lock.status_code == 200 and "Screen locked" in lock.text
    assert "Lockwood" not in lock.text and "LOCK-1" not in lock.text
    # Even a clock moved back does not unlock it; only the user's PIN or password does.
    clock.advance(minutes=-16)
    assert c.get(f"/api/patients/{pid}").status_code == 401
    clock.advance(minutes=16)
    r = c.post("/api/session/unlock", json={"secret": "000000"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 401 and r.json()["tries_left"] == 4
    r = c.post("/api/session/unlock", json={"secret": PIN}, headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    r = c.post("/api/session/unlock", json={"secret": PIN}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json() == {"unlocked": True}
    assert c.get(f"/api/patients/{pid}").status_code == 200
    with services.db.transaction() as s:
        row = s.execute(select(AuthSession)).scalars().all()[-1]
        assert row.locked_at is None and row.unlock_failures == 0 and row.ended_at is None
        outcomes = s.execute(select(AuditEvent.action, AuditEvent.outcome).where(
            AuditEvent.action.in_(("session.lock", "session.unlock")))).all()
    assert [tuple(o) for o in outcomes] == [("session.lock", "ok"), ("session.unlock", "failed"),
                                            ("session.unlock", "ok")]


def test_the_password_unlocks_too_and_the_page_form_returns_to_the_page(services, users, login,
                                                                         clock):
    c, _ = login("nurse")
    clock.advance(minutes=20)
    lock = c.get("/unlock?next=/patients")
    assert "Password" in lock.text and "PIN or password" not in lock.text  # no PIN set
    r = c.post("/unlock", data={"csrf_token": csrf_from(lock.text), "next": "/patients",
                                "secret": "nurse-password-1"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/patients"
    assert c.get("/patients").status_code == 200


def test_too_many_wrong_answers_end_the_session(services, users, login, clock):
    c, csrf = login("nurse")
    _set_pin(c, csrf)
    clock.advance(minutes=16)
    c.get("/api/me")
    for left in (4, 3, 2, 1):
        r = c.post("/api/session/unlock", json={"secret": "999999"},
                   headers={"X-CSRF-Token": csrf})
        assert r.json()["tries_left"] == left
    r = c.post("/api/session/unlock", json={"secret": "999999"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 401 and r.json()["logged_out"] is True
    # The right PIN no longer helps: a full login is needed.
    r = c.post("/api/session/unlock", json={"secret": PIN}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 401 and r.json()["logged_out"] is True
    with services.db.transaction() as s:
        ended = s.execute(select(AuthSession.end_reason).where(
            AuthSession.ended_at.is_not(None))).scalars().all()
    assert "unlock-failed" in ended


def test_another_users_pin_does_not_unlock_and_a_locked_session_can_log_out(
        services, users, login, clock):
    nurse, ncsrf = login("nurse")
    other, ocsrf = login("prescriber")
    services.lock.set_pin(users["prescriber"].actor, "prescriber-password-1", "730194")
    clock.advance(minutes=16)
    r = nurse.post("/api/session/unlock", json={"secret": "730194"},
                   headers={"X-CSRF-Token": ncsrf})
    assert r.status_code == 401
    lock = nurse.get("/unlock")
    r = nurse.post("/logout", data={"csrf_token": csrf_from(lock.text)}, follow_redirects=False)
    assert r.headers["location"].startswith("/login")
    with services.db.transaction() as s:
        reasons = s.execute(select(AuthSession.end_reason)).scalars().all()
    assert "logout" in reasons
    assert nurse.get("/unlock", follow_redirects=False).headers["location"].startswith("/login")


def test_the_absolute_timeout_still_ends_a_locked_session(services, users, login, clock):
    c, csrf = login("nurse")
    _set_pin(c, csrf)
    clock.advance(minutes=16)
    assert c.get("/api/me").status_code == 401
    clock.advance(hours=13)
    r = c.post("/api/session/unlock", json={"secret": PIN}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 401
    assert c.get("/api/me").status_code == 401  # ended (absolute), not merely locked
    with services.db.transaction() as s:
        assert s.execute(select(AuthSession.end_reason)).scalars().all() == ["absolute"]


def test_a_pin_cannot_be_the_password(services, users):
    with pytest.raises(InvalidInput, match="6 to 8 digits"):
        services.lock.set_pin(users["nurse"].actor, "nurse-password-1", "nurse-password-1")


LOCK_PIN = "/api/me/lock-pin"


def _put_pin(c, csrf, pin=PIN, password="nurse-password-1"):  # type: ignore[no-untyped-def]
    return c.put(LOCK_PIN, json={"password": password, "pin": pin},
                 headers={"X-CSRF-Token": csrf})


def test_the_json_api_sets_and_removes_the_pin_by_the_rules_of_the_page(services, users, login,
                                                                        clock):
    c, csrf = login("nurse")
    assert c.get(LOCK_PIN).json() == {"has_pin": False}
    for bad, needle in (("12345", "6 to 8 digits"), ("111111", "repeated digit"),
                        ("123456", "run"), ("12ab56", "6 to 8 digits"),
                        ("nurse-password-1", "6 to 8 digits")):
        r = _put_pin(c, csrf, bad)
        assert r.status_code == 422 and needle in r.json()["detail"], bad
    r = _put_pin(c, csrf, password="wrong-password")
    assert r.status_code == 422 and "current password was not accepted" in r.json()["detail"]
    assert _put_pin(c, "forged").status_code == 403  # the session's CSRF token, as any write
    assert c.get(LOCK_PIN).json() == {"has_pin": False}
    r = _put_pin(c, csrf)
    assert r.status_code == 200 and r.json() == {"has_pin": True}
    assert "<strong id=\"pin-state\">set</strong>" in c.get("/account").text
    clock.advance(minutes=16)  # and it unlocks the idle-locked session
    r = c.post("/api/session/unlock", json={"secret": PIN}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    r = c.delete(LOCK_PIN, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json() == {"has_pin": False}
    with services.db.transaction() as s:
        assert s.execute(select(User.pin_hash).where(User.username == "nurse")
                         ).scalar_one() is None
        rows = s.execute(select(AuditEvent.username, AuditEvent.outcome, AuditEvent.detail)
                         .where(AuditEvent.action == "account.pin")
                         .where(AuditEvent.detail != "")).all()
    assert [tuple(r) for r in rows] == [("nurse", "denied", "current password not accepted"),
                                        ("nurse", "ok", "PIN set"), ("nurse", "ok", "PIN removed")]


def test_a_refused_pin_reads_the_same_on_the_page_and_in_the_api(services, users, login):
    from kctest import page_error

    c, csrf = login("nurse")
    for pin in ("1234", "999999", "9" * 65):
        page, api = _set_pin(c, csrf, pin), _put_pin(c, csrf, pin)
        assert page.status_code == api.status_code == 422, pin
        assert page_error(page.text) == api.json()["detail"], pin


def test_a_service_account_has_no_lock_screen_pin(services, users, client):
    account = services.tokens.create_service_account(SYSTEM, "pin-feed", "Feed", "nurse")
    token = services.tokens.issue(SYSTEM, account.id, "pin", ["patient.read"], 7).secret
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get(LOCK_PIN, headers=auth).json() == {"has_pin": False}
    r = client.put(LOCK_PIN, json={"password": "", "pin": PIN}, headers=auth)
    assert r.status_code == 409 and "service account" in r.json()["detail"]
    assert client.delete(LOCK_PIN, headers=auth).status_code == 409

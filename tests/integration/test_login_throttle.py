"""Lock-out and spoofing: who counts as the client, how failed logins are throttled, that every
429 says when to come back, and that the login page shows only what the app wrote."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from kctest import USERS
from sqlalchemy import select

from ketaclinic.http.deps import PRELOGIN_COOKIE
from ketaclinic.store.tables import LoginAttempt

WRONG = "wrong-password-0"


def from_address(app, host: str) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(app, raise_server_exceptions=False, client=(host, 40000))


def try_login(c: TestClient, username: str = "nurse", password: str = WRONG, **headers: str):
    return c.post("/api/auth/login", json={"username": username, "password": password},
                  headers=headers)


def counted_clients(services) -> list[str]:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return list(s.execute(select(LoginAttempt.client).order_by(LoginAttempt.id)).scalars())


@pytest.fixture
def proxied_app(services_for, users, app_for):  # type: ignore[no-untyped-def]
    """The app behind a reverse proxy at 10.0.0.5 (KETACLINIC_TRUSTED_PROXIES)."""
    return app_for(services_for(trusted_proxies="10.0.0.5"))


def test_a_flood_from_one_address_does_not_lock_the_real_user_out_from_another(app, services):
    with from_address(app, "203.0.113.9") as attacker:
        statuses = [try_login(attacker).status_code for _ in range(40)]
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
        right = try_login(attacker, password=USERS["nurse"][3])
        assert right.status_code == 429  # that address stays throttled, even with the password
    with from_address(app, "198.51.100.7") as nurse:
        assert try_login(nurse, password=USERS["nurse"][3]).status_code == 200


def test_a_flood_from_one_address_against_many_users_throttles_that_address(app, services):
    with from_address(app, "203.0.113.9") as attacker:
        statuses = [try_login(attacker, username=f"user{n}").status_code for n in range(21)]
        assert statuses[:20] == [401] * 20 and statuses[20] == 429
        assert try_login(attacker, "admin", USERS["admin"][3]).status_code == 429
    with from_address(app, "198.51.100.7") as admin:
        assert try_login(admin, "admin", USERS["admin"][3]).status_code == 200


def test_failures_from_many_addresses_slow_the_user_down_with_a_growing_back_off(app, clock):
    for n in range(4):
        with from_address(app, f"203.0.113.{n + 1}") as c:
            assert [try_login(c).status_code for _ in range(5)] == [401] * 5
    waits = []
    with from_address(app, "198.51.100.7") as c:
        for _ in range(3):
            r = try_login(c)
            assert r.status_code == 429
            waits.append(int(r.headers["retry-after"]))
            clock.advance(seconds=waits[-1])
            assert try_login(c).status_code == 401  # one more try after the wait
        assert waits == sorted(waits) and waits[-1] > waits[0] >= 1, waits
        clock.advance(minutes=16)
        assert try_login(c, password=USERS["nurse"][3]).status_code == 200


def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_configured_proxy(app, proxied_app,
                                                                          services):
    with from_address(app, "127.0.0.1") as local:
        try_login(local, **{"X-Forwarded-For": "192.0.2.1"})
    with from_address(proxied_app, "10.0.0.5") as proxy:
        try_login(proxy, **{"X-Forwarded-For": "192.0.2.2"})
    with from_address(proxied_app, "10.0.0.6") as not_the_proxy:
        try_login(not_the_proxy, **{"X-Forwarded-For": "192.0.2.3"})
    assert counted_clients(services) == ["127.0.0.1", "192.0.2.2", "10.0.0.6"]


def test_a_spoofed_address_cannot_escape_the_throttle(app):
    with from_address(app, "127.0.0.1") as c:
        statuses = [try_login(c, **{"X-Forwarded-For": f"192.0.2.{n}"}).status_code
                    for n in range(1, 9)]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}


@pytest.fixture
def self_report_app(services_for, users, app_for) -> object:  # type: ignore[no-untyped-def]
    return app_for(services_for(self_report_ip_limit=2))


def test_every_429_says_when_to_try_again(app, self_report_app):
    with from_address(app, "203.0.113.9") as c:
        for _ in range(5):
            try_login(c)
        api = try_login(c)
        c.get("/login")
        form = c.post("/login", data={"username": "nurse", "password": WRONG,
                                      "prelogin": c.cookies.get(PRELOGIN_COOKIE)})
    with from_address(self_report_app, "203.0.113.9") as patient:
        answers = [patient.get("/r/not-a-real-token") for _ in range(3)]
    throttled = [api, form, answers[-1]]
    assert [r.status_code for r in throttled] == [429, 429, 429]
    for r in throttled:
        assert 1 <= int(r.headers["retry-after"]) <= 15 * 60, r.headers


# --- the login page's messages -------------------------------------------------------------
def test_the_login_page_shows_no_text_from_the_link(client):
    bait = "Your account is suspended. Call 555-0100 with your password."
    page = client.get("/login", params={"msg": bait})
    assert page.status_code == 200 and "suspended" not in page.text and "555-0100" not in page.text
    assert 'role="status"' not in page.text  # an unknown code shows nothing at all


def test_the_login_page_shows_the_apps_own_messages_by_code(client, login, clock):
    r = client.get("/patients", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("&msg=login")
    c, _csrf = login("nurse")
    clock.advance(hours=13)  # past the absolute timeout (an idle session is only locked)
    r = c.get("/patients", follow_redirects=False)
    assert r.headers["location"].endswith("&msg=expired")
    assert "Your session expired" in c.get(r.headers["location"]).text
    assert "You are logged out." in client.get("/login?msg=logged-out").text

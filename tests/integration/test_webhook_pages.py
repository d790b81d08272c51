"""The *Webhooks* admin page: list, add (the signing secret shown once), send a test, remove;
CSRF-checked, admins only (integrations.manage), every change audited through the service."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup
from kctest import csrf_from, page_error
from sqlalchemy import select

from ketaclinic.services.interop.webhooks import secret_context
from ketaclinic.store.tables import AuditEvent
from ketaclinic.store.tables_mbc import OutboxMessage, WebhookEndpoint

PAGE = "/admin/webhooks"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _endpoints(services) -> list[WebhookEndpoint]:
    with services.db.transaction() as s:
        return list(s.execute(select(WebhookEndpoint).order_by(WebhookEndpoint.id)).scalars())


def _audit(services) -> list[tuple[str, str, str]]:
    with services.db.transaction() as s:
        return [(a.action, a.username, a.outcome) for a in s.execute(
            select(AuditEvent).where(AuditEvent.action.like("webhook.%"))
            .order_by(AuditEvent.id)).scalars()]


def _add(c, csrf: str, body: str):  # type: ignore[no-untyped-def]
    return c.post(PAGE, content=f"csrf_token={csrf}&{body}", headers=FORM)


def test_an_admin_adds_an_endpoint_sees_its_secret_once_tests_and_removes_it(
        login, services):
    admin, _ = login("admin")
    page = admin.get(PAGE)
    assert page.status_code == 200
    menu = BeautifulSoup(page.text, "html.parser").select_one('nav[aria-label="Main"]')
    assert menu is not None and menu.find("a", href=PAGE).get_text() == "Webhooks"
    csrf = csrf_from(page.text)
    r = _add(admin, csrf, "url=https%3A%2F%2Fhooks.clinic.invalid%2Fk&event=alert.urgent"
             "&event=rems.deadline&description=on-call+pager")
    assert r.status_code == 201, r.text
    secret = BeautifulSoup(r.text, "html.parser").select_one(
        'code[aria-label="Signing secret"]').get_text()
    assert secret.startswith("whsec_")
    [row] = _endpoints(services)
    assert (row.url, row.events, row.description) == (
        "https://hooks.clinic.invalid/k", "alert.urgent,rems.deadline", "on-call pager")
    assert secret not in row.secret  # stored sealed, and it is the secret shown
    assert services.webhooks.box.decrypt(row.secret, secret_context(row.id)) == secret
    listing = admin.get(PAGE).text
    assert "https://hooks.clinic.invalid/k" in listing and secret not in listing
    r = admin.post(f"{PAGE}/{row.id}/test", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}?msg=test-queued"
    assert "webhook.test event is queued" in admin.get(r.headers["location"]).text
    with services.db.transaction() as s:
        [queued] = s.execute(select(OutboxMessage)).scalars().all()
        assert (queued.kind, queued.endpoint_id, queued.status) == ("webhook.test", row.id,
                                                                    "pending")
    r = admin.post(f"{PAGE}/{row.id}/remove", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}?msg=removed"
    after = admin.get(r.headers["location"]).text
    assert "No webhook endpoints yet." in after and "was removed" in after
    assert _endpoints(services)[0].active is False
    assert admin.post(f"{PAGE}/{row.id}/remove", data={"csrf_token": csrf}).status_code == 404
    assert [a for a in _audit(services) if a[2] == "ok"] == [
        ("webhook.add", "admin", "ok"), ("webhook.test", "admin", "ok"),
        ("webhook.remove", "admin", "ok")]


def test_a_refused_endpoint_comes_back_with_the_input_kept_and_nothing_is_added(login, services):
    admin, _ = login("admin")
    csrf = csrf_from(admin.get(PAGE).text)
    r = _add(admin, csrf, "url=https%3A%2F%2Fhooks.clinic.invalid%2Fk&description=pager")
    assert r.status_code == 422 and page_error(r.text).startswith("events:")
    form = BeautifulSoup(r.text, "html.parser")
    assert form.select_one("#wh-url")["value"] == "https://hooks.clinic.invalid/k"
    assert form.select_one("#wh-description")["value"] == "pager"
    r = _add(admin, csrf, "url=http%3A%2F%2F169.254.169.254%2F&event=alert.urgent")
    assert r.status_code == 422 and page_error(r.text).startswith("url:")
    checked = BeautifulSoup(r.text, "html.parser").select('input[name="event"][checked]')
    assert [box["value"] for box in checked] == ["alert.urgent"]
    r = _add(admin, csrf, "url=https%3A%2F%2Fhooks.clinic.invalid%2Fk&event=patient.created")
    assert r.status_code == 422 and "events" in page_error(r.text)
    assert admin.post(PAGE, data={"url": "https://hooks.clinic.invalid/k",
                                  "event": "alert.urgent"}).status_code == 403  # no CSRF token
    assert _endpoints(services) == []


def test_only_administrators_reach_the_page_and_a_denial_is_audited(login, services):
    for role in ("nurse", "prescriber", "analyst"):
        c, csrf = login(role)
        assert c.get(PAGE).status_code == 403
        assert _add(c, csrf, "url=https%3A%2F%2Fhooks.clinic.invalid%2Fk&event=alert.urgent"
                    ).status_code == 403
        assert not re.search(r'href="/admin/webhooks"', c.get("/patients").text)
    assert _endpoints(services) == []
    denied = [a for a in _audit(services) if a[2] != "ok"]
    assert {u for _a, u, _o in denied} == {"nurse", "prescriber", "analyst"}

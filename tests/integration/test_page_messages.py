"""Every page shows only messages the app wrote: ``?msg=`` is a code looked up in
web/messages.py, and an unknown code (or text from a link) shows nothing."""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter
from fastapi.routing import APIRoute

from ketaclinic import web
from ketaclinic.web.messages import (
    ACCOUNT_PAGE,
    ADMIN_USERS_PAGE,
    ADMIN_WEBHOOKS_PAGE,
    LOGIN_PAGE,
    MESSAGES,
)

HOSTILE = "Your account is locked, call 555-0100"
# Query parameters that have carried a message into a page; a page that reads one must use codes.
MESSAGE_PARAMS = {"msg", "message", "notice", "error", "info", "status"}
WHO = {LOGIN_PAGE: None, ACCOUNT_PAGE: "nurse", ADMIN_USERS_PAGE: "admin",
       ADMIN_WEBHOOKS_PAGE: "admin"}


def message_pages() -> set[str]:
    """Every page route (GET, in any router of the web package) with a message-like query
    parameter."""
    found = set()
    for module in pkgutil.iter_modules(web.__path__):
        routers = [v for v in vars(importlib.import_module(f"ketaclinic.web.{module.name}"))
                   .values() if isinstance(v, APIRouter)]
        for route in (r for router in routers for r in router.routes):
            if not isinstance(route, APIRoute) or "GET" not in route.methods:
                continue
            if {p.alias for p in route.dependant.query_params} & MESSAGE_PARAMS:
                found.add(route.path)
    return found


def page_client(client, login, page: str):  # type: ignore[no-untyped-def]
    return client if WHO[page] is None else login(WHO[page])[0]


def test_every_page_that_reads_a_message_parameter_looks_it_up_by_code():
    assert len(message_pages()) >= 3  # the walk finds the pages (it cannot pass on nothing)
    assert message_pages() == set(MESSAGES) == set(WHO)


def test_no_page_shows_message_text_from_the_link(app, client, login):
    for page in sorted(message_pages()):
        c = page_client(client, login, page)
        for params in ({"msg": HOSTILE}, {"msg": HOSTILE, "notice": HOSTILE, "error": HOSTILE},
                       {"msg": "two-factor-reset", "user": "1 " + HOSTILE}):
            r = c.get(page, params=params)
            assert r.status_code < 500, (page, params, r.status_code)
            assert "555-0100" not in r.text and "account is locked" not in r.text, (page, params)
        r = c.get(page, params={"msg": HOSTILE})
        # An unknown code shows nothing at all, not even an empty message box.
        assert r.status_code == 200 and 'class="alert ok"' not in r.text, page
        assert 'class="alert info"' not in r.text, page


def test_every_known_code_still_shows_its_own_text(app, client, login, users):
    nurse_id = users["nurse"].id
    for page, codes in MESSAGES.items():
        c = page_client(client, login, page)
        for code, text in codes.items():
            r = c.get(page, params={"msg": code, "user": nurse_id})
            assert r.status_code == 200, (page, code)
            fixed = text.split("{")[0].strip()
            assert fixed and fixed in r.text.replace("&#39;", "'"), (page, code)
    shown = login("admin")[0].get(ADMIN_USERS_PAGE, params={"msg": "two-factor-reset",
                                                            "user": nurse_id}).text
    assert "Two-factor login of nurse was reset" in shown


def test_a_message_that_needs_a_record_the_page_cannot_find_shows_nothing(login):
    c, _ = login("admin")
    r = c.get(ADMIN_USERS_PAGE, params={"msg": "two-factor-reset", "user": 987654})
    assert r.status_code == 200 and "Two-factor login of" not in r.text
    r = c.get(ADMIN_USERS_PAGE, params={"msg": "two-factor-reset"})
    assert r.status_code == 200 and "Two-factor login of" not in r.text


"""KETACLINIC_ROOT_PATH: the app works under a proxy's sub-path (links, redirects, assets,
cookies)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from kctest import USERS

ROOT = "/clinic"
ABSOLUTE_URL = re.compile(r'(?:href|action|src|data-[a-z-]+-url)="(/[^"]*)"')


@pytest.fixture
def client(services_for, users, app_for):  # type: ignore[no-untyped-def]
    with TestClient(app_for(services_for(root_path="clinic/")),
                    raise_server_exceptions=False) as c:
        yield c


def _unprefixed(html: str) -> list[str]:
    return [u for u in ABSOLUTE_URL.findall(html) if not u.startswith(ROOT + "/")]


def _login(c) -> None:  # type: ignore[no-untyped-def]
    username, _n, _r, password = USERS["prescriber"]
    r = c.post(f"{ROOT}/api/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200
    assert f"Path={ROOT}/" in r.headers["set-cookie"]


def test_an_anonymous_page_redirects_to_the_login_under_the_root_path(client):
    r = client.get(f"{ROOT}/patients", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith(f"{ROOT}/login")


def test_every_link_form_and_asset_of_a_page_carries_the_root_path(client):
    r = client.get(f"{ROOT}/login")
    assert r.status_code == 200
    assert ABSOLUTE_URL.findall(r.text) and _unprefixed(r.text) == []
    assert f'data-root="{ROOT}"' in r.text
    _login(client)
    page = client.get(f"{ROOT}/patients")
    assert page.status_code == 200
    assert _unprefixed(page.text) == []
    assert int(page.headers["content-length"]) == len(page.content)


def test_static_assets_and_the_api_answer_under_the_root_path(client):
    assert client.get(f"{ROOT}/static/app.js").status_code == 200
    _login(client)
    assert client.get(f"{ROOT}/api/me").status_code == 200
    servers = client.get(f"{ROOT}/api/openapi.json").json().get("servers", [])
    assert {"url": ROOT} in servers


def test_a_proxy_that_strips_the_prefix_still_gets_prefixed_links(client):
    r = client.get("/login")
    assert r.status_code == 200 and _unprefixed(r.text) == []


def test_a_root_path_with_spaces_or_quotes_is_refused():
    from pydantic import ValidationError

    from ketaclinic.config import load_settings

    for bad in ('/clinic"><script>', "/a b"):
        with pytest.raises(ValidationError):
            load_settings({"KETACLINIC_ROOT_PATH": bad})


def test_after_login_the_next_page_is_reached_once_prefixed(client):
    r = client.get(f"{ROOT}/patients", follow_redirects=False)
    target = r.headers["location"]
    assert target.startswith(f"{ROOT}/login?next=/patients")  # the app's own path in next
    assert client.get(f"{ROOT}/api/nope").headers["content-type"].startswith(
        "application/json")  # API errors stay JSON under the prefix

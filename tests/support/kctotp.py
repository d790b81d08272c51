"""Two-factor helpers shared by the TOTP and account suites (imported as `kctotp`)."""

from __future__ import annotations

import datetime as dt
import re

import pyotp
from fastapi.testclient import TestClient
from kctest import csrf_from


def code_at(secret: str, when: dt.datetime) -> str:
    return pyotp.TOTP(secret).at(int(when.replace(tzinfo=dt.UTC).timestamp()))


def enrol_with_codes(c: TestClient, clock) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    """Enrol through the page: (the TOTP secret, the ten recovery codes shown once)."""
    page = c.get("/account/totp")
    assert page.status_code == 200
    uri = re.search(r'otpauth://totp/[^<"]+', page.text).group(0)
    secret = re.search(r'class="totp-secret">([A-Z2-7 ]+)<', page.text).group(1).replace(" ", "")
    assert f"secret={secret}" in uri.replace("&amp;", "&")
    r = c.post("/account/totp", data={"csrf_token": csrf_from(page.text),
                                      "code": code_at(secret, clock.now)},
               follow_redirects=False)
    assert r.status_code == 200, r.text
    codes = re.findall(r"<li><code>([0-9a-z-]{19})</code></li>", r.text)
    assert len(codes) == 10 and "only this once" in r.text
    return secret, codes


def enrol_via_page(c: TestClient, clock) -> str:  # type: ignore[no-untyped-def]
    return enrol_with_codes(c, clock)[0]

"""An admin resets a nurse's password in the browser; the nurse must choose a new one first."""

from __future__ import annotations

import re
import uuid

import pytest
from kcbrowser import TABLET, log_in
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def _log_in(page, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def test_admin_resets_a_password_and_the_user_is_forced_to_change_it(new_page, live_server):
    username = "bea" + uuid.uuid4().hex[:6]
    first, chosen = "bea-first-password-1", "ride the tram to the blue clinic"
    live_server.cli("user", "create", username, "--role", "nurse", "--full-name", "Bea Browser",
                    "--password", first)

    admin = new_page(TABLET)
    log_in(admin, "admin")
    admin.get_by_role("link", name="Users").click()
    admin.get_by_role("link", name=f"Reset password of {username}").click()
    expect(admin.get_by_role("heading", name="Reset the password of Bea Browser?")).to_be_visible()
    admin.get_by_role("button", name="Reset password").click()
    expect(admin.get_by_text("shown only this once")).to_be_visible()
    temporary = admin.locator(".temporary-password").inner_text().strip()
    assert re.fullmatch(r"[0-9a-z]{4}(-[0-9a-z]{4}){3}", temporary)

    nurse = new_page(TABLET)
    _log_in(nurse, username, first)
    expect(nurse.get_by_role("alert")).to_contain_text("wrong username or password")
    _log_in(nurse, username, temporary)
    assert nurse.url.endswith("/account/password")
    expect(nurse.get_by_role("heading", name="Change password")).to_be_visible()
    expect(nurse.get_by_text("An administrator reset your password")).to_be_visible()
    nurse.goto("/patients")
    assert nurse.url.endswith("/account/password")  # nothing else until the password changes

    nurse.get_by_label("Temporary password").fill(temporary)
    nurse.get_by_label("New password", exact=True).fill(chosen)
    nurse.get_by_label("New password again").fill(chosen)
    nurse.get_by_role("button", name="Change password").click()
    # Then the nurse's own start page: today's chairs.
    expect(nurse.get_by_role("heading", name=re.compile("at the chairs"))).to_be_visible()

    nurse.get_by_role("button", name="Log out").click()
    _log_in(nurse, username, temporary)
    expect(nurse.get_by_role("alert")).to_contain_text("wrong username or password")
    _log_in(nurse, username, chosen)
    expect(nurse.get_by_role("heading", name=re.compile("at the chairs"))).to_be_visible()

    admin.goto("/admin/audit?action=user.password.reset")
    expect(admin.locator("table.audit")).to_contain_text(f"user {username}")

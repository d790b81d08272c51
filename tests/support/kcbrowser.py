"""Browser-test constants and steps (imported as `kcbrowser`)."""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("KETACLINIC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
TABLET = {"width": 1024, "height": 768}
PHONE = {"width": 390, "height": 844}
LIVE_USERS = {
    "admin": ("admin", "Ada Admin", "admin", "admin-password-1"),
    "prescriber": ("prescriber", "Dr Pim", "prescriber", "prescriber-password-1"),
    "nurse": ("nurse", "Nina Nurse", "nurse", "nurse-password-1"),
    "analyst": ("analyst", "Ann Analyst", "analyst", "analyst-password-1"),
}

def log_in(page, role: str) -> None:  # type: ignore[no-untyped-def]
    username, _name, _role, password = LIVE_USERS[role]
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()

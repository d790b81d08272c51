"""The lock screen on tablets (issue 12 item 7): after the idle timeout the session page locks
(no patient data on screen, the server refuses data), a PIN or the password unlocks it, and
what the nurse had typed is still there. Both tablet viewports wait for one shared minute."""

from __future__ import annotations

import pytest
from kcbrowser import (
    LIVE_USERS,
    add_chair,
    book_and_check_in,
    field,
    log_in,
    new_tag,
    patient_with_course,
)
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
LANDSCAPE = {"width": 1024, "height": 768}
PORTRAIT = {"width": 820, "height": 1180}
PIN = "604817"


def _page(browser, server, viewport):  # type: ignore[no-untyped-def]
    ctx = browser.new_context(viewport=viewport, base_url=server.base_url)
    ctx.set_default_timeout(15_000)
    return ctx, ctx.new_page()


def test_an_idle_tablet_locks_and_unlocking_keeps_the_draft(browser, live_server_short_idle):
    short_idle_server = live_server_short_idle
    contexts = []
    try:
        ctx, landscape = _page(browser, short_idle_server, LANDSCAPE)
        contexts.append(ctx)
        tag = new_tag()
        chair = f"Chair L{tag}"
        add_chair(landscape, chair)
        session_url = patient_with_course(landscape, "IV racemic ketamine induction series")
        book_and_check_in(landscape, session_url, chair, day="today")
        family = landscape.locator(".banner-name").first.inner_text().split()[-1]
        landscape.goto("/account")
        field(landscape, "Your password (to confirm it is you)").first.fill(
            LIVE_USERS["nurse"][3])
        landscape.get_by_label("New PIN (6–8 digits)").fill(PIN)
        landscape.get_by_role("button", name="Set PIN").click()
        expect(landscape.locator("#pin-state")).to_have_text("set")

        ctx2, portrait = _page(browser, short_idle_server, PORTRAIT)
        contexts.append(ctx2)
        log_in(portrait, "nurse")
        typed = {}
        for page, value in ((landscape, "133"), (portrait, "144")):
            page.goto(session_url)
            field(page, "Systolic (mmHg)").fill(value)
            field(page, "Diastolic (mmHg)").fill("81")
            typed[id(page)] = value

        for page in (landscape, portrait):
            expect(page.locator("#lock-screen")).to_be_visible(timeout=100_000)
            text = page.locator("body").inner_text()
            assert family not in text and "Systolic" not in text  # nothing of the patient
            assert page.title() == "Locked"
            status = page.evaluate("fetch('/api/me').then(r => r.status)")
            assert status == 401  # the server asks for re-authentication too
            assert page.evaluate("document.documentElement.scrollWidth") <= \
                page.viewport_size["width"]

        landscape.locator("#lock-secret").fill("111222")
        landscape.get_by_role("button", name="Unlock").click()
        expect(landscape.locator(".lock-status")).to_contain_text("not accepted")
        landscape.locator("#lock-secret").fill(PIN)
        landscape.get_by_role("button", name="Unlock").click()
        portrait.locator("#lock-secret").fill(LIVE_USERS["nurse"][3])
        portrait.get_by_role("button", name="Unlock").click()

        for page in (landscape, portrait):
            expect(page.locator("#session-status")).to_have_text("checked-in")
            expect(field(page, "Systolic (mmHg)")).to_have_value(typed[id(page)])
            expect(field(page, "Diastolic (mmHg)")).to_have_value("81")
            expect(page.locator("#predose .save-status")).to_contain_text(
                "Restored what you typed earlier")
            assert family in page.locator("body").inner_text()
    finally:
        for ctx in contexts:
            ctx.close()

"""A prescriber saves a dose over a soft limit with a reason, and cannot save one over a hard
limit (the page re-checks as values are typed)."""

from __future__ import annotations

import os
import re
import uuid

import pytest
from kcbrowser import TABLET, log_in, screen_patient
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def _register(page) -> str:  # type: ignore[no-untyped-def]
    page.goto("/patients/new")
    page.get_by_label("MRN").fill("DB-" + uuid.uuid4().hex[:6])
    page.get_by_label("Family name").fill("Dosebrowser" + uuid.uuid4().hex[:4])
    page.get_by_label("Given name").fill("Kim")
    page.get_by_label("Date of birth").fill("1979-06-01")
    page.get_by_label("Sex").select_option("female")
    page.get_by_label('Weight (kilograms only, e.g. "82 kg")').fill("80 kg")
    page.get_by_role("button", name="Register").click()
    return re.search(r"/patients/(\d+)", page.url).group(1)


def test_prescriber_overrides_a_soft_limit_and_is_stopped_by_a_hard_one(new_page):
    page = new_page(viewport=TABLET)
    log_in(page, "prescriber")
    pid = _register(page)
    screen_patient(page, f"/patients/{pid}", esketamine=False)  # issue 12: screened first
    page.goto(f"/patients/{pid}")
    page.get_by_role("link", name="Dose orders").click()
    expect(page.get_by_role("heading", name=re.compile("Dose order"))).to_be_visible()

    page.get_by_label("Dose (mg/kg)").fill("0.8")
    page.get_by_label("Infusion minutes").fill("60")
    page.get_by_label("Concentration (mg/mL)").fill("1")
    status = page.locator("#dose-status")
    expect(page.locator("#dose-status")).to_contain_text("Soft limit")
    assert "64 mg" in page.locator("#dose-summary").inner_text()
    page.get_by_label("Reason code").select_option("previously-tolerated")
    page.get_by_label("Why (free text)").fill("Tolerated 0.8 mg/kg in the last course")
    if os.environ.get("KETACLINIC_SCREENSHOTS"):
        page.screenshot(path=os.environ["KETACLINIC_SCREENSHOTS"] + "/dose-soft.png",
                        full_page=True)
    page.get_by_role("button", name="Save dose order").click()
    assert page.get_by_role("status").inner_text().startswith("Dose order")
    orders = page.locator("#orders tbody").inner_text()
    assert "previously-tolerated" in orders and "64 mg" in orders

    page.get_by_label("Dose (mg/kg)").fill("1.5")
    page.get_by_label("Infusion minutes").fill("60")
    page.get_by_label("Concentration (mg/mL)").fill("1")
    expect(page.locator("#dose-status")).to_contain_text("Hard stop")
    expect(page.get_by_role("button", name="Save dose order")).to_be_disabled()
    # Even a forced submission is refused by the server.
    page.evaluate("document.getElementById('save-dose').disabled = false")
    page.get_by_role("button", name="Save dose order").click()
    assert "cannot be overridden" in page.get_by_role("alert").first.inner_text()
    assert "Hard stop" in status.inner_text()
    page.goto(f"/patients/{pid}/dose")
    assert page.locator("#orders tbody tr").count() == 1

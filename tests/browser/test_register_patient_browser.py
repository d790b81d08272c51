"""A nurse logs in, registers a patient and finds it; an admin sees it in the audit log."""

from __future__ import annotations

import re
import uuid

import pytest
from kcbrowser import PHONE, TABLET, log_in  # noqa: F401
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_nurse_registers_and_finds_a_patient_and_admin_sees_the_audit_entry(new_page):
    family = "Browser" + uuid.uuid4().hex[:6].capitalize()
    page = new_page()
    log_in(page, "nurse")
    # The nurse starts on today's chairs; the patient list is one tap away.
    expect(page.get_by_role("heading", name=re.compile("at the chairs"))).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Patients").click()
    expect(page.get_by_role("heading", name="Patients")).to_be_visible()

    page.get_by_role("link", name="Register a patient").click()
    page.get_by_label("MRN").fill("BR-" + uuid.uuid4().hex[:6])
    page.get_by_label("Family name").fill(family)
    page.get_by_label("Given name").fill("<b>Robin</b>")
    page.get_by_label("Date of birth").fill("1984-02-29")
    page.get_by_label("Sex").select_option("other")
    page.get_by_label('Weight (kilograms only, e.g. "82 kg")').fill("77.5 kg")
    page.get_by_role("button", name="Register").click()
    heading = page.get_by_role("heading", level=1)
    assert heading.inner_text() == f"{family}, <b>Robin</b>"  # shown as text, not markup
    patient_id = re.search(r"/patients/(\d+)", page.url).group(1)

    page.get_by_role("link", name="Patients").click()
    page.get_by_label("Name or MRN").fill(family.lower())
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=f"{family}, <b>Robin</b>").click()
    assert page.url.endswith(f"/patients/{patient_id}")

    page.get_by_role("button", name="Log out").click()
    log_in(page, "admin")
    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Patient id").fill(patient_id)
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.audit tbody tr")
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    assert any("patient.create" in t and "nurse" in t for t in texts)
    assert any("patient.view" in t for t in texts)


def test_pounds_are_refused_in_the_registration_form(new_page):
    page = new_page()
    log_in(page, "nurse")
    page.goto("/patients/new")
    page.get_by_label("MRN").fill("LB-" + uuid.uuid4().hex[:6])
    page.get_by_label("Family name").fill("Pound")
    page.get_by_label("Given name").fill("Pat")
    page.get_by_label("Date of birth").fill("1970-01-01")
    page.get_by_label("Sex").select_option("male")  # asked explicitly, no default
    page.get_by_label('Weight (kilograms only, e.g. "82 kg")').fill("180 lb")
    page.get_by_role("button", name="Register").click()
    assert "pounds are refused" in page.get_by_role("alert").inner_text()

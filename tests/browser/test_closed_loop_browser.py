"""The nurse's dose flow on a tablet (1024x768) with the closed loop of issue 12: a patient
without a screening is not checked in, a patient without an order shows no dose form, a dose
that is not the order is refused and nothing is recorded; the order given as ordered is."""

from __future__ import annotations

import pytest
from kcbrowser import (
    TABLET,
    add_chair,
    field,
    log_in,
    log_out,
    new_tag,
    patient_with_course,
    receive_stock,
    screen_and_order,
    screen_patient,
    submit,
)
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def _book(page, session_url: str, chair: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(session_url)
    value = page.locator("#b-chair option", has_text=chair).get_attribute("value")
    field(page, "Chair").select_option(value)
    field(page, "Start time").fill("00:30")
    submit(page, "booking", "Book", "booked")


def _check_in(page) -> None:  # type: ignore[no-untyped-def]
    field(page, "Signed consent on file").check()
    field(page, "Ride home arranged").check()
    field(page, "Override reason (for warnings)").fill("fasting confirmed, times unknown")
    page.locator("#checkin").get_by_role("button", name="Record check-in").click()


def test_the_nurse_is_refused_without_screening_or_order_and_for_a_dose_off_the_order(
        new_page):
    page = new_page(viewport=TABLET)
    tag = new_tag()
    chair, lot = f"Chair L{tag}", f"KL-{tag}"
    add_chair(page, chair)
    session_url = patient_with_course(page, "IV racemic ketamine induction series",
                                      ordered=False)
    log_in(page, "nurse")
    receive_stock(page, "ketamine hydrochloride injection 50 mg/mL", lot, "20", "1", "50")

    # No screening: the page says so, there is no tick box to claim one, check-in is refused.
    _book(page, session_url, chair)
    expect(page.locator("#screening-status")).to_contain_text("no screening")
    assert page.locator("input[name=screening_valid]").count() == 0
    _check_in(page)
    expect(page.locator("#precheck-findings")).to_contain_text("no screening")
    expect(page.locator("#session-status")).to_have_text("booked")
    log_out(page)

    # Screened, but no order yet: checked in, yet there is no dose form, only the refusal.
    log_in(page, "prescriber")
    page.goto(session_url)
    patient_url = page.get_by_role("link", name="Patient record").get_attribute("href")
    screen_patient(page, patient_url, esketamine=False)
    log_out(page)
    log_in(page, "nurse")
    page.goto(session_url)
    expect(page.locator("#screening-status")).to_contain_text("screening ok")
    _check_in(page)
    expect(page.locator("#session-status")).to_have_text("checked-in")
    field(page, "Systolic (mmHg)").fill("126")
    field(page, "Diastolic (mmHg)").fill("78")
    submit(page, "predose", "Record pre-dose vitals")
    expect(page.locator("#bp-gate")).to_contain_text("ok")
    expect(page.locator("#no-order")).to_contain_text("No dose order")
    expect(page.locator("#dose form")).to_have_count(0)
    log_out(page)

    # The prescriber signs the order; the chair shows it and the nurse confirms it.
    log_in(page, "prescriber")
    screen_and_order(page, patient_url, esketamine=False)
    log_out(page)
    log_in(page, "nurse")
    page.goto(session_url)
    card = page.locator("#order-card")
    expect(card).to_contain_text("40 mg")
    expect(card).to_contain_text("60 mL/h")
    expect(card).to_contain_text("signed")

    # Ten times the order: refused, nothing recorded.
    field(page, "Dose (mg)").fill("400")
    field(page, "Lot").select_option(lot)
    field(page, "Concentration in the bag (mg/mL)").fill("1")
    field(page, "Rate programmed on the pump (mL/h)").fill("60")
    page.locator("#d-confirm").check()
    submit(page, "dose", "Record dose")
    expect(page.locator("#dose .save-status")).to_contain_text("does not match the order")
    expect(page.locator("#session-status")).to_have_text("checked-in")

    # The order as ordered: recorded, and the ledger has the administration.
    field(page, "Dose (mg)").fill("40")
    field(page, "Concentration in the bag (mg/mL)").fill("1")
    field(page, "Rate programmed on the pump (mL/h)").fill("60")
    page.locator("#d-confirm").check()
    submit(page, "dose", "Record dose", "monitoring")
    expect(page.locator("#dose-summary")).to_contain_text(f"40 mg iv, lot {lot}")
    page.goto("/ledger")
    page.get_by_role("link", name=lot).click()
    expect(page.locator("body")).to_contain_text("administration")

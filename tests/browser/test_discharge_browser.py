"""The discharge refusal screen on tablets (issue 12 item 5): an esketamine patient before
120 minutes is refused with the reasons listed, there is no override, and the nurse records
the patient leaving against advice (then the REMS form says so)."""

from __future__ import annotations

import pytest
from kcbrowser import (
    add_chair,
    book_and_check_in,
    field,
    log_in,
    log_out,
    minutes_before,
    new_tag,
    offered_time,
    patient_with_course,
    rate,
    receive_stock,
    record_vitals,
    submit,
)
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
VIEWPORTS = {"landscape-1024x768": {"width": 1024, "height": 768},
             "portrait-820x1180": {"width": 820, "height": 1180}}


@pytest.mark.parametrize("viewport", VIEWPORTS.values(), ids=VIEWPORTS.keys())
def test_discharge_before_120_minutes_is_refused_with_reasons_then_left_against_advice(
        new_page, tmp_path, viewport):
    page = new_page(viewport=viewport)
    tag = new_tag()
    chair, lot = f"Chair D{tag}", f"ESKD-{tag}"
    add_chair(page, chair)
    session_url = patient_with_course(page, "Esketamine nasal spray, treatment-resistant "
                                       "depression (US label phases)")
    log_in(page, "nurse")
    receive_stock(page, "esketamine nasal spray 28 mg device", lot, "30", "0.2", "140")
    log_out(page)
    book_and_check_in(page, session_url, chair, day="today")
    # The BP 6 minutes before the form's "now" and both devices after it, none in the future
    # (events in order); just after midnight the earlier times are 00:00 of the same day.
    field(page, "BP taken at").fill(minutes_before(offered_time(page, "BP taken at"), 6))
    field(page, "Systolic (mmHg)").fill("128")
    field(page, "Diastolic (mmHg)").fill("80")
    submit(page, "predose", "Record pre-dose vitals")
    expect(page.locator("#bp-gate")).to_contain_text("ok")
    now = offered_time(page, "Device 1 at", not_before="00:05")  # devices 5 min apart
    field(page, "Dose (mg)").fill("56")
    field(page, "Lot").select_option(lot)
    field(page, "Device 1 at").fill(minutes_before(now, 5))
    field(page, "Device 2 at").fill(now)
    page.locator("#d-confirm").check()
    submit(page, "dose", "Record dose", "monitoring")
    record_vitals(page, "132", "84")
    rate(page, "moaas", "MOAA/S", 5)

    field(page, "Dissociation resolved").check()
    field(page, "No respiratory depression").check()
    field(page, "Responsible adult present / transport arranged").check()
    expect(page.get_by_label("Override reason (early discharge)")).to_have_count(0)
    submit(page, "discharge", "Discharge")
    status = page.locator("#discharge .save-status")
    expect(status).to_contain_text("NOT saved")
    expect(status).to_contain_text("of 120 min since first device")
    expect(status).to_contain_text("left against advice")
    refusal = page.locator("#discharge .refusal-findings li")
    expect(refusal.filter(has_text="since first device")).to_contain_text("hard")
    expect(refusal.filter(has_text="complete vitals")).to_contain_text("ok")
    expect(page.locator("#session-status")).to_have_text("monitoring")
    # The refusal and the leaving form fit the tablet without sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    leaving = page.locator("#leaving")
    expect(leaving).to_have_attribute("open", "")
    leaving.get_by_label("What the patient was told and said").fill(
        "told to stay until 120 min; said her taxi is waiting")
    leaving.get_by_role("button", name="Record: left against advice").click()
    expect(page.locator("#session-status")).to_have_text("left-against-advice")
    expect(page.locator("#discharged-h")).to_contain_text("Left against advice at")
    expect(page.locator("#left-against-advice")).to_contain_text("taxi is waiting")

    with page.expect_download() as info:
        page.get_by_role("link", name="Download REMS form (PDF)").click()
    path = tmp_path / "rems.pdf"
    info.value.save_as(path)
    assert path.read_bytes().startswith(b"%PDF")

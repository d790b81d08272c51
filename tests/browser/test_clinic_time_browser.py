"""A clinic in New York on a tablet: the session page shows and reads clinic time, not UTC."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from kcbrowser import (
    TABLET,
    add_chair,
    book_and_check_in,
    clinic_today,
    field,
    log_in,
    log_out,
    new_tag,
    offered_time,
    patient_with_course,
    receive_stock,
    record_vitals,
    submit,
)
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
NEW_YORK = ZoneInfo("America/New_York")


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _apart(a: str, b: str) -> int:
    """Minutes between two clock readings, across midnight too."""
    d = abs(_minutes(a) - _minutes(b))
    return min(d, 24 * 60 - d)


def test_a_new_york_tablet_shows_and_takes_new_york_time(browser, live_server_new_york):
    context = browser.new_context(viewport=TABLET, base_url=live_server_new_york.base_url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    tag = new_tag()
    chair, lot = f"Chair T{tag}", f"KNY-{tag}"
    add_chair(page, chair)
    session_url = patient_with_course(page, "IV racemic ketamine induction series")
    log_in(page, "nurse")
    receive_stock(page, "ketamine hydrochloride injection 50 mg/mL", lot, "20", "1", "50")
    today = clinic_today(page)  # New York's date as the server reads it
    log_out(page)
    book_and_check_in(page, session_url, chair, start_time="09:00", day=today)

    # The booking typed as 09:00 comes back as 09:00 New York time, with its zone.
    booked = page.locator("#booked-at").inner_text()
    assert booked in (f"{today} 09:00 EST", f"{today} 09:00 EDT"), booked
    expect(page.locator("#clinic-clock")).to_contain_text("America/New_York")

    # The times the forms offer are sent as they are: each is read before 23:58 New York time
    # (offered_time), so it is not sent after midnight and read on the next day.
    offered_time(page, "BP taken at")
    field(page, "Systolic (mmHg)").fill("126")
    field(page, "Diastolic (mmHg)").fill("78")
    submit(page, "predose", "Record pre-dose vitals")
    expect(page.locator("#bp-gate")).to_contain_text("ok")

    # The form offers New York's "now", five hours or so away from UTC's.
    offered = offered_time(page, "Infusion started at")
    now = dt.datetime.now(dt.UTC)
    assert _apart(offered, now.astimezone(NEW_YORK).strftime("%H:%M")) <= 2, offered
    assert _apart(offered, now.strftime("%H:%M")) >= 60, offered
    field(page, "Dose (mg)").fill("40")
    field(page, "Lot").select_option(lot)
    field(page, "Concentration in the bag (mg/mL)").fill("1")
    field(page, "Rate programmed on the pump (mL/h)").fill("60")
    page.locator("#d-confirm").check()
    submit(page, "dose", "Record dose", "monitoring")
    expect(page.locator(".session-head")).to_contain_text(f"Infusion start {offered}")

    taken = offered_time(page, "Taken at")
    now = dt.datetime.now(dt.UTC)
    record_vitals(page, "128", "80")  # taken at the time the form offered
    expect(page.locator("#vitals-table tbody tr").last.locator("td").first).to_have_text(taken)
    assert _apart(taken, now.astimezone(NEW_YORK).strftime("%H:%M")) <= 3, taken
    context.close()

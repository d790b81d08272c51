"""Each role's day in Chromium on its own screen: the prescriber and the administrator at a
desk, the nurse on a tablet (landscape and portrait), the analyst on the dashboard and the
patient's self-report on a phone. Every page visited is screenshotted under out/screenshots/
and checked with axe-core (no serious or critical violation)."""

from __future__ import annotations

import re

import pytest
from kcbrowser import (
    AXE_JS,
    DESKTOP,
    PHONE,
    TABLET,
    TABLET_PORTRAIT,
    add_chair,
    axe_violations,
    book_and_check_in,
    log_in,
    log_out,
    look,
    new_tag,
    patient_with_course,
)

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips with the reason
    expect = None


@pytest.fixture(scope="module")
def axe_ready() -> None:
    if not AXE_JS.exists():
        pytest.skip("axe-core is not installed: `npm ci --prefix tests/browser` (make test does "
                    "it where npm is present)")


def test_each_role_walks_its_day_on_its_own_screen_and_every_page_passes_axe(
        new_page, axe_ready):
    chair = "Chair " + new_tag()
    setup = new_page(DESKTOP)
    add_chair(setup, chair)
    session_url = patient_with_course(setup, "IV racemic ketamine induction series")
    book_and_check_in(setup, session_url, chair, start_time="00:05", day="today")
    log_out(setup)

    # --- the nurse on a tablet: today's chairs first -------------------------------------
    for viewport, tag in ((TABLET, "tablet"), (TABLET_PORTRAIT, "tablet-portrait")):
        nurse = new_page(viewport)
        log_in(nurse, "nurse")
        expect(nurse).to_have_url(re.compile(r"/today$"))
        expect(nurse.locator("#board")).to_contain_text(chair)
        look(nurse, f"nurse-{tag}-today")
        nurse.goto(session_url)
        expect(nurse.locator("#patient-banner")).to_contain_text("allergies not yet asked")
        look(nurse, f"nurse-{tag}-session")
        if tag == "tablet":
            patient_url = nurse.locator("#patient-banner a.banner-name").get_attribute("href")
            nurse.goto(patient_url)
            look(nurse, "nurse-tablet-patient")
            nurse.goto("/alerts")
            look(nurse, "nurse-tablet-alerts")
            # A self-report link for the phone walk below.
            nurse.goto(patient_url)
            nurse.get_by_label("Questionnaire").first.select_option("phq9")
            nurse.get_by_label("Delivery").select_option("shown")
            nurse.get_by_role("button", name="Create link").click()
            link = nurse.locator("#sr-link").get_attribute("href")

    # --- the patient's self-report on a phone ---------------------------------------------
    phone = new_page(PHONE)
    phone.goto(link)
    look(phone, "patient-phone-selfreport")
    for n in range(1, 10):
        phone.locator(f"input[name=item_{n}][value='0']").check()
    if phone.locator("input[name=item_10]").count():
        phone.locator("input[name=item_10]").first.check()
    phone.get_by_role("button", name="Send my answers").click()
    expect(phone.locator("main")).to_contain_text("Thank")

    # --- the prescriber at a desk ---------------------------------------------------------
    pres = new_page(DESKTOP)
    log_in(pres, "prescriber")
    expect(pres).to_have_url(re.compile(r"/patients$"))
    look(pres, "prescriber-patients")
    pres.goto(patient_url)
    look(pres, "prescriber-patient")
    pres.goto(patient_url + "/screening")
    look(pres, "prescriber-screening")
    pres.goto(patient_url + "/dose")
    look(pres, "prescriber-dose")
    pres.goto(session_url)
    pres.locator("#patient-banner a[href^='/courses/']").click()
    expect(pres.locator("h1")).to_contain_text("Course")
    look(pres, "prescriber-course")
    # A refused form returns with the input kept and the reason beside it (app.js).
    pres.goto(patient_url)
    pres.locator("#course-day-2").check()
    pres.evaluate("document.getElementById('course-start').removeAttribute('required');"
                  "document.getElementById('course-start').value = ''")
    pres.get_by_role("button", name="Create course").click()
    expect(pres).to_have_url(re.compile(re.escape(patient_url) + "$"))
    expect(pres.locator(".field-error").first).to_contain_text("start_date")
    expect(pres.locator("#course-day-2")).to_be_checked()
    pres.goto("/api/docs")
    # Swagger UI parses the whole schema (about 220 kB) in the browser before it draws the
    # title: seconds of CPU on a loaded 2-core machine, so this wait is longer than the default.
    expect(pres.locator(".swagger-ui .info .title")).to_contain_text("ketaclinic",
                                                                     timeout=45_000)

    # --- the administrator and the analyst ------------------------------------------------
    admin = new_page(DESKTOP)
    log_in(admin, "admin")
    for url, name in (("/admin/users", "admin-users"), ("/admin/audit", "admin-audit"),
                      ("/admin/chairs", "admin-chairs"), ("/admin/webhooks", "admin-webhooks"),
                      ("/schedule", "admin-schedule")):
        admin.goto(url)
        look(admin, name)
    analyst = new_page(DESKTOP)
    log_in(analyst, "analyst")
    expect(analyst).to_have_url(re.compile(r"/dashboard$"))
    look(analyst, "analyst-dashboard")


def test_the_accessibility_check_fails_on_a_page_with_a_serious_violation(new_page, axe_ready):
    page = new_page(DESKTOP)
    page.goto("/login")
    assert axe_violations(page) == []
    # An unlabelled form field and an image button without a name: both serious or critical.
    page.evaluate("""() => {
        const i = document.createElement('input'); document.querySelector('main').append(i);
        const b = document.createElement('button'); b.innerHTML = '<img src="/static/favicon.svg">';
        document.querySelector('main').append(b);
    }""")
    problems = axe_violations(page)
    assert any("button-name" in p for p in problems) and any("label" in p for p in problems)

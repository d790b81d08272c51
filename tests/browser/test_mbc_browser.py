"""A nurse sends a self-report link; the patient answers on a phone; the alert is acknowledged."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import pytest
from kcbrowser import PHONE, TABLET, log_in
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("KETACLINIC_SCREENSHOTS", "")


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def register(page, family: str) -> int:  # type: ignore[no-untyped-def]
    page.goto("/patients/new")
    page.get_by_label("MRN").fill("MB-" + uuid.uuid4().hex[:6])
    page.get_by_label("Family name").fill(family)
    page.get_by_label("Given name").fill("Kim")
    page.get_by_label("Date of birth").fill("1979-05-05")
    page.get_by_label("Sex").select_option("female")
    page.get_by_role("button", name="Register").click()
    return int(re.search(r"/patients/(\d+)", page.url).group(1))


def test_a_phone_self_report_with_item9_raises_an_alert_that_a_clinician_acknowledges(
        new_page):
    family = "Phone" + uuid.uuid4().hex[:6].capitalize()
    nurse = new_page(TABLET)
    log_in(nurse, "nurse")
    pid = register(nurse, family)
    nurse.get_by_label("Questionnaire").first.select_option("phq9")
    nurse.get_by_label("Delivery").select_option("shown")
    nurse.get_by_role("button", name="Create link").click()
    link = nurse.locator("#sr-link").get_attribute("href")
    assert "/r/" in link

    phone = new_page(PHONE)
    phone.goto(link)
    assert phone.get_by_role("heading", level=1).inner_text() == "Patient Health Questionnaire-9"
    body = phone.locator("main").inner_text()
    assert family not in body and "Kim" not in body
    for n in range(1, 11):
        phone.locator(f"#item_{n}_{1 if n == 9 else 0}").check()
    shot(phone, "mbc-phone-form")
    phone.get_by_role("button", name="Send my answers").click()
    assert "Thank you" in phone.get_by_role("heading", level=1).inner_text()
    phone.goto(link)
    assert "already been sent" in phone.locator("main").inner_text()

    nurse.get_by_role("link", name="Alerts").click()
    row = nurse.locator("tr", has_text=family)
    assert "item 9 = 1" in row.inner_text()
    shot(nurse, "mbc-worklist")
    row.get_by_label(re.compile("Note for alert")).fill("Phoned; safety plan reviewed")
    row.get_by_role("button", name="Acknowledge").click()
    expect(nurse.locator("tr", has_text=family)).to_have_count(0)  # waits for the reload
    nurse.goto(f"/patients/{pid}")
    panel = nurse.locator("#mbc")
    assert "No open alerts" in panel.inner_text()
    panel.get_by_text("Acknowledged alerts (1)").click()
    assert "acknowledged by nurse" in panel.inner_text()


SEED = """
import datetime as dt, os, random, sys
from ketaclinic.bootstrap import build_services
from ketaclinic.config import load_settings
from ketaclinic.demo.mbc import seed_mbc
from ketaclinic.store.tables_treatment import Course, TreatmentSession
svc = build_services(load_settings(os.environ))
pid, now = int(sys.argv[1]), svc.ctx.clock()
with svc.db.transaction() as s:
    c = Course(patient_id=pid, template_id="iv_ketamine_induction", treatment="ketamine-iv",
               start_date=(now - dt.timedelta(days=60)).date(), status="completed",
               created_at=now, updated_at=now)
    s.add(c); s.flush()
    for n, d in enumerate((60, 58, 56, 53, 51, 49), 1):
        at = now - dt.timedelta(days=d)
        s.add(TreatmentSession(patient_id=pid, course_id=c.id, number=n, treatment="ketamine-iv",
                               status="discharged", planned_date=at.date(), dose_started_at=at,
                               created_at=now, updated_at=now))
seed_mbc(svc, random.Random(5), [pid], now.date())
svc.close()
"""


def test_a_demo_like_patient_page_shows_the_trajectory_chart(new_page, live_server):
    page = new_page(TABLET)
    log_in(page, "prescriber")
    pid = register(page, "Chart" + uuid.uuid4().hex[:6].capitalize())
    subprocess.run([sys.executable, "-c", SEED, str(pid)], env=live_server.env, check=True,
                   capture_output=True, timeout=120)
    page.goto(f"/patients/{pid}")
    chart = page.locator("#mbc figure.chart svg")
    expect(chart).to_have_count(1)
    expect(chart).to_be_visible()
    assert chart.get_attribute("role") == "img"
    assert page.locator("#mbc svg line.dose").count() == 6
    assert page.locator("#mbc .mbc-status").inner_text() != ""
    box = chart.bounding_box()
    assert box and box["width"] <= 1024
    shot(page, "mbc-patient-panel")

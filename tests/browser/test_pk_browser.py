"""The predicted-exposure curve shows on a patient's page."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal

import pytest
from kcbrowser import TABLET, log_in
from playwright.sync_api import expect

from ketaclinic.store.db import make_engine
from ketaclinic.store.tables_treatment import TreatmentSession

pytestmark = pytest.mark.browser


def _add_given_dose(live_server, patient_id: int) -> None:
    """A given IV session (the sessions area owns the forms; this test writes the row)."""
    engine = make_engine(live_server.env["KETACLINIC_DATABASE_URL"])
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    start = now - dt.timedelta(hours=3)
    try:
        with engine.begin() as conn:
            conn.execute(TreatmentSession.__table__.insert().values(
                patient_id=patient_id, number=1, phase="", treatment="ketamine-iv",
                status="done", planned_date=start.date(), dose_mg=Decimal("32"), route="iv",
                lot_numbers="", dose_started_at=start,
                dose_ended_at=start + dt.timedelta(minutes=40), discharge_override_reason="",
                cancel_reason="", version=1, created_at=now, updated_at=now))
    finally:
        engine.dispose()


def test_the_pk_panel_shows_the_loaded_curve_and_links_the_course(new_page, live_server):
    family = "Pk" + uuid.uuid4().hex[:6].capitalize()
    page = new_page(viewport=TABLET)
    log_in(page, "nurse")
    page.goto("/patients/new")
    page.get_by_label("MRN").fill("PK-" + uuid.uuid4().hex[:6])
    page.get_by_label("Family name").fill(family)
    page.get_by_label("Given name").fill("Ann")
    page.get_by_label("Date of birth").fill("1975-06-01")
    page.get_by_label("Sex").select_option("female")
    page.get_by_label('Weight (kilograms only, e.g. "82 kg")').fill("64 kg")
    page.get_by_role("button", name="Register").click()
    patient_id = int(re.search(r"/patients/(\d+)", page.url).group(1))
    expect(page.get_by_role("heading", name="Predicted exposure")).to_be_visible()

    _add_given_dose(live_server, patient_id)
    page.reload()
    chart = page.locator("img.pk-panel-chart")
    chart.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => { const i = document.querySelector('img.pk-panel-chart'); "
        "return i && i.complete; }"
    )
    assert chart.evaluate("i => i.naturalWidth") > 0
    assert "latest dose (iv 32 mg)" in chart.get_attribute("alt")  # mg without a trailing .0
    page.screenshot(path=f"/tmp/pk-panel-{live_server.base_url.rsplit(':', 1)[-1]}.png",
                    full_page=True)

    page.get_by_role("link", name="Predicted exposure").click()
    assert page.get_by_role("heading", level=1).inner_text().startswith("Predicted exposure")
    course = page.locator("img.pk-chart")
    page.wait_for_function("() => document.querySelector('img.pk-chart').complete")
    assert course.evaluate("i => i.naturalWidth") > 0
    assert "does not set doses" in page.content()
    page.screenshot(path="/tmp/pk-course.png", full_page=True)

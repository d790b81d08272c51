"""An analyst opens the dashboard, filters it, downloads the de-identified export and is
refused a named patient's page."""

from __future__ import annotations

import io
import uuid
import zipfile

import pytest
from kcbrowser import TABLET, log_in
from kcoutcomes import build_hand_cohort

from ketaclinic.services.outcomes import summary as outcome_summary
from ketaclinic.store.db import Database, make_engine

pytestmark = pytest.mark.browser


def _seed(live_server) -> tuple[dict[str, int], str]:
    prefix = "Outc" + uuid.uuid4().hex[:6].capitalize()
    engine = make_engine(live_server.env["KETACLINIC_DATABASE_URL"])
    try:
        # through a unit of work as the app makes them, so the outcome summary follows
        db = Database(engine)
        outcome_summary.install(db)
        with db.transaction() as s:
            ids = build_hand_cohort(s, family_prefix=prefix)
    finally:
        engine.dispose()
    return ids, prefix


def test_analyst_filters_the_dashboard_downloads_the_export_and_is_refused_a_patient(
        new_page, live_server, tmp_path):
    ids, prefix = _seed(live_server)
    page = new_page(viewport=TABLET)
    log_in(page, "analyst")
    page.get_by_role("link", name="Dashboard").click()
    assert page.get_by_role("heading", name="Clinic dashboard").is_visible()
    assert page.get_by_role("heading", name="Response and remission").is_visible()
    assert page.locator("svg[role=img]").count() >= 1
    assert prefix not in page.content()
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    page.get_by_label("Treatment").select_option("esketamine")
    page.get_by_label("Instrument").select_option("phq9")
    page.get_by_role("button", name="Apply filters").click()
    assert "treatment=esketamine" in page.url
    rows = page.locator("table.kc-outcomes tbody tr")
    treatments = {rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())}
    assert treatments == {"esketamine"}

    page.get_by_role("link", name="Exports").click()
    with page.expect_download() as info:
        page.get_by_role("link", name="Download CSV (zip)").click()
    path = info.value.path()
    z = zipfile.ZipFile(io.BytesIO(open(path, "rb").read()))
    assert "data_dictionary.csv" in z.namelist()
    blob = b"".join(z.read(n) for n in z.namelist())
    assert prefix.encode() not in blob and b"hand@example.invalid" not in blob

    response = page.goto(f"/patients/{ids['A']}")
    assert response.status == 403
    assert page.get_by_role("heading", name="Not allowed").is_visible()
    assert prefix not in page.content()

"""The pages as clinicians use them: each role's start page, the chairs today, alerts that are
noticed (urgent first, a count in the navigation), numbers and alert texts in words."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import kcchain
from kctest import counting_statements
from sqlalchemy import select

from ketaclinic.schemas import AllergyCreate, PatientCreate
from ketaclinic.schemas_chair import BookingCreate, ChairCreate, VitalsCreate
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.store.tables import AuditEvent
from ketaclinic.store.tables_treatment import TreatmentSession

PHQ9_ITEM9 = [1, 1, 1, 1, 1, 1, 1, 1, 1]
CSSRS_LOW = [1, 0, None, None, None, 0, None]


def _patient(services, mrn: str, family: str = "Boardperson") -> int:
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn=mrn, family_name=family, given_name="Robin", birth_date=dt.date(1980, 5, 1),
        sex="female", weight="70 kg"))
    return p.id


def _monitoring_session(services, users, clock, *, spo2: int = 98) -> tuple[int, int]:
    """IV ketamine session booked today, checked in and dosed 20 minutes ago."""
    nurse = users["nurse"].actor
    pid, _, sid = kcchain.patient_with_course(
        services, users, "BRD-1", kcchain.IV, lot="LOT-B", family="Boardperson", given="Robin",
        sex="female", weight="70 kg", start=clock.now.date(), chair="Window chair",
        hours="0-6 07:00-23:00", by=SYSTEM)
    chair = kcchain.open_chair(services, users)
    services.chair.schedule.book(nurse, sid, BookingCreate(
        version=kcchain.version(services, sid), chair_id=chair.id, start=clock.now,
        override_reason="test"))
    kcchain.check_in(services, users, sid, clock, rems_enrolled=False,
                     last_food_at=clock.now - dt.timedelta(hours=8),
                     last_liquid_at=clock.now - dt.timedelta(hours=3), override_reason="test")
    kcchain.predose(services, users, sid)
    kcchain.dose(services, users, sid, clock, esketamine=False, lot="LOT-B",
                 dose_mg=Decimal(35), rate_ml_per_h=Decimal("52.5"))  # 70 kg at 0.5 mg/kg
    services.chair.sessions.record_vitals(nurse, sid, VitalsCreate(
        taken_at=clock.now, sbp_mmhg=130, dbp_mmhg=80, hr_bpm=75, spo2_pct=spo2,
        rr_per_min=14), "v-0")
    clock.advance(minutes=20)
    return pid, sid


def test_the_nurse_lands_on_todays_chairs_showing_who_is_where_and_what_is_due(
        services, users, login, clock):
    pid, sid = _monitoring_session(services, users, clock, spo2=89)
    c, _ = login("nurse")
    r = c.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/today"
    page = c.get("/today")
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", page.text)
    assert "Window chair" in text and "Boardperson, Robin" in text
    assert f'href="/sessions/{sid}"' in text
    assert "dosed, in monitoring" in text and "20 min since infusion start" in text
    assert re.search(r'class="due_now">vitals 15 min|class="overdue">vitals 15 min', text)
    # The SpO2 alert is red, in words with units, and counted in the menu like urgent ones.
    assert '<li class="alert error">SpO₂ 89 % — below' in text
    assert re.search(r'id="nav-urgent">1<', text)
    with services.db.transaction() as s:
        assert s.execute(select(AuditEvent.id).where(
            AuditEvent.action == "chair.board")).first() is not None


def test_after_closing_time_the_nurse_sees_tomorrows_chairs(services, users, login, clock):
    services.chair.schedule.create_chair(users["admin"].actor, ChairCreate(
        name="Day chair", opening_hours="0-6 08:00-10:00"))
    clock.advance(hours=3)  # 12:00, after the 10:00 closing
    c, _ = login("nurse")
    text = c.get("/today").text
    assert "closed for the rest of today" in text and "Tomorrow at the chairs" in text


def test_each_role_starts_on_its_own_page(login):
    for role, home in (("analyst", "/dashboard"), ("prescriber", "/patients"),
                       ("nurse", "/today")):
        c, _ = login(role)
        assert c.get("/", follow_redirects=False).headers["location"] == home
        assert c.get("/").status_code == 200


def test_alerts_are_urgent_first_then_newest_first_and_counted_in_the_navigation(
        services, users, login, clock):
    nurse = users["nurse"].actor
    older, low, newer = (_patient(services, f"AL-{n}", f"Alertperson{n}") for n in "ABC")
    services.mbc.assessments.record(nurse, older, "phq9", PHQ9_ITEM9)
    clock.advance(minutes=5)
    services.mbc.assessments.record(nurse, low, "cssrs-screener", CSSRS_LOW)
    clock.advance(minutes=5)
    services.mbc.assessments.record(nurse, newer, "phq9", PHQ9_ITEM9)
    order = [(a.patient_id, a.priority) for a in services.mbc.alerts.worklist(nurse)]
    assert order == [(newer, "urgent"), (older, "urgent"), (low, "routine")]
    assert services.mbc.alerts.urgent_open_count(nurse) == 2
    c, _ = login("nurse")
    page = c.get("/patients").text
    assert re.search(r'id="nav-urgent">2<', page)
    first = services.mbc.alerts.worklist(nurse)[0]
    services.mbc.alerts.acknowledge(nurse, first.id, "called the patient; safe")
    assert re.search(r'id="nav-urgent">1<', c.get("/patients").text)
    assert "nav-urgent" not in login("analyst")[0].get("/dashboard").text


def test_saved_dose_orders_show_concentration_and_pump_rate(services, users, login):
    from kctest import csrf_from

    pid = _patient(services, "DOSE-1")
    c, _ = login("prescriber")
    page = c.get(f"/patients/{pid}/dose")
    assert page.status_code == 200
    head = page.text.split('id="orders"')[1]
    assert "Concentration" in head and "Pump rate" in head
    assert csrf_from(page.text)


def test_favicon_and_icon_link_are_served(client):
    assert client.get("/static/favicon.svg").headers["content-type"].startswith("image/svg")
    assert client.get("/favicon.ico", follow_redirects=True).status_code == 200


def _banner(html: str) -> str:
    assert 'id="patient-banner"' in html, "no patient banner on the page"
    return re.sub(r"\s+", " ", html.split('id="patient-banner"')[1].split("</section>")[0])


def test_every_page_about_one_patient_carries_the_banner_in_a_constant_number_of_queries(
        services, users, login, clock):
    pid, sid = _monitoring_session(services, users, clock)
    with services.db.transaction() as s:
        course_id = s.get(TreatmentSession, sid).course_id
    c, _ = login("admin")
    pages = [f"/patients/{pid}", f"/patients/{pid}/edit", f"/patients/{pid}/history",
             f"/courses/{course_id}", f"/sessions/{sid}", f"/patients/{pid}/screening",
             f"/patients/{pid}/dose", f"/patients/{pid}/pk", f"/admin/audit?patient_id={pid}"]
    for url in pages:
        r = c.get(url)
        assert r.status_code in (200, 422), url
        banner = _banner(r.text)
        assert "Boardperson, Robin" in banner and "BRD-1" in banner, url
        assert "70 kg" in banner and "allergies not yet asked" in banner, url
        assert "IV ketamine" in banner or "ketamine" in banner.lower(), url
    # Unknown is not negative: the banner never says "no known allergies".
    assert "no known" not in c.get(f"/patients/{pid}").text.lower()
    # The course page names the patient; the audit page names every listed patient.
    assert "Boardperson, Robin (BRD-1)" in c.get(f"/courses/{course_id}").text
    assert "Boardperson, Robin (BRD-1)" in c.get("/admin/audit").text
    # The banner read is audited and does not grow with the patient's record.
    with counting_statements(services.db.engine) as sent:
        services.patients.banner(users["nurse"].actor, pid)
        first = sent.n
        for n in range(5):
            services.patients.add_allergy(users["nurse"].actor, pid,
                                          AllergyCreate(substance=f"drug {n}"))
        sent.n = 0
        banner = services.patients.banner(users["nurse"].actor, pid)
        assert sent.n == first
    assert banner.allergies_text.startswith("drug 0; drug 1")
    with services.db.transaction() as s:
        assert s.execute(select(AuditEvent.id).where(
            AuditEvent.action == "patient.banner", AuditEvent.patient_id == pid)).first()


def _registration(c, **fields):  # type: ignore[no-untyped-def]
    from kctest import csrf_from

    page = c.get("/patients/new").text
    key = page.split('name="idempotency_key" value="')[1].split('"')[0]
    form = {"csrf_token": csrf_from(page), "idempotency_key": key, "mrn": "DUP-1",
            "family_name": "Twin", "given_name": "Alex", "birth_date": "1985-02-03",
            "sex": "female", "weight": "70 kg", **fields}
    return c.post("/patients/new", data=form, follow_redirects=False)


def test_registration_asks_for_sex_explicitly_and_warns_on_a_likely_duplicate(login, services):
    c, _ = login("nurse")
    page = c.get("/patients/new").text
    assert '<option value="" selected>— choose —</option>' in page
    r = _registration(c, sex="")
    assert r.status_code == 422 and "sex" in r.text
    assert _registration(c).status_code == 303
    # Same name (other case and spacing) and birth date, another MRN: asked first, not saved.
    r = _registration(c, mrn="DUP-2", family_name="twin ", given_name=" ALEX")
    assert r.status_code == 409 and 'id="duplicates"' in r.text and "DUP-1" in r.text
    assert services.patients.search(SYSTEM, query="twin").total == 1
    r = _registration(c, mrn="DUP-2", not_duplicate="on")
    assert r.status_code == 303
    assert services.patients.search(SYSTEM, query="twin").total == 2


def test_a_listed_icd10_code_fills_its_description_and_an_unlisted_one_needs_one(
        login, services):
    from kctest import csrf_from

    pid = _patient(services, "ICD-1")
    c, _ = login("prescriber")
    page = c.get(f"/patients/{pid}").text
    assert 'list="icd10-codes"' in page and '<option value="F33.2">' in page
    form = {"csrf_token": csrf_from(page), "system": "icd10", "code": "F33.2", "display": ""}
    assert c.post(f"/patients/{pid}/diagnoses", data=form,
                  follow_redirects=False).status_code == 303
    detail = services.patients.get(SYSTEM, pid)
    assert detail.diagnoses[0]["display"].startswith("Major depressive disorder, recurrent")
    r = c.post(f"/patients/{pid}/diagnoses", data={**form, "code": "X99.9"})
    assert r.status_code == 422 and "display" in r.text
    assert len(services.patients.get(SYSTEM, pid).diagnoses) == 1


def test_course_weekdays_are_ticked_boxes_and_a_refused_form_says_it_goes_back(
        login, services, clock):
    from kctest import csrf_from

    pid = _patient(services, "WD-1")
    c, _ = login("prescriber")
    page = c.get(f"/patients/{pid}").text
    assert 'name="weekday_0"' in page and 'name="weekdays"' not in page
    form = {"csrf_token": csrf_from(page), "template_id": "iv_ketamine_induction",
            "start_date": clock.now.date().isoformat(), "weekday_0": "on", "weekday_3": "on",
            "concurrent_antidepressant": "on"}
    r = c.post(f"/patients/{pid}/courses", data=form, follow_redirects=False)
    assert r.status_code == 303
    course_id = services.chair.courses.for_patient(SYSTEM, pid)[0].id
    _, sessions, _ = services.chair.courses.get(SYSTEM, course_id)
    assert {s.planned_date.weekday() for s in sessions} <= {0, 3}
    # A refused form post: the error page is marked so app.js returns to the form.
    r = c.post(f"/patients/{pid}/courses", data={**form, "start_date": "not a date"})
    assert r.status_code == 422 and 'data-form="refused"' in r.text


def test_staff_enter_every_instrument_item_by_item_with_radio_rows(login, services, users,
                                                                   clock):
    from kctest import csrf_from

    pid, sid = _monitoring_session(services, users, clock)
    c, _ = login("nurse")
    page = c.get(f"/patients/{pid}").text
    assert "comma-separated" not in page
    assert 'id="assess-phq9"' in page and page.count('name="item_') >= 9
    form = {"csrf_token": csrf_from(page), "instrument": "phq9",
            **{f"item_{n}": "1" for n in range(1, 10)}}
    r = c.post(f"/patients/{pid}/assessments", data=form, follow_redirects=False)
    assert r.status_code == 303
    latest = services.mbc.panel(users["nurse"].actor, pid)["assessments"][0]
    assert latest.instrument_id == "phq9" and latest.total == 9
    # A tampered item is refused naming it; nothing is stored.
    r = c.post(f"/patients/{pid}/assessments", data={**form, "item_3": "lots"})
    assert r.status_code == 422 and "item_3" in r.text
    # The chair's ratings are radio rows too.
    session_page = c.get(f"/sessions/{sid}").text
    assert 'id="rating-moaas"' in session_page and "comma-separated" not in session_page
    r = c.post(f"/sessions/{sid}/ratings", data={
        "csrf_token": csrf_from(session_page), "instrument": "cadss6", "idempotency_key": "k1",
        **{f"item_{n}": "0" for n in range(1, 7)}}, follow_redirects=False)
    assert r.status_code == 303
    assert "cadss6" in c.get(f"/sessions/{sid}").text.split('id="ratings-log"')[1]


def test_one_button_saves_the_screening_facts_and_screens_on_them(login, services):
    from kctest import csrf_from

    pid = _patient(services, "SCR-1")
    c, _ = login("prescriber")
    page = c.get(f"/patients/{pid}/screening").text
    assert "data-warn-unsaved" in page and 'name="then_screen"' in page
    form = {"csrf_token": csrf_from(page), "facts_version": "", "trial_rows": "0",
            "episode_duration_months": "14", "symptom_severity": "severe",
            "substance_use_disorder": "none", "cond-aneurysmal_vascular_disease_or_avm": "on",
            "bp_systolic": "130", "bp_diastolic": "85", "then_screen": "ketamine-iv"}
    r = c.post(f"/patients/{pid}/screening/facts", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("#result")
    latest = services.dosing.list_screenings(SYSTEM, pid)[0]
    # The screening saw the edit made in the same submission (aneurysm: ineligible).
    assert latest.decision == "ineligible"
    assert services.dosing.get_facts(SYSTEM, pid)[1] is not None


def test_api_docs_load_swagger_ui_from_the_package_under_the_apps_own_csp(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text and "cdn" not in page.text.lower()
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert client.get(asset).status_code == 200, asset
    assert "SwaggerUIBundle" in client.get("/static/swagger-ui/swagger-ui-bundle.js").text
    assert client.get("/static/swagger-ui/LICENSE").status_code == 200

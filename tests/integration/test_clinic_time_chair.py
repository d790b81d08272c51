"""A clinic in New York (KETACLINIC_CLINIC_TIMEZONE=America/New_York), on every backend: times
typed on the tablet are clinic time and stored as the right UTC instant, pages show them back
as typed, and "today" and "this week" follow the clinic's calendar."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from bs4 import BeautifulSoup
from kcchain import ESKETAMINE, order_for, patient_with_course
from kctest import csrf_from, make_settings

from ketaclinic.bootstrap import build_services
from ketaclinic.schemas_chair import BookingCreate, CourseCreate
from ketaclinic.services.outcomes.progress_report import _adverse_events
from ketaclinic.store.tables_chair import AdverseEventRow, SessionPrecheck, VitalSignRow
from ketaclinic.store.tables_treatment import TreatmentSession

TEN_AM_EST = dt.datetime(2026, 11, 2, 15, 0)  # 10:00 in New York, as the clock gives it (UTC)


@pytest.fixture
def services(services, database_url, clock, _open_databases):  # type: ignore[no-untyped-def]
    """The suite's services (fresh database), rebuilt for a clinic in New York (on the
    worker's one Database, as the suite's are)."""
    clock.now = TEN_AM_EST
    svc = build_services(make_settings(database_url, clinic_timezone="America/New_York"),
                         clock=clock, database=_open_databases(database_url))
    yield svc
    svc.close()


def _session(services, users, template=ESKETAMINE, mrn="NY-1"):  # type: ignore[no-untyped-def]
    """A ready patient with a course starting Monday, a weekday chair and stock:
    (patient, session)."""
    pid, _, sid = patient_with_course(services, users, mrn, template, lot="LOT-NY",
                                      family="Zone", chair="Chair NY")
    return pid, sid


def _row(services, sid):  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return s.get(TreatmentSession, sid)


@pytest.fixture
def nurse(login, services):  # type: ignore[no-untyped-def]
    """post(session_id, step, **fields) as the nurse on the tablet page; .client for GETs.
    The nurse logs in at the first use, so a test may set the clock first."""
    class Nurse:
        @property
        def client(self):  # type: ignore[no-untyped-def]
            if not hasattr(self, "_client"):
                self._client, _ = login("nurse")
            return self._client

        def __call__(self, sid, step, **fields):  # type: ignore[no-untyped-def]
            page = self.client.get(f"/sessions/{sid}").text
            data = {"csrf_token": csrf_from(page), "version": _row(services, sid).version,
                    **fields}
            return self.client.post(f"/sessions/{sid}/{step}", data=data,
                                    follow_redirects=False)

    return Nurse()


def test_a_session_typed_at_0900_on_the_tablet_is_stored_as_1400_utc_and_shown_as_0900(
        services, users, nurse):
    _, sid = _session(services, users)
    chair = services.chair.schedule.chairs(users["nurse"].actor)[0].id
    assert nurse(sid, "book", chair_id=chair, date="2026-11-02",
                 time="09:00").status_code == 303
    assert _row(services, sid).scheduled_start == dt.datetime(2026, 11, 2, 14, 0)
    assert nurse(sid, "checkin", consent_on_file="on", rems_enrolled="on",
                 ride_home_arranged="on", last_food_at="06:00",
                 last_liquid_at="08:30").status_code == 303
    assert nurse(sid, "predose", sbp_mmhg="128", dbp_mmhg="80",
                 taken_at="09:40").status_code == 303
    assert nurse(sid, "dose", dose_mg="56", lot="LOT-NY", device_1="09:50",
                 device_2="09:55", dose_order_id=str(order_for(services, sid)),
                 order_confirmed="on").status_code == 303
    assert nurse(sid, "vitals", sbp_mmhg="130", dbp_mmhg="82",
                 taken_at="09:58").status_code == 303

    row = _row(services, sid)
    assert row.first_device_at == dt.datetime(2026, 11, 2, 14, 50)
    with services.db.transaction() as s:
        taken = sorted(v.taken_at for v in s.query(VitalSignRow).filter_by(session_id=sid))
        answers = json.loads(s.query(SessionPrecheck).filter_by(session_id=sid).one()
                             .answers_json)
    assert taken == [dt.datetime(2026, 11, 2, 14, 40), dt.datetime(2026, 11, 2, 14, 58)]
    assert answers["last_food_at"] == "2026-11-02T11:00:00"

    page = BeautifulSoup(nurse.client.get(f"/sessions/{sid}").text, "html.parser")
    assert page.select_one("#booked-at").get_text() == "2026-11-02 09:00 EST"
    assert "America/New_York" in page.select_one("#clinic-clock").get_text()
    assert "10:00 EST" in page.select_one("#clinic-clock").get_text()
    times = [tr.find("td").get_text() for tr in page.select("#vitals-table tbody tr")]
    assert times == ["09:40", "09:58"]
    assert "First device 09:50" in page.select_one(".session-head").get_text()
    # The next form's default time is the clinic's "now", not UTC's 15:00.
    assert page.select_one("#v-at")["value"] == "10:00"


def test_just_after_midnight_the_tablet_takes_a_bp_and_devices_dated_the_day_before(
        services, users, nurse, clock):
    # A form reads "23:57" on the clinic's current day; a time before midnight is typed with
    # its date (a browser's time field cannot: the browser tests wait out those minutes).
    _, sid = _session(services, users)
    chair = services.chair.schedule.chairs(users["nurse"].actor)[0].id
    clock.now = dt.datetime(2026, 11, 3, 5, 3)  # 00:03 on Tuesday in New York
    assert nurse(sid, "book", chair_id=chair, date="2026-11-03", time="00:30",
                 override_reason="outside hours on purpose").status_code == 303
    assert nurse(sid, "checkin", consent_on_file="on", rems_enrolled="on",
                 ride_home_arranged="on", last_food_at="2026-11-02T18:00",
                 last_liquid_at="2026-11-02T21:30").status_code == 303
    assert nurse(sid, "predose", sbp_mmhg="128", dbp_mmhg="80",
                 taken_at="2026-11-02T23:57").status_code == 303
    assert nurse(sid, "dose", dose_mg="56", lot="LOT-NY", device_1="2026-11-02T23:58",
                 device_2="00:03", dose_order_id=str(order_for(services, sid)),
                 order_confirmed="on").status_code == 303
    row = _row(services, sid)
    assert row.status == "monitoring"
    assert row.first_device_at == dt.datetime(2026, 11, 3, 4, 58)
    with services.db.transaction() as s:
        taken = [v.taken_at for v in s.query(VitalSignRow).filter_by(session_id=sid)]
    assert taken == [dt.datetime(2026, 11, 3, 4, 57)]
    # Typed without its date, the same 23:57 is tonight's, in the future: refused.
    _, other = _session(services, users, mrn="NY-2")
    assert nurse(other, "book", chair_id=chair, date="2026-11-03", time="03:00",
                 override_reason="outside hours on purpose").status_code == 303
    assert nurse(other, "checkin", consent_on_file="on", rems_enrolled="on",
                 ride_home_arranged="on", last_food_at="2026-11-02T18:00",
                 last_liquid_at="2026-11-02T21:30").status_code == 303
    r = nurse(other, "predose", sbp_mmhg="128", dbp_mmhg="80", taken_at="23:57")
    assert r.status_code == 422 and "in the future" in r.text


def test_a_time_skipped_by_the_spring_change_is_refused_and_nothing_is_booked(
        services, users, nurse):
    _, sid = _session(services, users)
    chair = services.chair.schedule.chairs(users["nurse"].actor)[0].id
    r = nurse(sid, "book", chair_id=chair, date="2027-03-14", time="02:30")
    assert r.status_code == 422
    assert "does not exist in America/New_York" in r.text
    assert _row(services, sid).status == "planned" and _row(services, sid).scheduled_start is None


def test_an_evening_check_in_counts_a_screening_valid_today_in_clinic_time(
        services, users, nurse, clock):
    _, sid = _session(services, users)
    clock.now = dt.datetime(2026, 11, 3, 1, 30)  # 20:30 on Monday in New York, Tuesday in UTC
    r = nurse(sid, "checkin", consent_on_file="on", rems_enrolled="on",
              ride_home_arranged="on", last_food_at="17:00", last_liquid_at="19:30")
    assert r.status_code == 303
    with services.db.transaction() as s:
        pre = s.query(SessionPrecheck).filter_by(session_id=sid).one()
    assert pre.outcome == "ok", pre.findings_json
    assert "precheck.screening_valid" not in {
        f["rule"] for f in json.loads(pre.findings_json) if f["level"] == "hard"}


def test_the_week_view_runs_monday_to_sunday_on_the_clinics_calendar(services, users, nurse):
    nurse_actor = users["nurse"].actor
    _, late = _session(services, users, mrn="NY-1")
    _, early = _session(services, users, mrn="NY-2")
    chair = services.chair.schedule.chairs(nurse_actor)[0].id
    # Both are Monday 2026-11-09 in UTC; in New York one is Sunday 20:00, the other Monday 00:30.
    sunday_evening = dt.datetime(2026, 11, 9, 1, 0)
    monday_night = dt.datetime(2026, 11, 9, 5, 30)
    for sid, start in ((late, sunday_evening), (early, monday_night)):
        services.chair.schedule.book(nurse_actor, sid, BookingCreate(
            version=_row(services, sid).version, chair_id=chair, start=start,
            override_reason="outside hours on purpose"))

    first = services.chair.schedule.calendar(nurse_actor, dt.date(2026, 11, 2), 7)[1]
    second = services.chair.schedule.calendar(nurse_actor, dt.date(2026, 11, 9), 7)[1]
    assert [e.session_id for e in first] == [late]
    assert [e.session_id for e in second] == [early]

    page = BeautifulSoup(nurse.client.get("/schedule?view=week&day=2026-11-04").text, "html.parser")
    sunday = next(tr for tr in page.select("#calendar tbody tr")
                  if tr.find("th").get_text() == "Sun 08 Nov")
    link = sunday.find("a", href=f"/sessions/{late}")
    assert link is not None and link.get_text().startswith("20:00–22:15")
    assert page.find("a", href=f"/sessions/{early}") is None


def test_the_patient_calendar_carries_the_utc_instant_of_a_0900_clinic_booking(
        services, users, nurse):
    pid, sid = _session(services, users)
    chair = services.chair.schedule.chairs(users["nurse"].actor)[0].id
    nurse(sid, "book", chair_id=chair, date="2026-11-02", time="09:00")
    text = nurse.client.get(f"/patients/{pid}/calendar.ics").text
    assert "DTSTART:20261102T140000Z" in text and "DTEND:20261102T161500Z" in text


def test_the_api_takes_offsets_and_answers_in_utc_whatever_the_clinic_zone(
        services, users, login):
    _, sid = _session(services, users)
    c, csrf = login("nurse")
    chair = services.chair.schedule.chairs(users["nurse"].actor)[0].id
    r = c.post(f"/api/sessions/{sid}/book", headers={"X-CSRF-Token": csrf}, json={
        "version": _row(services, sid).version, "chair_id": chair,
        "start": "2026-11-02T09:00:00-05:00"})
    assert r.status_code == 200, r.text
    assert _row(services, sid).scheduled_start == dt.datetime(2026, 11, 2, 14, 0)
    session = c.get(f"/api/sessions/{sid}").json()["session"]
    assert session["scheduled_start"] == "2026-11-02T14:00:00Z"
    assert session["planned_date"] == "2026-11-02"


def test_a_late_evening_adverse_event_is_dated_on_the_clinics_day_in_the_progress_report(
        services, users):
    pid, sid = _session(services, users)
    with services.db.transaction() as s:
        s.add(AdverseEventRow(session_id=sid, code="nausea", severity="mild",
                              onset_at=dt.datetime(2026, 11, 3, 2, 0), action_taken="",
                              description="", recorded_by=None, created_at=TEN_AM_EST))
    with services.db.transaction() as s:
        lines = _adverse_events(s, pid, services.ctx.clinic_time)
        assert [line.occurred_on for line in lines] == [dt.date(2026, 11, 2)]  # 21:00 EST
        assert [line.occurred_on for line in _adverse_events(s, pid)] == [dt.date(2026, 11, 3)]


def test_sessions_this_week_on_the_dashboard_counts_the_clinics_week(services, users, clock):
    _session(services, users)  # sessions planned from Monday 2026-11-02
    analyst = users["analyst"].actor
    clock.now = dt.datetime(2026, 11, 9, 4, 30)  # Sunday 23:30 in New York, Monday in UTC
    clinic_week = services.outcomes.dashboard(analyst)
    sessions_week = {c.key: c.value for c in clinic_week.cards}["sessions_week"]
    assert clinic_week.as_of == dt.date(2026, 11, 8)
    assert int(sessions_week) >= 1
    with services.db.transaction() as s:
        planned = sorted(r.planned_date for r in s.query(TreatmentSession))
    assert sum(dt.date(2026, 11, 2) <= d <= dt.date(2026, 11, 8) for d in planned) == int(
        sessions_week)


def test_a_course_booked_at_0900_stays_at_0900_local_across_the_autumn_change(
        services, users, nurse):
    pres = users["prescriber"].actor
    _session(services, users)  # the chair and stock
    patient_id, _ = _session(services, users, mrn="NY-3")
    course = services.chair.courses.create(pres, patient_id, CourseCreate(
        template_id="iv_ketamine_induction", start_date=dt.date(2026, 10, 26)))
    _, sessions, _ = services.chair.courses.get(pres, course.id)
    around = [s for s in sessions if dt.date(2026, 10, 29) <= s.planned_date
              <= dt.date(2026, 11, 4)][:2]
    assert [s.planned_date < dt.date(2026, 11, 1) for s in around] == [True, False]
    chair = services.chair.schedule.chairs(users["nurse"].actor)[0].id
    for s in around:
        assert nurse(s.id, "book", chair_id=chair, date=s.planned_date.isoformat(),
                     time="09:00").status_code == 303
    starts = [_row(services, s.id).scheduled_start.hour for s in around]
    assert starts == [13, 14]  # 09:00 EDT, then 09:00 EST
    page = BeautifulSoup(nurse.client.get(f"/courses/{course.id}").text, "html.parser")
    shown = [td.get_text() for td in page.find_all("td") if td.get_text().endswith(
        ("09:00 EDT", "09:00 EST"))]
    assert [t[-9:] for t in shown] == ["09:00 EDT", "09:00 EST"]

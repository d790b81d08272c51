"""The chair workflow on every backend: booking conflicts, 409 on concurrent edits, idempotent
vitals, the esketamine 120-minute rule, the append-only ledger and the audit trail."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import kcchain
from kcpdf import pdf_text
from kctest import csrf_from
from sqlalchemy import func, select, update

from ketaclinic.store.tables import AuditEvent, Patient, PatientWeight
from ketaclinic.store.tables_chair import (
    DischargeRecord,
    LedgerEntry,
    SessionPrecheck,
    VitalSignRow,
)
from ketaclinic.store.tables_treatment import TreatmentSession


def _count(services, model) -> int:
    with services.db.transaction() as s:
        return s.execute(select(func.count(model.id))).scalar_one()


def _actions(services, patient_id=None) -> list[tuple[str, str]]:
    with services.db.transaction() as s:
        stmt = select(AuditEvent.action, AuditEvent.outcome).order_by(AuditEvent.id)
        if patient_id is not None:
            stmt = stmt.where(AuditEvent.patient_id == patient_id)
        return [tuple(r) for r in s.execute(stmt).all()]


def _setup(services, users, template=kcchain.ESKETAMINE, mrn="C-1"):
    """A ready patient (screened, order signed) with a course, one chair and stock (LOT-1);
    returns (patient_id, first session id)."""
    pid, _, sid = kcchain.patient_with_course(services, users, mrn, template, family="Chair")
    return pid, sid


def _dosed(services, users, clock, template=kcchain.ESKETAMINE):
    """A booked, checked-in, dosed session (first device now); returns (patient, session)."""
    pid, _, sid = kcchain.dosed(services, users, clock, "C-1", template, family="Chair")
    return pid, sid


def test_a_booking_on_an_occupied_chair_is_explained_and_nothing_is_saved(services, users,
                                                                          login):
    _, first = _setup(services, users, mrn="C-1")
    _, second = _setup(services, users, mrn="C-2")
    c, _csrf = login("nurse")
    page = c.get(f"/sessions/{first}").text
    chair_id = services.chair.schedule.chairs(users["nurse"].actor)[0].id
    form = {"csrf_token": csrf_from(page), "version": kcchain.version(services, first),
            "chair_id": chair_id, "date": "2026-11-02", "time": "09:00"}
    assert c.post(f"/sessions/{first}/book", data=form, follow_redirects=False).status_code == 303
    form["version"] = kcchain.version(services, second)
    r = c.post(f"/sessions/{second}/book", data=form)
    assert r.status_code == 409
    assert "is already booked 09:00-11:15" in r.text and "Nothing was saved" in r.text
    with services.db.transaction() as s:
        assert s.get(TreatmentSession, second).status == "planned"
    # Outside opening hours is a soft conflict: refused without, accepted with a reason.
    form.update(date="2026-11-03", time="17:00")
    r = c.post(f"/sessions/{second}/book", data=form)
    assert r.status_code == 409 and "outside chair" in r.text
    form["override_reason"] = "patient works late; nurse stays"
    assert c.post(f"/sessions/{second}/book", data=form, follow_redirects=False).status_code == 303
    assert ("session.book", "refused") in _actions(services)


def test_two_nurses_editing_one_session_the_second_gets_a_409_and_nothing_is_merged(
        services, users, login):
    _, sid = _setup(services, users)
    first, _ = login("nurse")
    second, _ = login("admin")
    page_a, page_b = first.get(f"/sessions/{sid}").text, second.get(f"/sessions/{sid}").text
    version = kcchain.version(services, sid)
    base = {"version": version, "consent_on_file": "on",
            "rems_enrolled": "on", "ride_home_arranged": "on", "last_food_at": "06:00",
            "last_liquid_at": "08:00"}
    assert first.post(f"/sessions/{sid}/checkin",
                      data={**base, "csrf_token": csrf_from(page_a)},
                      follow_redirects=False).status_code == 303
    r = second.post(f"/sessions/{sid}/checkin",
                    data={**base, "csrf_token": csrf_from(page_b), "override_reason": "x"})
    assert r.status_code == 409
    assert "Someone else changed this session" in r.text and "Nothing was saved" in r.text
    assert _count(services, SessionPrecheck) == 1


def test_a_retried_vitals_submission_records_once(services, users, login, clock):
    _, sid = _dosed(services, users, clock)
    c, csrf = login("nurse")
    headers = {"X-CSRF-Token": csrf, "Idempotency-Key": "tablet-7-vitals-0930"}
    body = {"sbp_mmhg": 186, "dbp_mmhg": 96, "hr_bpm": 80, "spo2_pct": 97, "rr_per_min": 14}
    r1 = c.post(f"/api/sessions/{sid}/vitals", json=body, headers=headers)
    r2 = c.post(f"/api/sessions/{sid}/vitals", json=body, headers=headers)
    assert (r1.status_code, r2.status_code) == (201, 200)
    assert r1.json()["id"] == r2.json()["id"] and r2.json()["created"] is False
    assert r1.json()["alerts"][0]["rule"] == "vitals.sbp_mmhg_high"
    with services.db.transaction() as s:
        assert s.execute(select(func.count(VitalSignRow.id)).where(
            VitalSignRow.kind == "timed")).scalar_one() == 1
    # The web form carries its own key: a resubmitted form records once as well.
    page = c.get(f"/sessions/{sid}").text
    form = {"csrf_token": csrf_from(page), "idempotency_key": "form-key-1", "sbp_mmhg": "130",
            "dbp_mmhg": "80"}
    assert c.post(f"/sessions/{sid}/vitals", data=form, follow_redirects=False).status_code == 303
    assert c.post(f"/sessions/{sid}/vitals", data=form, follow_redirects=False).status_code == 303
    assert _count(services, VitalSignRow) == 3  # predose + one API + one form


def test_times_with_an_offset_are_taken_as_utc_at_check_in_and_for_vitals(services, users,
                                                                          login, clock):
    # An RFC 3339 time with an offset (what a tablet's clock sends) was compared with the
    # stored naive UTC times and raised TypeError: a 500 instead of a recorded reading.
    _, sid = _setup(services, users, template=kcchain.IV)
    c, csrf = login("nurse")
    cet = dt.timezone(dt.timedelta(hours=1))
    food = (clock.now - dt.timedelta(hours=8)).replace(tzinfo=dt.UTC).astimezone(cet)
    r = c.post(f"/api/sessions/{sid}/checkin", headers={"X-CSRF-Token": csrf}, json={
        "version": kcchain.version(services, sid), "consent_on_file": True,
        "ride_home_arranged": True, "last_food_at": food.isoformat(),
        "last_liquid_at": food.isoformat()})
    assert r.status_code == 200, r.text
    gap = next(f for f in r.json()["findings"] if f["rule"] == "precheck.no_food")
    assert round(gap["values"]["gap_min"]) == 480  # the offset was applied, not dropped
    taken = clock.now.replace(tzinfo=dt.UTC).astimezone(cet)
    r = c.post(f"/api/sessions/{sid}/vitals", headers={"X-CSRF-Token": csrf},
               json={"taken_at": taken.isoformat(), "sbp_mmhg": 120, "dbp_mmhg": 80})
    assert r.status_code == 201, r.text
    with services.db.transaction() as s:
        row = s.execute(select(VitalSignRow).where(VitalSignRow.kind == "timed")).scalar_one()
        assert row.taken_at == clock.now


def test_esketamine_discharge_before_120_minutes_has_no_override_only_left_against_advice(
        services, users, login, clock):
    pid, sid = _dosed(services, users, clock)
    clock.advance(minutes=60)
    c, csrf = login("nurse")  # after the clock jump (idle logins expire after 15 min)
    h = {"X-CSRF-Token": csrf}
    c.post(f"/api/sessions/{sid}/vitals", json={"sbp_mmhg": 130, "dbp_mmhg": 82, "hr_bpm": 70,
                                                 "spo2_pct": 98, "rr_per_min": 14}, headers=h)
    c.post(f"/api/sessions/{sid}/ratings", json={"instrument": "moaas", "answers": [5]},
           headers=h)
    body = {"version": kcchain.version(services, sid), "dissociation_resolved": True,
            "respiratory_depression_resolved": True, "responsible_adult_present": True}
    r = c.post(f"/api/sessions/{sid}/discharge", json=body, headers=h)
    assert r.status_code == 422 and "only 65 of 120 min since first device" in r.json()["detail"]
    assert _count(services, DischargeRecord) == 0
    assert ("session.discharge", "refused") in _actions(services, pid)
    # Issue 12: the free-text override is gone (it made an early discharge "ready").
    r = c.post(f"/api/sessions/{sid}/discharge", json={**body, "override_reason": "transfer "
                                                        "to ED for unrelated injury"}, headers=h)
    assert r.status_code == 422 and _count(services, DischargeRecord) == 0
    r = c.post(f"/api/sessions/{sid}/left-against-advice", headers=h, json={
        "version": kcchain.version(services, sid),
        "statement": "transfer to ED for unrelated injury"})
    assert r.status_code == 200, r.text
    with services.db.transaction() as s:
        row = s.get(TreatmentSession, sid)
        assert row.status == "left-against-advice"
        assert row.discharge_override_reason == ""
    pdf = c.get(f"/sessions/{sid}/rems.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    with services.db.transaction() as s:  # the worksheet prints any name, never "?"
        patient = s.get(Patient, pid)
        patient.family_name, patient.given_name = "Ńowak", "Zoë 张伟"
    text = pdf_text(c.get(f"/sessions/{sid}/rems.pdf").content)
    assert "Zoë" in text and "Ńowak" in text and "Zhang Wei (transliterated)" in text
    assert any(f["session_id"] == sid for f in c.get("/api/rems/due").json()["items"])


def test_a_ledger_entry_cannot_be_edited_or_deleted_through_the_api_or_the_web(
        services, users, login):
    _setup(services, users)
    c, csrf = login("admin")
    before = c.get("/api/ledger/entries").json()
    entry = before["items"][0]["id"]
    h = {"X-CSRF-Token": csrf}
    for method in ("PUT", "PATCH", "DELETE"):
        for url in (f"/api/ledger/entries/{entry}", f"/ledger/entries/{entry}",
                    "/api/ledger/entries", f"/ledger/receipts/{entry}"):
            r = c.request(method, url, json={"amount_mg": "1"}, headers=h)
            assert r.status_code in (404, 405), (method, url, r.status_code)
    r = c.post(f"/ledger/entries/{entry}", data={"csrf_token": csrf, "amount_mg": "1"})
    assert r.status_code in (404, 405)
    assert c.get("/api/ledger/entries").json() == before
    # A correction is a new entry; the original stays as it was.
    r = c.post("/api/ledger/corrections", json={"refers_to_id": entry, "corrected_mg": "0",
                                                "reason": "typo"}, headers=h)
    assert r.status_code == 422 and "receipt" in r.json()["detail"]
    assert c.get("/api/ledger/entries").json() == before


def test_a_witnessed_waste_needs_another_user_who_reauthenticates(services, users, login,
                                                                  clock):
    pid, sid = _dosed(services, users, clock, kcchain.IV)
    c, csrf = login("nurse")
    h = {"X-CSRF-Token": csrf}
    waste = {"lot": "LOT-1", "waste_mg": "10", "session_id": sid}
    bad = c.post("/api/ledger/wastes", json={**waste, "witness_username": "admin",
                                             "witness_password": "wrong-password"}, headers=h)
    assert bad.status_code == 422 and "witness" in bad.json()["detail"]
    selfw = c.post("/api/ledger/wastes", json={**waste, "witness_username": "nurse",
                                               "witness_password": "nurse-password-1"},
                   headers=h)
    assert selfw.status_code == 422
    ok = c.post("/api/ledger/wastes", json={**waste, "witness_username": "admin",
                                            "witness_password": "admin-password-1"}, headers=h)
    assert ok.status_code == 201, ok.text
    lots = {x["lot"]: x for x in c.get("/api/ledger/lots").json()["items"]}
    assert Decimal(lots["LOT-1"]["administered"]) == 40
    assert Decimal(lots["LOT-1"]["wasted"]) == 10
    assert Decimal(lots["LOT-1"]["on_hand"]) == 20 * 10 * 50 - 50
    with services.db.transaction() as s:
        kinds = list(s.execute(select(LedgerEntry.kind).order_by(LedgerEntry.id)).scalars())
    assert kinds == ["receipt", "administration", "waste"]
    trail = _actions(services)
    assert ("ledger.waste", "ok") in trail and ("ledger.witness", "denied") in trail


def test_every_session_step_is_in_the_audit_trail(services, users, clock):
    pid, sid = _dosed(services, users, clock)
    actions = [a for a, _ in _actions(services, pid)]
    for expected in ("course.create", "session.checkin", "session.predose",
                     "ledger.administration", "session.dose"):
        assert expected in actions


def test_the_patient_calendar_is_icalendar_and_the_schedule_shows_the_booking(
        services, users, login):
    pid, sid = _setup(services, users)
    c, _ = login("nurse")
    page = c.get(f"/sessions/{sid}").text
    chair_id = services.chair.schedule.chairs(users["nurse"].actor)[0].id
    c.post(f"/sessions/{sid}/book", data={"csrf_token": csrf_from(page), "chair_id": chair_id,
                                          "version": kcchain.version(services, sid),
                                          "date": "2026-11-02", "time": "10:00"})
    r = c.get(f"/patients/{pid}/calendar.ics")
    assert r.headers["content-type"].startswith("text/calendar")
    assert "DTSTART:20261102T100000Z" in r.text and "Chair, Test" not in r.text
    sched = c.get("/schedule?day=2026-11-02").text
    assert "Chair, Test" in sched and f"/sessions/{sid}" in sched
    cancel = c.post(f"/sessions/{sid}/cancel", data={"csrf_token": csrf_from(page),
                                                     "version": kcchain.version(services, sid),
                                                     "reason_code": "patient_request",
                                                     "reason": ""})
    assert cancel.status_code == 422 and "reason" in cancel.text



def test_an_iv_check_in_asks_to_weigh_a_patient_whose_latest_weight_is_old(
        services, users, clock):
    """The check-in reads the date of the patient's latest weight, not of any weight: a
    weighing a year ago is stale whether or not it is the only one."""
    old = kcchain.patient_with_course(services, users, "W-1", kcchain.IV, family="Old")
    recent = kcchain.patient_with_course(services, users, "W-2", kcchain.IV, family="Recent",
                                         chair="Chair B")
    a_year_ago = clock.now.date() - dt.timedelta(days=365)
    with services.db.transaction() as s:
        # ``old``'s only weighing moves back a year; ``recent`` also has one from a year ago.
        s.execute(update(PatientWeight).where(PatientWeight.patient_id == old.patient_id)
                  .values(measured_on=a_year_ago))
        s.add(PatientWeight(patient_id=recent.patient_id, measured_on=a_year_ago,
                            weight_kg=Decimal("79"), recorded_at=clock.now))

    def weight_rules(session_id):
        findings = kcchain.check_in(services, users, session_id, clock)
        return [(f.rule, f.level.name) for f in findings if f.rule == "precheck.weight_fresh"]

    assert weight_rules(old.session_id) == [("precheck.weight_fresh", "SOFT")]
    assert weight_rules(recent.session_id) == []

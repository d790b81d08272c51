"""Discharge is earned, on every backend (issue 12 item 5): service, API, page, REMS form and PDF.

No override: an esketamine patient who leaves before 120 minutes is recorded as *left against
advice* (who, when, what was said), never as discharged or ready.
"""

from __future__ import annotations

import pytest
from kcchain import ESKETAMINE, IV, dosed, is_esketamine, version
from kctest import csrf_from
from sqlalchemy import func, select

from ketaclinic.schemas_chair import DischargeCreate, LeftAgainstAdviceCreate, VitalsCreate
from ketaclinic.services.chair.inputs import InfusionEnd
from ketaclinic.services.chair.session import DischargeRefused
from ketaclinic.services.errors import InvalidInput
from ketaclinic.store.tables import AuditEvent
from ketaclinic.store.tables_chair import DischargeRecord, RemsFormRow
from ketaclinic.store.tables_treatment import TreatmentSession

GOOD = {"sbp_mmhg": 130, "dbp_mmhg": 82, "hr_bpm": 70, "spo2_pct": 98, "rr_per_min": 14}
CHECKLIST = {"dissociation_resolved": True, "respiratory_depression_resolved": True,
             "responsible_adult_present": True}


def _count(services, model) -> int:
    with services.db.transaction() as s:
        return s.execute(select(func.count(model.id))).scalar_one()


def _dosed(services, users, clock, template=ESKETAMINE, mrn="D-1"):
    """A checked-in, dosed session (first device / infusion start now)."""
    pid, _, sid = dosed(services, users, clock, mrn, template, lot=f"LOT-{mrn}", family="Leave")
    if is_esketamine(template):
        clock.advance(minutes=-5)  # minutes below count from the first device
    return pid, sid


def _rate_moaas(c, h, sid, score=5):
    r = c.post(f"/api/sessions/{sid}/ratings", json={"instrument": "moaas", "answers": [score]},
               headers=h)
    assert r.status_code == 201, r.text


def test_esketamine_before_120_minutes_is_refused_with_findings_and_there_is_no_override(
        services, users, login, clock):
    pid, sid = _dosed(services, users, clock)
    clock.advance(minutes=60)
    c, csrf = login("nurse")
    h = {"X-CSRF-Token": csrf}
    assert c.post(f"/api/sessions/{sid}/vitals", json=GOOD, headers=h).status_code == 201
    _rate_moaas(c, h, sid)
    body = {"version": version(services, sid), **CHECKLIST}
    r = c.post(f"/api/sessions/{sid}/discharge", json=body, headers=h)
    assert r.status_code == 422 and "only 60 of 120 min since first device" in r.json()["detail"]
    hard = [f["rule"] for f in r.json()["findings"] if f["level"] == "hard"]
    assert hard == ["discharge.observation_time"]
    # The free-text override of old is gone: the field itself is refused, nothing saved.
    r = c.post(f"/api/sessions/{sid}/discharge",
               json={**body, "override_reason": "transfer to ED"}, headers=h)
    assert r.status_code == 422 and "override_reason" in r.text
    assert _count(services, DischargeRecord) == 0
    with services.db.transaction() as s:
        assert s.get(TreatmentSession, sid).status == "monitoring"
        refused = s.execute(select(func.count(AuditEvent.id)).where(
            AuditEvent.action == "session.discharge", AuditEvent.outcome == "refused",
            AuditEvent.patient_id == pid)).scalar_one()
    assert refused == 1


def test_the_issue_reproductions_a_heart_rate_only_row_and_bp_178_over_108_are_refused(
        services, users, clock):
    nurse = users["nurse"].actor
    _, sid = _dosed(services, users, clock)
    clock.advance(minutes=125)
    services.chair.sessions.record_vitals(nurse, sid, VitalsCreate(hr_bpm=72))
    from ketaclinic.schemas_chair import RatingCreate

    services.chair.sessions.record_rating(nurse, sid, RatingCreate(instrument="moaas",
                                                                   answers=[5]))
    with pytest.raises(DischargeRefused) as refused:
        services.chair.sessions.discharge(nurse, sid, DischargeCreate(
            version=version(services, sid), **CHECKLIST))
    assert "no complete set of vitals" in str(refused.value)
    services.chair.sessions.record_vitals(nurse, sid, VitalsCreate(
        sbp_mmhg=178, dbp_mmhg=108, hr_bpm=80, spo2_pct=97))
    with pytest.raises(DischargeRefused) as refused:
        services.chair.sessions.discharge(nurse, sid, DischargeCreate(
            version=version(services, sid), **CHECKLIST))
    bp = next(f for f in refused.value.findings if f.rule == "discharge.bp")
    assert bp.level.value == "hard" and bp.values["sbp_mmhg"] == 178
    assert _count(services, DischargeRecord) == 0
    # A fresh, complete, acceptable set: discharged, and the REMS form is due.
    clock.advance(minutes=2)
    services.chair.sessions.record_vitals(nurse, sid, VitalsCreate(**GOOD))
    findings = services.chair.sessions.discharge(nurse, sid, DischargeCreate(
        version=version(services, sid), **CHECKLIST))
    assert all(f.level.value == "ok" for f in findings)
    with services.db.transaction() as s:
        assert s.get(TreatmentSession, sid).status == "discharged"
        row = s.execute(select(DischargeRecord)).scalar_one()
        assert row.outcome == "discharged" and row.statement == ""
    assert _count(services, RemsFormRow) == 1


def test_an_alert_without_an_action_blocks_iv_discharge_until_actioned(
        services, users, login, clock):
    _, sid = _dosed(services, users, clock, template=IV, mrn="D-IV")
    nurse = users["nurse"].actor
    clock.advance(minutes=40)
    services.chair.sessions.end_infusion(nurse, sid, InfusionEnd(
        version=version(services, sid), ended_at=clock.now))
    clock.advance(minutes=61)
    c, csrf = login("nurse")
    h = {"X-CSRF-Token": csrf}
    alert = c.post(f"/api/sessions/{sid}/vitals", json={**GOOD, "spo2_pct": 90}, headers=h)
    assert alert.json()["alerts"]
    clock.advance(minutes=1)
    assert c.post(f"/api/sessions/{sid}/vitals", json=GOOD, headers=h).status_code == 201
    _rate_moaas(c, h, sid)
    body = {"version": version(services, sid), **CHECKLIST}
    r = c.post(f"/api/sessions/{sid}/discharge", json=body, headers=h)
    assert r.status_code == 422
    assert [f["rule"] for f in r.json()["findings"] if f["level"] == "hard"] == [
        "discharge.alerts"]
    view = c.get(f"/api/sessions/{sid}").json()
    alert_id = view["alerts"][0]["id"]
    assert c.post(f"/api/sessions/{sid}/alerts/{alert_id}", headers=h,
                  json={"action_taken": "oxygen 2 L; SpO2 98"}).status_code == 200
    r = c.post(f"/api/sessions/{sid}/discharge", json=body, headers=h)
    assert r.status_code == 200, r.text


def test_leaving_early_is_left_against_advice_on_the_api_the_rems_form_and_the_pdf(
        services, users, login, clock):
    pid, sid = _dosed(services, users, clock)
    clock.advance(minutes=70)
    c, csrf = login("nurse")
    h = {"X-CSRF-Token": csrf}
    said = "told to stay 50 more minutes; says the taxi is waiting and she feels fine"
    r = c.post(f"/api/sessions/{sid}/left-against-advice", headers=h,
               json={"version": version(services, sid), "statement": "   "})
    assert r.status_code == 422 and _count(services, DischargeRecord) == 0
    r = c.post(f"/api/sessions/{sid}/left-against-advice", headers=h,
               json={"version": version(services, sid), "statement": said})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "left-against-advice"
    assert r.json()["findings"][0]["rule"] == "discharge.left_against_advice"
    with services.db.transaction() as s:
        row = s.get(TreatmentSession, sid)
        assert row.status == "left-against-advice" and row.status != "discharged"
        record = s.execute(select(DischargeRecord)).scalar_one()
        assert record.outcome == "left-against-advice" and record.statement == said
        assert record.recorded_by == users["nurse"].id and record.discharged_at == clock.now
        actions = set(s.execute(select(AuditEvent.action).where(
            AuditEvent.patient_id == pid)).scalars())
    assert "session.left_against_advice" in actions and "session.discharge" not in actions
    page = c.get(f"/sessions/{sid}")
    assert "Left against advice at" in page.text and "taxi is waiting" in page.text
    assert "Discharged at" not in page.text
    form, missing, findings, _row = services.chair.rems.build(users["nurse"].actor, sid)
    assert form.left_against_advice is True and "taxi" in form.left_against_advice_note
    assert form.minutes_until_ready_without_2h_rule is None
    assert "left_against_advice_note" not in missing
    assert "rems.left_against_advice" in [f.rule for f in findings]
    pdf = services.chair.rems.pdf(users["nurse"].actor, sid)
    assert pdf.startswith(b"%PDF")
    due = c.get("/api/rems/due").json()["items"]
    assert any(f["session_id"] == sid for f in due)


def test_left_against_advice_is_refused_when_the_checklist_passes(services, users, clock):
    nurse = users["nurse"].actor
    _, sid = _dosed(services, users, clock)
    clock.advance(minutes=125)
    from ketaclinic.schemas_chair import RatingCreate

    services.chair.sessions.record_vitals(nurse, sid, VitalsCreate(**GOOD))
    services.chair.sessions.record_rating(nurse, sid, RatingCreate(instrument="moaas",
                                                                   answers=[5]))
    with pytest.raises(InvalidInput, match="discharge the patient instead"):
        services.chair.sessions.leave_against_advice(nurse, sid, LeftAgainstAdviceCreate(
            version=version(services, sid), statement="wants to go", **CHECKLIST))


def test_the_page_shows_the_refusal_and_records_left_against_advice(
        services, users, login, clock):
    _, sid = _dosed(services, users, clock)
    clock.advance(minutes=30)
    c, _ = login("nurse")
    page = c.get(f"/sessions/{sid}").text
    assert "Override reason (early discharge)" not in page
    form = {"csrf_token": csrf_from(page), "version": version(services, sid),
            "dissociation_resolved": "on", "respiratory_depression_resolved": "on",
            "responsible_adult_present": "on"}
    r = c.post(f"/sessions/{sid}/discharge", data=form)
    assert r.status_code == 422
    assert "only 30 of 120 min since first device" in r.text
    assert "no complete set of vitals" in r.text and "no MOAA/S rated" in r.text
    assert "Patient is leaving before the criteria are met" in r.text
    r = c.post(f"/sessions/{sid}/left-against-advice", data={
        **form, "statement": "told to wait for the 2 hours; said she must pick up her child"},
        follow_redirects=False)
    assert r.status_code == 303
    with services.db.transaction() as s:
        assert s.get(TreatmentSession, sid).status == "left-against-advice"

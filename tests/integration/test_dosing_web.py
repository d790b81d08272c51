"""Screening, dose and rule-set pages and the JSON API, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re

from kcchain import screen_ok
from kctest import csrf_from
from sqlalchemy import func, select

from ketaclinic.schemas import DiagnosisCreate, PatientCreate
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.store.tables import AuditEvent
from ketaclinic.store.tables_dosing import DoseOrder, DoseOverride

IV = {"route": "iv", "mg_per_kg": "0.5", "infusion_min": "60", "concentration_mg_per_ml": "1",
      "weight_basis": "actual"}


def make_patient(services, mrn="WEB-1") -> int:  # type: ignore[no-untyped-def]
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn=mrn, family_name="Webb", given_name="Dosie", birth_date=dt.date(1975, 3, 3),
        sex="male", weight="80 kg"))
    services.patients.add_diagnosis(SYSTEM, p.id, DiagnosisCreate(
        code="F32.2", display="Single episode, severe"))
    return p.id


def count(services, model) -> int:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def test_screening_page_saves_facts_and_runs_a_screening(services, login):
    pid = make_patient(services)
    c, _ = login("prescriber")
    page = c.get(f"/patients/{pid}/screening")
    assert page.status_code == 200 and "Antidepressant trials" in page.text
    csrf = csrf_from(page.text)
    form = {"csrf_token": csrf, "facts_version": "", "trial_rows": "3",
            "trial-0-drug": "sertraline", "trial-0-dose": "150", "trial-0-weeks": "8",
            "trial-0-improvement": "10", "trial-0-current": "on",
            "trial-1-drug": "bupropion", "trial-1-weeks": "7", "trial-1-response": "none",
            "trial-1-current": "on", "episode_duration_months": "14",
            "symptom_severity": "severe", "substance_use_disorder": "none",
            "cond-aneurysmal_vascular_disease_or_avm": "on", "bp_systolic": "130",
            "bp_diastolic": "85"}
    r = c.post(f"/patients/{pid}/screening/facts", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    r = c.post(f"/patients/{pid}/screening/run",
               data={"csrf_token": csrf, "treatment": "ketamine-iv"})
    assert r.status_code == 200
    assert "Ineligible" in r.text  # aneurysm or AVM is absolute
    assert "Maudsley score" in r.text
    detail = c.get(f"/patients/{pid}")
    assert "Screening and doses" in detail.text and "ineligible" in detail.text
    assert "valid until" in detail.text


def test_bad_facts_show_a_reason_and_change_nothing(services, login):
    pid = make_patient(services)
    c, _ = login("nurse")
    csrf = csrf_from(c.get(f"/patients/{pid}/screening").text)
    r = c.post(f"/patients/{pid}/screening/facts", data={
        "csrf_token": csrf, "trial_rows": "1", "trial-0-drug": "x", "trial-0-weeks": "6wk"})
    assert r.status_code == 422 and "without a unit" in r.text
    assert services.dosing.get_facts(SYSTEM, pid)[1] is None


def test_a_nurse_sees_screening_but_cannot_run_it(services, login):
    pid = make_patient(services)
    c, csrf = login("nurse")
    page = c.get(f"/patients/{pid}/screening")
    assert "Only prescribers run screenings" in page.text
    r = c.post(f"/api/patients/{pid}/screenings", json={"treatment": "esketamine"},
               headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403


def test_the_dose_page_checks_without_javascript_and_saves_with_an_override(services, users, login):
    pid = make_patient(services)
    screen_ok(services, users, pid, "ketamine-iv")
    c, _ = login("prescriber")
    page = c.get(f"/patients/{pid}/dose")
    assert page.status_code == 200 and "Dose (mg/kg)" in page.text
    csrf = csrf_from(page.text)
    form = {**IV, "csrf_token": csrf, "mg_per_kg": "0.8", "action": "check",
            "idempotency_key": "web-key-1"}
    r = c.post(f"/patients/{pid}/dose", data=form)
    assert r.status_code == 200
    assert "Soft limit" in r.text and 'name="override-mg-per-kg-code"' in r.text
    assert "64 mg" in r.text and "does not set doses" in r.text
    assert "/pk.svg?route=iv&amp;dose_mg=64&amp;minutes=60" in r.text
    r = c.post(f"/patients/{pid}/dose", data={**form, "action": "save"})
    assert r.status_code == 422 and "reason code" in r.text
    assert count(services, DoseOrder) == 0
    r = c.post(f"/patients/{pid}/dose", data={
        **form, "action": "save", "override-mg-per-kg-code": "previously-tolerated",
        "override-mg-per-kg-text": "tolerated 0.8 last course"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert count(services, DoseOverride) == 1
    again = c.post(f"/patients/{pid}/dose", data={
        **form, "action": "save", "override-mg-per-kg-code": "previously-tolerated",
        "override-mg-per-kg-text": "tolerated 0.8 last course"}, follow_redirects=False)
    assert again.status_code == 303 and count(services, DoseOrder) == 1  # idempotent
    listing = c.get(f"/patients/{pid}/dose")
    assert "previously-tolerated" in listing.text and "64 mg" in listing.text


def test_a_hard_limit_is_refused_for_the_page_and_the_api(services, login):
    pid = make_patient(services)
    c, csrf = login("prescriber")
    r = c.post(f"/patients/{pid}/dose", data={**IV, "csrf_token": csrf, "mg_per_kg": "1.5",
                                              "action": "save"})
    assert r.status_code == 422 and "Hard stop" in r.text
    r = c.post(f"/api/patients/{pid}/doses", json={**IV, "mg_per_kg": 1.5},
               headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422
    body = r.json()
    assert body["blocked"] and any(ch["level"] == "hard" for ch in body["checks"])
    assert count(services, DoseOrder) == 0


def test_the_api_checks_saves_and_lists_doses(services, users, login):
    pid = make_patient(services)
    screen_ok(services, users, pid, "ketamine-iv")
    c, csrf = login("prescriber")
    h = {"X-CSRF-Token": csrf}
    r = c.post(f"/api/patients/{pid}/dose/check", json={**IV, "mg_per_kg": 0.5}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["dose_mg"] == 40 and r.json()["status"] == "ok"
    assert r.json()["display"]["rate_ml_per_h"] == "40 mL/h"
    r = c.post(f"/api/patients/{pid}/doses", json=IV, headers={**h, "Idempotency-Key": "k1"})
    assert r.status_code == 201
    r2 = c.post(f"/api/patients/{pid}/doses", json=IV, headers={**h, "Idempotency-Key": "k1"})
    assert r2.status_code == 200 and r2.json()["id"] == r.json()["id"]
    listed = c.get(f"/api/patients/{pid}/doses").json()["items"]
    assert [d["id"] for d in listed] == [r.json()["id"]]
    r = c.post(f"/api/patients/{pid}/dose/check",
               json={"route": "intranasal", "phase": "maintenance", "session_number": 3},
               headers=h)
    assert r.json()["dose_mg"] == 56 and r.json()["devices"] == 2


def test_the_pump_library_refuses_a_bag_off_the_library_on_the_api_and_the_page(services, login):
    pid = make_patient(services)
    c, csrf = login("prescriber")
    h = {"X-CSRF-Token": csrf}
    r = c.post(f"/api/patients/{pid}/dose/check",
               json={**IV, "infusion_min": "40", "concentration_mg_per_ml": "0.01"}, headers=h)
    assert r.status_code == 200 and r.json()["blocked"]
    assert r.json()["rate_ml_per_h"] == 6000
    hard = {ch["rule"] for ch in r.json()["checks"] if ch["level"] == "hard"}
    assert {"concentration-library", "rate-ml-per-h", "volume-ml"} <= hard
    r = c.post(f"/api/patients/{pid}/doses", json={**IV, "concentration_mg_per_ml": 100},
               headers=h)
    assert r.status_code == 422 and any(
        ch["rule"] == "concentration" and ch["level"] == "hard" for ch in r.json()["checks"])
    r = c.post(f"/patients/{pid}/dose", data={**IV, "csrf_token": csrf,
                                              "concentration_mg_per_ml": "100", "action": "save"})
    assert r.status_code == 422 and "undiluted" in r.text
    assert count(services, DoseOrder) == 0


def test_bad_dose_input_is_a_4xx_with_a_reason(services, login):
    pid = make_patient(services)
    c, csrf = login("prescriber")
    h = {"X-CSRF-Token": csrf}
    for body, needle in (({**IV, "mg_per_kg": "0.5mg"}, "without a unit"),
                         ({**IV, "mg_per_kg": "nan"}, "must be a number"),
                         ({**IV, "weight_reentry": "180 lb"}, "pounds"),
                         ({**IV, "route": "rectal"}, "route"),
                         ({**IV, "mg_per_kg": -1}, "greater than zero")):
        r = c.post(f"/api/patients/{pid}/dose/check", json=body, headers=h)
        assert r.status_code == 422, (body, r.text)
        assert needle in r.text, (needle, r.text)
    assert c.post("/api/patients/9999/dose/check", json=IV, headers=h).status_code == 404


def test_the_analyst_and_nurse_cannot_order_doses(services, login):
    pid = make_patient(services)
    for role in ("nurse", "analyst", "admin"):
        c, csrf = login(role)
        r = c.post(f"/api/patients/{pid}/doses", json=IV, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 403, role
    c, _ = login("analyst")
    assert c.get(f"/patients/{pid}/dose").status_code == 403


def test_screening_api_and_reads_are_audited(services, login):
    pid = make_patient(services)
    c, csrf = login("prescriber")
    r = c.post(f"/api/patients/{pid}/screenings", json={"treatment": "esketamine"},
               headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201 and r.json()["rule_set"].startswith("esketamine-us@")
    assert len(c.get(f"/api/patients/{pid}/screenings").json()["items"]) == 1
    r = c.put(f"/api/patients/{pid}/clinical-facts", json={"facts": {"ect_used": True}},
              headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    assert c.get(f"/api/patients/{pid}/clinical-facts").json()["facts"]["ect_used"] is True
    with services.db.transaction() as s:
        actions = set(s.execute(select(AuditEvent.action).where(
            AuditEvent.patient_id == pid)).scalars())
    assert {"screening.create", "screening.list", "facts.update", "facts.view"} <= actions


def test_rule_set_pages_copy_edit_confirm_and_activate(services, login):
    admin, _ = login("admin")
    page = admin.get("/rulesets")
    assert page.status_code == 200 and "Rule sets" in page.text
    csrf = csrf_from(page.text)
    r = admin.post("/rulesets/copy", data={"csrf_token": csrf, "source_id": "ketamine-iv",
                                           "new_id": "our-iv"}, follow_redirects=False)
    assert r.status_code == 303
    page = admin.get("/rulesets/our-iv")
    assert 'name="value:dose_limits.iv.mg-per-kg-soft-max"' in page.text
    r = admin.post("/rulesets/our-iv/values", data={
        "csrf_token": csrf, "version": "1", "note": "local policy",
        "value:dose_limits.iv.mg-per-kg-soft-max": "0.8"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    r = admin.post("/rulesets/our-iv/values", data={
        "csrf_token": csrf, "version": "1", "note": "stale",
        "value:dose_limits.iv.mg-per-kg-soft-max": "0.7"})
    assert r.status_code == 409
    r = admin.post("/rulesets/active", data={"csrf_token": csrf, "treatment": "ketamine-iv",
                                             "ruleset_id": "our-iv"}, follow_redirects=False)
    assert r.status_code == 303
    assert "active for ketamine-iv" in admin.get("/rulesets").text
    report = admin.get("/rulesets/unconfirmed")
    assert report.status_code == 200 and "our-iv@2" in report.text
    pres, pcsrf = login("prescriber")
    assert pres.get("/rulesets").status_code == 200
    assert 'name="value:' not in pres.get("/rulesets/our-iv").text  # view only
    r = pres.post("/rulesets/our-iv/confirm", data={
        "csrf_token": pcsrf, "version": "2", "path": "dose_limits.iv.mg-per-kg-soft-max"},
        follow_redirects=False)
    assert r.status_code == 303, r.text
    assert "Dr Pim" in pres.get("/rulesets/our-iv").text
    assert pres.post("/rulesets/copy", data={"csrf_token": pcsrf, "source_id": "ketamine-iv",
                                             "new_id": "x-iv"}).status_code == 403
    nurse, _ = login("nurse")
    assert nurse.get("/rulesets").status_code == 403
    assert 'href="/rulesets"' not in nurse.get("/patients").text


def test_rule_set_import_is_validated_on_the_page_and_the_api(services, login):
    admin, csrf = login("admin")
    r = admin.post("/rulesets/import", data={"csrf_token": csrf, "document": "{not json"})
    assert r.status_code == 422 and "not valid JSON" in r.text
    doc = admin.get("/api/rulesets/esketamine-eu").json()["document"]
    doc["id"] = "our-eu"
    r = admin.post("/api/rulesets/import", json=doc, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201 and r.json()["ref"] == "our-eu@1"
    download = admin.get("/rulesets/our-eu/document.json")
    assert download.status_code == 200 and '"id": "our-eu"' in download.text
    r = admin.put("/api/rulesets/active/esketamine", json={"ruleset_id": "our-eu"},
                  headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    assert any(x["active_for"] == "esketamine" and x["id"] == "our-eu"
               for x in admin.get("/api/rulesets").json()["items"])


def _stored(services, order_id: int) -> dict:  # type: ignore[no-untyped-def]
    """An order as stored, without what differs by nature (ids, times, the idempotency key)."""
    with services.db.transaction() as s:
        order = s.get(DoseOrder, order_id)
        assert order is not None
        row = {c.key: getattr(order, c.key) for c in DoseOrder.__table__.columns}
        overrides = s.execute(select(DoseOverride).where(
            DoseOverride.dose_order_id == order_id)).scalars().all()
        # the screening each patient's order rests on: its own, so its id differs
        row["checks_json"] = re.sub(r'"screening_id": \d+', '"screening_id": "its own"',
                                    row["checks_json"])
        row["overrides"] = sorted((o.rule, o.reason_code, o.free_text) for o in overrides)
    for key in ("id", "patient_id", "screening_id", "created_at", "ordered_at",
                "idempotency_key", "request_hash", "updated_at"):
        row.pop(key, None)
    return row


def test_the_json_body_and_the_form_store_the_same_order(services, users, login):
    """One input model: the same typed request, sent as JSON or as the form, is one record."""
    c, csrf = login("prescriber")
    typed = {**IV, "mg_per_kg": "0.8", "weight_reentry": "80 kg"}
    override = {"rule": "mg-per-kg", "reason_code": "previously-tolerated",
                "free_text": "tolerated 0.8 last course"}
    stored = []
    for how in ("json", "form"):
        pid = make_patient(services, mrn=f"SAME-{how}")
        screen_ok(services, users, pid, "ketamine-iv")
        if how == "json":
            r = c.post(f"/api/patients/{pid}/doses", json={**typed, "overrides": [override]},
                       headers={"X-CSRF-Token": csrf})
            assert r.status_code == 201, r.text
            order_id = r.json()["id"]
        else:
            r = c.post(f"/patients/{pid}/dose", data={
                **typed, "csrf_token": csrf, "action": "save",
                "override-mg-per-kg-code": override["reason_code"],
                "override-mg-per-kg-text": override["free_text"]}, follow_redirects=False)
            assert r.status_code == 303, r.text
            order_id = int(r.headers["location"].rsplit("saved=", 1)[1])
        stored.append(_stored(services, order_id))
    assert stored[0] == stored[1]
    assert stored[0]["overrides"] == [(override["rule"], override["reason_code"],
                                       override["free_text"])]


def test_bad_dose_input_reads_the_same_on_the_form_and_the_api(services, login):
    pid = make_patient(services)
    c, csrf = login("prescriber")
    for bad, needle in (({"mg_per_kg": "0.5mg"}, "without a unit"),
                        ({"mg_per_kg": "١"}, "must be a number"),
                        ({"session_number": "²"}, "session number"),
                        ({"course_id": "١٢"}, "course: must be a whole number"),
                        ({"weight_reentry": "180 lb"}, "pounds")):
        api = c.post(f"/api/patients/{pid}/dose/check", json={**IV, **bad},
                     headers={"X-CSRF-Token": csrf})
        page = c.post(f"/patients/{pid}/dose", data={**IV, **bad, "csrf_token": csrf,
                                                      "action": "save"})
        assert api.status_code == page.status_code == 422, (bad, api.text)
        assert needle in api.json()["detail"] and needle in page.text, bad
    assert count(services, DoseOrder) == 0

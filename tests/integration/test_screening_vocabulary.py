"""Medication entry looks names up in the vocabulary; screening of the stored record
(service, page, API) on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

from kctest import csrf_from
from sqlalchemy import select

from ketaclinic.schemas import DiagnosisCreate, MedicationCreate, PatientCreate
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.store.tables import PatientMedication

ANSWERED = {
    "antidepressant_trials": [
        {"drug": "escitalopram", "dose_mg": 20, "weeks": 8, "improvement_pct": 10},
        {"drug": "venlafaxine", "dose_mg": 225, "weeks": 10, "response": "minimal"},
    ],
    "episode_duration_months": 18, "symptom_severity": "severe", "pregnant": False,
    "breastfeeding": False, "substance_use_disorder": "none",
    "bp": {"systolic_mmhg": 120, "diastolic_mmhg": 80},
}


def make_patient(services, mrn="VOC-1", code="F33.2") -> int:  # type: ignore[no-untyped-def]
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn=mrn, family_name="Vocab", given_name="Test", birth_date=dt.date(1980, 5, 1),
        sex="female", weight="80 kg"))
    services.patients.add_diagnosis(SYSTEM, p.id, DiagnosisCreate(code=code, display="MDD"))
    return p.id


def _stored(services, pid):  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return [(m.name, m.drug_class) for m in s.execute(select(PatientMedication).where(
            PatientMedication.patient_id == pid).order_by(PatientMedication.id)).scalars()]


def _screen(services, users, pid, treatment="esketamine"):  # type: ignore[no-untyped-def]
    services.dosing.save_facts(users["nurse"].actor, pid, ANSWERED, None)
    result = services.dosing.screen(users["prescriber"].actor, pid, treatment)
    return result.decision, {f["rule"]: f for f in result.findings}


def test_the_answered_patient_without_medicines_is_eligible(services, users):
    assert _screen(services, users, make_patient(services))[0] == "eligible"


def test_a_brand_name_is_stored_as_its_ingredient_and_hits_the_class_rule(services, users):
    pid = make_patient(services)
    found = services.patients.add_medication(SYSTEM, pid, MedicationCreate(
        name="Ativan", daily_dose_mg=1))
    assert found.recognised and found.ingredient == "lorazepam" and found.rxnorm == "6470"
    assert _stored(services, pid) == [("lorazepam", "benzodiazepine")]
    decision, findings = _screen(services, users, pid)
    assert decision == "review" and findings["ix-benzodiazepine"]["level"] == "soft"


def test_an_unknown_medicine_is_stored_as_typed_and_sends_screening_to_review(services, users):
    pid = make_patient(services)
    found = services.patients.add_medication(SYSTEM, pid, MedicationCreate(
        name="Frobnazol", drug_class="herbal"))
    assert not found.recognised
    assert _stored(services, pid) == [("Frobnazol", "herbal")]
    decision, findings = _screen(services, users, pid, "ketamine-iv")
    assert decision == "review"
    assert findings["medication-unrecognised"]["values"]["medications"] == ["Frobnazol"]


def test_a_never_answered_patient_is_review_with_the_missing_facts_listed(services, users):
    pid = make_patient(services)
    result = services.dosing.screen(users["prescriber"].actor, pid, "esketamine")
    missing = next(f for f in result.findings if f["rule"] == "facts-missing")
    assert result.decision == "review"
    assert missing["values"]["missing"] == [
        "pregnant", "breastfeeding", "substance_use_disorder", "bp"]


def test_a_bipolar_depression_code_in_the_registry_sets_the_bipolar_finding(services, users):
    pid = make_patient(services, code="F31.4")
    decision, findings = _screen(services, users, pid)
    assert decision == "review" and findings["ci-bipolar"]["values"]["diagnoses"] == ["F31.4"]


def test_the_api_says_whether_the_medicine_was_recognised(services, login):
    pid = make_patient(services)
    c, csrf = login("prescriber")
    r = c.post(f"/api/patients/{pid}/medications", json={"name": "Benzodiazepines"},
               headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201 and r.json()["medication"]["recognised"] is False
    r = c.post(f"/api/patients/{pid}/medications", json={"name": "Xanax", "drug_class":
               "anxiolytic"}, headers={"X-CSRF-Token": csrf})
    body = r.json()["medication"]
    assert r.status_code == 201 and body["ingredient"] == "alprazolam"
    assert "benzodiazepine" in body["classes"]


def test_the_patient_page_marks_an_unrecognised_medicine(services, login):
    pid = make_patient(services)
    c, _ = login("nurse")
    csrf = csrf_from(c.get(f"/patients/{pid}").text)
    r = c.post(f"/patients/{pid}/medications", data={"csrf_token": csrf, "name": "Nardil"})
    assert r.status_code in (200, 303)
    r = c.post(f"/patients/{pid}/medications", data={"csrf_token": csrf, "name": "Qwertyx"})
    page = c.get(f"/patients/{pid}").text
    assert "phenelzine" in page and page.count("not recognised") == 1
    assert '<option value="Ativan">' in page  # the entry form suggests vocabulary names


def test_the_screening_form_keeps_not_asked_distinct_from_no(services, login):
    pid = make_patient(services)
    c, _ = login("nurse")
    csrf = csrf_from(c.get(f"/patients/{pid}/screening").text)
    form = {"csrf_token": csrf, "facts_version": "", "trial_rows": "1", "pregnant": "",
            "breastfeeding": "no", "substance_use_disorder": ""}
    r = c.post(f"/patients/{pid}/screening/facts", data=form)
    assert r.status_code in (200, 303)
    facts, _ = services.dosing.get_facts(SYSTEM, pid)
    assert facts["pregnant"] is None and facts["breastfeeding"] is False
    assert facts["substance_use_disorder"] is None

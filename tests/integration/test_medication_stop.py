"""A medication is stopped on a clinic-local day for a coded reason, with a note.

The day defaults to the clinic's today, is never in the future and never before the day the
medicine was started; ``other`` needs a note. The patient's list shows the stop struck through
with its day and reason, the amendment history keeps it (an amended stop too), a medication
stopped before the day and the reason were recorded reads "not recorded", and FHIR exports
and imports it. Stopped for any reason, entered in error included, a medicine no longer counts
in screening."""

from __future__ import annotations

import datetime as dt

import pytest
from kctest import make_settings, page_error
from sqlalchemy import select

from ketaclinic.bootstrap import build_services
from ketaclinic.renderers import fhir_map
from ketaclinic.schemas import DiagnosisCreate, MedicationCreate, MedicationStop, PatientCreate
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.errors import InvalidInput
from ketaclinic.services.interop.fhir_bulk import r4b_problems
from ketaclinic.services.interop.fhir_import import ImportService
from ketaclinic.store.tables import PatientAmendment, PatientMedication

ANSWERED = {
    "antidepressant_trials": [
        {"drug": "escitalopram", "dose_mg": 20, "weeks": 8, "improvement_pct": 10},
        {"drug": "venlafaxine", "dose_mg": 225, "weeks": 10, "response": "minimal"},
    ],
    "episode_duration_months": 18, "symptom_severity": "severe", "pregnant": False,
    "breastfeeding": False, "substance_use_disorder": "none",
    "bp": {"systolic_mmhg": 120, "diastolic_mmhg": 80},
}
TODAY = dt.date(2026, 11, 2)  # the suite's clock: 09:00 UTC on this day


def _patient(services, mrn: str = "STOP-1") -> int:  # type: ignore[no-untyped-def]
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn=mrn, family_name="Stopper", given_name="Sue", birth_date=dt.date(1981, 2, 3),
        sex="female", weight="70 kg"))
    services.patients.add_diagnosis(SYSTEM, p.id, DiagnosisCreate(code="F33.2", display="MDD"))
    return p.id


def _med(services, pid: int, name: str = "sertraline", **kw) -> int:  # type: ignore[no-untyped-def]
    services.patients.add_medication(SYSTEM, pid, MedicationCreate(name=name, **kw))
    return services.patients.get(SYSTEM, pid).medications[-1]["id"]


def _row(services, med: int) -> tuple:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        m = s.get(PatientMedication, med)
        return m.active, m.stopped_on, m.stop_reason, m.stop_note


def _history(services, pid: int) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return [(a.old_value, a.new_value) for a in s.execute(select(PatientAmendment).where(
            PatientAmendment.patient_id == pid, PatientAmendment.field == "medication",
            PatientAmendment.old_value != "").order_by(PatientAmendment.id)).scalars()]


def test_a_stop_is_dated_today_by_default_kept_in_the_history_and_amended_not_repeated(
        services):
    pid = _patient(services)
    med = _med(services, pid)
    stop = MedicationStop(reason="adverse-effect", note="rash")
    assert services.patients.stop_medication(SYSTEM, pid, med, stop) == "stopped"
    assert _row(services, med) == (False, TODAY, "adverse-effect", "rash")
    assert services.patients.stop_medication(SYSTEM, pid, med, stop) == "unchanged"
    # a correction: entered in error, the day left out keeps the one it has
    assert services.patients.stop_medication(SYSTEM, pid, med, MedicationStop(
        reason="entered-in-error")) == "amended"
    assert _row(services, med) == (False, TODAY, "entered-in-error", None)
    assert _history(services, pid) == [
        ("sertraline active", "sertraline stopped 2026-11-02, adverse effect: rash"),
        ("sertraline stopped 2026-11-02, adverse effect: rash",
         "sertraline stopped 2026-11-02, entered in error")]


def test_today_is_the_clinic_s_day_not_utc_s(database_url, clock, services):
    clock.now = dt.datetime(2026, 11, 3, 3, 0)  # 22:00 on 2 November in New York
    ny = build_services(make_settings(database_url, clinic_timezone="America/New_York"),
                        clock=clock)
    try:
        pid = _patient(ny)
        late, early = _med(ny, pid), _med(ny, pid, "lorazepam")
        with pytest.raises(InvalidInput, match="stopped_on: is in the future"):
            ny.patients.stop_medication(SYSTEM, pid, late, MedicationStop(
                reason="completed", stopped_on=dt.date(2026, 11, 3)))  # already 3rd in UTC
        ny.patients.stop_medication(SYSTEM, pid, early, MedicationStop(reason="completed"))
        assert _row(ny, early)[1] == dt.date(2026, 11, 2)
    finally:
        ny.close()


@pytest.mark.parametrize(("body", "says"), [
    ({"reason": "completed", "stopped_on": "2026-11-03"}, "stopped_on: is in the future"),
    ({"reason": "completed", "stopped_on": "2026-09-30"},
     "stopped_on: is before the day the medication was started"),
    ({"reason": "other"}, "note: say why when the reason is other"),
    ({"reason": "other", "note": "x" * 201}, "note: String should have at most 200"),
    ({"reason": "bored"}, "reason: Input should be 'completed'"),
    ({}, "reason: Field required"),
    ({"reason": "completed", "stopped_on": "2026-10-٠٢"}, "stopped_on: Input should be a valid"),
])
def test_a_bad_stop_is_refused_alike_on_the_api_and_the_page_and_changes_nothing(
        services, login, body, says):
    pid = _patient(services)
    med = _med(services, pid, started_on=dt.date(2026, 10, 1))
    c, csrf = login("nurse")
    r = c.post(f"/api/patients/{pid}/medications/{med}/stop", json=body,
               headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422 and says in r.text, r.text
    page = c.post(f"/patients/{pid}/medications/{med}/stop", data={"csrf_token": csrf} | body,
                  follow_redirects=False)
    assert page.status_code == 422 and page_error(page.text).startswith(says[:30])
    assert _row(services, med) == (True, None, None, None)
    assert _history(services, pid) == []


def test_the_page_shows_a_stop_struck_with_its_day_and_reason_and_an_old_one_as_unrecorded(
        services, login):
    pid = _patient(services)
    stopped, legacy, running = (_med(services, pid, n) for n in ("sertraline", "lorazepam",
                                                                  "bupropion"))
    c, csrf = login("nurse")
    r = c.post(f"/patients/{pid}/medications/{stopped}/stop", data={
        "csrf_token": csrf, "stopped_on": "2026-10-30", "reason": "other",
        "note": "moved abroad"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("#medications")
    with services.db.transaction() as s:  # stopped before the day and reason were recorded
        s.get(PatientMedication, legacy).active = False
    from bs4 import BeautifulSoup

    page = BeautifulSoup(c.get(f"/patients/{pid}").text, "html.parser")
    items = page.select("#medications > ul > li")
    text = [" ".join(li.get_text(" ", strip=True).split()) for li in items]
    assert "stopped 2026-10-30 · other: moved abroad" in text[0]
    assert items[0].select_one("s").get_text(strip=True).startswith("sertraline")
    assert "stopped date not recorded · reason not recorded" in text[1]
    assert "stopped" not in text[2].split("Stop")[0]
    form = items[2].select_one("form")
    assert form["action"] == f"/patients/{pid}/medications/{running}/stop"
    assert form.select_one("[name=stopped_on]")["value"] == "2026-11-02"  # today by default
    assert form.select_one("[name=stopped_on]")["max"] == "2026-11-02"
    assert [o["value"] for o in form.select("[name=reason] option")][1:] == [
        "completed", "adverse-effect", "ineffective", "patient-choice", "entered-in-error",
        "other"]
    api = c.get(f"/api/patients/{pid}").json()["medications"]
    assert [(m["stopped_on"], m["stop_reason"], m["stop_note"]) for m in api] == [
        ("2026-10-30", "other", "moved abroad"), (None, None, None), (None, None, None)]


def test_a_refused_stop_on_the_page_keeps_what_was_typed(services, login):
    pid = _patient(services)
    med = _med(services, pid)
    c, csrf = login("nurse")
    r = c.post(f"/patients/{pid}/medications/{med}/stop", data={
        "csrf_token": csrf, "stopped_on": "2026-10-30", "reason": "other"})
    assert r.status_code == 422
    from bs4 import BeautifulSoup

    form = BeautifulSoup(r.text, "html.parser").select_one(
        f'form[action="/patients/{pid}/medications/{med}/stop"]')
    assert form.select_one("[name=stopped_on]")["value"] == "2026-10-30"
    assert form.select_one("[name=reason] option[selected]")["value"] == "other"


@pytest.mark.parametrize("reason", ["completed", "entered-in-error"])
def test_a_medicine_stopped_for_any_reason_no_longer_counts_in_screening(services, users,
                                                                           reason):
    pid = _patient(services)
    med = _med(services, pid, "lorazepam", daily_dose_mg=1)
    services.dosing.save_facts(users["nurse"].actor, pid, ANSWERED, None)
    before = services.dosing.screen(users["prescriber"].actor, pid, "esketamine")
    assert "ix-benzodiazepine" in {f["rule"] for f in before.findings}
    services.patients.stop_medication(SYSTEM, pid, med, MedicationStop(reason=reason))
    after = services.dosing.screen(users["prescriber"].actor, pid, "esketamine")
    assert "ix-benzodiazepine" not in {f["rule"] for f in after.findings}
    assert after.decision == "eligible"


def _statement(services, pid: int, med: int) -> dict:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return fhir_map.medication_statement(s.get(PatientMedication, med),
                                             {"reference": f"Patient/p-{pid}"})


def test_fhir_exports_the_stop_as_valid_r4b_and_the_import_reads_it_back(services, users):
    pid = _patient(services)
    meds = {n: _med(services, pid, n, started_on=dt.date(2026, 9, 1))
            for n in ("sertraline", "lorazepam", "bupropion", "mirtazapine")}
    stop = services.patients.stop_medication
    stop(SYSTEM, pid, meds["sertraline"], MedicationStop(
        reason="adverse-effect", note="rash", stopped_on=dt.date(2026, 10, 20)))
    stop(SYSTEM, pid, meds["lorazepam"], MedicationStop(reason="entered-in-error"))
    stop(SYSTEM, pid, meds["bupropion"], MedicationStop(reason="patient-choice"))
    with services.db.transaction() as s:  # stopped before the day and reason were recorded
        s.get(PatientMedication, meds["mirtazapine"]).active = False
    out = {n: _statement(services, pid, m) for n, m in meds.items()}
    assert r4b_problems(list(out.values())) == []
    assert out["sertraline"]["status"] == "stopped"
    assert out["sertraline"]["effectivePeriod"] == {"start": "2026-09-01", "end": "2026-10-20"}
    [why] = out["sertraline"]["statusReason"]
    assert why["coding"][0]["code"] == "adverse-effect" and why["text"] == "rash"
    assert out["lorazepam"]["status"] == "entered-in-error"
    assert out["bupropion"]["statusReason"][0]["text"] == "patient choice"
    assert out["mirtazapine"]["status"] == "stopped"
    assert "statusReason" not in out["mirtazapine"]  # unknown is not negative
    assert out["mirtazapine"]["effectivePeriod"] == {"start": "2026-09-01"}

    bundle = services.outcomes.fhir_bundle(users["prescriber"].actor, pid)
    for entry in bundle["entry"]:  # the same record under another MRN: a new patient
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"]["identifier"][0]["value"] = "STOP-2"
    report = ImportService(services.ctx).import_fhir(users["prescriber"].actor, bundle)
    new_pid = report.entries[0]["patient_id"]
    assert new_pid != pid
    got = {m["name"]: (m["active"], m["stopped_on"], m["stop_reason"], m["stop_note"])
           for m in services.patients.get(SYSTEM, new_pid).medications}
    assert got == {"sertraline": (False, dt.date(2026, 10, 20), "adverse-effect", "rash"),
                   "bupropion": (False, TODAY, "patient-choice", None),
                   "mirtazapine": (False, None, None, None)}
    # entered in error: skipped, as every resource entered in error (it never was so)
    assert [e["entry"] for e in report.entries if e["action"] == "skipped"
            and e["resource_type"] == "MedicationStatement"] == [
        next(i for i, e in enumerate(bundle["entry"])
             if e["resource"].get("status") == "entered-in-error")]


def test_a_stop_reason_from_elsewhere_is_read_as_its_code_or_kept_as_a_note(services, users):
    def statement(name: str, status: str, **extra) -> dict:  # type: ignore[no-untyped-def]
        return {"resourceType": "MedicationStatement", "status": status,
                "subject": {"reference": "urn:uuid:p"},
                "medicationCodeableConcept": {"text": name}, **extra}

    patient = {"resourceType": "Patient", "id": "p",
               "identifier": [{"system": "https://ketaclinic.org/fhir/sid/mrn",
                               "value": "ELSE-1"}],
               "name": [{"family": "Else", "given": ["Where"]}], "gender": "male",
               "birthDate": "1975-01-02"}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:p", "resource": patient},
        {"resource": statement("sertraline", "stopped", statusReason=[{"text": "Ineffective"}],
                               effectivePeriod={"end": "2026-10-01"})},
        {"resource": statement("lorazepam", "stopped",
                               statusReason=[{"text": "switched by the GP"}])},
        {"resource": statement("bupropion", "completed")},
    ]}
    report = ImportService(services.ctx).import_fhir(users["prescriber"].actor, bundle)
    pid = report.entries[0]["patient_id"]
    got = {m["name"]: (m["stopped_on"], m["stop_reason"], m["stop_note"])
           for m in services.patients.get(SYSTEM, pid).medications}
    assert got == {"sertraline": (dt.date(2026, 10, 1), "ineffective", None),
                   "lorazepam": (None, "other", "switched by the GP"),
                   "bupropion": (None, "completed", None)}


def test_the_input_model_takes_exactly_the_coded_stop_reasons():
    from typing import get_args

    from ketaclinic.clinical.medications import MEDICATION_STOP_REASONS
    from ketaclinic.schemas import MedicationStopReason

    assert get_args(MedicationStopReason) == tuple(MEDICATION_STOP_REASONS)

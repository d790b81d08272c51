"""A diagnosis resolves or was recorded in error; an allergy was entered in error or refuted.

The row is kept and marked (who/when/why in the amendment history and the audit trail, with
``updated_at`` for FHIR ``_since``); screening stops counting it only where the reason makes
that clearly right (a resolved psychotic episode is still a history of psychosis), and the
banner never says "allergies not yet asked" about a patient whose allergies were withdrawn."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from sqlalchemy import select

from ketaclinic.schemas import (
    AllergyCreate,
    AllergyDeactivate,
    DiagnosisCreate,
    DiagnosisDeactivate,
    PatientCreate,
)
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.errors import NotFound, PermissionDenied
from ketaclinic.services.interop.fhir_bulk import r4b_problems
from ketaclinic.store.tables import AuditEvent, PatientAllergy, PatientAmendment, PatientDiagnosis

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
TRIALS = [
    {"drug": "escitalopram", "dose_mg": 20, "weeks": 8, "improvement_pct": 10,
     "current_episode": True},
    {"drug": "venlafaxine", "dose_mg": 225, "weeks": 10, "response": "minimal",
     "current_episode": True},
]


def _patient(services, mrn: str = "DX-1") -> int:
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn=mrn, family_name="Resolve", given_name="Dee", birth_date=dt.date(1980, 5, 1),
        sex="male", weight="80 kg"))
    return p.id


def _dx(services, pid: int, code: str, display: str) -> int:
    services.patients.add_diagnosis(SYSTEM, pid, DiagnosisCreate(code=code, display=display))
    return services.patients.get(SYSTEM, pid).diagnoses[-1]["id"]


def _allergy(services, pid: int, substance: str) -> int:
    services.patients.add_allergy(SYSTEM, pid, AllergyCreate(substance=substance))
    return services.patients.get(SYSTEM, pid).allergies[-1]["id"]


def _screen(services, users, pid: int, treatment: str = "ketamine-iv"):  # type: ignore[no-untyped-def]
    services.dosing.save_facts(users["nurse"].actor, pid, {
        "antidepressant_trials": TRIALS, "episode_duration_months": 18,
        "symptom_severity": "severe", "substance_use_disorder": "none", "pregnant": False,
        "breastfeeding": False, "bp": {"systolic_mmhg": 120, "diastolic_mmhg": 80}}, None)
    return services.dosing.screen(users["prescriber"].actor, pid, treatment)


def _rule(result, rule: str) -> dict:  # type: ignore[no-untyped-def]
    return next(f for f in result.findings if f["rule"] == rule)


def _conditions(result) -> set[str]:  # type: ignore[no-untyped-def]
    return {f["values"].get("condition") for f in result.findings if f["level"] != "ok"}


# --- the service ----------------------------------------------------------------------------
def test_a_resolved_diagnosis_is_kept_marked_dated_amended_and_audited_once(services, users,
                                                                           clock):
    pid = _patient(services)
    dx = _dx(services, pid, "F33.2", "Recurrent depressive disorder")
    clock.advance(days=2)
    at = clock()
    nurse = users["nurse"].actor
    assert services.patients.deactivate_diagnosis(nurse, pid, dx, DiagnosisDeactivate(
        reason="resolved")) is True
    assert services.patients.deactivate_diagnosis(nurse, pid, dx, DiagnosisDeactivate(
        reason="resolved")) is False  # a repeat changes nothing
    [row] = services.patients.get(SYSTEM, pid).diagnoses
    assert (row["active"], row["inactive_reason"]) == (False, "resolved")
    with services.db.transaction() as s:
        stored = s.get(PatientDiagnosis, dx)
        assert stored.updated_at == at
        amendments = s.execute(select(PatientAmendment).where(
            PatientAmendment.patient_id == pid, PatientAmendment.field == "diagnosis",
            PatientAmendment.new_value.like("%inactive%"))).scalars().all()
        audits = s.execute(select(AuditEvent.username, AuditEvent.detail).where(
            AuditEvent.action == "patient.diagnosis", AuditEvent.patient_id == pid,
            AuditEvent.detail == "resolved")).all()
    [amended] = amendments
    assert amended.changed_by == users["nurse"].actor.user_id and amended.changed_at == at
    assert amended.old_value.endswith("active") and amended.new_value.endswith("(resolved)")
    assert [tuple(a) for a in audits] == [("nurse", "resolved")]
    # A resolved diagnosis found to have been wrong after all: the reason changes, once more.
    assert services.patients.deactivate_diagnosis(nurse, pid, dx, DiagnosisDeactivate(
        reason="entered-in-error")) is True
    assert services.patients.get(SYSTEM, pid).diagnoses[0]["inactive_reason"] == \
        "entered-in-error"


def test_an_allergy_is_withdrawn_for_this_patient_only_and_only_by_a_writer(services, users):
    pid, other = _patient(services), _patient(services, "DX-2")
    al = _allergy(services, pid, "penicillin")
    with pytest.raises(NotFound):
        services.patients.deactivate_allergy(SYSTEM, other, al, AllergyDeactivate(
            reason="refuted"))
    with pytest.raises(PermissionDenied):
        services.patients.deactivate_allergy(users["analyst"].actor, pid, al,
                                             AllergyDeactivate(reason="refuted"))
    assert services.patients.get(SYSTEM, pid).allergies[0]["active"] is True
    assert services.patients.deactivate_allergy(users["prescriber"].actor, pid, al,
                                                AllergyDeactivate(reason="refuted"))
    [row] = services.patients.get(SYSTEM, pid).allergies
    assert (row["active"], row["inactive_reason"]) == (False, "refuted")
    with services.db.transaction() as s:
        assert s.get(PatientAllergy, al) is not None  # kept, not deleted
        assert s.execute(select(AuditEvent.outcome).where(
            AuditEvent.action == "patient.allergy", AuditEvent.username == "analyst")
        ).scalars().all() == ["denied"]


# --- screening: unknown is not negative -----------------------------------------------------
@pytest.mark.parametrize("reason", ["entered-in-error", "refuted"])
def test_a_withdrawn_ketamine_allergy_no_longer_contraindicates(services, users, reason):
    pid = _patient(services)
    _dx(services, pid, "F33.2", "Recurrent depressive disorder")
    al = _allergy(services, pid, "Ketamine")
    assert "hypersensitivity_ketamine" in _conditions(_screen(services, users, pid))
    services.patients.deactivate_allergy(SYSTEM, pid, al, AllergyDeactivate(reason=reason))
    assert "hypersensitivity_ketamine" not in _conditions(_screen(services, users, pid))


def test_a_deactivated_allergy_without_a_recorded_reason_still_counts(services, users):
    pid = _patient(services)
    _dx(services, pid, "F33.2", "Recurrent depressive disorder")
    al = _allergy(services, pid, "Ketamine")
    with services.db.transaction() as s:  # inactive for a reason nobody recorded
        s.get(PatientAllergy, al).active = False
    assert "hypersensitivity_ketamine" in _conditions(_screen(services, users, pid))


def test_a_resolved_depressive_episode_is_not_the_indication(services, users):
    pid = _patient(services)
    dx = _dx(services, pid, "F33.2", "Recurrent depressive disorder")
    assert _rule(_screen(services, users, pid), "depressive-episode")["level"] == "ok"
    services.patients.deactivate_diagnosis(SYSTEM, pid, dx, DiagnosisDeactivate(
        reason="resolved"))
    result = _screen(services, users, pid)
    finding = _rule(result, "depressive-episode")
    assert finding["level"] == "hard" and finding["values"]["resolved"] == ["F33.2"]
    assert result.decision == "ineligible"


@pytest.mark.parametrize("reason, still_flagged", [("resolved", True),
                                                   ("entered-in-error", False)])
def test_a_resolved_psychotic_disorder_is_still_a_history_one_in_error_is_not(
        services, users, reason, still_flagged):
    pid = _patient(services)
    _dx(services, pid, "F33.2", "Recurrent depressive disorder")
    dx = _dx(services, pid, "F23", "Acute and transient psychotic disorder")
    assert "psychosis_history" in _conditions(_screen(services, users, pid))
    services.patients.deactivate_diagnosis(SYSTEM, pid, dx, DiagnosisDeactivate(reason=reason))
    assert ("psychosis_history" in _conditions(_screen(services, users, pid))) is still_flagged


# --- the banner -----------------------------------------------------------------------------
def test_the_banner_does_not_say_not_yet_asked_when_every_allergy_was_withdrawn(services):
    pid = _patient(services)
    assert services.patients.banner(SYSTEM, pid).allergies_text == "allergies not yet asked"
    first = _allergy(services, pid, "penicillin")
    second = _allergy(services, pid, "latex")
    services.patients.deactivate_allergy(SYSTEM, pid, first, AllergyDeactivate(
        reason="entered-in-error"))
    banner = services.patients.banner(SYSTEM, pid)
    assert banner.allergies == ["latex"] and banner.allergies_state == "recorded"
    services.patients.deactivate_allergy(SYSTEM, pid, second, AllergyDeactivate(
        reason="refuted"))
    banner = services.patients.banner(SYSTEM, pid)
    assert banner.allergies == [] and banner.allergies_state == "withdrawn"
    assert "not yet asked" not in banner.allergies_text
    assert "2 withdrawn" in banner.allergies_text
    assert "no known" not in banner.allergies_text.lower()


# --- the JSON API and the page --------------------------------------------------------------
def test_the_api_marks_a_diagnosis_and_an_allergy_and_documents_the_routes(services, login):
    pid = _patient(services)
    dx = _dx(services, pid, "F33.2", "Recurrent depressive disorder")
    al = _allergy(services, pid, "penicillin")
    c, csrf = login("nurse")
    h = {"X-CSRF-Token": csrf}
    r = c.post(f"/api/patients/{pid}/diagnoses/{dx}/deactivate", json={"reason": "resolved"},
               headers=h)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "deactivated", "reason": "resolved"}
    again = c.post(f"/api/patients/{pid}/diagnoses/{dx}/deactivate",
                   json={"reason": "resolved"}, headers=h)
    assert again.json()["status"] == "unchanged"
    assert c.post(f"/api/patients/{pid}/allergies/{al}/deactivate",
                  json={"reason": "resolved"}, headers=h).status_code == 422  # not for allergies
    assert c.post(f"/api/patients/{pid}/allergies/{al + 999}/deactivate",
                  json={"reason": "refuted"}, headers=h).status_code == 404
    r = c.post(f"/api/patients/{pid}/allergies/{al}/deactivate", json={"reason": "refuted"},
               headers=h)
    assert r.status_code == 200 and r.json()["status"] == "deactivated"
    detail = c.get(f"/api/patients/{pid}").json()
    assert detail["allergies"][0]["inactive_reason"] == "refuted"
    paths = c.get("/api/openapi.json").json()["paths"]
    for kind in ("diagnoses/{diagnosis_id}", "allergies/{allergy_id}"):
        op = paths[f"/api/patients/{{patient_id}}/{kind}/deactivate"]["post"]
        assert op["description"] and "requestBody" in op


def test_the_page_marks_rows_with_csrf_and_shows_them_inactive_with_the_reason(services,
                                                                              login):
    pid = _patient(services)
    dx = _dx(services, pid, "F33.2", "Recurrent depressive disorder")
    al = _allergy(services, pid, "penicillin")
    c, csrf = login("nurse")
    page = c.get(f"/patients/{pid}").text
    assert f'action="/patients/{pid}/diagnoses/{dx}/deactivate"' in page
    assert f'action="/patients/{pid}/allergies/{al}/deactivate"' in page
    refused = c.post(f"/patients/{pid}/diagnoses/{dx}/deactivate",
                     data={"reason": "resolved"}, follow_redirects=False)
    assert refused.status_code == 403
    assert services.patients.get(SYSTEM, pid).diagnoses[0]["active"] is True
    bad = c.post(f"/patients/{pid}/allergies/{al}/deactivate",
                 data={"csrf_token": csrf, "reason": "resolved"}, follow_redirects=False)
    assert bad.status_code == 422 and "reason" in bad.text
    for kind, row, reason in (("diagnoses", dx, "resolved"),
                              ("allergies", al, "entered-in-error")):
        r = c.post(f"/patients/{pid}/{kind}/{row}/deactivate",
                   data={"csrf_token": csrf, "reason": reason}, follow_redirects=False)
        assert r.status_code == 303, r.text
        assert r.headers["location"].endswith(f"/patients/{pid}#{kind}")
    page = c.get(f"/patients/{pid}").text
    diagnoses = page[page.index('id="diagnoses"'):page.index('id="medications"')]
    allergies = page[page.index('id="allergies"'):]
    assert re.search(r'<li class="inactive"><s>Recurrent depressive disorder.*?</s> '
                     r'<span class="badge">resolved</span>', diagnoses, re.S)
    assert re.search(r'<li class="inactive"><s>penicillin</s> <span class="badge">entered '
                     r'in error</span>', allergies)
    assert f"/allergies/{al}/deactivate" not in allergies  # nothing left to withdraw
    banner = page[page.index('id="banner-allergies"'):]
    assert "not yet asked" not in banner[:300]


# --- FHIR -----------------------------------------------------------------------------------
def _export(c, query: str = "") -> dict:  # type: ignore[no-untyped-def]
    r = c.get(f"/api/fhir/$export{query}", headers=ASYNC)
    assert r.status_code == 202, r.text
    manifest = c.get(r.headers["Content-Location"]).json()
    out = {o["type"]: [json.loads(line) for line in c.get(o["url"]).text.splitlines()]
           for o in manifest["output"]}
    return {"manifest": manifest, **out}


def _code(resource: dict, key: str) -> str | None:
    return resource[key]["coding"][0]["code"] if key in resource else None


def test_fhir_exports_the_reasons_valid_r4b_and_since_carries_the_change(services, login,
                                                                        clock):
    pid = _patient(services)
    resolved = _dx(services, pid, "F33.2", "Recurrent depressive disorder")
    wrong = _dx(services, pid, "F20.0", "Paranoid schizophrenia")
    kept = _dx(services, pid, "F41.1", "Generalized anxiety disorder")
    error_al = _allergy(services, pid, "penicillin")
    refuted_al = _allergy(services, pid, "latex")
    c, _ = login("prescriber")
    clock.advance(seconds=5)
    since = _export(c)["manifest"]["transactionTime"]
    assert _export(c, f"?_since={since}")["manifest"]["output"] == []
    clock.advance(seconds=5)
    services.patients.deactivate_diagnosis(SYSTEM, pid, resolved, DiagnosisDeactivate(
        reason="resolved"))
    services.patients.deactivate_diagnosis(SYSTEM, pid, wrong, DiagnosisDeactivate(
        reason="entered-in-error"))
    services.patients.deactivate_allergy(SYSTEM, pid, error_al, AllergyDeactivate(
        reason="entered-in-error"))
    services.patients.deactivate_allergy(SYSTEM, pid, refuted_al, AllergyDeactivate(
        reason="refuted"))
    changed = _export(c, f"?_since={since}")
    assert {o["type"] for o in changed["manifest"]["output"]} == {"Condition",
                                                                  "AllergyIntolerance"}
    conditions = {r["id"]: r for r in changed["Condition"]}
    assert set(conditions) == {f"dx-{resolved}", f"dx-{wrong}"}  # not the unchanged one
    assert f"dx-{kept}" not in conditions
    res, err = conditions[f"dx-{resolved}"], conditions[f"dx-{wrong}"]
    assert (_code(res, "clinicalStatus"), _code(res, "verificationStatus")) == (
        "resolved", "confirmed")
    assert (_code(err, "clinicalStatus"), _code(err, "verificationStatus")) == (
        None, "entered-in-error")
    allergies = {r["id"]: r for r in changed["AllergyIntolerance"]}
    eie, ref = allergies[f"al-{error_al}"], allergies[f"al-{refuted_al}"]
    assert (_code(eie, "clinicalStatus"), _code(eie, "verificationStatus")) == (
        None, "entered-in-error")
    assert (_code(ref, "clinicalStatus"), _code(ref, "verificationStatus")) == (
        "inactive", "refuted")
    assert r4b_problems([*changed["Condition"], *changed["AllergyIntolerance"]]) == []
    everything = _export(c)
    active = next(r for r in everything["Condition"] if r["id"] == f"dx-{kept}")
    assert _code(active, "clinicalStatus") == "active"
    assert r4b_problems(everything["Condition"] + everything["AllergyIntolerance"]) == []


# --- stopping a medication: the JSON route beside the page's Stop button --------------------
def _medication(services, pid: int, name: str = "sertraline") -> int:  # type: ignore[no-untyped-def]
    from ketaclinic.schemas import MedicationCreate

    services.patients.add_medication(SYSTEM, pid, MedicationCreate(name=name))
    return services.patients.get(SYSTEM, pid).medications[-1]["id"]


def test_the_api_stops_a_medication_once_for_its_patient_and_documents_the_route(services,
                                                                                 login):
    pid, other = _patient(services), _patient(services, "DX-2")
    med = _medication(services, pid)
    c, csrf = login("nurse")
    h = {"X-CSRF-Token": csrf}
    url = f"/api/patients/{pid}/medications/{med}/stop"
    body = {"reason": "completed"}
    assert c.post(url, json=body).status_code == 403  # no CSRF token, no change
    assert c.post(url, json=body | {"why": "x"}, headers=h).status_code == 422  # no such field
    assert c.post(url, json={}, headers=h).status_code == 422  # no reason
    assert c.post(f"/api/patients/{other}/medications/{med}/stop", json=body,
                  headers=h).status_code == 404  # not this patient's
    assert services.patients.get(SYSTEM, pid).medications[0]["active"] is True
    r = c.post(url, json=body, headers=h)
    assert r.status_code == 200 and r.json() == {"status": "stopped", "reason": "completed"}
    assert c.post(url, json=body, headers=h).json()["status"] == "unchanged"
    assert c.get(f"/api/patients/{pid}").json()["medications"][0]["active"] is False
    with services.db.transaction() as s:
        assert s.execute(select(AuditEvent.detail).where(
            AuditEvent.action == "patient.medication", AuditEvent.patient_id == pid,
            AuditEvent.detail.like("stopped%"))).scalars().all() == [
                "stopped (completed)"]  # once
    op = c.get("/api/openapi.json").json()["paths"][
        "/api/patients/{patient_id}/medications/{medication_id}/stop"]["post"]
    assert op["description"] and "requestBody" in op
    schema = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schema.endswith("/MedicationStop")


def test_the_page_s_stop_button_still_stops_with_its_csrf_token(services, login):
    pid = _patient(services)
    med = _medication(services, pid)
    c, csrf = login("nurse")
    assert f'action="/patients/{pid}/medications/{med}/stop"' in c.get(f"/patients/{pid}").text
    refused = c.post(f"/patients/{pid}/medications/{med}/stop", data={"x": "no token"},
                     follow_redirects=False)
    assert refused.status_code == 403
    assert services.patients.get(SYSTEM, pid).medications[0]["active"] is True
    r = c.post(f"/patients/{pid}/medications/{med}/stop",
               data={"csrf_token": csrf, "reason": "completed"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("#medications")
    assert services.patients.get(SYSTEM, pid).medications[0]["active"] is False

"""A Condition or AllergyIntolerance that no longer stands is imported as it stands.

A resolved (inactive, in remission) Condition becomes a resolved diagnosis and a refuted
AllergyIntolerance a refuted allergy, so a re-imported resolved depressive episode is not the
screening indication again. What is not clearly over keeps counting (unknown is not negative)
and the report asks a person to review it. The clinic's own export, imported into a fresh
database, screens the same and keeps the same statuses."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from kcchain import FACTS
from kctest import USERS, drop_pg_database, fresh_database_url, make_settings

from ketaclinic.bootstrap import Services, build_services
from ketaclinic.schemas import (
    AllergyCreate,
    AllergyDeactivate,
    DiagnosisCreate,
    DiagnosisDeactivate,
    MedicationCreate,
    MedicationStop,
    PatientCreate,
)
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.interop.fhir_import import ImportService
from ketaclinic.store import migrate
from ketaclinic.store.db import make_engine


@pytest.fixture
def fresh(backend, sqlite_folder, clock) -> Iterator[tuple[Services, dict]]:  # type: ignore[no-untyped-def]
    """A second, freshly migrated database of the same backend, with the suite's users."""
    url, handle = fresh_database_url(backend, sqlite_folder)
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    svc = build_services(make_settings(url), clock=clock)
    users = {k: svc.auth.create_user(SYSTEM, *USERS[k]) for k in ("nurse", "prescriber")}
    yield svc, users
    svc.close()
    if handle is not None:
        drop_pg_database(handle)


def _record(services, mrn: str = "RT-1") -> int:  # type: ignore[no-untyped-def]
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn=mrn, family_name="Roundtrip", given_name="Rae", birth_date=dt.date(1979, 3, 4),
        sex="female", weight="70 kg"))
    return p.id


def _add(services, pid: int) -> None:  # type: ignore[no-untyped-def]
    """The depressive episode resolved, a psychotic episode resolved (still history), one
    diagnosis in error, anxiety active; a ketamine allergy refuted, latex active, penicillin
    in error; one medicine stopped."""
    patients = services.patients
    for code, display in (("F33.2", "Recurrent depressive disorder"),
                          ("F23", "Acute and transient psychotic disorder"),
                          ("F20.0", "Paranoid schizophrenia"),
                          ("F41.1", "Generalized anxiety disorder")):
        patients.add_diagnosis(SYSTEM, pid, DiagnosisCreate(code=code, display=display))
    for substance in ("Ketamine", "latex", "penicillin"):
        patients.add_allergy(SYSTEM, pid, AllergyCreate(substance=substance))
    patients.add_medication(SYSTEM, pid, MedicationCreate(name="sertraline",
                                                          daily_dose_mg="100"))
    detail = patients.get(SYSTEM, pid)
    dx = {d["code"]: d["id"] for d in detail.diagnoses}
    al = {a["substance"]: a["id"] for a in detail.allergies}
    for code, reason in (("F33.2", "resolved"), ("F23", "resolved"),
                         ("F20.0", "entered-in-error")):
        patients.deactivate_diagnosis(SYSTEM, pid, dx[code], DiagnosisDeactivate(reason=reason))
    for substance, reason in (("Ketamine", "refuted"), ("penicillin", "entered-in-error")):
        patients.deactivate_allergy(SYSTEM, pid, al[substance], AllergyDeactivate(reason=reason))
    patients.stop_medication(SYSTEM, pid, detail.medications[0]["id"],
                             MedicationStop(reason="adverse-effect", note="rash"))


def _screening(services, users, pid: int):  # type: ignore[no-untyped-def]
    services.dosing.save_facts(users["nurse"].actor, pid, FACTS, None)
    return services.dosing.screen(users["prescriber"].actor, pid, "ketamine-iv")


def _screen(services, users, pid: int) -> tuple[str, list[tuple[str, str, str]]]:  # type: ignore[no-untyped-def]
    result = _screening(services, users, pid)
    return result.decision, sorted((f["rule"], f["level"], f["message"])
                                   for f in result.findings)


def _statuses(services, pid: int) -> dict[str, set]:  # type: ignore[no-untyped-def]
    d = services.patients.get(SYSTEM, pid)
    return {"diagnoses": {(x["code"], x["active"], x["inactive_reason"]) for x in d.diagnoses},
            "allergies": {(x["substance"], x["active"], x["inactive_reason"])
                          for x in d.allergies},
            "medications": {(x["name"], x["active"], x["stopped_on"], x["stop_reason"],
                             x["stop_note"]) for x in d.medications}}


def test_the_export_imported_into_a_fresh_database_screens_the_same_with_the_same_statuses(
        services, users, fresh):
    pid = _record(services)
    _add(services, pid)
    before = _screen(services, users, pid)
    assert before[0] == "ineligible"  # the resolved depressive episode is not the indication
    assert ("depressive-episode", "hard") in {(r, lvl) for r, lvl, _m in before[1]}
    bundle = services.outcomes.fhir_bundle(users["prescriber"].actor, pid)

    other, other_users = fresh
    report = ImportService(other.ctx).import_fhir(other_users["prescriber"].actor, bundle)
    new_pid = report.entries[0]["patient_id"]
    details = {e["detail"] for e in report.entries}
    assert {"icd10 F33.2, resolved", "icd10 F23, resolved", "Ketamine, refuted",
            "sertraline, stopped (adverse-effect)"} <= details
    assert not [e for e in report.entries if e.get("review")]  # our own export: all given
    assert _screen(other, other_users, new_pid) == before
    expected = _statuses(services, pid)
    # entered in error: skipped by the import (it never was so), the rest as it stands
    expected["diagnoses"].discard(("F20.0", False, "entered-in-error"))
    expected["allergies"].discard(("penicillin", False, "entered-in-error"))
    assert _statuses(other, new_pid) == expected

    # and the fresh database's export imports back into it unchanged
    again = ImportService(other.ctx).import_fhir(
        other_users["prescriber"].actor,
        other.outcomes.fhir_bundle(other_users["prescriber"].actor, new_pid))
    assert set(again.counts) == {"unchanged", "skipped"}, again.entries
    assert _statuses(other, new_pid) == expected


def _bundle(*resources: dict) -> dict:
    patient = {"resourceType": "Patient", "id": "p",
               "identifier": [{"system": "https://ketaclinic.org/fhir/sid/mrn",
                               "value": "ST-1"}],
               "name": [{"family": "Status", "given": ["Sam"]}], "gender": "male",
               "birthDate": "1975-01-02"}
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": "urn:uuid:p", "resource": patient},
                      *({"resource": r} for r in resources)]}


def _condition(code: str, clinical: str | None = None, verification: str | None = None) -> dict:
    r: dict = {"resourceType": "Condition", "subject": {"reference": "urn:uuid:p"},
               "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm",
                                    "code": code, "display": code}]}}
    if clinical:
        r["clinicalStatus"] = {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "code": clinical}]}
    if verification:
        r["verificationStatus"] = {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            "code": verification}]}
    return r


def _allergy(substance: str, clinical: str | None = None,
             verification: str | None = None) -> dict:
    r: dict = {"resourceType": "AllergyIntolerance", "patient": {"reference": "urn:uuid:p"},
               "code": {"text": substance}}
    if clinical:
        r["clinicalStatus"] = {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
            "code": clinical}]}
    if verification:
        r["verificationStatus"] = {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
            "code": verification}]}
    return r


def test_a_bundle_from_elsewhere_keeps_what_is_not_clearly_over_and_asks_for_review(
        services, users):
    bundle = _bundle(_condition("F32.1", "remission"), _condition("F23", None),
                     _condition("F31.2", "active", "refuted"), _condition("F41.1", "relapse"),
                     _allergy("Ketamine", "resolved"), _allergy("latex", None),
                     _allergy("penicillin", "inactive", "refuted"),
                     _allergy("iodine", "active", "unconfirmed"))
    report = ImportService(services.ctx).import_fhir(users["prescriber"].actor, bundle)
    pid = report.entries[0]["patient_id"]
    assert _statuses(services, pid)["diagnoses"] == {
        ("F32.1", False, "resolved"),  # in remission: not the indication
        ("F23", True, None),  # no status: unknown is not negative
        ("F31.2", False, "resolved"),  # refuted: history for the flags, never dropped
        ("F41.1", True, None)}
    assert _statuses(services, pid)["allergies"] == {
        ("Ketamine", True, None),  # merely resolved: it keeps counting
        ("latex", True, None), ("penicillin", False, "refuted"), ("iodine", True, None)}
    review = {e["entry"]: e["review"] for e in report.entries if e.get("review")}
    assert sorted(review) == [2, 3, 5, 6]
    assert all("review" in e["detail"] for e in report.entries if e.get("review"))
    flagged = {f["values"].get("condition") for f in _screening(services, users, pid).findings
               if f["level"] != "ok"}
    assert "hypersensitivity_ketamine" in flagged  # the "resolved" ketamine allergy counts
    assert "psychosis_history" in flagged  # the status-less psychotic episode counts

    # Imported again: nothing changes; a row recorded here differently is said, not changed.
    services.patients.deactivate_diagnosis(
        SYSTEM, pid, next(d["id"] for d in services.patients.get(SYSTEM, pid).diagnoses
                          if d["code"] == "F41.1"), DiagnosisDeactivate(reason="resolved"))
    again = ImportService(services.ctx).import_fhir(users["prescriber"].actor, bundle)
    assert set(again.counts) == {"unchanged"}
    [differs] = [e for e in again.entries if "not changed" in e["detail"]]
    assert differs["entry"] == 4 and "recorded here as resolved" in differs["detail"]

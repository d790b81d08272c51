"""Importing records (FHIR Bundle, CSV roster) through the services, on every backend."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from kctest import TEST_SECRET
from sqlalchemy import func, select

from ketaclinic.cli import main
from ketaclinic.store.tables import (
    AuditEvent,
    Patient,
    PatientAllergy,
    PatientAmendment,
    PatientDiagnosis,
    PatientMedication,
    PatientWeight,
)
from ketaclinic.store.tables_care import Assessment

BUNDLE = json.loads((Path(__file__).parents[1] / "data" / "fhir_import_bundle.json"
                     ).read_text(encoding="utf-8"))
TABLES = (Patient, PatientWeight, PatientDiagnosis, PatientMedication, PatientAllergy,
          Assessment, PatientAmendment)


def counts(services) -> dict[str, int]:
    with services.db.transaction() as s:
        return {m.__name__: s.execute(select(func.count(m.id))).scalar_one() for m in TABLES}


def audit(services) -> list[tuple[str, str]]:
    with services.db.transaction() as s:
        return [tuple(r) for r in s.execute(select(AuditEvent.action, AuditEvent.outcome)
                                            .order_by(AuditEvent.id))]


def post(client, csrf, bundle, dry_run=False):  # type: ignore[no-untyped-def]
    return client.post("/api/import/fhir", json=bundle, headers={"X-CSRF-Token": csrf},
                       params={"dry_run": "true"} if dry_run else None)


def env(services) -> dict[str, str]:
    return {"KETACLINIC_ENV": "test", "KETACLINIC_SECRET_KEY": TEST_SECRET,
            "KETACLINIC_DATABASE_URL": services.db.engine.url.render_as_string(
                hide_password=False)}


def test_a_bundle_with_every_resource_type_lands_on_the_patient_page_with_its_audit_rows(
        login, services):
    c, csrf = login("prescriber")
    before = audit(services)
    r = post(c, csrf, BUNDLE)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["counts"] == {"created": 10, "skipped": 8}
    pid = report["entries"][0]["patient_id"]
    page = c.get(f"/api/patients/{pid}").json()
    assert (page["mrn"], page["family_name"], page["given_name"]) == (
        "FHIR-001", "Testperson", "Ada Quinn")
    assert [float(w["weight_kg"]) for w in page["weights"]] == [82.5]
    assert {(d["system"], d["code"]) for d in page["diagnoses"]} == {
        ("icd10", "F33.2"), ("snomed", "197480006")}
    meds = {m["name"]: m for m in page["medications"]}
    assert meds["sertraline"]["recognised"] and float(meds["sertraline"]["daily_dose_mg"]) == 100
    assert meds["Zorblaxin"]["recognised"] is False  # kept, marked: screening reviews it
    assert meds["lorazepam"]["active"] is False  # a completed statement is stopped
    assert [(a["substance"], a["reaction"]) for a in page["allergies"]] == [("Penicillin",
                                                                            "Hives")]
    scored = {a.instrument_id: a for a in services.mbc.assessments.list_for_patient(
        _prescriber(services), pid)}
    assert (scored["phq9"].total, scored["gad7"].total) == (9, 8)
    assert any(a["rule"] == "phq9.item9" for a in scored["phq9"].alerts)  # the core's alert
    trail = audit(services)[len(before):]
    written = [a for a, _o in trail if a.startswith(("patient.", "assessment.", "import."))]
    assert written[:1] == ["patient.create"] and written.count("import.fhir") == 1
    assert sorted(written[1:written.index("import.fhir")]) == sorted(
        ["patient.diagnosis"] * 2 + ["patient.medication"] * 4 + ["patient.allergy",
                                                                  "patient.weight"]
        + ["assessment.create"] * 2)


def _prescriber(services):  # type: ignore[no-untyped-def]
    from ketaclinic.services.fhir_import import ImportService

    return ImportService(services.ctx).actor_for("prescriber")


def test_a_dry_run_reports_the_changes_and_writes_only_the_attempt(login, services):
    c, csrf = login("admin")
    rows, trail = counts(services), audit(services)
    r = post(c, csrf, BUNDLE, dry_run=True)
    assert r.status_code == 200, r.text
    assert r.json()["dry_run"] is True and r.json()["counts"]["created"] == 10
    assert counts(services) == rows
    assert audit(services)[len(trail):] == [("import.fhir", "dry_run")]
    # ... and the real import afterwards does what the dry run said.
    assert post(c, csrf, BUNDLE).json()["counts"] == r.json()["counts"]


@pytest.mark.parametrize("where, change, field", [
    (7, {"valueQuantity": {"value": 180, "unit": "lb", "system": "http://unitsofmeasure.org",
                           "code": "[lb_av]"}}, "valueQuantity.code"),
    (7, {"effectiveDateTime": "2030-01-01"}, "measured_on"),  # refused by the service itself
    (3, {"status": "not-a-status"}, "status"),
])
def test_one_bad_entry_in_the_middle_leaves_the_database_unchanged(login, services, where,
                                                                   change, field):
    c, csrf = login("prescriber")
    bundle = copy.deepcopy(BUNDLE)
    bundle["entry"][where]["resource"].update(change)
    rows, trail = counts(services), audit(services)
    r = post(c, csrf, bundle)
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert errors[0]["entry"] == where and errors[0]["field"].startswith(field), errors
    assert counts(services) == rows  # not even the Patient of entry 0
    assert audit(services)[len(trail):] == [("import.fhir", "rejected")]


def test_a_second_import_matches_on_the_mrn_and_amends_instead_of_creating(login, services):
    c, csrf = login("prescriber")
    first = post(c, csrf, BUNDLE).json()
    pid = first["entries"][0]["patient_id"]
    again = post(c, csrf, BUNDLE).json()
    assert again["counts"] == {"unchanged": 10, "skipped": 8}
    renamed = copy.deepcopy(BUNDLE)
    patient = renamed["entry"][0]["resource"]
    patient["name"][0]["family"] = "Testperson-Lee"
    patient["identifier"] = [{"type": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
        "system": "urn:oid:2.16.840.1.113883.19.5", "value": "fhir-001"}]  # MR-typed, any system
    third = post(c, csrf, renamed).json()
    assert third["entries"][0]["action"] == "amended"
    assert third["entries"][0]["patient_id"] == pid
    assert counts(services)["Patient"] == 1
    history = c.get(f"/api/patients/{pid}/history").json()["items"]
    assert (history[0]["field"], history[0]["old_value"], history[0]["new_value"]) == (
        "family_name", "Testperson", "Testperson-Lee")


@pytest.mark.parametrize("role, status", [("admin", 200), ("prescriber", 200), ("nurse", 403),
                                          ("analyst", 403)])
def test_only_admins_and_prescribers_import(login, services, role, status):
    c, csrf = login(role)
    r = post(c, csrf, BUNDLE, dry_run=True)
    assert r.status_code == status, r.text
    if status == 403:
        assert audit(services)[-1] == ("import.fhir", "denied")
        assert counts(services)["Patient"] == 0


def test_a_body_over_the_size_limit_is_refused_before_it_is_read(login, services):
    c, csrf = login("admin")
    big = copy.deepcopy(BUNDLE)
    big["entry"][0]["resource"]["text"] = {"status": "generated",
                                           "div": "<div>" + "x" * 3_000_000 + "</div>"}
    assert post(c, csrf, big).status_code == 413
    assert counts(services)["Patient"] == 0


def test_the_command_line_imports_as_a_named_user_and_reports_as_json(services, users, tmp_path,
                                                                      capsys):
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(BUNDLE), encoding="utf-8")
    args = ["import", "fhir", str(path), "--as", "prescriber", "--json"]
    assert main([*args, "--dry-run"], environ=env(services)) == 0
    assert counts(services)["Patient"] == 0
    assert main(args, environ=env(services)) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1])["counts"]["created"] == 10
    with services.db.transaction() as s:
        who = s.execute(select(AuditEvent.username).where(AuditEvent.action == "import.fhir",
                                                          AuditEvent.outcome == "ok")).scalar()
    assert who == "prescriber"
    # a nurse may not import: permission denied, exit 1 (docs/cli.md, Scripting the CLI)
    assert main(["import", "fhir", str(path), "--as", "nurse"], environ=env(services)) == 1


ROSTER = ("mrn,family,given,birth_date,sex,phone,weight_kg,weight_date\n"
          "R-1,Roe,Ann,1970-01-02,female,+1 555 0101,70.5,2026-10-01\n"
          "R-2,Poe,Bob,1981-05-06,male,,,\n"
          "r-1,Roe-Smith,Ann,1970-01-02,female,+1 555 0101,,\n")


def test_a_roster_creates_patients_and_a_repeated_mrn_amends(services, users, tmp_path, capsys):
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER, encoding="utf-8")
    assert main(["import", "roster", str(path), "--as", "admin", "--json"],
                environ=env(services)) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [e["action"] for e in report["entries"]] == ["created", "created", "created",
                                                        "amended"]
    assert counts(services)["Patient"] == 2 and counts(services)["PatientWeight"] == 1


@pytest.mark.parametrize("row, column", [
    ("R-9,=HYPERLINK(\"http://x\"),Ann,1970-01-02,female,,,", "family"),
    ("R-9,Roe,@SUM(A1),1970-01-02,female,,,", "given"),
    ("R-9,Roe,Ann,١٩٧٠-٠١-٠٢,female,,,", "birth_date"),
    ("R-9,Roe,Ann,1970-01-02,female,,٧٠,", "weight_kg"),
    ("R-9,Roe,Ann,1970-01-02,female,,180 lb,", "weight_kg"),
])
def test_a_hostile_roster_row_is_refused_by_row_and_column_and_nothing_is_written(
        services, users, tmp_path, capsys, row, column):
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER + row + "\n", encoding="utf-8")
    code = main(["import", "roster", str(path), "--as", "admin", "--json"], environ=env(services))
    assert code == 2
    error = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["error"]
    assert error["code"] == "invalid_input" and error["exit_code"] == 2
    errors = error["details"]
    assert (errors[0]["entry"], errors[0]["field"]) == (5, column)
    assert counts(services)["Patient"] == 0


def test_a_roster_of_ten_thousand_rows_is_refused_whole(services, users, tmp_path, capsys):
    rows = "".join(f"M-{n},Roe,Ann,1970-01-02,female,,,\n" for n in range(10_000))
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER.splitlines()[0] + "\n" + rows, encoding="utf-8")
    assert main(["import", "roster", str(path), "--as", "admin"], environ=env(services)) == 2
    assert "split the file" in capsys.readouterr().err
    assert counts(services)["Patient"] == 0


@pytest.mark.parametrize("kind", ["collection", "transaction"])
def test_the_clinic_s_own_export_imports_back_as_unchanged(login, services, kind):
    c, csrf = login("prescriber")
    bundle = copy.deepcopy(BUNDLE)  # every entry, the SNOMED-only diagnosis included
    pid = post(c, csrf, bundle).json()["entries"][0]["patient_id"]
    exported = services.outcomes.fhir_bundle(_prescriber(services), pid, kind)
    rows = counts(services)
    r = post(c, csrf, exported)
    assert r.status_code == 200, r.text
    actions = r.json()["counts"]
    assert "created" not in actions and "amended" not in actions, r.json()["entries"]
    assert actions["unchanged"] == 10  # patient, 2 diagnoses, 3 medicines, allergy, weight, 2 forms
    assert counts(services) == rows


def test_a_roster_on_stdin_imports_and_an_unknown_user_is_refused(services, users, monkeypatch,
                                                                  capsys):
    import io

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(ROSTER.encode("utf-8"))))
    assert main(["import", "roster", "-", "--as", "nobody"], environ=env(services)) == 4
    assert "no active user" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(ROSTER.encode("utf-8"))))
    assert main(["import", "roster", "-", "--as", "prescriber"], environ=env(services)) == 0
    assert "imported: amended 1, created 3" in capsys.readouterr().out
    assert counts(services)["Patient"] == 2

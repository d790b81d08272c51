"""Dashboard page, research export, FHIR API and progress report through the web app."""

from __future__ import annotations

import io
import zipfile

import pyarrow.parquet as pq
from kcoutcomes import build_hand_cohort
from kcpdf import pdf_text
from sqlalchemy import select

from ketaclinic.renderers.fhir_codes import validate_bundle
from ketaclinic.store.tables import AuditEvent, Patient

IDENTIFIERS = ("Handcohort", "HA-", "HB-", "555 0100", "hand@example.invalid", "Test Lane",
               "free text")


def _seed(services, users):
    with services.db.transaction() as s:
        ids = build_hand_cohort(s, created_by=users["prescriber"].id)
        mrns = [m for (m,) in s.execute(select(Patient.mrn))]
    return ids, mrns


def _actions(services, prefix):
    with services.db.transaction() as s:
        return [(a.action, a.username, a.patient_id, a.outcome) for a in s.execute(
            select(AuditEvent).where(AuditEvent.action.like(prefix + "%"))
            .order_by(AuditEvent.id)).scalars()]


def test_an_analyst_sees_aggregates_without_names_and_can_filter(services, users, login):
    _ids, mrns = _seed(services, users)
    c, _ = login("analyst")
    r = c.get("/dashboard")
    assert r.status_code == 200
    assert "Response and remission" in r.text and "<svg" in r.text
    assert "1/2 (50 %" in r.text  # ketamine-iv 24 h response
    for needle in IDENTIFIERS + tuple(mrns):
        assert needle not in r.text
    r = c.get("/dashboard", params={"treatment": "esketamine", "instrument": "phq9",
                                    "clinician": str(users["prescriber"].id)})
    assert r.status_code == 200 and "ketamine-iv</td>" not in r.text
    bad = c.get("/dashboard", params={"date_from": "yesterday"})
    assert bad.status_code == 422 and "date_from" in bad.text
    assert ("dashboard.view", "analyst", None, "ok") in _actions(services, "dashboard")


def test_nurses_may_not_open_the_dashboard(services, users, login):
    c, _ = login("nurse")
    assert c.get("/dashboard").status_code == 403


def test_the_deidentified_export_contains_no_identifiers_and_is_audited(services, users, login):
    _ids, mrns = _seed(services, users)
    c, _ = login("analyst")
    for fmt in ("csv", "parquet"):
        r = c.get("/api/exports/deidentified", params={"format": fmt})
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        z = zipfile.ZipFile(io.BytesIO(r.content))
        names = set(z.namelist())
        assert {"data_dictionary.csv", "data_dictionary.md", f"assessments.{fmt}",
                f"patients.{fmt}"} <= names
        blob = b"".join(z.read(n) for n in names)
        if fmt == "parquet":
            table = pq.read_table(io.BytesIO(z.read("patients.parquet")))
            assert "research_id" in table.column_names and "mrn" not in table.column_names
            blob += str(table.to_pylist()).encode()
        for needle in IDENTIFIERS + tuple(mrns):
            assert needle.encode() not in blob, needle
    assert c.get("/api/exports/deidentified", params={"format": "xlsx"}).status_code == 422
    rows = _actions(services, "export.deidentified")
    assert [(a, u, o) for a, u, _p, o in rows] == [
        ("export.deidentified", "analyst", "ok"), ("export.deidentified", "analyst", "ok")]
    page = c.get("/exports")
    assert page.status_code == 200 and "Download CSV" in page.text


def test_the_fhir_bundle_is_built_from_the_database_and_validates(services, users, login):
    ids, _ = _seed(services, users)
    c, _ = login("prescriber")
    r = c.get(f"/api/patients/{ids['A']}/fhir")
    assert r.status_code == 200
    bundle = r.json()
    assert validate_bundle(bundle) == []
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds.count("Observation") == 7 and kinds.count("MedicationAdministration") == 6
    assert {"Patient", "Condition", "CarePlan", "Encounter"} <= set(kinds)
    assert ("export.fhir", "prescriber", ids["A"], "ok") in _actions(services, "export.fhir")
    analyst, _ = login("analyst")
    assert analyst.get(f"/api/patients/{ids['A']}/fhir").status_code == 403
    assert analyst.get(f"/patients/{ids['A']}").status_code == 403
    assert c.get("/api/patients/999999/fhir").status_code == 404


def test_the_progress_report_is_a_pdf_for_clinicians_only(services, users, login):
    ids, _ = _seed(services, users)
    c, _ = login("nurse")
    r = c.get(f"/patients/{ids['A']}/report.pdf")
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    assert ("export.progress_report", "nurse", ids["A"], "ok") in _actions(services, "export.")
    analyst, _ = login("analyst")
    assert analyst.get(f"/patients/{ids['A']}/report.pdf").status_code == 403
    page = c.get(f"/patients/{ids['A']}")
    assert f"/patients/{ids['A']}/report.pdf" in page.text


def test_the_progress_report_prints_any_name(services, users, login):
    ids, _ = _seed(services, users)
    with services.db.transaction() as s:
        patient = s.get(Patient, ids["A"])
        patient.family_name, patient.given_name = "Ńowak", "Zoë 张伟"
    c, _ = login("nurse")
    text = pdf_text(c.get(f"/patients/{ids['A']}/report.pdf").content)
    assert "Zoë" in text and "Ńowak" in text and "Zhang Wei (transliterated)" in text
    assert "?" not in "".join(line for line in text.splitlines() if "Patient" in line)

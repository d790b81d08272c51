"""Every read of a patient's data through the API leaves an audit row naming that patient.

Operations come from the OpenAPI schema, so a GET added later under /api/patients/{patient_id}
is checked too.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select

from ketaclinic.store.tables import AuditEvent

PATIENT = {"mrn": "AR-1", "family_name": "Readwell", "given_name": "Ola",
           "birth_date": "1971-02-03", "sex": "female", "weight": "70 kg"}


def _rows_for(services, pid: int) -> int:
    with services.db.transaction() as s:
        return s.execute(select(func.count(AuditEvent.id)).where(
            AuditEvent.patient_id == pid)).scalar_one()


def test_every_patient_get_in_the_api_writes_an_audit_row_for_that_patient(app, login, services):
    c, csrf = login("prescriber")
    r = c.post("/api/patients", json=PATIENT, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    paths = [path for path, ops in app.openapi()["paths"].items()
             if "get" in ops and re.fullmatch(r"/api/patients/\{patient_id\}(/[\w./-]+)?", path)
             and not any(p.get("required") and p.get("in") == "query"
                         for p in ops["get"].get("parameters", []))]
    assert "/api/patients/{patient_id}/courses" in paths
    assert "/api/patients/{patient_id}/sessions" in paths
    unaudited = []
    for path in paths:
        before = _rows_for(services, pid)
        got = c.get(path.replace("{patient_id}", str(pid)))
        if got.status_code == 200 and _rows_for(services, pid) == before:
            unaudited.append(path)
    assert not unaudited, f"reads without an audit row: {unaudited}"

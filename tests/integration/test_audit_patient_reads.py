"""Every read of a patient's data through the API leaves an audit row naming that patient;
so does every list that shows patients (search, worklists, REMS due list, board, schedule),
and every 404 for a patient id (outcome "not_found").

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


def _probe_rows(services, pid: int) -> list[tuple[str, str]]:
    with services.db.transaction() as s:
        return [(e.outcome, e.detail) for e in s.execute(select(AuditEvent).where(
            AuditEvent.patient_id == pid, AuditEvent.outcome == "not_found")).scalars()]


def test_every_patient_get_of_an_id_that_does_not_exist_is_audited_as_not_found(
        app, login, services):
    c, _ = login("prescriber")
    missing = 987654
    paths = [path for path, ops in app.openapi()["paths"].items()
             if "get" in ops and re.fullmatch(r"/api/patients/\{patient_id\}(/[\w./-]+)?", path)
             and not any(p.get("required") and p.get("in") == "query"
                         for p in ops["get"].get("parameters", []))]
    paths += ["/patients/{patient_id}", "/patients/{patient_id}/history"]
    unaudited = []
    for path in paths:
        before = len(_probe_rows(services, missing))
        got = c.get(path.replace("{patient_id}", str(missing)))
        if got.status_code == 404 and len(_probe_rows(services, missing)) == before:
            unaudited.append(path)
    assert not unaudited, f"404 probes without an audit row: {unaudited}"
    rows = _probe_rows(services, missing)
    assert ("not_found", "GET /api/patients/{patient_id}") in rows


def test_every_list_read_audits_each_patient_it_shows(services, users, login, clock):
    import datetime as dt

    import kcchain
    from kcchain import MONDAY

    from ketaclinic.schemas_chair import BookingCreate
    from ketaclinic.store.tables import Patient
    from ketaclinic.store.tables_treatment import TreatmentSession

    pid, _, sid = kcchain.dosed(services, users, clock, "C-1", family="Chair")
    nurse = users["nurse"].actor
    with services.db.transaction() as s:  # a name no page shows by accident
        s.get(Patient, pid).family_name = "Zebulonov"
        later = s.execute(select(TreatmentSession.id).where(
            TreatmentSession.patient_id == pid, TreatmentSession.id != sid)
            .order_by(TreatmentSession.id)).scalars().first()
    chair = services.chair.schedule.chairs(nurse)[0]
    services.chair.schedule.book(nurse, later, BookingCreate(  # on today's board and schedule
        version=kcchain.version(services, later), chair_id=chair.id,
        start=clock.now + dt.timedelta(hours=3), override_reason="test"))
    services.mbc.assessments.record(nurse, pid, "phq9", [0] * 8 + [3])  # item 9: worklist
    clock.advance(minutes=125)
    c, csrf = login("nurse")
    h = {"X-CSRF-Token": csrf}
    c.post(f"/api/sessions/{sid}/vitals", json={"sbp_mmhg": 130, "dbp_mmhg": 82, "hr_bpm": 70,
                                                 "spo2_pct": 98, "rr_per_min": 14}, headers=h)
    c.post(f"/api/sessions/{sid}/ratings", json={"instrument": "moaas", "answers": [5]},
           headers=h)
    r = c.post(f"/api/sessions/{sid}/discharge", headers=h, json={
        "version": kcchain.version(services, sid), "dissociation_resolved": True,
        "respiratory_depression_resolved": True, "responsible_adult_present": True})
    assert r.status_code == 200, r.text  # a REMS form is now due for this patient
    lists = ["/api/patients?q=C-1", "/patients?q=C-1", "/api/alerts", "/alerts",
             "/api/rems/due", "/rems", "/today", f"/schedule?day={MONDAY.isoformat()}",
             f"/schedule?day={MONDAY.isoformat()}&view=week"]
    unaudited = []
    for path in lists:
        before = _rows_for(services, pid)
        got = c.get(path)
        assert got.status_code == 200, (path, got.text[:200])
        shows = "Zebulonov" in got.text or f'"patient_id":{pid}' in got.text.replace(" ", "")
        assert shows, f"{path} does not show the patient: the check would prove nothing"
        if _rows_for(services, pid) == before:
            unaudited.append(path)
    assert not unaudited, f"list reads that do not audit the patients they show: {unaudited}"
    assert services.audit_log.verify().ok  # the multi-row appends keep every chain intact

"""Idempotency keys belong to one user and one operation and answer one request only.

Before: a nurse who sent a prescriber's key with her own patient got the prescriber's patient
back (name, birth date, MRN), unaudited, and her patient was silently not registered.
"""

from __future__ import annotations

import pathlib

import pytest
from kcchain import screen_ok
from kctest import csrf_from
from sqlalchemy import func, select
from test_chair_workflow import _dosed
from test_dosing_service import iv, make_patient

from ketaclinic.schemas_chair import VitalsCreate
from ketaclinic.services.dosing.plan import parse_dose_request
from ketaclinic.services.errors import InvalidInput
from ketaclinic.store.tables import AuditEvent, Patient
from ketaclinic.store.tables_chair import VitalSignRow
from ketaclinic.store.tables_treatment import Assessment

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "ketaclinic"


def _body(mrn: str, given: str) -> dict:
    return {"mrn": mrn, "family_name": "Keyed", "given_name": given,
            "birth_date": "1979-03-02", "sex": "female"}


def _count(services, model) -> int:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def _audit(services, action: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return list(s.execute(select(AuditEvent).where(AuditEvent.action == action)
                              ).scalars())


def test_a_nurse_reusing_a_prescribers_key_registers_her_own_patient(login, services):
    prescriber, p_csrf = login("prescriber")
    nurse, n_csrf = login("nurse")
    first = prescriber.post("/api/patients", json=_body("KEY-1", "Priya"),
                            headers={"X-CSRF-Token": p_csrf, "Idempotency-Key": "shared-1"})
    second = nurse.post("/api/patients", json=_body("KEY-2", "Nora"),
                        headers={"X-CSRF-Token": n_csrf, "Idempotency-Key": "shared-1"})
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json()["given_name"] == "Nora" and second.json()["mrn"] == "KEY-2"
    assert "Priya" not in second.text and "KEY-1" not in second.text
    assert _count(services, Patient) == 2


def test_the_same_key_with_a_different_body_is_refused_with_422_and_audited(login, services):
    c, csrf = login("nurse")
    headers = {"X-CSRF-Token": csrf, "Idempotency-Key": "k-body"}
    assert c.post("/api/patients", json=_body("KEY-3", "Ola"), headers=headers
                  ).status_code == 201
    other = c.post("/api/patients", json=_body("KEY-4", "Una"), headers=headers)
    assert other.status_code == 422 and "different request" in other.json()["detail"]
    assert "Ola" not in other.text and "KEY-3" not in other.text
    assert _count(services, Patient) == 1
    rejected = _audit(services, "patient.create")
    assert [e.outcome for e in rejected] == ["ok", "rejected"]


def test_every_replay_is_audited_as_a_read_of_the_patient(login, services):
    c, csrf = login("nurse")
    headers = {"X-CSRF-Token": csrf, "Idempotency-Key": "k-replay"}
    first = c.post("/api/patients", json=_body("KEY-5", "Rae"), headers=headers)
    again = c.post("/api/patients", json=_body("KEY-5", "Rae"), headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    replays = _audit(services, "patient.create.replay")
    assert [(e.patient_id, e.outcome, e.username) for e in replays] == [
        (first.json()["id"], "replayed", "nurse")]


def test_a_dose_order_key_replays_only_the_same_request(services, users):
    pid = make_patient(services)
    other = make_patient(services, mrn="DOS-2")
    for patient in (pid, other):  # the closed loop: no order without a screening that counts
        screen_ok(services, users, patient, "ketamine-iv")
    pres = users["prescriber"].actor
    a, _ = services.dosing.save(pres, pid, parse_dose_request(iv()), "dose-k")
    b, created = services.dosing.save(pres, pid, parse_dose_request(iv()), "dose-k")
    assert a.id == b.id and not created
    with pytest.raises(InvalidInput, match="different request"):
        services.dosing.save(pres, other, parse_dose_request(iv()), "dose-k")
    with pytest.raises(InvalidInput, match="different request"):
        services.dosing.save(pres, pid, parse_dose_request(iv("0.4")), "dose-k")
    assert [e.patient_id for e in _audit(services, "dose.create.replay")] == [pid]


def test_an_assessment_key_is_per_user(services, users):
    pid = make_patient(services)
    nurse, pres = users["nurse"].actor, users["prescriber"].actor
    answers = [1] * 9
    a, _ = services.mbc.assessments.record(nurse, pid, "phq9", answers, idempotency_key="as-k")
    b, created = services.mbc.assessments.record(pres, pid, "phq9", [2] * 9,
                                             idempotency_key="as-k")
    assert created and a.id != b.id
    assert _count(services, Assessment) == 2
    with pytest.raises(InvalidInput, match="different request"):
        services.mbc.assessments.record(nurse, pid, "phq9", [0] * 9, idempotency_key="as-k")


def test_vitals_keys_are_per_user_and_per_request(services, users, clock):
    _pid, sid = _dosed(services, users, clock)
    nurse, pres = users["nurse"].actor, users["prescriber"].actor
    v1, _, c1 = services.chair.sessions.record_vitals(nurse, sid, VitalsCreate(sbp_mmhg=130),
                                                       "v-k")
    v2, _, c2 = services.chair.sessions.record_vitals(pres, sid, VitalsCreate(sbp_mmhg=140),
                                                       "v-k")
    assert c1 and c2 and v1 != v2
    v3, _, c3 = services.chair.sessions.record_vitals(nurse, sid, VitalsCreate(sbp_mmhg=130),
                                                       "v-k")
    assert (v3, c3) == (v1, False)
    with pytest.raises(InvalidInput, match="different request"):
        services.chair.sessions.record_vitals(nurse, sid, VitalsCreate(sbp_mmhg=150), "v-k")
    with services.db.transaction() as s:
        assert s.execute(select(func.count()).select_from(VitalSignRow).where(
            VitalSignRow.kind == "timed")).scalar_one() == 2


def test_a_rejected_key_changes_nothing_on_the_web_form_either(login, services):
    c, _ = login("nurse")
    page = c.get("/patients/new")
    key = page.text.split('name="idempotency_key" value="')[1].split('"')[0]
    form = _body("KEY-6", "Ida") | {"csrf_token": csrf_from(page.text), "idempotency_key": key}
    assert c.post("/patients/new", data=form, follow_redirects=False).status_code == 303
    r = c.post("/patients/new", data=form | {"mrn": "KEY-7"}, follow_redirects=False)
    assert r.status_code == 422
    assert _count(services, Patient) == 1


def test_only_the_idempotency_module_reads_or_writes_keys():
    """One implementation: a service that queries or adds IdempotencyKey rows itself is a
    second replay logic (issue 17)."""
    offenders = [p.relative_to(SRC).as_posix()
                 for area in ("services", "renderers", "demo") for p in (SRC / area).rglob("*.py")
                 if "IdempotencyKey" in p.read_text(encoding="utf-8")
                 and p.name != "idempotency.py"]
    assert offenders == []
    assert "idempotency_key=" not in (SRC / "services" / "chair" / "session.py").read_text()

"""The closed loop (issue 12) on every backend: screening gates check-in and order signing,
the dose is tied to a signed order of this patient and course, and the ledger follows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import kcchain
import pytest
from kcchain import screen_eligible, sign_order
from sqlalchemy import func, select

from ketaclinic.schemas import MedicationCreate
from ketaclinic.schemas_chair import PredoseVitals
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.dosing.service import DoseBlocked
from ketaclinic.services.errors import InvalidInput, PermissionDenied
from ketaclinic.store.tables import AuditEvent
from ketaclinic.store.tables_chair import DoseRecord, LedgerEntry
from ketaclinic.store.tables_treatment import TreatmentSession


def _patient(services, users, mrn: str, ready: bool = False):  # type: ignore[no-untyped-def]
    """(patient id, course id, first session id) on IV ketamine; unscreened and without an
    order unless ``ready`` (screened eligible, the first order signed)."""
    return kcchain.patient_with_course(services, users, mrn, kcchain.IV, ready=ready,
                                       lot="LOT-IV", family="Loop")


def _ready(services, users, sid, clock):  # type: ignore[no-untyped-def]
    kcchain.check_in(services, users, sid, clock)
    kcchain.predose(services, users, sid, sbp_mmhg=128, dbp_mmhg=80)


def _iv_dose(services, users, sid, clock, **changes):  # type: ignore[no-untyped-def]
    return kcchain.dose(services, users, sid, clock, esketamine=False, lot="LOT-IV", **changes)


def _count(services, model, *where) -> int:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return s.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def _status(services, sid) -> str:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return s.get(TreatmentSession, sid).status


def test_a_patient_with_no_screening_is_not_checked_in(services, users, clock):
    _, _, sid = _patient(services, users, "L-1")
    findings = kcchain.check_in(services, users, sid, clock)
    hard = {f.rule for f in findings if f.level.value == "hard"}
    assert "chain.screening" in hard
    assert _status(services, sid) != "checked-in"


def test_a_review_screening_needs_a_prescribers_audited_sign_off_before_an_order(
        services, users, clock):
    pid, cid, sid = _patient(services, users, "L-2")
    services.patients.add_medication(SYSTEM, pid, MedicationCreate(
        name="Lorazepam", drug_class="benzodiazepine", daily_dose_mg=4))
    screening = screen_eligible(services, users, pid, "ketamine-iv")
    assert screening.decision == "review"
    with pytest.raises(DoseBlocked, match="chain.screening_signoff"):
        sign_order(services, users, pid, cid, esketamine=False)
    with pytest.raises(InvalidInput):  # a nurse-free, reasonless sign-off is refused
        services.dosing.sign_off(users["prescriber"].actor, pid, screening.id, "  ")
    services.dosing.sign_off(users["prescriber"].actor, pid, screening.id,
                             "benzodiazepine taper planned; proceed at 0.5 mg/kg")
    assert sign_order(services, users, pid, cid, esketamine=False).dose_mg == 40
    assert _count(services, AuditEvent, AuditEvent.action == "screening.signoff") == 1
    kcchain.check_in(services, users, sid, clock)
    assert _status(services, sid) == "checked-in"


def test_a_medicine_recorded_after_the_screening_re_opens_it(services, users, clock):
    pid, cid, sid = _patient(services, users, "L-3", ready=True)
    services.patients.add_medication(SYSTEM, pid, MedicationCreate(
        name="Tranylcypromine", drug_class="maoi", daily_dose_mg=30))
    findings = kcchain.check_in(services, users, sid, clock)
    reopened = [f for f in findings if f.rule == "chain.screening_reopened"]
    assert reopened and reopened[0].level.value == "hard"
    assert "tranylcypromine" in reopened[0].message
    assert _status(services, sid) != "checked-in"


@pytest.mark.parametrize(("changes", "needle"), [
    ({"dose_order_id": None}, "no signed dose order"),
    ({"dose_mg": Decimal(1500)}, "does not match the order"),
    ({"dose_mg": Decimal(43)}, "does not match the order"),  # 7.5 % off, IV tolerance 5 %
    ({"rate_ml_per_h": Decimal(600)}, "mL/h programmed does not match"),
    ({"concentration_mg_per_ml": Decimal(10)}, "is not the ordered"),
    ({"order_confirmed": False}, "confirm dose order"),
])
def test_a_dose_that_is_not_the_signed_order_records_nothing(services, users, clock, changes,
                                                            needle):
    pid, cid, sid = _patient(services, users, "L-4", ready=True)
    _ready(services, users, sid, clock)
    with pytest.raises(InvalidInput, match=needle):
        _iv_dose(services, users, sid, clock, **changes)
    assert _count(services, DoseRecord) == 0
    assert _count(services, LedgerEntry, LedgerEntry.kind == "administration") == 0
    assert _status(services, sid) == "checked-in"
    assert _count(services, AuditEvent, AuditEvent.action == "session.dose",
                  AuditEvent.outcome == "refused") == 1


def test_another_patients_order_cannot_be_given(services, users, clock):
    other, other_course, _ = _patient(services, users, "L-5")
    screen_eligible(services, users, other, "ketamine-iv")
    theirs = sign_order(services, users, other, other_course, esketamine=False)
    pid, cid, sid = _patient(services, users, "L-6", ready=True)
    _ready(services, users, sid, clock)
    with pytest.raises(InvalidInput, match="another patient"):
        _iv_dose(services, users, sid, clock, dose_order_id=theirs.id)
    assert _count(services, DoseRecord) == 0


def test_the_signed_order_given_as_ordered_makes_exactly_one_ledger_row(services, users,
                                                                        clock):
    pid, cid, sid = _patient(services, users, "L-7")
    screen_eligible(services, users, pid, "ketamine-iv")
    order = sign_order(services, users, pid, cid, esketamine=False)
    _ready(services, users, sid, clock)
    _iv_dose(services, users, sid, clock, dose_mg=Decimal(41))  # within 5 %
    with services.db.transaction() as s:
        rows = s.execute(select(LedgerEntry).where(LedgerEntry.kind == "administration")
                         ).scalars().all()
        dose = s.execute(select(DoseRecord)).scalar_one()
    assert len(rows) == 1 and rows[0].patient_id == pid and rows[0].lot == "LOT-IV"
    assert rows[0].session_id == sid and rows[0].amount_mg == Decimal(41)
    assert dose.dose_order_id == order.id and dose.rate_ml_per_h == Decimal(60)


def test_a_dose_before_the_pre_dose_bp_or_in_the_future_is_refused(services, users, clock):
    pid, cid, sid = _patient(services, users, "L-8", ready=True)
    kcchain.check_in(services, users, sid, clock)
    with pytest.raises(InvalidInput, match="pre-dose vital signs first"):
        _iv_dose(services, users, sid, clock)
    services.chair.sessions.predose(users["nurse"].actor, sid, PredoseVitals(
        version=kcchain.version(services, sid), sbp_mmhg=128, dbp_mmhg=80))
    with pytest.raises(InvalidInput, match="in the future"):
        _iv_dose(services, users, sid, clock, started_at=clock.now + dt.timedelta(minutes=2))
    with pytest.raises(InvalidInput, match="before the pre-dose BP"):
        _iv_dose(services, users, sid, clock, started_at=clock.now - dt.timedelta(minutes=2))
    assert _count(services, DoseRecord) == 0


def test_the_api_refuses_a_client_sent_screening_tick(services, users, login, clock):
    _, _, sid = _patient(services, users, "L-9")
    c, csrf = login("nurse")
    r = c.post(f"/api/sessions/{sid}/checkin", headers={"X-CSRF-Token": csrf}, json={
        "version": kcchain.version(services, sid), "consent_on_file": True, "screening_valid": True,
        "ride_home_arranged": True})
    assert r.status_code == 422
    assert _status(services, sid) == "planned"


def test_a_verbal_order_is_read_back_given_and_overdue_until_its_prescriber_countersigns(
        services, users, clock):
    pid, cid, sid = _patient(services, users, "L-10")
    screen_eligible(services, users, pid, "ketamine-iv")
    nurse, pres = users["nurse"].actor, users["prescriber"].actor
    req = kcchain.iv_request(cid)
    with pytest.raises(InvalidInput, match="read the order back"):
        services.dosing.take_verbal_order(nurse, pid, kcchain.verbal(req, read_back=False))
    with pytest.raises(InvalidInput, match="name the prescriber"):
        services.dosing.take_verbal_order(nurse, pid, kcchain.verbal(req, "nurse"))
    order = services.dosing.take_verbal_order(nurse, pid, kcchain.verbal(req))
    assert order.status == "verbal" and order.verbal_prescriber_id == users["prescriber"].id
    assert _count(services, AuditEvent, AuditEvent.action == "dose.verbal") == 1
    # Past the countersign hours the chair refuses it, until the prescriber countersigns.
    clock.advance(hours=25)
    _ready(services, users, sid, clock)
    with pytest.raises(InvalidInput, match="not countersigned in time"):
        _iv_dose(services, users, sid, clock)
    with pytest.raises(PermissionDenied):  # nobody but a prescriber countersigns
        services.dosing.countersign(users["admin"].actor, pid, order.id)
    signed = services.dosing.countersign(pres, pid, order.id)
    assert signed.status == "countersigned" and signed.countersigned_at == clock.now
    _iv_dose(services, users, sid, clock)
    assert _count(services, LedgerEntry, LedgerEntry.kind == "administration") == 1
    shown = services.chair.ledger.overview(users["nurse"].actor)["entries"][0]
    assert shown["order"] == {"order_id": order.id, "state": "countersigned"}
    view = services.chair.views.view(users["nurse"].actor, sid)
    assert view["given_order"] == {"order_id": order.id, "state": "countersigned"}

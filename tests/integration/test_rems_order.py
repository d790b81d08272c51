"""The REMS form and its PDF show the order the dose was given on (issue 12 item 2): written or
verbal, the prescriber named, read back, countersigned by/at or overdue; on every backend."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from kcchain import esketamine_request, order_for, screen_eligible, sign_order
from kcpdf import pdf_text

from ketaclinic.schemas import PatientCreate
from ketaclinic.schemas_chair import (
    ChairCreate,
    CourseCreate,
    DoseCreate,
    LeftAgainstAdviceCreate,
    PrecheckCreate,
    PredoseVitals,
    ReceiptCreate,
)
from ketaclinic.store.tables_treatment import TreatmentSession

MONDAY = dt.date(2026, 11, 2)


def _version(services, sid) -> int:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return s.get(TreatmentSession, sid).version


def _left_early(services, users, clock, verbal: bool) -> int:  # type: ignore[no-untyped-def]
    """An esketamine session given on a written or a read-back verbal order, then left
    against advice at 70 minutes (so it has a REMS form); returns the session id."""
    nurse, pres, admin = (users[k].actor for k in ("nurse", "prescriber", "admin"))
    patient, _ = services.patients.create(nurse, PatientCreate(
        mrn="R-1", family_name="Form", given_name="Test", birth_date=dt.date(1980, 5, 1),
        sex="female", weight="70 kg"))
    course = services.chair.courses.create(pres, patient.id, CourseCreate(
        template_id="esketamine_trd", start_date=MONDAY))
    services.chair.schedule.create_chair(admin, ChairCreate(name="Chair A",
                                                            opening_hours="0-4 08:00-18:00"))
    services.chair.ledger.record_receipt(nurse, ReceiptCreate(
        drug="esketamine nasal spray 28 mg device", lot="LOT-R", supplier_name="Supplier",
        supplier_address="1 Road", supplier_dea_number="AB1234563",
        expiry=dt.date(2027, 12, 31), containers=20,
        volume_ml_per_container=Decimal("0.2"), concentration_mg_per_ml=Decimal(140)))
    screen_eligible(services, users, patient.id, "esketamine")
    if verbal:
        services.dosing.take_verbal_order(nurse, patient.id, esketamine_request(course.id),
                                          "prescriber", True)
    else:
        sign_order(services, users, patient.id, course.id, esketamine=True)
    _, sessions, _ = services.chair.courses.get(pres, course.id)
    sid = sessions[0].id
    services.chair.sessions.check_in(nurse, sid, PrecheckCreate(
        version=_version(services, sid), consent_on_file=True, rems_enrolled=True,
        last_food_at=clock.now - dt.timedelta(hours=3),
        last_liquid_at=clock.now - dt.timedelta(hours=1), ride_home_arranged=True))
    services.chair.sessions.predose(nurse, sid, PredoseVitals(
        version=_version(services, sid), sbp_mmhg=128, dbp_mmhg=80, hr_bpm=72, spo2_pct=98,
        rr_per_min=14))
    t0 = clock.now
    clock.advance(minutes=5)
    services.chair.sessions.record_dose(nurse, sid, DoseCreate(
        version=_version(services, sid), dose_mg=Decimal(56), lot="LOT-R", started_at=t0,
        dose_order_id=order_for(services, sid), order_confirmed=True,
        device_times=[t0, t0 + dt.timedelta(minutes=5)]))
    clock.advance(minutes=65)
    services.chair.sessions.leave_against_advice(nurse, sid, LeftAgainstAdviceCreate(
        version=_version(services, sid), statement="taxi waiting; told to stay"))
    return sid


def test_a_written_order_shows_on_the_rems_form_and_pdf_with_its_prescriber(
        services, users, clock):
    sid = _left_early(services, users, clock, verbal=False)
    form, missing, _findings, _row = services.chair.rems.build(users["nurse"].actor, sid)
    assert form.order_kind.startswith("written order ")
    assert form.order_prescriber == "prescriber"
    assert form.order_read_back is None and form.order_countersigned is None
    assert not {"order_kind", "order_read_back", "order_countersigned"} & set(missing)
    text = pdf_text(services.chair.rems.pdf(users["nurse"].actor, sid))
    assert "written order" in text and "Ordering prescriber" in text
    assert "Verbal order countersigned" not in text


def test_a_verbal_order_shows_read_back_then_overdue_then_countersigned_on_the_form_and_pdf(
        services, users, clock):
    sid = _left_early(services, users, clock, verbal=True)
    nurse, pres = users["nurse"].actor, users["prescriber"].actor
    form, _missing, findings, _row = services.chair.rems.build(nurse, sid)
    assert form.order_kind.startswith("verbal order ") and form.order_prescriber == "prescriber"
    assert form.order_read_back is True
    assert form.order_countersigned.startswith("awaiting countersignature")
    text = pdf_text(services.chair.rems.pdf(nurse, sid))
    assert "verbal order" in text and "awaiting countersignature" in text
    assert "Verbal order read back and confirmed?" in text
    assert "rems.verbal_order_overdue" not in [f.rule for f in findings]
    # Past the rule set's countersign hours, uncountersigned: the form says OVERDUE.
    clock.advance(hours=30)
    form, _missing, findings, _row = services.chair.rems.build(nurse, sid)
    assert form.order_countersigned.startswith("OVERDUE")
    assert "rems.verbal_order_overdue" in [f.rule for f in findings]
    assert "OVERDUE" in pdf_text(services.chair.rems.pdf(nurse, sid))
    with services.db.transaction() as s:
        pid = s.get(TreatmentSession, sid).patient_id
    services.dosing.countersign(pres, pid, order_for(services, sid))
    form, _missing, findings, _row = services.chair.rems.build(nurse, sid)
    assert form.order_kind.startswith("verbal order ")
    stamp = f"{clock.now:%Y-%m-%d %H:%M}"
    assert form.order_countersigned == f"by prescriber at {stamp} UTC"
    assert "rems.verbal_order_overdue" not in [f.rule for f in findings]
    text = pdf_text(services.chair.rems.pdf(nurse, sid))
    assert f"by prescriber at {stamp} UTC" in text and "OVERDUE" not in text

"""Test helpers for the closed loop (issue 12), the one home of the chain's set-up: register
patient, facts and diagnosis, screening (and sign-off), course, signed order, chair and stock,
check-in, pre-dose BP, dose.

Everything goes through the services, as a clinic would. A test calls the step it is about
itself and leaves the rest to one call here, with the parameters that matter to it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import select

from ketaclinic.schemas import DiagnosisCreate, PatientCreate
from ketaclinic.schemas_chair import (
    ChairCreate,
    CourseCreate,
    DoseCreate,
    PrecheckCreate,
    PredoseVitals,
    ReceiptCreate,
)
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.dosing.inputs import DoseInput, VerbalOrderInput
from ketaclinic.store.tables_chair import LedgerEntry
from ketaclinic.store.tables_dosing import DoseOrder
from ketaclinic.store.tables_treatment import TreatmentSession

TRIALS = [
    {"drug": "escitalopram", "dose_mg": 20, "weeks": 8, "improvement_pct": 10,
     "current_episode": True},
    {"drug": "venlafaxine", "dose_mg": 225, "weeks": 10, "response": "minimal",
     "current_episode": True},
]
#: every screening question answered (unknown is not negative: an unanswered one is review)
FACTS = {"antidepressant_trials": TRIALS, "episode_duration_months": 18,
         "symptom_severity": "severe", "substance_use_disorder": "none",
         "bp": {"systolic_mmhg": 128, "diastolic_mmhg": 80}, "pregnant": False,
         "breastfeeding": False}
#: the screening document (docs/dosing.md schema) such a patient's facts make, as
#: ``screening_input`` builds it: a man of 46 with recurrent depression, eligible everywhere
SCREENED_DOC = {"age_years": 46, "sex": "male", "conditions": [], "medications": [],
                "diagnoses": [{"code": "F33.2", "label": "Recurrent depressive disorder, severe",
                               "depressive_episode": True, "resolved": False}], **FACTS}
SCREENING_OF = {"esketamine": "esketamine", "esketamine_trd": "esketamine",
                "iv_ketamine": "ketamine-iv", "ketamine-iv": "ketamine-iv"}


def screen_eligible(services, users, patient_id: int, treatment: str):  # type: ignore[no-untyped-def]
    """Record the diagnosis and facts of a TRD patient and screen; returns the screening."""
    services.patients.add_diagnosis(SYSTEM, patient_id, DiagnosisCreate(
        code="F33.2", display="Recurrent depressive disorder, severe"))
    return screen_ok(services, users, patient_id, treatment)


def screen_ok(services, users, patient_id: int, treatment: str):  # type: ignore[no-untyped-def]
    """Record the facts of a TRD patient (diagnosis already on file) and screen."""
    services.dosing.save_facts(users["nurse"].actor, patient_id, FACTS, None)
    return services.dosing.screen(users["prescriber"].actor, patient_id,
                                  SCREENING_OF[treatment])


def esketamine_request(course_id: int | None, dose_mg: int = 56, session_number: int = 1):  # type: ignore[no-untyped-def]
    return DoseInput.model_validate({"route": "intranasal", "phase": "induction",
                               "session_number": str(session_number),
                               "dose_mg": str(dose_mg), "course_id": course_id})


def iv_request(course_id: int | None, mg_per_kg: str = "0.5"):  # type: ignore[no-untyped-def]
    return DoseInput.model_validate({"route": "iv", "mg_per_kg": mg_per_kg, "infusion_min": "40",
                               "concentration_mg_per_ml": "1", "course_id": course_id})


def verbal(request, prescriber: str = "prescriber", read_back: bool = True):  # type: ignore[no-untyped-def]
    """``request`` (a DoseInput) as a verbal order from ``prescriber``, read back or not."""
    return VerbalOrderInput.model_validate(request.model_dump() | {
        "prescriber": prescriber, "read_back_confirmed": read_back})


def sign_order(services, users, patient_id: int, course_id: int | None, esketamine: bool,  # type: ignore[no-untyped-def]
               **extra):
    """A prescriber's signed order for the course; returns the saved DoseRecord."""
    req = esketamine_request(course_id, **extra) if esketamine else iv_request(course_id,
                                                                                **extra)
    record, _ = services.dosing.save(users["prescriber"].actor, patient_id, req)
    return record


def order_for(services, session_id: int) -> int | None:  # type: ignore[no-untyped-def]
    """The latest order of the session's patient and course (None if there is none)."""
    with services.db.transaction() as s:
        row = s.get(TreatmentSession, session_id)
        return s.execute(select(DoseOrder.id).where(
            DoseOrder.patient_id == row.patient_id, DoseOrder.course_id == row.course_id)
            .order_by(DoseOrder.id.desc()).limit(1)).scalar_one_or_none()


def ready_course(services, users, patient_id: int, course_id: int, template: str):  # type: ignore[no-untyped-def]
    """Screen the patient eligible and sign the course's first order (issue 12's chain)."""
    esk = template.startswith("esk")
    screen_eligible(services, users, patient_id, "esketamine" if esk else "ketamine-iv")
    return sign_order(services, users, patient_id, course_id, esk)


# --- the chair end of the chain: patient, course, chair, stock, check-in, BP, dose ---------
#: the test clock starts Monday 2026-11-02 09:00; courses start that day unless told
MONDAY = dt.date(2026, 11, 2)
ESKETAMINE, IV = "esketamine_trd", "iv_ketamine_induction"
#: drug, mL per container, mg/mL of the stock each route is given from
STOCK = {True: ("esketamine nasal spray 28 mg device", "0.2", "140"),
         False: ("ketamine hydrochloride injection 50 mg/mL", "10", "50")}
#: pre-dose vitals within every guide value
PREDOSE = {"sbp_mmhg": 128, "dbp_mmhg": 80, "hr_bpm": 72, "spo2_pct": 98, "rr_per_min": 14}


class Chain(NamedTuple):
    patient_id: int
    course_id: int
    session_id: int


def is_esketamine(template: str) -> bool:
    return template.startswith("esk")


def version(services, session_id: int) -> int:  # type: ignore[no-untyped-def]
    """The session's current version (what every chair step must send)."""
    with services.db.transaction() as s:
        return s.get(TreatmentSession, session_id).version


def open_chair(services, users, name: str = "Chair A",  # type: ignore[no-untyped-def]
               hours: str = "0-4 08:00-18:00"):
    """The clinic's chair: made (by the admin) with the first patient, the same one after."""
    admin = users["admin"].actor
    return (services.chair.schedule.chairs(admin) or
            [services.chair.schedule.create_chair(admin, ChairCreate(name=name,
                                                                     opening_hours=hours))])[0]


def receive(services, users, lot: str, esketamine: bool, containers: int = 20) -> None:  # type: ignore[no-untyped-def]
    """The nurse receives ``lot`` of the route's drug, unless the ledger has it already."""
    with services.db.transaction() as s:
        if s.execute(select(LedgerEntry.id).where(LedgerEntry.lot == lot).limit(1)).first():
            return
    drug, ml, conc = STOCK[esketamine]
    services.chair.ledger.record_receipt(users["nurse"].actor, ReceiptCreate(
        drug=drug, lot=lot, supplier_name="Supplier", supplier_address="1 Road",
        supplier_dea_number="AB1234563", expiry=dt.date(2027, 12, 31), containers=containers,
        volume_ml_per_container=Decimal(ml), concentration_mg_per_ml=Decimal(conc)))


def patient_with_course(services, users, mrn: str, template: str = ESKETAMINE, *,  # type: ignore[no-untyped-def]
                        ready: bool = True, lot: str | None = "LOT-1", family: str = "Chain",
                        given: str = "Test", sex: str = "male", weight: str = "80 kg",
                        start: dt.date = MONDAY, chair: str = "Chair A",
                        hours: str = "0-4 08:00-18:00", by=None) -> Chain:
    """A registered patient (by the nurse, or ``by``) on a course of ``template``, the chair
    open and ``lot`` of the course's drug in stock; ``ready``: screened eligible with the
    course's first order signed (issue 12's chain), else unscreened and without an order."""
    esk = is_esketamine(template)
    patient, _ = services.patients.create(by or users["nurse"].actor, PatientCreate(
        mrn=mrn, family_name=family, given_name=given, birth_date=dt.date(1980, 5, 1),
        sex=sex, weight=weight))
    course = services.chair.courses.create(users["prescriber"].actor, patient.id, CourseCreate(
        template_id=template, start_date=start))
    open_chair(services, users, chair, hours)
    if lot is not None:
        receive(services, users, lot, esk)
    if ready:
        ready_course(services, users, patient.id, course.id, template)
    _, sessions, _ = services.chair.courses.get(users["prescriber"].actor, course.id)
    return Chain(patient.id, course.id, sessions[0].id)


def check_in(services, users, session_id: int, clock, **changes):  # type: ignore[no-untyped-def]
    """The nurse's check-in (consent, REMS, fasted 3 h, no liquid 1 h, a ride home), with
    ``changes``; returns the findings."""
    data = {"version": version(services, session_id), "consent_on_file": True,
            "rems_enrolled": True, "last_food_at": clock.now - dt.timedelta(hours=3),
            "last_liquid_at": clock.now - dt.timedelta(hours=1),
            "ride_home_arranged": True} | changes
    return services.chair.sessions.check_in(users["nurse"].actor, session_id,
                                            PrecheckCreate(**data))


def predose(services, users, session_id: int, **vitals):  # type: ignore[no-untyped-def]
    """The nurse's pre-dose vitals: ``vitals`` if given, else PREDOSE (all within guide)."""
    return services.chair.sessions.predose(users["nurse"].actor, session_id, PredoseVitals(
        version=version(services, session_id), **(vitals or PREDOSE)))


def dose(services, users, session_id: int, clock, esketamine: bool, lot: str = "LOT-1",  # type: ignore[no-untyped-def]
         **changes):
    """The nurse records the signed order as ordered (with ``changes``): esketamine 56 mg,
    two devices 5 minutes apart, recorded after the second (the clock moves on 5 minutes);
    IV 40 mg (80 kg at 0.5 mg/kg) at 1 mg/mL and 60 mL/h, started now."""
    t0 = clock.now
    if esketamine:
        clock.advance(minutes=5)
        data = {"dose_mg": Decimal(56), "device_times": [t0, t0 + dt.timedelta(minutes=5)]}
    else:
        data = {"dose_mg": Decimal(40), "concentration_mg_per_ml": Decimal(1),
                "rate_ml_per_h": Decimal(60)}
    data = {"version": version(services, session_id), "lot": lot, "started_at": t0,
            "dose_order_id": order_for(services, session_id), "order_confirmed": True,
            **data} | changes
    return services.chair.sessions.record_dose(users["nurse"].actor, session_id,
                                               DoseCreate(**data))


def dosed(services, users, clock, mrn: str, template: str = ESKETAMINE,  # type: ignore[no-untyped-def]
          lot: str = "LOT-1", **patient) -> Chain:
    """The whole chain to the dose: a ready patient checked in, pre-dose vitals taken and the
    order given (see ``dose``); ``patient`` goes to patient_with_course."""
    chain = patient_with_course(services, users, mrn, template, lot=lot, **patient)
    check_in(services, users, chain.session_id, clock)
    predose(services, users, chain.session_id)
    dose(services, users, chain.session_id, clock, is_esketamine(template), lot)
    return chain

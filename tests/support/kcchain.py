"""Test helpers for the closed loop (issue 12): an eligible screening and a signed order.

Everything goes through the services, as a clinic would: facts, screening, order.
"""

from __future__ import annotations

from ketaclinic.schemas import DiagnosisCreate
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.dosing.inputs import DoseInput

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


def sign_order(services, users, patient_id: int, course_id: int | None, esketamine: bool,  # type: ignore[no-untyped-def]
               **extra):
    """A prescriber's signed order for the course; returns the saved DoseRecord."""
    req = esketamine_request(course_id, **extra) if esketamine else iv_request(course_id,
                                                                                **extra)
    record, _ = services.dosing.save(users["prescriber"].actor, patient_id, req)
    return record


def order_for(services, session_id: int) -> int | None:  # type: ignore[no-untyped-def]
    """The latest order of the session's patient and course (None if there is none)."""
    from sqlalchemy import select

    from ketaclinic.store.tables_dosing import DoseOrder
    from ketaclinic.store.tables_treatment import TreatmentSession

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

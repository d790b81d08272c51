"""Patient clinical facts for screening, and their assembly with the registry into PatientFacts.

The facts (antidepressant trials, condition flags, substance use, episode, ECT, pregnancy,
breast-feeding, blood pressure) are stored per patient as JSON, validated by the clinical core
(:func:`ketaclinic.clinical.eligibility.patient_from_dict`). Age, sex, diagnoses, medications and
allergies come from the patient registry.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.clinical.age import age_on
from ketaclinic.clinical.eligibility import (
    PatientFacts,
    allergy_counts,
    diagnosis_standing,
    patient_from_dict,
)
from ketaclinic.clinical.rules import ClinicalInputError
from ketaclinic.clinical.rulesets import BUNDLED_IDS, load_bundled_ruleset
from ketaclinic.clinical.screening_checks import allergy_conditions, is_depressive_diagnosis
from ketaclinic.services.errors import InvalidInput
from ketaclinic.store.tables import Patient, PatientAllergy, PatientDiagnosis, PatientMedication
from ketaclinic.store.tables_dosing import PatientClinicalFacts

FACT_KEYS = ("antidepressant_trials", "conditions", "substance_use_disorder",
             "episode_duration_months", "symptom_severity", "ect_used", "pregnant",
             "breastfeeding", "bp")
# Flags with their own form fields, not condition checkboxes.
_SPECIAL_FLAGS = {"pregnancy", "breastfeeding", "substance_use_disorder"}
# Form answers for a yes/no question that may not have been asked (unknown is not negative).
ANSWERS = {"": None, "yes": True, "no": False}


def empty_facts() -> dict[str, Any]:
    """Nothing asked yet: pregnancy, breast-feeding, substance use and BP are unknown (review)."""
    return {"antidepressant_trials": [], "conditions": [], "substance_use_disorder": None,
            "episode_duration_months": None, "symptom_severity": None, "ect_used": False,
            "pregnant": None, "breastfeeding": None, "bp": None}


def condition_choices() -> list[tuple[str, str]]:
    """Every condition flag the bundled rule sets know, with its label (for the form)."""
    seen: dict[str, str] = {}
    for rid in BUNDLED_IDS:
        for ci in load_bundled_ruleset(rid).contraindications:
            if ci.condition not in _SPECIAL_FLAGS:
                seen.setdefault(ci.condition, ci.label)
    return sorted(seen.items(), key=lambda kv: kv[1].lower())


def validate_facts(facts: dict[str, Any]) -> dict[str, Any]:
    """Check a facts document with the clinical core; return it normalised (known keys only)."""
    if not isinstance(facts, dict):
        raise InvalidInput("clinical facts must be an object")
    unknown = sorted(set(facts) - set(FACT_KEYS))
    if unknown:
        raise InvalidInput(f"unknown field(s) {', '.join(unknown)}")
    doc = empty_facts() | facts
    doc["conditions"] = sorted({str(c).strip().lower() for c in doc.get("conditions") or []
                                if str(c).strip()})
    try:
        patient_from_dict({"age_years": 40, **doc})
    except ClinicalInputError as exc:
        raise InvalidInput(" ".join(str(exc).split())) from exc
    return doc


def load_facts(s: Session, patient_id: int) -> tuple[dict[str, Any], int | None]:
    row = s.execute(select(PatientClinicalFacts).where(
        PatientClinicalFacts.patient_id == patient_id)).scalar_one_or_none()
    if row is None:
        return empty_facts(), None
    return empty_facts() | json.loads(row.facts_json), row.version




def screening_input(s: Session, patient: Patient, today: dt.date) -> dict[str, Any]:
    """The screening JSON (docs/dosing.md schema) for a patient: registry + stored facts."""
    facts, _ = load_facts(s, patient.id)
    diagnoses = [(d, standing) for d in s.execute(select(PatientDiagnosis).where(
        PatientDiagnosis.patient_id == patient.id).order_by(PatientDiagnosis.id)).scalars()
        if (standing := diagnosis_standing(d.active, d.inactive_reason)) is not None]
    meds = s.execute(select(PatientMedication).where(
        PatientMedication.patient_id == patient.id, PatientMedication.active.is_(True))
        .order_by(PatientMedication.id)).scalars()
    allergies = [a for a in s.execute(select(PatientAllergy).where(
        PatientAllergy.patient_id == patient.id)).scalars()
        if allergy_counts(a.active, a.inactive_reason)]
    conditions = set(facts["conditions"]) | allergy_conditions(a.substance for a in allergies)
    return {
        "age_years": age_on(patient.birth_date, today),
        "sex": patient.sex if patient.sex in ("female", "male", "other") else "unknown",
        "diagnoses": [{"code": d.code, "label": d.display,
                       "depressive_episode": is_depressive_diagnosis(d.system, d.code, d.display),
                       "resolved": standing == "resolved"} for d, standing in diagnoses],
        "medications": [{"name": m.name, "class": (m.drug_class or "").lower(),
                         "daily_dose_mg": None if m.daily_dose_mg is None
                         else float(m.daily_dose_mg)} for m in meds],
        **{k: facts[k] for k in FACT_KEYS if k != "conditions"},
        "conditions": sorted(conditions),
    }


def patient_facts(doc: dict[str, Any]) -> PatientFacts:
    try:
        return patient_from_dict(doc)
    except ClinicalInputError as exc:
        raise InvalidInput(" ".join(str(exc).split())) from exc


# --------------------------------------------------------------------------- form parsing

RESPONSES = ("", "none", "minimal", "partial", "response", "remission")


def _num(form: dict[str, str], key: str, label: str) -> float | None:
    from ketaclinic.clinical.inputs import parse_number

    text = (form.get(key) or "").strip()
    if not text:
        return None
    try:
        return parse_number(label, text)
    except ClinicalInputError as exc:
        raise InvalidInput(str(exc)) from exc


def _answer(form: dict[str, str], key: str) -> bool | None:
    value = form.get(key) or ""
    if value not in ANSWERS:
        raise InvalidInput(f"{key} must be yes, no or not asked")
    return ANSWERS[value]


def facts_from_form(form: dict[str, str], trial_rows: int) -> dict[str, Any]:
    """Build a facts document from the screening page's form fields."""
    trials = []
    for i in range(trial_rows):
        drug = (form.get(f"trial-{i}-drug") or "").strip()
        if not drug:
            continue
        where = f"trial {i + 1}"
        weeks = _num(form, f"trial-{i}-weeks", f"{where} weeks")
        if weeks is None:
            raise InvalidInput(f"{where} ({drug[:40]}): weeks is required")
        response = form.get(f"trial-{i}-response") or ""
        if response not in RESPONSES:
            raise InvalidInput(f"{where}: unknown response")
        adequate = form.get(f"trial-{i}-adequate") or ""
        trials.append({
            "drug": drug[:80],
            "dose_mg": _num(form, f"trial-{i}-dose", f"{where} dose (mg)"),
            "weeks": weeks,
            "improvement_pct": _num(form, f"trial-{i}-improvement", f"{where} improvement (%)"),
            "response": response or None,
            "current_episode": form.get(f"trial-{i}-current") == "on",
            "augmentation": form.get(f"trial-{i}-augmentation") == "on",
            "adequate_dose": {"yes": True, "no": False}.get(adequate),
        })
    systolic = _num(form, "bp_systolic", "systolic BP (mmHg)")
    diastolic = _num(form, "bp_diastolic", "diastolic BP (mmHg)")
    if (systolic is None) != (diastolic is None):
        raise InvalidInput("blood pressure needs both systolic and diastolic values")
    known = {c for c, _ in condition_choices()}
    return validate_facts({
        "antidepressant_trials": trials,
        "conditions": [c for c in known if form.get(f"cond-{c}") == "on"],
        "substance_use_disorder": form.get("substance_use_disorder") or None,
        "episode_duration_months": _num(form, "episode_duration_months",
                                        "episode duration (months)"),
        "symptom_severity": form.get("symptom_severity") or None,
        "ect_used": form.get("ect_used") == "on",
        "pregnant": _answer(form, "pregnant"),
        "breastfeeding": _answer(form, "breastfeeding"),
        "bp": None if systolic is None else {"systolic_mmhg": systolic,
                                             "diastolic_mmhg": diastolic},
    })

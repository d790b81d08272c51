"""The session at the chair: check-in pre-checks, adverse events and the discharge decision.

Pure functions over plain values; times are passed in. Findings explain every decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from ketaclinic.clinical.discharge import (  # noqa: F401 - the discharge gate lives there
    DischargeDecision,
    DischargeInput,
    evaluate_discharge,
    left_against_advice,
)
from ketaclinic.clinical.rules import Cited, ClinicalInputError, Finding, Grade, Level
from ketaclinic.clinical.session_rules import SessionRules, require_treatment

REMS_ENROLMENT = Cited(True, "bool", "FDA REMS page (NDA 211243): outpatients are enrolled before "
                       "the first treatment", Grade.CONFIRMED)
DEVICE_MG = Cited(28, "mg", "Spravato US label section 2: 28 mg per device", Grade.CONFIRMED)
DEVICE_GAP_MIN = Cited(5, "min", "Spravato US label section 2: wait 5 min between devices",
                       Grade.CONFIRMED)


@dataclass(frozen=True)
class PreCheckInput:
    """What the nurse confirms at check-in (None = not recorded)."""

    treatment: str
    planned_dose_at: datetime
    consent_on_file: bool | None = None
    rems_enrolled: bool | None = None  # esketamine outpatients only
    last_food_at: datetime | None = None
    last_liquid_at: datetime | None = None
    nasal_steroid_or_decongestant_at: datetime | None = None
    uses_nasal_steroid_or_decongestant: bool = False
    ride_home_arranged: bool | None = None
    pregnancy_test_relevant: bool = False
    pregnancy_test_negative_on: date | None = None
    #: the screening gate's finding for this treatment (treatment_chain.check_screening);
    #: None = not looked up, which is a hard stop like a missing screening
    screening: Finding | None = None
    weight_measured_on: date | None = None
    #: the clinic's calendar day of the dose (dates above are clinic days); by default the
    #: date of ``planned_dose_at``, which is only right when that is clinic-local time
    dose_day: date | None = None


def _f(rule: str, level: Level, message: str, cited: Cited | None = None, **values) -> Finding:
    grade = f" (grade {cited.grade.value})" if cited and level is not Level.OK else ""
    return Finding(rule, level, message + grade, cited.source if cited else "", values)


def _check_gap(rule: str, what: str, last: datetime | None, at: datetime, need: Cited) -> Finding:
    if last is None:
        return _f(rule, Level.SOFT, f"time of last {what} not recorded", need)
    gap_min = (at - last).total_seconds() / 60
    if gap_min < need.value:
        return _f(rule, Level.SOFT, f"last {what} {gap_min:.0f} min before dosing; "
                  f"needs at least {need.value} min", need, gap_min=gap_min)
    return _f(rule, Level.OK, f"last {what} {gap_min:.0f} min before dosing", need, gap_min=gap_min)


def _check_nasal(inp: PreCheckInput, need: Cited) -> Finding:
    if not inp.uses_nasal_steroid_or_decongestant:
        return _f("precheck.nasal_timing", Level.OK, "no nasal steroid or decongestant today")
    at = inp.nasal_steroid_or_decongestant_at
    if at is None:
        return _f("precheck.nasal_timing", Level.SOFT, "time of nasal spray not recorded", need)
    gap_min = (inp.planned_dose_at - at).total_seconds() / 60
    if gap_min < need.value:
        return _f("precheck.nasal_timing", Level.SOFT, f"nasal steroid/decongestant {gap_min:.0f} "
                  f"min before dosing; needs at least {need.value} min", need, gap_min=gap_min)
    return _f("precheck.nasal_timing", Level.OK, "nasal spray timing fine", need, gap_min=gap_min)


def _check_dates(inp: PreCheckInput, rules: SessionRules) -> list[Finding]:
    today = inp.dose_day or inp.planned_dose_at.date()
    out = []
    if inp.screening is None:
        out.append(_f("precheck.screening_valid", Level.HARD,
                      "no stored screening was checked: screen the patient before dosing"))
    else:
        out.append(inp.screening)
    weight_days = rules.weight_max_age_days
    if inp.treatment == "iv_ketamine" and (
        inp.weight_measured_on is None
        or (today - inp.weight_measured_on).days > weight_days.value
    ):
        out.append(_f("precheck.weight_fresh", Level.SOFT,
                      f"weight older than {weight_days.value} days or missing: weigh the patient",
                      weight_days, measured_on=str(inp.weight_measured_on)))
    preg_days = rules.pregnancy_test_max_age_days
    if inp.pregnancy_test_relevant and (
        inp.pregnancy_test_negative_on is None
        or (today - inp.pregnancy_test_negative_on).days > preg_days.value
    ):
        out.append(_f("precheck.pregnancy_test", Level.SOFT,
                      f"no negative pregnancy test within {preg_days.value} days",
                      preg_days, tested_on=str(inp.pregnancy_test_negative_on)))
    return out


def check_pre_treatment(inp: PreCheckInput, rules: SessionRules) -> list[Finding]:
    """Check-in pre-checks: consent, fasting, liquids, nasal sprays, ride, pregnancy, screening,
    weight. Returns every check's finding (OK ones included, so the tablet can tick them)."""
    require_treatment(inp.treatment)
    need = rules.pre_checks[inp.treatment]
    out = [
        _f("precheck.consent", Level.OK if inp.consent_on_file else Level.HARD,
           "consent on file" if inp.consent_on_file else "no signed consent on file"),
        _check_gap("precheck.no_food", "food", inp.last_food_at, inp.planned_dose_at,
                   need["no_food_min"]),
        _check_gap("precheck.no_liquids", "liquids", inp.last_liquid_at, inp.planned_dose_at,
                   need["no_liquids_min"]),
    ]
    if inp.treatment == "esketamine":
        out.append(_f("precheck.rems_enrolled", Level.OK if inp.rems_enrolled else Level.HARD,
                      "patient enrolled in the Spravato REMS" if inp.rems_enrolled
                      else "patient not enrolled in the Spravato REMS: no outpatient dose",
                      REMS_ENROLMENT))
    if "nasal_steroid_or_decongestant_min" in need:
        out.append(_check_nasal(inp, need["nasal_steroid_or_decongestant_min"]))
    out.append(_f("precheck.ride_home", Level.OK if inp.ride_home_arranged else Level.SOFT,
                  "ride home arranged" if inp.ride_home_arranged
                  else "no ride home arranged: the patient must not drive until the next day",
                  need["ride_home"]))
    return out + _check_dates(inp, rules)


@dataclass(frozen=True)
class AdverseEvent:
    """An adverse event at the chair with severity and the action taken."""

    code: str
    severity: str
    onset_at: datetime
    action_taken: str
    description: str = ""


def check_adverse_event(event: AdverseEvent, rules: SessionRules) -> list[Finding]:
    """Validate an adverse-event entry and suggest the action; raises on unknown vocabulary."""
    if event.code not in rules.ae_terms:
        raise ClinicalInputError(f"unknown adverse event {event.code!r}")
    if event.severity not in rules.ae_severities:
        raise ClinicalInputError(f"severity must be one of {list(rules.ae_severities)}")
    term = rules.ae_terms[event.code]
    out = []
    if event.code == "other" and not event.description.strip():
        out.append(_f("ae.describe", Level.HARD, "describe the 'other' adverse event"))
    if event.severity != "mild" and not event.action_taken.strip():
        out.append(_f("ae.action_required", Level.HARD,
                      f"{event.severity} {term['label'].lower()}: record the action taken "
                      f"(suggested: {term['action']})", rules.ae_source))
    if event.severity == "serious":
        out.append(_f("ae.serious", Level.INFO,
                      "serious adverse event: report per clinic policy (esketamine: manufacturer "
                      "/ REMS 1-855-382-6022)", rules.ae_source))
    return out or [_f("ae.ok", Level.OK, f"{term['label']} recorded", rules.ae_source,
                      suggested_action=term["action"])]


def blocking(findings: Sequence[Finding]) -> list[Finding]:
    """The findings that stop the workflow (HARD) or need an override (SOFT)."""
    return [f for f in findings if f.level in (Level.HARD, Level.SOFT)]


def check_esketamine_devices(dose_mg: int, device_times: Sequence[datetime]) -> list[Finding]:
    """Device count must match the dose (28 mg per device) and devices be >= 5 min apart."""
    if dose_mg <= 0 or dose_mg % DEVICE_MG.value:
        raise ClinicalInputError(f"esketamine dose must be a multiple of 28 mg, got {dose_mg}")
    out = []
    expected = dose_mg // DEVICE_MG.value
    if len(device_times) != expected:
        out.append(_f("dose.device_count", Level.HARD, f"{dose_mg} mg needs {expected} devices, "
                      f"{len(device_times)} recorded", DEVICE_MG))
    times = sorted(device_times)
    for a, b in zip(times, times[1:], strict=False):
        gap = (b - a).total_seconds() / 60
        if gap < DEVICE_GAP_MIN.value:
            out.append(_f("dose.device_gap", Level.SOFT, f"devices {gap:.0f} min apart; the label "
                          f"says wait {DEVICE_GAP_MIN.value} min", DEVICE_GAP_MIN, gap_min=gap))
    return out

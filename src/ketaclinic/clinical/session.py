"""The session at the chair: check-in pre-checks, adverse events and the discharge decision.

Pure functions over plain values; times are passed in. Findings explain every decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from ketaclinic.clinical.monitoring import VitalSigns, check_vitals
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


@dataclass(frozen=True)
class DischargeInput:
    """The state of the patient at the time of the discharge request."""

    treatment: str
    now: datetime
    first_device_at: datetime | None = None  # esketamine
    infusion_end_at: datetime | None = None  # IV ketamine
    moaas: int | None = None
    rass: int | None = None
    dissociation_resolved: bool | None = None
    respiratory_depression_resolved: bool | None = True
    last_vitals: VitalSigns | None = None
    responsible_adult_present: bool | None = None
    override_reason: str = ""


@dataclass(frozen=True)
class DischargeDecision:
    """Ready to leave, and the findings that explain why or why not."""

    ready: bool
    findings: tuple[Finding, ...] = field(default=())


def _check_time(inp: DischargeInput, rules: SessionRules) -> Finding:
    if inp.treatment == "esketamine":
        need, since, what = (rules.discharge["esketamine_min_after_first_device_min"],
                             inp.first_device_at, "first device")
    else:
        need, since, what = (rules.discharge["iv_min_after_infusion_end_min"],
                             inp.infusion_end_at, "infusion end")
    if since is None:
        return _f("discharge.observation_time", Level.HARD, f"time of {what} not recorded", need)
    elapsed = (inp.now - since).total_seconds() / 60
    if elapsed >= need.value:
        return _f("discharge.observation_time", Level.OK,
                  f"{elapsed:.0f} min since {what}", need, elapsed_min=elapsed)
    if inp.override_reason.strip():
        return _f("discharge.observation_time_overridden", Level.INFO,
                  f"only {elapsed:.0f} of {need.value} min since {what}; overridden: "
                  f"{inp.override_reason.strip()}", need, elapsed_min=elapsed)
    return _f("discharge.observation_time", Level.SOFT,
              f"only {elapsed:.0f} of {need.value} min since {what}: discharge needs an override "
              f"with a reason", need, elapsed_min=elapsed, earliest=str(
                  since + timedelta(minutes=need.value)))


def _check_state(inp: DischargeInput, rules: SessionRules) -> list[Finding]:
    out = []
    moaas_need, rass_need = rules.discharge["moaas_required"], rules.discharge["rass_required"]
    if inp.moaas is not None:
        ok = inp.moaas >= moaas_need.value
        out.append(_f("discharge.sedation", Level.OK if ok else Level.HARD,
                      f"MOAA/S {inp.moaas} (needs {moaas_need.value})", moaas_need))
    elif inp.rass is not None:
        ok = inp.rass == rass_need.value
        out.append(_f("discharge.sedation", Level.OK if ok else Level.HARD,
                      f"RASS {inp.rass} (needs {rass_need.value})", rass_need))
    else:
        out.append(_f("discharge.sedation", Level.HARD, "no sedation rating (MOAA/S or RASS)"))
    for rule, value, what in (
        ("discharge.dissociation", inp.dissociation_resolved, "dissociation resolved"),
        ("discharge.respiratory", inp.respiratory_depression_resolved,
         "respiratory depression resolved"),
        ("discharge.responsible_adult", inp.responsible_adult_present,
         "responsible adult present / transport arranged"),
    ):
        out.append(_f(rule, Level.OK if value else Level.HARD,
                      what if value else f"not confirmed: {what}"))
    return out


def _check_last_vitals(inp: DischargeInput, rules: SessionRules) -> list[Finding]:
    if inp.last_vitals is None:
        return [_f("discharge.vitals", Level.HARD, "no vitals before discharge")]
    alerts = check_vitals(inp.last_vitals, inp.treatment, rules)
    if alerts:
        return [Finding("discharge.vitals", Level.HARD,
                        "last vitals not acceptable: " + "; ".join(a.message for a in alerts),
                        rules.vital_thresholds_source.source)]
    return [_f("discharge.vitals", Level.OK, "last vitals acceptable")]


def evaluate_discharge(inp: DischargeInput, rules: SessionRules) -> DischargeDecision:
    """Discharge checklist. Ready only when no finding is HARD or SOFT.

    For esketamine, discharge before 120 min after the first device is blocked unless
    ``override_reason`` is given (label and REMS, C); sedation and dissociation must have
    resolved, vitals must be acceptable and a responsible adult present.
    """
    require_treatment(inp.treatment)
    findings = [_check_time(inp, rules), *_check_state(inp, rules), *_check_last_vitals(inp, rules)]
    ready = not any(f.level in (Level.HARD, Level.SOFT) for f in findings)
    return DischargeDecision(ready, tuple(findings))


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

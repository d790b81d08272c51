"""Spravato REMS Patient Monitoring Form: a pure mapping from the session record.

Fields follow the form text (11/2021, newer version adds opioids) as summarised in the shared
clinical reference, protocols.md section 2 (C). The form is due after *every* outpatient
treatment, within 7 days (FDA REMS page; spravatorems.com, C).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta
from typing import Any

from ketaclinic.clinical.rules import Cited, ClinicalInputError, Finding, Grade, Level

SOURCE = ("Spravato REMS Patient Monitoring Form (form text 11/2021; spravatorems.com; "
          "FDA REMS page)")
SUBMIT_WITHIN_DAYS = Cited(7, "d", "FDA REMS page (NDA 211243); spravatorems.com: submit within 7 "
                           "days of each outpatient treatment", Grade.CONFIRMED)
MIN_MONITORING_MIN = Cited(120, "min", "Spravato US label and REMS: monitor at least 2 h",
                           Grade.CONFIRMED)
BP_AT_40_WINDOW_MIN = Cited(10, "min", "clinic policy: a BP within 10 min of minute 40 counts as "
                            "the 40-minute BP", Grade.UNCONFIRMED)
DEADLINE_WARN_DAYS = Cited(2, "d", "project default: a form is 'approaching' its deadline when "
                           "2 days or fewer are left (the rems.deadline notification)",
                           Grade.UNCONFIRMED)
CONCOMITANT = ("benzodiazepines", "non_benzo_sedative_hypnotics", "psychostimulants", "maois",
               "opioids")


@dataclass(frozen=True)
class BpReading:
    taken_at: datetime
    sbp_mmhg: int
    dbp_mmhg: int


@dataclass(frozen=True)
class RemsOrder:
    """The dose order the session was given on, for the clinic's copy of the form: a
    prescriber's written (signed) order or a read-back verbal/telephone order."""

    order_id: int
    verbal: bool
    prescriber: str
    read_back_confirmed: bool | None = None
    countersigned_by: str | None = None
    countersigned_at: datetime | None = None
    countersign_due: datetime | None = None
    overdue: bool = False  # a verbal order past its countersign hours, not countersigned


@dataclass(frozen=True)
class RemsSessionRecord:
    """The plain session record the form is filled from (None = not recorded)."""

    patient_name: str | None = None
    patient_dob: date | None = None
    patient_sex: str | None = None
    first_treatment: bool | None = None
    rems_enrolled: bool | None = None
    concomitant: Mapping[str, bool] | None = None
    provider_name: str | None = None
    provider_phone: str | None = None
    provider_email: str | None = None
    setting_name: str | None = None
    setting_address: str | None = None
    dose_mg: int | None = None
    lot_numbers: tuple[str, ...] = ()
    first_device_at: datetime | None = None
    monitoring_end_at: datetime | None = None
    ready_without_2h_rule_at: datetime | None = None
    bp_readings: tuple[BpReading, ...] = ()
    vitals_acceptable_before_dosing: bool | None = None
    vitals_acceptable_before_completion: bool | None = None
    sedation: bool | None = None
    dissociation: bool | None = None
    respiratory_depression: bool | None = None
    #: the patient left before the discharge criteria were met: never "ready"
    left_against_advice: bool | None = None
    left_against_advice_note: str | None = None  # who, when, what was said
    #: the clinic's calendar day of the treatment; by default the date of ``first_device_at``,
    #: which is only right when that is clinic-local time
    treatment_date: date | None = None
    #: the order the dose was given on (None = no order on record)
    order: RemsOrder | None = None


@dataclass(frozen=True)
class RemsMonitoringForm:
    """Every field of the Patient Monitoring Form (None = missing)."""

    patient_name: str | None
    patient_dob: date | None
    patient_sex: str | None
    first_treatment: bool | None
    rems_enrolled: bool | None
    benzodiazepines: bool | None
    non_benzo_sedative_hypnotics: bool | None
    psychostimulants: bool | None
    maois: bool | None
    opioids: bool | None
    provider_name: str | None
    provider_phone: str | None
    provider_email: str | None
    setting_name: str | None
    setting_address: str | None
    treatment_date: date | None
    dose: str | None  # "56", "84" or "other"
    dose_other_mg: int | None
    lot_numbers: str | None
    minutes_first_device_to_end_of_monitoring: int | None
    minutes_until_ready_without_2h_rule: int | None
    vitals_acceptable_before_dosing: bool | None
    vitals_acceptable_before_completion: bool | None
    bp_before_dosing: str | None
    bp_at_40_min: str | None
    bp_before_completion: str | None
    sedation: bool | None
    dissociation: bool | None
    respiratory_depression: bool | None
    left_against_advice: bool | None
    left_against_advice_note: str | None
    # the clinic's record of the order (not a field of the official form; never "missing")
    order_kind: str | None = None  # "written order N" | "verbal order N"
    order_prescriber: str | None = None
    order_read_back: bool | None = None  # verbal orders only
    order_countersigned: str | None = None  # verbal orders only: by/at, or OVERDUE


#: fields of the clinic's record, not of the official form
CLINIC_FIELDS = ("order_kind", "order_prescriber", "order_read_back", "order_countersigned")

FIELD_LABELS: dict[str, str] = {
    "patient_name": "Patient name", "patient_dob": "Date of birth", "patient_sex": "Sex",
    "first_treatment": "First treatment?", "rems_enrolled": "Patient enrolled in the REMS?",
    "benzodiazepines": "Benzodiazepines",
    "non_benzo_sedative_hypnotics": "Non-benzodiazepine sedative hypnotics",
    "psychostimulants": "Psychostimulants", "maois": "MAOIs", "opioids": "Opioids",
    "provider_name": "Monitoring provider name", "provider_phone": "Provider phone",
    "provider_email": "Provider email", "setting_name": "Healthcare setting name",
    "setting_address": "Healthcare setting address", "treatment_date": "Treatment date",
    "dose": "Dose (mg)", "dose_other_mg": "Other dose (mg)", "lot_numbers": "Lot number(s)",
    "minutes_first_device_to_end_of_monitoring":
        "Minutes from first device to end of monitoring",
    "minutes_until_ready_without_2h_rule":
        "Minutes until ready to leave without the 2-hour rule",
    "vitals_acceptable_before_dosing": "Vital signs acceptable before dosing?",
    "vitals_acceptable_before_completion": "Vital signs acceptable before completion?",
    "bp_before_dosing": "BP before dosing (mmHg)", "bp_at_40_min": "BP at ~40 min (mmHg)",
    "bp_before_completion": "BP before completion (mmHg)",
    "sedation": "Sedation observed?", "dissociation": "Dissociation observed?",
    "respiratory_depression": "Respiratory depression observed?",
    "left_against_advice": "Left before monitoring was complete (against advice)?",
    "left_against_advice_note": "Left against advice: who recorded it, when, what was said",
    "order_kind": "Dose order", "order_prescriber": "Ordering prescriber",
    "order_read_back": "Verbal order read back and confirmed?",
    "order_countersigned": "Verbal order countersigned",
}


def _minutes(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    if end < start:
        raise ClinicalInputError("monitoring cannot end before the first device")
    return int((end - start).total_seconds() // 60)


def _fmt(r: BpReading | None) -> str | None:
    return None if r is None else f"{r.sbp_mmhg}/{r.dbp_mmhg}"


def _pick_bps(rec: RemsSessionRecord) -> tuple[BpReading | None, ...]:
    if rec.first_device_at is None:
        return None, None, None
    ordered = sorted(rec.bp_readings, key=lambda r: r.taken_at)
    before = [r for r in ordered if r.taken_at <= rec.first_device_at]
    t40 = rec.first_device_at + timedelta(minutes=40)
    window = timedelta(minutes=BP_AT_40_WINDOW_MIN.value)
    near40 = [r for r in ordered if abs(r.taken_at - t40) <= window]
    at40 = min(near40, key=lambda r: abs(r.taken_at - t40)) if near40 else None
    end = rec.monitoring_end_at
    after = [r for r in ordered if r.taken_at > rec.first_device_at and r is not at40
             and (end is None or r.taken_at <= end)]
    return (before[-1] if before else None, at40, after[-1] if after else None)


def _countersigned(o: RemsOrder) -> str:
    if o.countersigned_at is not None:
        return f"by {o.countersigned_by or 'unknown'} at {o.countersigned_at:%Y-%m-%d %H:%M} UTC"
    due = f"{o.countersign_due:%Y-%m-%d %H:%M} UTC" if o.countersign_due else "unknown"
    if o.overdue:
        return f"OVERDUE: not countersigned (was due {due})"
    return f"awaiting countersignature (due {due})"


def with_order(form: RemsMonitoringForm, o: RemsOrder | None) -> RemsMonitoringForm:
    """The form with the clinic's record of the order: written or verbal, prescriber, read
    back, countersigned by/at or overdue (verbal only)."""
    if o is None:
        return form
    return replace(form, order_kind=f"{'verbal' if o.verbal else 'written'} order {o.order_id}",
                   order_prescriber=o.prescriber,
                   order_read_back=o.read_back_confirmed if o.verbal else None,
                   order_countersigned=_countersigned(o) if o.verbal else None)


def _dose(dose_mg: int | None) -> tuple[str | None, int | None]:
    if dose_mg is None:
        return None, None
    if dose_mg <= 0:
        raise ClinicalInputError("dose must be positive")
    return (str(dose_mg), None) if dose_mg in (56, 84) else ("other", dose_mg)


def build_rems_form(rec: RemsSessionRecord) -> RemsMonitoringForm:
    """Fill the Patient Monitoring Form from a session record; unknowns stay None."""
    concomitant = dict(rec.concomitant) if rec.concomitant is not None else {}
    unknown = set(concomitant) - set(CONCOMITANT)
    if unknown:
        raise ClinicalInputError(f"unknown concomitant medicine groups {sorted(unknown)}")
    before, at40, completion = _pick_bps(rec)
    dose, other = _dose(rec.dose_mg)
    groups: dict[str, Any] = {name: concomitant.get(name) for name in CONCOMITANT}
    return with_order(RemsMonitoringForm(
        patient_name=rec.patient_name, patient_dob=rec.patient_dob, patient_sex=rec.patient_sex,
        first_treatment=rec.first_treatment, rems_enrolled=rec.rems_enrolled,
        **groups,
        provider_name=rec.provider_name, provider_phone=rec.provider_phone,
        provider_email=rec.provider_email, setting_name=rec.setting_name,
        setting_address=rec.setting_address,
        treatment_date=rec.treatment_date or (rec.first_device_at.date() if rec.first_device_at
                                              else None),
        dose=dose, dose_other_mg=other,
        lot_numbers=", ".join(rec.lot_numbers) or None,
        minutes_first_device_to_end_of_monitoring=_minutes(rec.first_device_at,
                                                           rec.monitoring_end_at),
        minutes_until_ready_without_2h_rule=None if rec.left_against_advice else _minutes(
            rec.first_device_at, rec.ready_without_2h_rule_at),
        vitals_acceptable_before_dosing=rec.vitals_acceptable_before_dosing,
        vitals_acceptable_before_completion=rec.vitals_acceptable_before_completion,
        bp_before_dosing=_fmt(before), bp_at_40_min=_fmt(at40),
        bp_before_completion=_fmt(completion),
        sedation=rec.sedation, dissociation=rec.dissociation,
        respiratory_depression=rec.respiratory_depression,
        left_against_advice=rec.left_against_advice,
        left_against_advice_note=(rec.left_against_advice_note or None)
        if rec.left_against_advice else None,
    ), rec.order)


def missing_fields(form: RemsMonitoringForm) -> list[str]:
    """Names of required fields left empty (``dose_other_mg`` only when the dose is 'other')."""
    out = []
    for f in fields(form):
        if f.name == "dose_other_mg" and form.dose != "other":
            continue
        if f.name in CLINIC_FIELDS:
            continue  # the clinic's record, not the official form
        if f.name == "left_against_advice_note" and not form.left_against_advice:
            continue
        if f.name == "minutes_until_ready_without_2h_rule" and form.left_against_advice:
            continue  # never ready: the patient left against advice
        if getattr(form, f.name) in (None, ""):
            out.append(f.name)
    return out


def check_rems_form(form: RemsMonitoringForm) -> list[Finding]:
    """HARD findings for missing fields; SOFT if monitoring was shorter than 120 min."""
    out = [Finding("rems.missing_field", Level.HARD, f"REMS form field missing: {FIELD_LABELS[n]}",
                   SOURCE, {"field": n}) for n in missing_fields(form)]
    if (form.order_countersigned or "").startswith("OVERDUE"):
        out.append(Finding("rems.verbal_order_overdue", Level.SOFT, f"the {form.order_kind} was "
                           "not countersigned in time: ask the prescriber to countersign",
                           SOURCE, {"order": form.order_kind}))
    minutes = form.minutes_first_device_to_end_of_monitoring
    if form.left_against_advice:
        out.append(Finding("rems.left_against_advice", Level.SOFT,
                           f"the patient left against advice after {minutes} min: report it "
                           "on the form", MIN_MONITORING_MIN.source, {"minutes": minutes}))
    if minutes is not None and minutes < MIN_MONITORING_MIN.value:
        out.append(Finding("rems.monitoring_short", Level.SOFT,
                           f"monitoring lasted {minutes} min, less than {MIN_MONITORING_MIN.value}",
                           MIN_MONITORING_MIN.source, {"minutes": minutes}))
    return out


def form_due_date(treatment_date: date) -> date:
    """Last day to submit the form: treatment date + 7 days.

    Examples
    --------
    >>> form_due_date(date(2026, 11, 2))
    datetime.date(2026, 11, 9)
    """
    return treatment_date + timedelta(days=int(SUBMIT_WITHIN_DAYS.value))


def deadline_state(due_on: date, today: date) -> str | None:
    """Where an unsubmitted form stands against its deadline: "overdue" after its last day,
    "approaching" when ``DEADLINE_WARN_DAYS`` days or fewer are left, otherwise None.

    Examples
    --------
    >>> deadline_state(date(2026, 11, 9), date(2026, 11, 6)) is None
    True
    >>> deadline_state(date(2026, 11, 9), date(2026, 11, 7))
    'approaching'
    >>> deadline_state(date(2026, 11, 9), date(2026, 11, 9))
    'approaching'
    >>> deadline_state(date(2026, 11, 9), date(2026, 11, 10))
    'overdue'
    """
    left = (due_on - today).days
    if left < 0:
        return "overdue"
    return "approaching" if left <= DEADLINE_WARN_DAYS.value else None


@dataclass(frozen=True)
class RemsTrackerItem:
    form_id: str
    treatment_date: date
    submitted_on: date | None = None


@dataclass(frozen=True)
class DueForm:
    form_id: str
    treatment_date: date
    due_on: date
    days_left: int
    overdue: bool


def forms_due_within(
    forms: Iterable[RemsTrackerItem], today: date, days: int = 7
) -> list[DueForm]:
    """Unsubmitted forms due within ``days`` of ``today`` (overdue ones included), by due date."""
    out = []
    for item in forms:
        if item.submitted_on is not None:
            continue
        due = form_due_date(item.treatment_date)
        left = (due - today).days
        if left <= days:
            out.append(DueForm(item.form_id, item.treatment_date, due, left, left < 0))
    return sorted(out, key=lambda d: (d.due_on, d.form_id))


def observed_sedation(ratings: Iterable[tuple[str, float | None]], adverse_events: set[str],
                      moaas_awake: int, rass_calm: int) -> bool:
    """Sedation during the session for the form: a MOAA/S below ``moaas_awake`` or a RASS
    below ``rass_calm`` (the discharge rule set's values), or a sedation adverse event."""
    for instrument, total in ratings:
        if total is None:
            continue
        if (instrument == "moaas" and total < moaas_awake) or (
                instrument == "rass" and total < rass_calm):
            return True
    return "sedation" in adverse_events


def observed_dissociation(ratings: Iterable[tuple[str, float | None]],
                          adverse_events: set[str]) -> bool:
    """Dissociation for the form: any CADSS rating above 0 in the session, or a dissociation
    adverse event.

    >>> observed_dissociation([("cadss-6", 0.0), ("moaas", 5.0)], set())
    False
    >>> observed_dissociation([("cadss-6", 2.0)], set())
    True
    >>> observed_dissociation([], {"dissociation"})
    True
    """
    return any(instrument.startswith("cadss") and (total or 0) > 0
               for instrument, total in ratings) or "dissociation" in adverse_events


def observed_respiratory_depression(vital_alerts: Iterable[Finding],
                                    adverse_events: set[str]) -> bool:
    """Respiratory depression for the form: an SpO2 or respiratory-rate alert of the chair's
    vital-sign thresholds, or a respiratory-depression adverse event."""
    return "respiratory_depression" in adverse_events or any(
        f.rule in ("vitals.spo2_pct_low", "vitals.rr_per_min_low") for f in vital_alerts)

"""Cumulative ketamine/esketamine exposure per patient and due long-term safety screens.

protocols.md §8: ketamine cystitis (urinary symptoms: frequency, urgency, dysuria, nocturia,
haematuria, suprapubic pain; C) and cognition (label warning C; misuse data S) need monitoring,
but no published screening schedule was found. The triggers below are therefore grade-U defaults
(``data/outcomes/outcome_config.json``) that need medical-director confirmation:

* a screen is due when none has been recorded within ``interval_days`` of ``as_of`` (counting
  from the first dose when there was never a screen), or
* when the cumulative dose since the last screen reaches ``exposure_mg_since_last``.

Milligrams of racemic ketamine and esketamine are summed as recorded, without any potency
conversion (none is cited); the per-drug totals are reported separately.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from ketaclinic.clinical.outcome_config import load_outcome_config
from ketaclinic.clinical.rules import Cited, ClinicalInputError, Finding, Grade, Level

DRUGS = ("ketamine", "esketamine")


@dataclass(frozen=True)
class DoseExposure:
    """One administered dose."""

    patient_id: str
    drug: str  # "ketamine" | "esketamine"
    dose_mg: float
    given_on: date


@dataclass(frozen=True)
class ScreeningRecord:
    """A completed safety screen."""

    patient_id: str
    kind: str  # "urinary" | "cognition"
    done_on: date


@dataclass(frozen=True)
class ScreeningRule:
    kind: str
    title: str
    interval_days: Cited
    exposure_mg_since_last: Cited


@dataclass(frozen=True)
class PatientExposure:
    patient_id: str
    sessions: int
    total_mg: float
    mg_by_drug: dict[str, float]
    first_dose: date
    last_dose: date
    findings: tuple[Finding, ...]

    @property
    def due(self) -> tuple[str, ...]:
        """Kinds of screening that are due (e.g. ``("urinary",)``)."""
        return tuple(
            f.values["kind"] for f in self.findings if f.level is not Level.OK
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "patient_id": self.patient_id,
            "sessions": self.sessions,
            "total_mg": self.total_mg,
            "mg_by_drug": dict(self.mg_by_drug),
            "first_dose": self.first_dose.isoformat(),
            "last_dose": self.last_dose.isoformat(),
            "due": list(self.due),
            "findings": [f.as_dict() for f in self.findings],
        }


def load_screening_rules(config: dict[str, Any] | None = None) -> tuple[ScreeningRule, ...]:
    """Screening rules from ``config`` (default: the bundled outcome configuration)."""
    if config is None:
        config = load_outcome_config()
    rules = []
    for d in config["screening"]:
        grade = Grade(d.get("grade", "U"))
        rules.append(
            ScreeningRule(
                d["kind"], d.get("title", d["kind"]),
                Cited(int(d["interval_days"]), "d", d["source"], grade),
                Cited(float(d["exposure_mg_since_last"]), "mg", d["source"], grade),
            )
        )
    return tuple(rules)


def _check_screen(
    rule: ScreeningRule,
    doses: list[DoseExposure],
    screens: list[date],
    as_of: date,
) -> Finding:
    last = max((d for d in screens if d <= as_of), default=None)
    mg_since = sum(d.dose_mg for d in doses if last is None or d.given_on > last)
    return assess_screen(rule, doses[0].given_on, last, mg_since, as_of)


def assess_screen(
    rule: ScreeningRule,
    first_dose: date,
    last_screen: date | None,
    mg_since_last_screen: float,
    as_of: date,
) -> Finding:
    """Whether one screen is due, from aggregates (as computed in SQL by the dashboard).

    Parameters
    ----------
    rule : ScreeningRule
    first_dose : date
        The patient's first dose (the clock starts there when there was never a screen).
    last_screen : date or None
        The last screen of this kind on or before ``as_of``.
    mg_since_last_screen : float
        Milligrams given after ``last_screen`` (all doses when there was none), up to ``as_of``.
    as_of : date
    """
    last = last_screen
    since = first_dose if last is None else last
    days = (as_of - since).days
    mg_since = mg_since_last_screen
    values = {
        "kind": rule.kind,
        "last_screen": last.isoformat() if last else None,
        "days_since": days,
        "mg_since_last_screen": mg_since,
        "interval_days": rule.interval_days.value,
        "exposure_mg_since_last": rule.exposure_mg_since_last.value,
        "needs_confirmation": rule.interval_days.needs_confirmation,
    }
    reasons = []
    if days >= rule.interval_days.value:
        ref = "last screen" if last else "first dose"
        reasons.append(f"{days} days since {ref} (≥ {rule.interval_days.value})")
    if mg_since >= rule.exposure_mg_since_last.value:
        reasons.append(
            f"{mg_since:g} mg since "
            f"{'last screen' if last else 'first dose'} (≥ {rule.exposure_mg_since_last.value:g})"
        )
    if reasons:
        return Finding(
            f"{rule.kind}_screen_due", Level.INFO,
            f"{rule.title} due: " + "; ".join(reasons), rule.interval_days.source, values,
        )
    return Finding(
        f"{rule.kind}_screen_due", Level.OK, f"{rule.title} not yet due",
        rule.interval_days.source, values,
    )


def summarise_exposure(
    doses: Iterable[DoseExposure],
    screens: Iterable[ScreeningRecord],
    as_of: date,
    rules: Iterable[ScreeningRule] | None = None,
) -> list[PatientExposure]:
    """Cumulative exposure and screening flags for each patient with at least one dose.

    Doses after ``as_of`` are ignored. Patients are returned sorted by id.
    """
    rules = tuple(rules) if rules is not None else load_screening_rules()
    by_patient: dict[str, list[DoseExposure]] = {}
    for d in doses:
        if d.drug not in DRUGS:
            raise ClinicalInputError(f"unknown drug {d.drug!r}; expected one of {DRUGS}")
        if d.dose_mg < 0:
            raise ClinicalInputError(f"negative dose for patient {d.patient_id!r}")
        if d.given_on <= as_of:
            by_patient.setdefault(d.patient_id, []).append(d)
    screens_by: dict[tuple[str, str], list[date]] = {}
    for s in screens:
        screens_by.setdefault((s.patient_id, s.kind), []).append(s.done_on)

    out = []
    for pid in sorted(by_patient):
        ds = sorted(by_patient[pid], key=lambda d: d.given_on)
        mg = {drug: sum(d.dose_mg for d in ds if d.drug == drug) for drug in DRUGS}
        findings = tuple(
            _check_screen(rule, ds, screens_by.get((pid, rule.kind), []), as_of) for rule in rules
        )
        out.append(
            PatientExposure(
                pid, len(ds), sum(mg.values()), mg, ds[0].given_on, ds[-1].given_on, findings
            )
        )
    return out

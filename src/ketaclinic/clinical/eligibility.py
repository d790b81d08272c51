"""Eligibility screening for IV racemic ketamine or esketamine nasal spray.

Decision: any hard finding -> ``ineligible``; any soft finding -> ``review``; else ``eligible``.
Absolute contraindications, age under the minimum and no depressive-episode diagnosis are hard;
relative contraindications, interacting medicines, BP above the pre-dose gate, fewer adequate
failed trials than the TRD definition and unrecognised condition flags are soft.

Unknown is never negative: a medicine the vocabulary does not know (clinical/medications.py), a
missing pregnancy, breast-feeding or substance-use answer, a missing BP and a trial whose dose
cannot be judged are soft findings that list what is missing. ICD-10 codes set the bipolar and
psychosis findings (data/screening/diagnoses.json). Every finding names its rule, the values
seen and the source; the result records the rule set id@version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from ketaclinic.clinical.inputs import require_finite, require_non_negative, require_positive
from ketaclinic.clinical.medications import Vocabulary, load_bundled_vocabulary
from ketaclinic.clinical.rules import ClinicalInputError, Finding, Level
from ketaclinic.clinical.rulesets import RuleSet, load_bundled_maudsley
from ketaclinic.clinical.screening_checks import (  # noqa: F401 (re-exported)
    check_interactions,
    check_missing,
    could_be_pregnant,
    diagnosis_conditions,
    is_depressive_icd10,
    load_bundled_doses_ref,
    missing_facts,
)
from ketaclinic.clinical.staging import (
    RESPONSE_CATEGORIES,
    SEVERITIES,
    AntidepressantTrial,
    MaudsleyScore,
    TrialAssessment,
    count_adequate_failed_trials,
    score_maudsley,
)

DECISIONS = ("eligible", "review", "ineligible")
SUBSTANCE_USE = ("none", "history", "current")  # None: not asked (review)
SEXES = ("female", "male", "other", "unknown")


@dataclass(frozen=True)
class Diagnosis:
    """A recorded diagnosis. ``resolved``: the condition is over. A resolved diagnosis is still
    history (a past psychotic or manic episode still sets its condition flag) but no longer the
    indication: a resolved depressive episode is not one being treated."""

    code: str
    label: str = ""
    depressive_episode: bool = False
    resolved: bool = False


# Why a recorded diagnosis or allergy was deactivated (the registry's inactive_reason).
DIAGNOSIS_INACTIVE_REASONS = ("resolved", "entered-in-error")
ALLERGY_INACTIVE_REASONS = ("entered-in-error", "refuted")


def diagnosis_standing(active: bool, inactive_reason: str | None) -> str | None:
    """How a recorded diagnosis counts in screening: "active", "resolved" (history: it still
    sets its condition flag, it is not the indication) or None (entered in error: never so).
    An inactive one whose reason is not recorded counts as resolved: unknown is not negative."""
    if active:
        return "active"
    return None if inactive_reason == "entered-in-error" else "resolved"


def allergy_counts(active: bool, inactive_reason: str | None) -> bool:
    """Whether a recorded allergy still counts in screening: not once entered in error or
    refuted; an inactive one whose reason is not recorded still does (unknown is not
    negative)."""
    return active or inactive_reason not in ALLERGY_INACTIVE_REASONS


@dataclass(frozen=True)
class Medication:
    name: str
    drug_class: str = ""
    daily_dose_mg: float | None = None


@dataclass(frozen=True)
class BloodPressure:
    systolic_mmhg: float
    diastolic_mmhg: float


@dataclass(frozen=True)
class PatientFacts:
    """What screening needs to know about a patient (see docs/dosing.md for the JSON form)."""

    age_years: float
    sex: str = "unknown"
    pregnant: bool | None = None  # None: not asked (review when the person could be pregnant)
    breastfeeding: bool | None = None
    diagnoses: tuple[Diagnosis, ...] = ()
    conditions: frozenset[str] = frozenset()
    medications: tuple[Medication, ...] = ()
    substance_use_disorder: str | None = None  # none | history | current; None: not asked
    antidepressant_trials: tuple[AntidepressantTrial, ...] = ()
    ect_used: bool = False
    episode_duration_months: float | None = None
    symptom_severity: str | None = None
    bp: BloodPressure | None = None


@dataclass(frozen=True)
class ScreeningResult:
    decision: str
    findings: tuple[Finding, ...]
    rule_set: str
    treatment: str
    adequate_failed_trials: int
    maudsley: MaudsleyScore | None
    screened_on: date
    expires_on: date
    notes: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "findings": [f.as_dict() for f in self.findings],
            "rule_set": self.rule_set,
            "treatment": self.treatment,
            "adequate_failed_trials": self.adequate_failed_trials,
            "maudsley_score": self.maudsley.total if self.maudsley else None,
            "maudsley": self.maudsley.as_dict() if self.maudsley else None,
            "screened_on": self.screened_on.isoformat(),
            "expires_on": self.expires_on.isoformat(),
        }


# --------------------------------------------------------------------------- rules


def _check_age(p: PatientFacts, rs: RuleSet) -> list[Finding]:
    rule = rs.param("age-min-years")
    level = Level.OK if p.age_years >= rule.value else Level.HARD
    verb = "meets" if level is Level.OK else "is below"
    return [
        Finding(
            "age-minimum",
            level,
            f"Age {p.age_years:g} {verb} the minimum of {rule.value}",
            rule.source,
            {"age_years": p.age_years, "min_years": rule.value},
        )
    ]


def indication_codes(p: PatientFacts) -> list[str]:
    """The codes of the diagnoses that are the indication: depressive episodes not resolved
    (a diagnosis entered in error is not among ``p.diagnoses`` at all)."""
    return [d.code for d in p.diagnoses if not d.resolved
            and (d.depressive_episode or is_depressive_icd10(d.code))]


def _check_diagnosis(p: PatientFacts) -> list[Finding]:
    codes = indication_codes(p)
    if codes:
        return [
            Finding(
                "depressive-episode",
                Level.OK,
                "Depressive-episode diagnosis recorded",
                "Indication (Spravato label; APA 2017 consensus)",
                {"codes": codes},
            )
        ]
    return [
        Finding(
            "depressive-episode",
            Level.HARD,
            "No depressive-episode diagnosis recorded: treatment is indicated for depression only",
            "Indication (Spravato label; APA 2017 consensus)",
            {"diagnoses": [d.code for d in p.diagnoses],
             "resolved": [d.code for d in p.diagnoses if d.resolved]},
        )
    ]


def patient_conditions(p: PatientFacts) -> set[str]:
    """Every condition flag the patient's facts set: the recorded ones, pregnancy,
    breast-feeding, substance use, a psychotic severity and those the diagnoses set."""
    flags = {c.strip().lower() for c in p.conditions}
    if p.pregnant:
        flags.add("pregnancy")
    if p.breastfeeding:
        flags.add("breastfeeding")
    if p.substance_use_disorder in ("history", "current"):
        flags.add("substance_use_disorder")
    if p.symptom_severity == "severe-psychotic":
        flags.add("psychosis_history")
    return flags | set(diagnosis_conditions(p))


def _check_contraindications(p: PatientFacts, rs: RuleSet) -> list[Finding]:
    flags = patient_conditions(p)
    from_dx = diagnosis_conditions(p)
    findings = []
    for ci in rs.contraindications:
        if ci.condition in flags:
            level = Level.HARD if ci.severity == "absolute" else Level.SOFT
            values: dict[str, Any] = {
                "condition": ci.condition,
                "severity": ci.severity,
                "grade": ci.grade.value,
            }
            if ci.condition == "substance_use_disorder":
                values["substance_use_disorder"] = p.substance_use_disorder
            if ci.condition in from_dx:
                values["diagnoses"] = from_dx[ci.condition]
            findings.append(
                Finding(
                    ci.id,
                    level,
                    f"{ci.severity.capitalize()} contraindication: {ci.label}",
                    ci.source,
                    values,
                )
            )
    known = {ci.condition for ci in rs.contraindications}
    for flag in sorted(flags - known):
        findings.append(
            Finding(
                "condition-unrecognised",
                Level.SOFT,
                f"Condition {flag!r} is not a rule in {rs.ref}: review it by hand",
                rs.ref,
                {"condition": flag},
            )
        )
    if not findings:
        findings.append(
            Finding(
                "contraindications",
                Level.OK,
                "No contraindication recorded",
                rs.ref,
                {"checked": sorted(known)},
            )
        )
    return findings


def _bp_limits(p: PatientFacts, rs: RuleSet) -> tuple[float, float, str]:
    older = rs.parameters.get("bp-pre-dose-older-systolic-max-mmhg")
    if older is not None and p.age_years >= rs.param("older-adult-age-years").value:
        dia = rs.param("bp-pre-dose-older-diastolic-max-mmhg")
        return older.value, dia.value, older.source
    sys_rule = rs.param("bp-pre-dose-systolic-max-mmhg")
    return sys_rule.value, rs.param("bp-pre-dose-diastolic-max-mmhg").value, sys_rule.source


def _check_bp(p: PatientFacts, rs: RuleSet) -> list[Finding]:
    if p.bp is None:
        return [
            Finding(
                "bp-pre-dose",
                Level.SOFT,
                "No blood pressure recorded: measure before dosing",
                rs.param("bp-pre-dose-systolic-max-mmhg").source,
            )
        ]
    sys_max, dia_max, source = _bp_limits(p, rs)
    values = {
        "systolic_mmhg": p.bp.systolic_mmhg,
        "diastolic_mmhg": p.bp.diastolic_mmhg,
        "limit": f"{sys_max:g}/{dia_max:g}",
    }
    bp = f"{p.bp.systolic_mmhg:g}/{p.bp.diastolic_mmhg:g} mmHg"
    if p.bp.systolic_mmhg > sys_max or p.bp.diastolic_mmhg > dia_max:
        return [
            Finding(
                "bp-pre-dose",
                Level.SOFT,
                f"BP {bp} is above {sys_max:g}/{dia_max:g}: weigh "
                "the BP rise against benefit, consider treating first",
                source,
                values,
            )
        ]
    return [
        Finding(
            "bp-pre-dose", Level.OK, f"BP {bp} is within {sys_max:g}/{dia_max:g}", source, values
        )
    ]


def _check_trd(count: int, rs: RuleSet, treatment: str) -> list[Finding]:
    rule = rs.param("trd-min-failed-trials")
    values = {"adequate_failed_trials": count, "required": rule.value}
    if count >= rule.value:
        return [
            Finding(
                "trd-definition",
                Level.OK,
                f"{count} adequate failed trials meet the TRD definition (>= {rule.value})",
                rule.source,
                values,
            )
        ]
    extra = (
        " (esketamine for MDD with acute suicidal ideation has no TRD requirement)"
        if treatment == "esketamine"
        else ""
    )
    return [
        Finding(
            "trd-definition",
            Level.SOFT,
            f"Only {count} adequate failed trials in the current "
            f"episode; TRD needs >= {rule.value}{extra}",
            rule.source,
            values,
        )
    ]


def _check_trials(assessed: tuple[TrialAssessment, ...], rs: RuleSet) -> list[Finding]:
    unjudged = [a for a in assessed if not a.judged]
    if not unjudged:
        return []
    return [
        Finding(
            "trd-trial-unjudged",
            Level.SOFT,
            "Trial(s) whose dose cannot be judged, not counted as adequate: "
            + "; ".join(f"{a.drug}: {a.reason}" for a in unjudged),
            load_bundled_doses_ref(),
            {"trials": [{"drug": a.drug, "reason": a.reason} for a in unjudged]},
        )
    ]


def _maudsley(
    p: PatientFacts, count: int, augmentation: bool
) -> tuple[MaudsleyScore | None, list[Finding]]:
    table = load_bundled_maudsley()
    duration, severity = p.episode_duration_months, p.symptom_severity
    missing = [
        n
        for n, v in (("episode_duration_months", duration), ("symptom_severity", severity))
        if v is None
    ]
    if duration is None or severity is None or count < 1:
        why = f"missing {', '.join(missing)}" if missing else "no failed antidepressant recorded"
        return None, [
            Finding(
                "maudsley-staging",
                Level.INFO,
                f"Maudsley score not computable: {why}",
                table["source"],
            )
        ]
    score = score_maudsley(duration, severity, count, augmentation, p.ect_used, table)
    return score, [
        Finding(
            "maudsley-staging",
            Level.INFO,
            f"Maudsley Staging Method {score.total} ({score.band})",
            score.source,
            score.as_dict()["breakdown"],
        )
    ]


def decide(findings: tuple[Finding, ...] | list[Finding]) -> str:
    """Hard -> ineligible, soft -> review, otherwise eligible."""
    levels = {f.level for f in findings}
    if Level.HARD in levels:
        return "ineligible"
    return "review" if Level.SOFT in levels else "eligible"


def screen_patient(
    patient: PatientFacts,
    treatment: str,
    ruleset: RuleSet,
    screened_on: date,
    vocabulary: Vocabulary | None = None,
) -> ScreeningResult:
    """Screen ``patient`` for ``treatment`` (``ketamine-iv`` or ``esketamine``) under ``ruleset``.

    ``screened_on`` is passed in (no clock reads); the result expires after the rule set's
    ``screening-validity-days``.
    """
    if treatment != ruleset.treatment:
        raise ClinicalInputError(
            f"rule set {ruleset.ref} is for {ruleset.treatment}, not {treatment}"
        )
    vocab = vocabulary or load_bundled_vocabulary()
    count, assessed = count_adequate_failed_trials(patient.antidepressant_trials, ruleset)
    augmentation = any(
        a.role == "augmentation" and t.current_episode
        for a, t in zip(assessed, patient.antidepressant_trials, strict=True)
    )
    findings = (
        _check_age(patient, ruleset)
        + _check_diagnosis(patient)
        + check_missing(patient, ruleset)
        + _check_contraindications(patient, ruleset)
        + check_interactions(patient, ruleset, vocab)
        + _check_bp(patient, ruleset)
        + _check_trd(count, ruleset, treatment)
        + _check_trials(assessed, ruleset)
    )
    maudsley, staging = _maudsley(patient, count, augmentation)
    all_findings = tuple(findings + staging)
    validity = ruleset.param("screening-validity-days")
    return ScreeningResult(
        decide(all_findings),
        all_findings,
        ruleset.ref,
        treatment,
        count,
        maudsley,
        screened_on,
        screened_on + timedelta(days=int(validity.value)),
    )


# --------------------------------------------------------------------------- parsing

_PATIENT_KEYS = {
    "age_years",
    "sex",
    "pregnant",
    "breastfeeding",
    "diagnoses",
    "conditions",
    "medications",
    "substance_use_disorder",
    "antidepressant_trials",
    "ect_used",
    "episode_duration_months",
    "symptom_severity",
    "bp",
}


def _known(doc: Any, keys: set[str], where: str) -> dict:
    if not isinstance(doc, dict):
        raise ClinicalInputError(f"{where} must be an object")
    unknown = sorted(doc.keys() - keys)
    if unknown:
        raise ClinicalInputError(f"{where}: unknown field(s) {', '.join(unknown)}")
    return doc


def _choice(value: Any, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise ClinicalInputError(f"{where} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _flag(doc: dict, key: str, where: str) -> bool:
    value = doc.get(key, False)
    if not isinstance(value, bool):
        raise ClinicalInputError(f"{where}.{key} must be true or false, got {value!r}")
    return value


def _answer(doc: dict, key: str) -> bool | None:
    """A yes/no question that may be unanswered (absent or null: not asked)."""
    value = doc.get(key)
    if value is not None and not isinstance(value, bool):
        raise ClinicalInputError(f"{key} must be true, false or null (not asked), got {value!r}")
    return value


def _trial(doc: Any, i: int) -> AntidepressantTrial:
    where = f"antidepressant_trials[{i}]"
    d = _known(
        doc,
        {
            "drug",
            "dose_mg",
            "weeks",
            "improvement_pct",
            "response",
            "current_episode",
            "augmentation",
            "adequate_dose",
        },
        where,
    )
    if d.get("response") is not None:
        _choice(d["response"], RESPONSE_CATEGORIES, f"{where}.response")
    adequate = d.get("adequate_dose")
    if adequate is not None and not isinstance(adequate, bool):
        raise ClinicalInputError(f"{where}.adequate_dose must be true, false or null")
    return AntidepressantTrial(
        drug=str(d.get("drug", "")),
        weeks=require_non_negative(f"{where}.weeks", d.get("weeks")),
        dose_mg=None
        if d.get("dose_mg") is None
        else require_positive(f"{where}.dose_mg", d["dose_mg"]),
        improvement_pct=None
        if d.get("improvement_pct") is None
        else require_finite(f"{where}.improvement_pct", d["improvement_pct"]),
        response=d.get("response"),
        current_episode=d.get("current_episode", True) is not False,
        augmentation=_flag(d, "augmentation", where),
        adequate_dose=adequate,
    )


def _medication(doc: Any, i: int) -> Medication:
    where = f"medications[{i}]"
    d = _known(doc, {"name", "class", "daily_dose_mg"}, where)
    dose = d.get("daily_dose_mg")
    return Medication(
        str(d.get("name", "")),
        str(d.get("class", "")),
        None if dose is None else require_positive(f"{where}.daily_dose_mg", dose),
    )


def _diagnosis(doc: Any, i: int) -> Diagnosis:
    d = _known(doc, {"code", "label", "depressive_episode", "resolved"}, f"diagnoses[{i}]")
    return Diagnosis(
        str(d.get("code", "")),
        str(d.get("label", "")),
        _flag(d, "depressive_episode", f"diagnoses[{i}]"),
        _flag(d, "resolved", f"diagnoses[{i}]"),
    )


def _bp(doc: Any) -> BloodPressure | None:
    if doc is None:
        return None
    d = _known(doc, {"systolic_mmhg", "diastolic_mmhg"}, "bp")
    return BloodPressure(
        require_positive("bp.systolic_mmhg", d.get("systolic_mmhg")),
        require_positive("bp.diastolic_mmhg", d.get("diastolic_mmhg")),
    )


def _list(doc: dict, key: str) -> list:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise ClinicalInputError(f"{key} must be a list")
    return value


def patient_from_dict(doc: Any) -> PatientFacts:
    """Build :class:`PatientFacts` from the screening JSON (schema in docs/dosing.md)."""
    d = _known(doc, _PATIENT_KEYS, "patient")
    severity = d.get("symptom_severity")
    if severity is not None:
        _choice(severity, SEVERITIES, "symptom_severity")
    duration = d.get("episode_duration_months")
    return PatientFacts(
        age_years=require_positive("age_years", d.get("age_years")),
        sex=_choice(d.get("sex", "unknown"), SEXES, "sex"),
        pregnant=_answer(d, "pregnant"),
        breastfeeding=_answer(d, "breastfeeding"),
        diagnoses=tuple(_diagnosis(x, i) for i, x in enumerate(_list(d, "diagnoses"))),
        conditions=frozenset(str(c) for c in _list(d, "conditions")),
        medications=tuple(_medication(x, i) for i, x in enumerate(_list(d, "medications"))),
        substance_use_disorder=None
        if d.get("substance_use_disorder") is None
        else _choice(d["substance_use_disorder"], SUBSTANCE_USE, "substance_use_disorder"),
        antidepressant_trials=tuple(
            _trial(x, i) for i, x in enumerate(_list(d, "antidepressant_trials"))
        ),
        ect_used=_flag(d, "ect_used", "patient"),
        episode_duration_months=None
        if duration is None
        else require_non_negative("episode_duration_months", duration),
        symptom_severity=severity,
        bp=_bp(d.get("bp")),
    )

"""Treatment-resistance staging: adequate failed trials and the Maudsley Staging Method.

Adequacy and failure follow the esketamine phase 3 definition (protocols.md §6): a trial in the
current episode lasting >= 6 weeks with <= 25 % improvement (values come from the rule set), of an
*antidepressant* at or above its minimum daily dose (data/staging/antidepressant_doses.json).
Augmentation agents (lithium, antipsychotics, T3, lamotrigine, or a trial marked augmentation) are
counted apart, never as failed antidepressants (the Maudsley method scores them separately). A
trial whose dose cannot be judged (drug not in the table, or no dose, and no clinician judgement)
is *unjudged*: never counted as adequate, and screening sends it to review.
The Maudsley Staging Method follows protocols.md §6 exactly (table in data/staging/maudsley.json).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ketaclinic.clinical.rules import ClinicalInputError
from ketaclinic.clinical.rulesets import RuleSet

RESPONSE_CATEGORIES = ("none", "minimal", "partial", "response", "remission")
FAILED_CATEGORIES = ("none", "minimal")
SEVERITIES = ("subsyndromal", "mild", "moderate", "severe", "severe-psychotic")


@dataclass(frozen=True)
class AntidepressantTrial:
    """One recorded antidepressant trial (MGH-ATRQ style)."""

    drug: str
    weeks: float
    dose_mg: float | None = None
    improvement_pct: float | None = None
    response: str | None = None  # none | minimal | partial | response | remission
    current_episode: bool = True
    augmentation: bool = False
    adequate_dose: bool | None = None  # None: judged from the minimum-dose table, else unjudged


@dataclass(frozen=True)
class TrialAssessment:
    drug: str
    adequate: bool
    failed: bool
    reason: str
    role: str = "antidepressant"  # antidepressant | augmentation
    judged: bool = True  # False: the dose (or the drug) could not be judged -> review


@dataclass(frozen=True)
class MaudsleyScore:
    """Maudsley Staging Method total (3-15), band and per-dimension breakdown."""

    total: int
    band: str
    duration: int
    severity: int
    failed_antidepressants: int
    augmentation: int
    ect: int
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "band": self.band,
            "breakdown": {
                "duration": self.duration,
                "severity": self.severity,
                "failed_antidepressants": self.failed_antidepressants,
                "augmentation": self.augmentation,
                "ect": self.ect,
            },
            "source": self.source,
        }


def _dose_judgement(
    trial: AntidepressantTrial, ingredient: str, doses: dict[str, Any]
) -> tuple[bool | None, str]:
    """True/False when the dose can be judged, None (with why) when it cannot."""
    entry = doses["antidepressants"].get(ingredient)
    if entry is None:
        if trial.adequate_dose is not None:
            return trial.adequate_dose, "dose judged by the clinician (drug not in the table)"
        return None, f"{trial.drug!r} is not in the minimum-dose table: judge the dose by hand"
    minimum = entry["min_daily_mg"]
    if trial.dose_mg is None:
        if trial.adequate_dose is not None:
            return trial.adequate_dose, "dose judged by the clinician (no dose recorded)"
        return None, f"no dose recorded (minimum {minimum:g} mg/d)"
    by_table = trial.dose_mg >= minimum
    if trial.adequate_dose is not None and trial.adequate_dose != by_table:
        return None, (
            f"{trial.dose_mg:g} mg/d vs minimum {minimum:g} mg/d disagrees with the "
            "clinician's adequate_dose: judge by hand"
        )
    rel = ">=" if by_table else "<"
    return by_table, f"{trial.dose_mg:g} mg/d {rel} minimum {minimum:g} mg/d"


def _ingredient(drug: str) -> str:
    from ketaclinic.clinical.medications import load_bundled_vocabulary, normalise

    entry = load_bundled_vocabulary().lookup(drug)
    return entry.ingredient if entry else normalise(drug)


def assess_trial(
    trial: AntidepressantTrial, ruleset: RuleSet, doses: dict[str, Any] | None = None
) -> TrialAssessment:
    """Decide whether one trial is an adequate failed antidepressant trial in this episode."""
    doses = doses or load_bundled_doses()
    min_weeks = ruleset.param("trd-min-trial-weeks").value
    max_improvement = ruleset.param("trd-max-improvement-pct").value
    ingredient = _ingredient(trial.drug)
    if trial.augmentation or ingredient in doses["augmentation_agents"]:
        why = "augmentation agent: counted apart from failed antidepressants"
        return TrialAssessment(trial.drug, False, False, why, "augmentation")
    if not trial.current_episode:
        return TrialAssessment(trial.drug, False, False, "not in the current episode")
    if trial.weeks < min_weeks:
        return TrialAssessment(trial.drug, False, False, f"{trial.weeks:g} wk < {min_weeks} wk")
    adequate, dose_why = _dose_judgement(trial, ingredient, doses)
    if adequate is None:
        return TrialAssessment(trial.drug, False, False, dose_why, judged=False)
    if not adequate:
        return TrialAssessment(trial.drug, False, False, f"inadequate dose: {dose_why}")
    if trial.improvement_pct is not None:
        failed = trial.improvement_pct <= max_improvement
        why = (
            f"improvement {trial.improvement_pct:g} % {'<=' if failed else '>'} {max_improvement} %"
        )
        return TrialAssessment(trial.drug, True, failed, f"{dose_why}; {why}")
    if trial.response is not None:
        failed = trial.response in FAILED_CATEGORIES
        why = f"{dose_why}; response category {trial.response!r}"
        return TrialAssessment(trial.drug, True, failed, why)
    return TrialAssessment(trial.drug, True, False, f"{dose_why}; response not recorded")


def count_adequate_failed_trials(
    trials: tuple[AntidepressantTrial, ...], ruleset: RuleSet
) -> tuple[int, tuple[TrialAssessment, ...]]:
    """Count adequate failed antidepressant trials in the current episode; also each assessment.

    Augmentation trials and unjudged trials are never counted.
    """
    doses = load_bundled_doses()
    assessed = tuple(assess_trial(t, ruleset, doses) for t in trials)
    count = sum(1 for a in assessed if a.adequate and a.failed and a.role == "antidepressant")
    return count, assessed


def load_bundled_doses() -> dict[str, Any]:
    """The bundled antidepressant minimum-dose and augmentation table (cited, graded)."""
    from ketaclinic.clinical.rulesets import _read_bundled

    return _DOSES_CACHE.setdefault(
        "doc", json.loads(_read_bundled("staging", "antidepressant_doses.json"))
    )


_DOSES_CACHE: dict[str, dict[str, Any]] = {}


def _band_score(bands: list[dict], key: str, value: float) -> int:
    for band in bands:
        if band[key] is None or value <= band[key]:
            return int(band["score"])
    raise ClinicalInputError(f"no Maudsley band for {value!r}")  # pragma: no cover


def score_maudsley(
    episode_duration_months: float,
    symptom_severity: str,
    failed_antidepressants: int,
    augmentation_used: bool,
    ect_used: bool,
    table: dict[str, Any],
) -> MaudsleyScore:
    """Score the Maudsley Staging Method (protocols.md §6).

    Duration <= 12 months = 1, 13-24 = 2, > 24 = 3; severity subsyndromal 1 ... severe with
    psychosis 5; failed antidepressants 1-2 = 1, 3-4 = 2, 5-6 = 3, 7-10 = 4, > 10 = 5;
    augmentation +1; ECT +1. Bands: mild 3-6, moderate 7-10, severe 11-15.

    Examples
    --------
    >>> from ketaclinic.clinical.rulesets import load_bundled_maudsley
    >>> score_maudsley(18, "severe", 3, True, False, load_bundled_maudsley()).total
    9
    """
    if symptom_severity not in table["severity"]:
        raise ClinicalInputError(
            f"symptom_severity must be one of {', '.join(SEVERITIES)}, got {symptom_severity!r}"
        )
    if failed_antidepressants < 1:
        raise ClinicalInputError(
            "the Maudsley Staging Method needs at least one failed antidepressant"
        )
    duration = _band_score(table["duration_months"], "max_months", episode_duration_months)
    severity = int(table["severity"][symptom_severity]["score"])
    failed = _band_score(table["failed_antidepressants"], "max_count", failed_antidepressants)
    aug = int(table["augmentation_points"]) if augmentation_used else 0
    ect = int(table["ect_points"]) if ect_used else 0
    total = duration + severity + failed + aug + ect
    band = next(b["band"] for b in table["bands"] if b["min"] <= total <= b["max"])
    return MaudsleyScore(total, band, duration, severity, failed, aug, ect, table["source"])

"""Treatment-resistance staging: adequate failed trials and the Maudsley Staging Method.

Adequacy and failure follow the esketamine phase 3 definition (protocols.md §6): a trial in the
current episode lasting >= 6 weeks with <= 25 % improvement (values come from the rule set).
The Maudsley Staging Method follows protocols.md §6 exactly (table in data/staging/maudsley.json).
"""

from __future__ import annotations

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
    adequate_dose: bool | None = None  # None: not judged (no bundled minimum-dose table)


@dataclass(frozen=True)
class TrialAssessment:
    drug: str
    adequate: bool
    failed: bool
    reason: str


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


def assess_trial(trial: AntidepressantTrial, ruleset: RuleSet) -> TrialAssessment:
    """Decide whether one trial is an adequate failed trial in the current episode."""
    min_weeks = ruleset.param("trd-min-trial-weeks").value
    max_improvement = ruleset.param("trd-max-improvement-pct").value
    if not trial.current_episode:
        return TrialAssessment(trial.drug, False, False, "not in the current episode")
    if trial.weeks < min_weeks:
        return TrialAssessment(trial.drug, False, False, f"{trial.weeks:g} wk < {min_weeks} wk")
    if trial.adequate_dose is False:
        return TrialAssessment(trial.drug, False, False, "dose recorded as inadequate")
    if trial.improvement_pct is not None:
        failed = trial.improvement_pct <= max_improvement
        why = (
            f"improvement {trial.improvement_pct:g} % {'<=' if failed else '>'} {max_improvement} %"
        )
        return TrialAssessment(trial.drug, True, failed, why)
    if trial.response is not None:
        failed = trial.response in FAILED_CATEGORIES
        return TrialAssessment(trial.drug, True, failed, f"response category {trial.response!r}")
    return TrialAssessment(trial.drug, True, False, "response not recorded")


def count_adequate_failed_trials(
    trials: tuple[AntidepressantTrial, ...], ruleset: RuleSet
) -> tuple[int, tuple[TrialAssessment, ...]]:
    """Count adequate failed trials in the current episode; also return each assessment."""
    assessed = tuple(assess_trial(t, ruleset) for t in trials)
    return sum(1 for a in assessed if a.adequate and a.failed), assessed


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

"""Time to relapse after response: the Kaplan–Meier summary and the Cox model.

The subjects are the core's :class:`ketaclinic.clinical.survival.SurvivalSubject` (who is
followed, for how long, censored or not); the Kaplan–Meier curve is the core's
:func:`ketaclinic.clinical.km.kaplan_meier` (the one implementation; the spec tests check it
against lifelines); the Cox model is lifelines'
``CoxPHFitter``, imported when a model is fitted so that starting the app does not load pandas.
Nothing here raises for a degenerate cohort (no events, one subject, a covariate without
variation, a model that does not converge): the result says "not estimable" and why.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ketaclinic.clinical.km import kaplan_meier
from ketaclinic.clinical.rules import ClinicalInputError
from ketaclinic.clinical.survival import SurvivalSubject

if TYPE_CHECKING:
    import pandas as pd

OBSERVATIONAL_CAUTION = (
    "These hazard ratios come from routine clinic records, not a randomised trial. Patients who "
    "received psychotherapy, antidepressants or a given treatment differ in ways the model "
    "cannot see, so the ratios show associations, not effects of treatment. Small numbers give "
    "wide intervals. Use them to ask questions, not to choose a patient's treatment."
)

COX_COVARIATES = (
    "psychotherapy",
    "antidepressant",
    "comorbid_anxiety",
    "baseline_severity",
    "age_band",
    "treatment",
)
CATEGORICAL = ("age_band", "treatment")
DEFAULT_PENALIZER = 0.01
MIN_EVENTS = 2


@dataclass(frozen=True)
class KMSummary:
    estimable: bool
    n: int
    events: int
    timeline: tuple[float, ...] = ()
    survival: tuple[float, ...] = ()
    lo: tuple[float, ...] = ()
    hi: tuple[float, ...] = ()
    median: float | None = None  # None = not reached
    median_lo: float | None = None
    median_hi: float | None = None
    at_risk: dict[float, int] = field(default_factory=dict)
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["at_risk"] = {str(k): v for k, v in self.at_risk.items()}
        for k in ("timeline", "survival", "lo", "hi"):
            d[k] = list(d[k])
        return d


@dataclass(frozen=True)
class HazardRatio:
    term: str
    hr: float
    lo: float
    hi: float
    p: float


@dataclass(frozen=True)
class CoxResult:
    estimable: bool
    n: int
    events: int
    terms: tuple[HazardRatio, ...] = ()
    dropped: tuple[str, ...] = ()
    concordance: float | None = None
    penalizer: float = DEFAULT_PENALIZER
    reason: str = ""
    caution: str = OBSERVATIONAL_CAUTION

    def as_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["terms"] = [t.__dict__.copy() for t in self.terms]
        d["dropped"] = list(self.dropped)
        return d


def _finite_or_none(x: float) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def fit_kaplan_meier(
    durations: Sequence[float],
    events: Sequence[bool | int],
    at_times: Sequence[float] = (),
    confidence: float = 0.95,
) -> KMSummary:
    """Kaplan–Meier curve with the exponential-Greenwood band, median with CI, numbers at risk.

    The dashboard's view of :func:`ketaclinic.clinical.km.kaplan_meier`: invalid input gives a
    summary that is not estimable (with the reason) instead of an exception, and a median that
    is not reached is None.
    """
    n = len(durations)
    if n == 0 or n != len(events):
        return KMSummary(False, n, 0, reason="no subjects" if n == 0 else "length mismatch")
    e = [bool(x) for x in events]
    try:
        km = kaplan_meier(durations, e, confidence=confidence)
    except ClinicalInputError as exc:
        return KMSummary(False, n, sum(e), reason=str(exc))
    return KMSummary(
        estimable=True,
        n=km.n,
        events=km.events,
        timeline=tuple(step.t for step in km.steps),
        survival=tuple(step.survival for step in km.steps),
        lo=tuple(step.lo for step in km.steps),
        hi=tuple(step.hi for step in km.steps),
        median=_finite_or_none(km.median),
        median_lo=_finite_or_none(km.median_lo),
        median_hi=_finite_or_none(km.median_hi),
        at_risk={float(x): n_at for x, n_at in zip(at_times, km.at_risk(at_times), strict=True)},
    )


def _design_matrix(
    subjects: Sequence[SurvivalSubject], covariates: Sequence[str]
) -> tuple[pd.DataFrame, list[str]]:
    import pandas as pd

    columns: dict[str, list[Any]] = {
        "duration": [float(s.duration_days) for s in subjects],
        "event": [int(bool(s.relapsed)) for s in subjects],
    }
    for c in covariates:
        columns[c] = [getattr(s, c) for s in subjects]
    df = pd.DataFrame(columns)  # column by column: the dashboard passes ~10^4 subjects
    dropped: list[str] = []
    for c in covariates:
        if df[c].isna().any():
            dropped.append(f"{c} (missing values)")
            df = df.drop(columns=c)
            continue
        if c in CATEGORICAL:
            levels = sorted(df[c].astype(str).unique())
            ref = df[c].astype(str).value_counts().sort_index().idxmax()
            for lev in levels:
                if lev != ref:
                    df[f"{c}[{lev} vs {ref}]"] = (df[c].astype(str) == lev).astype(float)
            df = df.drop(columns=c)
        else:
            df[c] = df[c].astype(float)
    for c in [c for c in df.columns if c not in ("duration", "event")]:
        if df[c].nunique() < 2:
            dropped.append(f"{c} (no variation)")
            df = df.drop(columns=c)
    return df, dropped


def fit_cox_relapse(
    subjects: Sequence[SurvivalSubject],
    covariates: Sequence[str] = COX_COVARIATES,
    penalizer: float = DEFAULT_PENALIZER,
    confidence: float = 0.95,
) -> CoxResult:
    """Cox proportional-hazards model of relapse; never raises for degenerate cohorts.

    Categorical covariates (age band, treatment) are dummy-coded against their most frequent
    level. Covariates with missing values or no variation are dropped and listed. A small ridge
    penalizer keeps estimates finite with separation; hazard ratios are exp(coef) with Wald
    intervals and p-values from lifelines.
    """
    from lifelines import CoxPHFitter

    n = len(subjects)
    events = sum(1 for s in subjects if s.relapsed)
    unknown = [c for c in covariates if c not in COX_COVARIATES]
    if unknown:
        return CoxResult(False, n, events, reason=f"unknown covariates: {unknown}")
    if events < MIN_EVENTS:
        return CoxResult(False, n, events, penalizer=penalizer,
                         reason=f"not estimable: {events} relapse(s); need at least {MIN_EVENTS}")
    try:
        df, dropped = _design_matrix(subjects, covariates)
    except Exception as exc:  # noqa: BLE001
        return CoxResult(False, n, events, reason=f"not estimable: {exc}")
    terms = [c for c in df.columns if c not in ("duration", "event")]
    if not terms:
        return CoxResult(False, n, events, dropped=tuple(dropped), penalizer=penalizer,
                         reason="not estimable: no covariate varies in this cohort")
    if np.any(df["duration"] < 0):
        return CoxResult(False, n, events, reason="not estimable: negative durations")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cph = CoxPHFitter(penalizer=penalizer, alpha=1 - confidence)
            cph.fit(df, duration_col="duration", event_col="event")
        summ = cph.summary
        lo_col = [c for c in summ.columns if c.startswith("exp(coef) lower")][0]
        hi_col = [c for c in summ.columns if c.startswith("exp(coef) upper")][0]
        hrs = tuple(
            HazardRatio(str(term), float(r["exp(coef)"]), float(r[lo_col]), float(r[hi_col]),
                        float(r["p"]))
            for term, r in summ.iterrows()
        )
        if not all(math.isfinite(h.hr) and math.isfinite(h.lo) and math.isfinite(h.hi)
                   for h in hrs):
            return CoxResult(False, n, events, dropped=tuple(dropped), penalizer=penalizer,
                             reason="not estimable: non-finite hazard ratios")
        conc = float(cph.concordance_index_)
    except Exception as exc:  # noqa: BLE001 - convergence/singularity → not estimable
        return CoxResult(False, n, events, dropped=tuple(dropped), penalizer=penalizer,
                         reason=f"not estimable: {type(exc).__name__}: {str(exc)[:200]}")
    return CoxResult(True, n, events, hrs, tuple(dropped), conc, penalizer)

"""Time to relapse after response: Kaplan–Meier and Cox models through lifelines.

The pure reference estimator is :func:`ketaclinic.clinical.km.kaplan_meier`; the spec tests check
that lifelines agrees with it. Nothing here raises for a degenerate cohort (no events, one
subject, a covariate without variation, a model that does not converge): the result says
"not estimable" and why.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
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
class SurvivalSubject:
    """One responder followed from response to relapse or censoring."""

    duration_days: float
    relapsed: bool
    psychotherapy: bool | None = None
    antidepressant: bool | None = None
    comorbid_anxiety: bool | None = None
    baseline_severity: float | None = None  # baseline score on the course's instrument
    age_band: str | None = None  # e.g. "18-39", "40-64", "65+"
    treatment: str | None = None  # e.g. "iv_ketamine", "esketamine"


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


def _first_at_or_below_half(timeline: np.ndarray, values: pd.Series) -> float | None:
    """First time with value <= 0.5, with a 1e-12 tolerance.

    lifelines computes S(t) as exp(sum(log(1 - d/n))), so an exact 0.5 can come out as
    0.5000000000000001 and its ``median_survival_time_`` then reports "not reached". We apply the
    same convention (first t with S(t) <= 0.5) on the lifelines curve, tolerant to that rounding.
    """
    idx = np.nonzero(values.to_numpy(dtype=float) <= 0.5 + 1e-12)[0]
    return float(timeline[idx[0]]) if idx.size else None


def fit_kaplan_meier(
    durations: Sequence[float],
    events: Sequence[bool | int],
    at_times: Sequence[float] = (),
    confidence: float = 0.95,
) -> KMSummary:
    """Kaplan–Meier curve with the exponential-Greenwood band, median with CI, numbers at risk."""
    from lifelines import KaplanMeierFitter

    n = len(durations)
    if n == 0 or n != len(events):
        return KMSummary(False, n, 0, reason="no subjects" if n == 0 else "length mismatch")
    t = np.asarray(durations, dtype=float)
    e = np.asarray([bool(x) for x in events])
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        return KMSummary(False, n, int(e.sum()), reason="durations must be finite and >= 0")
    try:
        kmf = KaplanMeierFitter(alpha=1 - confidence).fit(t, e)
        ci = kmf.confidence_interval_survival_function_
    except Exception as exc:  # noqa: BLE001 - degenerate data must not reach the caller
        return KMSummary(False, n, int(e.sum()), reason=f"not estimable: {exc}")
    at_risk = {float(x): int(np.sum(t >= x)) for x in at_times}
    timeline = kmf.survival_function_.index.to_numpy(dtype=float)
    return KMSummary(
        estimable=True,
        n=n,
        events=int(e.sum()),
        timeline=tuple(float(x) for x in kmf.survival_function_.index),
        survival=tuple(float(x) for x in kmf.survival_function_.iloc[:, 0]),
        lo=tuple(float(x) for x in ci.iloc[:, 0]),
        hi=tuple(float(x) for x in ci.iloc[:, 1]),
        median=_first_at_or_below_half(timeline, kmf.survival_function_.iloc[:, 0]),
        median_lo=_first_at_or_below_half(timeline, ci.iloc[:, 0]),
        median_hi=_first_at_or_below_half(timeline, ci.iloc[:, 1]),
        at_risk=at_risk,
    )


def _design_matrix(
    subjects: Sequence[SurvivalSubject], covariates: Sequence[str]
) -> tuple[pd.DataFrame, list[str]]:
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

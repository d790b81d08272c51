"""Kaplan–Meier estimator with a Greenwood log-log ("exponential Greenwood") band.

Pure, in-memory (numpy/scipy): the one Kaplan–Meier of the project. Its subjects come from
:mod:`ketaclinic.clinical.survival`; ``services/outcomes/survival.py`` shapes the curve for the
dashboard; the spec tests check it against lifelines.

Definitions (Kaplan & Meier, JASA 1958; Greenwood 1926; Kalbfleisch & Prentice 2002):

* S(t) = Π_{t_i ≤ t} (1 − d_i / n_i) over distinct event times t_i, with d_i events and n_i at
  risk (duration ≥ t_i). Censoring at t_i counts the subject as at risk at t_i.
* Greenwood: V(t) = Σ_{t_i ≤ t} d_i / (n_i (n_i − d_i)).
* Log-log band: exp(−exp(log(−log S) ± z·√V / |log S|)). Where S = 1 the band is [1, 1].
* Median: the first time at which S(t) ≤ 0.5 (lifelines' convention); ``inf`` if never.
  Its interval (Brookmeyer & Crowley 1982 style) is the first times at which the lower and the
  upper band reach 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtri

from ketaclinic.clinical.rules import ClinicalInputError

KM_SOURCE = (
    "Kaplan & Meier, JASA 1958; Greenwood 1926; log-log band per Kalbfleisch & Prentice 2002; "
    "median CI per Brookmeyer & Crowley, Biometrics 1982"
)


@dataclass(frozen=True)
class KMStep:
    """The estimate just after time ``t``."""

    t: float
    at_risk: int
    events: int
    censored: int
    survival: float
    lo: float
    hi: float


@dataclass(frozen=True)
class KMResult:
    """A fitted Kaplan–Meier curve."""

    steps: tuple[KMStep, ...]
    n: int
    events: int
    median: float  # math.inf when not reached
    median_lo: float
    median_hi: float
    confidence: float

    def survival_at(self, t: float) -> float:
        """S(t) as a right-continuous step function (1.0 before the first step)."""
        s = 1.0
        for step in self.steps:
            if step.t <= t:
                s = step.survival
            else:
                break
        return s

    def band_at(self, t: float) -> tuple[float, float]:
        lo, hi = 1.0, 1.0
        for step in self.steps:
            if step.t <= t:
                lo, hi = step.lo, step.hi
            else:
                break
        return lo, hi

    def at_risk(self, times: Sequence[float]) -> list[int]:
        """Numbers at risk (duration ≥ t) at each of ``times``."""
        out = []
        for t in times:
            later = [s for s in self.steps if s.t >= t]
            out.append(later[0].at_risk if later else 0)
        return out

    def as_dict(self) -> dict[str, Any]:
        def fin(x: float) -> float | None:
            return None if math.isinf(x) else x

        return {
            "n": self.n,
            "events": self.events,
            "median": fin(self.median),
            "median_lo": fin(self.median_lo),
            "median_hi": fin(self.median_hi),
            "confidence": self.confidence,
            "steps": [s.__dict__.copy() for s in self.steps],
        }


def _first_time_at_or_below(times: np.ndarray, values: np.ndarray, q: float) -> float:
    idx = np.nonzero(values <= q + 1e-12)[0]
    return float(times[idx[0]]) if idx.size else math.inf


def kaplan_meier(
    durations: Sequence[float], events: Sequence[bool | int], confidence: float = 0.95
) -> KMResult:
    """Fit a Kaplan–Meier curve.

    Parameters
    ----------
    durations : sequence of float
        Follow-up time for each subject (≥ 0), in any unit (days recommended).
    events : sequence of bool or int
        1/True when the event (relapse) was observed, 0/False when censored.
    confidence : float
        Level of the pointwise band and the median interval.

    Returns
    -------
    KMResult
        Steps at time 0 (if no subject ends at 0) and at every distinct duration.

    Examples
    --------
    Eight responders followed for relapse (1 = relapsed, 0 = censored), in days:

    >>> km = kaplan_meier([10, 18, 18, 25, 30, 40, 60, 90], [1, 1, 0, 1, 0, 1, 0, 0])
    >>> km.median, km.survival_at(20), km.at_risk([0, 30])
    (40.0, 0.75, [8, 4])
    >>> [(step.t, round(step.survival, 3)) for step in km.steps[:4]]
    [(0.0, 1.0), (10.0, 0.875), (18.0, 0.75), (25.0, 0.6)]
    """
    if len(durations) != len(events):
        raise ClinicalInputError("durations and events must have the same length")
    if len(durations) == 0:
        raise ClinicalInputError("Kaplan-Meier needs at least one subject")
    t = np.asarray(durations, dtype=float)
    e = np.asarray([bool(x) for x in events], dtype=bool)
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ClinicalInputError("durations must be finite and >= 0")
    if not 0.0 < confidence < 1.0:
        raise ClinicalInputError(f"confidence must be between 0 and 1, got {confidence}")
    z = float(ndtri(1.0 - (1.0 - confidence) / 2.0))

    grid = np.unique(t)
    if grid[0] > 0:
        grid = np.concatenate([[0.0], grid])
    # Counts per grid time in O(n log n): at risk = durations >= t; events/censored = == t.
    ordered = np.sort(t)
    at_risk = t.size - np.searchsorted(ordered, grid, side="left")
    ended = np.searchsorted(ordered, grid, side="right") - np.searchsorted(ordered, grid, "left")
    observed = np.sort(t[e])
    deaths = np.searchsorted(observed, grid, "right") - np.searchsorted(observed, grid, "left")
    s, v = 1.0, 0.0
    steps = []
    for ti, n_i, d_i, c_i in zip(grid, at_risk.tolist(), deaths.tolist(),
                                 (ended - deaths).tolist(), strict=True):
        if d_i:
            s *= 1.0 - d_i / n_i
            if n_i > d_i:
                v += d_i / (n_i * (n_i - d_i))
        lo, hi = _loglog_band(s, v, z)
        steps.append(KMStep(float(ti), n_i, d_i, c_i, s, lo, hi))

    times = np.array([st.t for st in steps])
    surv = np.array([st.survival for st in steps])
    lows = np.array([st.lo for st in steps])
    highs = np.array([st.hi for st in steps])
    return KMResult(
        steps=tuple(steps),
        n=int(t.size),
        events=int(e.sum()),
        median=_first_time_at_or_below(times, surv, 0.5),
        median_lo=_first_time_at_or_below(times, lows, 0.5),
        median_hi=_first_time_at_or_below(times, highs, 0.5),
        confidence=confidence,
    )


def _loglog_band(s: float, v: float, z: float) -> tuple[float, float]:
    if s >= 1.0:
        return 1.0, 1.0
    if s <= 0.0:
        return 0.0, 0.0
    log_s = math.log(s)
    c = math.log(-log_s)
    w = z * math.sqrt(v) / abs(log_s)
    return math.exp(-math.exp(c + w)), math.exp(-math.exp(c - w))

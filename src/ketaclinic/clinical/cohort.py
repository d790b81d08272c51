"""Cohort outcomes: proportions with Wilson intervals, outcome tables, safety rates.

Pure core (standard library + numpy/scipy). The service layer turns database rows into the plain
records defined here; everything below is deterministic arithmetic on those records.

* Proportions (response, remission, override rates) carry a 95 % **Wilson score** interval
  (Wilson 1927; Newcombe, *Stat Med* 1998 method 3), which behaves well at small n and at 0 or 1.
* Event rates per 100 sessions carry an **exact Poisson** interval from the chi-square
  distribution (Garwood 1936).
* Outcome tables are grouped by treatment × instrument × timepoint. Timepoint windows are cited,
  configurable data (``data/outcomes/outcome_config.json``, grade U defaults).

Kaplan–Meier lives in :mod:`ketaclinic.clinical.km` and cumulative exposure in
:mod:`ketaclinic.clinical.exposure`; both are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# exposure and km are re-exported: callers have one entry point for cohort statistics.
from ketaclinic.clinical.exposure import (
    DoseExposure,
    PatientExposure,
    ScreeningRecord,
    ScreeningRule,
    load_screening_rules,
    summarise_exposure,
)
from ketaclinic.clinical.km import KMResult, KMStep, kaplan_meier
from ketaclinic.clinical.outcome_config import load_outcome_config
from ketaclinic.clinical.rules import Cited, ClinicalInputError, Grade

__all__ = [
    "POISSON_SOURCE",
    "WILSON_SOURCE",
    "Proportion",
    "Rate",
    "Timepoint",
    "OutcomeRecord",
    "OutcomeRow",
    "proportion_ci",
    "rate_per_100_sessions",
    "load_outcome_config",
    "load_timepoints",
    "recall_hours",
    "timepoint_instruments",
    "select_assessment_in_window",
    "tabulate_outcomes",
    "KMResult",
    "KMStep",
    "kaplan_meier",
    "DoseExposure",
    "PatientExposure",
    "ScreeningRecord",
    "ScreeningRule",
    "load_screening_rules",
    "summarise_exposure",
]

WILSON_SOURCE = "Wilson EB, JASA 1927; Newcombe RG, Stat Med 1998 (method 3)"
POISSON_SOURCE = "Garwood F, Biometrika 1936 (exact Poisson interval via chi-square)"


# ---------------------------------------------------------------------------------------------
# Proportions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proportion:
    """k of n with a confidence interval. ``p``, ``lo`` and ``hi`` are None when n == 0."""

    k: int
    n: int
    p: float | None
    lo: float | None
    hi: float | None
    confidence: float = 0.95
    method: str = "wilson"

    def as_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "n": self.n,
            "p": self.p,
            "lo": self.lo,
            "hi": self.hi,
            "confidence": self.confidence,
            "method": self.method,
        }

    def label(self, digits: int = 0) -> str:
        """Human label such as ``"8/10 (80 %, 49–94 %)"``; ``"0/0 (–)"`` when n == 0."""
        if self.p is None or self.lo is None or self.hi is None:
            return f"{self.k}/{self.n} (–)"
        f = f"{{:.{digits}f}}"
        return (
            f"{self.k}/{self.n} ({f.format(100 * self.p)} %, "
            f"{f.format(100 * self.lo)}–{f.format(100 * self.hi)} %)"
        )


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ClinicalInputError(f"confidence must be between 0 and 1, got {confidence}")


def proportion_ci(k: int, n: int, confidence: float = 0.95) -> Proportion:
    """Proportion k/n with a Wilson score interval.

    Parameters
    ----------
    k : int
        Number of successes (0 ≤ k ≤ n).
    n : int
        Number of trials (≥ 0). With n == 0 the estimate and bounds are None.
    confidence : float
        Two-sided confidence level, default 0.95.

    Returns
    -------
    Proportion
        ``p = k/n``; ``lo``/``hi`` = (p + z²/2n ± z·√(p(1−p)/n + z²/4n²)) / (1 + z²/n), computed
        by ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``.

    Examples
    --------
    >>> proportion_ci(8, 10).label()
    '8/10 (80 %, 49–94 %)'
    >>> proportion_ci(0, 0).p is None
    True
    """
    if isinstance(k, bool) or isinstance(n, bool) or int(k) != k or int(n) != n:
        raise ClinicalInputError(f"k and n must be whole numbers, got k={k!r}, n={n!r}")
    k, n = int(k), int(n)
    if n < 0 or k < 0 or k > n:
        raise ClinicalInputError(f"need 0 <= k <= n, got k={k}, n={n}")
    _check_confidence(confidence)
    if n == 0:
        return Proportion(k, n, None, None, None, confidence)
    # Imported here: scipy.stats takes seconds to import and the app starts without it.
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Proportion(k, n, k / n, max(0.0, float(ci.low)), min(1.0, float(ci.high)), confidence)


# ---------------------------------------------------------------------------------------------
# Rates per 100 sessions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """Events per 100 sessions with an exact Poisson interval; None values when sessions == 0."""

    events: int
    sessions: int
    per_100: float | None
    lo: float | None
    hi: float | None
    confidence: float = 0.95
    method: str = "poisson-exact"

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "sessions": self.sessions,
            "per_100": self.per_100,
            "lo": self.lo,
            "hi": self.hi,
            "confidence": self.confidence,
            "method": self.method,
        }


def rate_per_100_sessions(events: int, sessions: int, confidence: float = 0.95) -> Rate:
    """Event rate per 100 sessions with the exact (Garwood) Poisson interval.

    Lower bound = χ²(α/2; 2k)/2, upper = χ²(1−α/2; 2k+2)/2 events, each scaled by 100/sessions.
    With zero events the lower bound is 0.

    Examples
    --------
    Three adverse events in 120 sessions:

    >>> r = rate_per_100_sessions(3, 120)
    >>> r.per_100, round(r.lo, 2), round(r.hi, 2)
    (2.5, 0.52, 7.31)
    """
    if int(events) != events or int(sessions) != sessions or events < 0 or sessions < 0:
        raise ClinicalInputError(
            f"events and sessions must be whole numbers >= 0, got {events!r}, {sessions!r}"
        )
    events, sessions = int(events), int(sessions)
    alpha = 1.0 - confidence
    _check_confidence(confidence)
    if sessions == 0:
        return Rate(events, sessions, None, None, None, confidence)
    from scipy.stats import chi2  # imported here for the same reason as binomtest above

    scale = 100.0 / sessions
    lo = 0.0 if events == 0 else float(chi2.ppf(alpha / 2, 2 * events)) / 2.0
    hi = float(chi2.ppf(1 - alpha / 2, 2 * events + 2)) / 2.0
    return Rate(events, sessions, events * scale, lo * scale, hi * scale, confidence)


# ---------------------------------------------------------------------------------------------
# Timepoints (cited, configurable windows)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timepoint:
    """An outcome timepoint: a target time after an anchor, with an acceptance window.

    ``anchor`` is ``"first_dose"`` or ``"end_of_induction"``; times are hours after the anchor.
    """

    label: str
    title: str
    anchor: str
    target_h: Cited
    window_lo_h: Cited
    window_hi_h: Cited
    # only instruments whose recall window is at most this many hours feed the timepoint
    # (a 24-hour outcome needs a 24-hour recall); None = any instrument
    max_recall_h: Cited | None = None

    def contains(self, t_h: float) -> bool:
        return float(self.window_lo_h.value) <= t_h <= float(self.window_hi_h.value)

    def accepts_recall(self, recall_h: float | None) -> bool:
        """Whether an instrument with this recall window (hours; None = unknown) may feed the
        timepoint. An unknown recall window never feeds a timepoint that limits it."""
        if self.max_recall_h is None:
            return True
        return recall_h is not None and recall_h <= float(self.max_recall_h.value)


def _timepoint_from_dict(d: dict[str, Any]) -> Timepoint:
    grade = Grade(d.get("grade", "U"))
    src = d["source"]

    def cited(key: str) -> Cited:
        return Cited(float(d[key]), "h", src, grade)

    if d["anchor"] not in ("first_dose", "end_of_induction"):
        raise ClinicalInputError(f"unknown timepoint anchor {d['anchor']!r}")
    if float(d["window_lo_h"]) > float(d["window_hi_h"]):
        raise ClinicalInputError(f"timepoint {d['label']!r}: window_lo_h > window_hi_h")
    recall = None
    if d.get("max_recall_h") is not None:
        recall = Cited(float(d["max_recall_h"]), "h", d.get("recall_source", src), grade)
    return Timepoint(
        d["label"], d.get("title", d["label"]), d["anchor"],
        cited("target_h"), cited("window_lo_h"), cited("window_hi_h"), recall,
    )


def load_timepoints(config: dict[str, Any] | None = None) -> tuple[Timepoint, ...]:
    """Timepoints in reporting order from ``config`` (default: the bundled configuration)."""
    cfg = config if config is not None else load_outcome_config()
    return tuple(_timepoint_from_dict(d) for d in cfg["timepoints"])


def recall_hours(instrument: str) -> float | None:
    """The bundled instrument's recall window in hours (None when it has none)."""
    from ketaclinic.clinical.instruments import load_bundled

    window = load_bundled(instrument).recall_window
    return None if window is None else float(window.hours)


def timepoint_instruments(
    timepoints: Sequence[Timepoint], instruments: Sequence[str]
) -> list[tuple[str, str]]:
    """(timepoint label, instrument) pairs whose recall window fits the timepoint: PHQ-9
    (2 weeks) and QIDS-SR16 (7 days) never feed a 24-hour outcome."""
    return [(t.label, i) for t in timepoints for i in instruments
            if t.accepts_recall(recall_hours(i))]


def select_assessment_in_window(
    times_h: Sequence[float], timepoint: Timepoint
) -> int | None:
    """Index of the assessment closest to the timepoint target inside its window, else None.

    ``times_h`` are hours after the timepoint's anchor. Ties go to the earlier assessment.
    """
    target = float(timepoint.target_h.value)
    best: int | None = None
    for i, t in enumerate(times_h):
        if not timepoint.contains(t):
            continue
        if best is None or abs(t - target) < abs(times_h[best] - target):
            best = i
    return best


# ---------------------------------------------------------------------------------------------
# Outcome tables
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeRecord:
    """One course's outcome at one timepoint on one instrument (None = not assessable)."""

    course_id: str
    treatment: str
    instrument: str
    timepoint: str
    responded: bool | None
    remitted: bool | None


@dataclass(frozen=True)
class OutcomeRow:
    """A row of the outcome table."""

    treatment: str
    instrument: str
    timepoint: str
    courses: int  # records at this timepoint, including those not assessable
    response: Proportion
    remission: Proportion

    def as_dict(self) -> dict[str, Any]:
        return {
            "treatment": self.treatment,
            "instrument": self.instrument,
            "timepoint": self.timepoint,
            "courses": self.courses,
            "response": self.response.as_dict(),
            "remission": self.remission.as_dict(),
        }


def tabulate_outcomes(
    records: Iterable[OutcomeRecord],
    timepoint_order: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> list[OutcomeRow]:
    """Group outcome records by treatment × instrument × timepoint with Wilson intervals.

    The denominator of each proportion counts only courses whose outcome is known (not None), so
    response and remission can have different n. A course may appear once per
    (instrument, timepoint); duplicates are refused.

    Rows are sorted by treatment, instrument, then ``timepoint_order`` (default: the bundled
    timepoint labels; unknown labels follow, alphabetically).
    """
    order = list(timepoint_order) if timepoint_order is not None else [
        t.label for t in load_timepoints()
    ]
    seen: set[tuple[str, str, str]] = set()
    groups: dict[tuple[str, str, str], list[OutcomeRecord]] = {}
    for r in records:
        key = (r.course_id, r.instrument, r.timepoint)
        if key in seen:
            raise ClinicalInputError(
                f"course {r.course_id!r} has two outcomes for {r.instrument} at {r.timepoint}"
            )
        seen.add(key)
        groups.setdefault((r.treatment, r.instrument, r.timepoint), []).append(r)

    def tp_key(label: str) -> tuple[int, str]:
        return (order.index(label), "") if label in order else (len(order), label)

    rows = []
    for (treatment, instrument, tp) in sorted(
        groups, key=lambda g: (g[0], g[1], tp_key(g[2]))
    ):
        recs = groups[(treatment, instrument, tp)]
        resp = [r.responded for r in recs if r.responded is not None]
        rem = [r.remitted for r in recs if r.remitted is not None]
        rows.append(
            OutcomeRow(
                treatment, instrument, tp, len(recs),
                proportion_ci(sum(resp), len(resp), confidence),
                proportion_ci(sum(rem), len(rem), confidence),
            )
        )
    return rows

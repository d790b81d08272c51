"""Outcomes of a treatment course from dated scores: baseline, response, remission, relapse.

Definitions are cited, configurable data (:class:`OutcomeCriteria`, protocols.md §7, and
``data/outcomes/outcome_config.json``):

* **baseline**: the last score of the instrument in the ``baseline_window_days`` (14) up to and
  including the first dose (a date-only score on the day of the first dose counts as the
  pre-infusion score). It must reach ``baseline_min`` (e.g. PHQ-9 ≥ 10): otherwise the course
  has **no baseline** (status ``no_baseline``, with the reason in ``notes``) and is not counted;
* **response**: a fall of at least ``response_fraction`` (default 50 %) from baseline;
* **remission**: a total at or below ``remission_max`` — per treatment where the literature
  differs (MADRS ≤ 12 in the esketamine programme, ≤ 10 in the IV ketamine literature);
* **relapse** is counted after the acute phase: its origin is the response assessment at the end
  of induction (the first score 0–``relapse_origin_window_days`` after the last induction dose,
  which must meet the response criterion). After it, relapse is two consecutive scores at
  syndromal severity (``relapse_score_min``: MADRS ≥ 22 as in SUSTAIN-1, HAM-D17 ≥ 18, PHQ-9 ≥ 10,
  QIDS-SR16 ≥ 11) that lie ``relapse_gap_min_days``–``relapse_gap_max_days`` calendar days apart
  (inclusive), or a recorded hospitalisation / suicide-related event. A rise during induction
  (PHQ-9 20 → 9 → 11) is not a relapse; without an end of induction relapse is not assessed.

Day counts (time to response, days since the last dose, relapse spacing) are calendar days.
The functions never read the clock: pass ``as_of``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal, get_args

from ketaclinic.clinical.outcome_config import load_outcome_config
from ketaclinic.clinical.rules import Cited, ClinicalInputError, Grade

P7 = "protocols.md §7"
RelapseEventKind = Literal[
    "hospitalisation_for_depression",
    "suicide_attempt",
    "suicide",
    "suicide_prevention_admission",
    "other_relapse_event",
]
RELAPSE_EVENT_KINDS: tuple[str, ...] = get_args(RelapseEventKind)


@dataclass(frozen=True)
class Assessment:
    """One scored form: when, which instrument, and its total."""

    at: date | datetime
    instrument: str
    total: float


@dataclass(frozen=True)
class ClinicalEvent:
    """A recorded event that may count as relapse (see :data:`RELAPSE_EVENT_KINDS`)."""

    at: date | datetime
    kind: str


@dataclass(frozen=True)
class OutcomeCriteria:
    """Response, remission and relapse criteria for one instrument, each value cited."""

    instrument: str
    remission_max: Cited
    response_fraction: Cited = Cited(
        0.5, "fraction of baseline", f"{P7}: response ≥ 50 % fall", Grade.CONFIRMED
    )
    relapse_score_min: Cited | None = None
    relapse_gap_min_days: Cited = Cited(
        5, "d", f"{P7}: relapse visits 5–15 days apart (SUSTAIN-1)", Grade.UNCONFIRMED
    )
    relapse_gap_max_days: Cited = Cited(
        15, "d", f"{P7}: relapse visits 5–15 days apart (SUSTAIN-1)", Grade.UNCONFIRMED
    )
    relapse_events: tuple[str, ...] = RELAPSE_EVENT_KINDS
    baseline_window_days: Cited = Cited(
        14, "d", "project default: baseline in the 14 days up to the first dose", Grade.UNCONFIRMED
    )
    baseline_min: Cited | None = None
    relapse_origin_window_days: Cited = Cited(
        14, "d", "project default: end-of-induction assessment 0-14 days after the last "
        "induction dose", Grade.UNCONFIRMED,
    )
    treatment: str = ""  # the treatment whose remission threshold applies ("" = any)


_BUILTIN_CRITERIA: dict[str, OutcomeCriteria] = {
    "phq9": OutcomeCriteria(
        "phq9",
        Cited(
            4,
            "{score}",
            "instruments.md §2.1: remission < 5 (Kaiser Permanente, Psychiatr Serv; CMS159)",
            Grade.CONFIRMED,
        ),
    ),
    "qids-sr16": OutcomeCriteria(
        "qids-sr16",
        Cited(5, "{score}", "instruments.md §2.3: STAR*D remission < 6 (≤ 5)", Grade.CONFIRMED),
    ),
    "madrs": OutcomeCriteria(
        "madrs",
        Cited(
            12, "{score}", f"{P7}: MADRS ≤ 12 (esketamine programme, TRANSFORM)", Grade.CONFIRMED
        ),
    ),
    "hamd17": OutcomeCriteria(
        "hamd17",
        Cited(7, "{score}", "instruments.md §2.4: HAM-D17 ≤ 7 by convention", Grade.SECONDARY),
    ),
}


def _cited(raw: Mapping[str, Any]) -> Cited:
    return Cited(raw["value"], raw.get("unit", ""), raw["source"], Grade(raw.get("grade", "U")))


def criteria_from_config(
    instrument: str, treatment: str = "", config: Mapping[str, Any] | None = None
) -> OutcomeCriteria:
    """The criteria for ``instrument`` (and ``treatment``) from the outcome configuration.

    Baseline window and minimum, relapse threshold, spacing and origin window, and the
    per-treatment remission threshold come from ``config`` (default: the bundled
    ``outcome_config.json``); anything it does not set keeps the built-in cited default.
    """
    try:
        crit = _BUILTIN_CRITERIA[instrument]
    except KeyError:
        raise ClinicalInputError(
            f"no outcome criteria for {instrument!r}; known: {', '.join(_BUILTIN_CRITERIA)}"
        ) from None
    if config is None:
        config = load_outcome_config()
    base = config.get("baseline", {})
    rel = config.get("relapse", {})
    changes: dict[str, Any] = {"treatment": treatment}
    if "window_days" in base:
        changes["baseline_window_days"] = _cited(base["window_days"])
    if instrument in base.get("min_total", {}):
        changes["baseline_min"] = _cited(base["min_total"][instrument])
    if rel.get("origin", "end_of_induction") != "end_of_induction":
        raise ClinicalInputError(f"unknown relapse origin {rel['origin']!r}")
    if "origin_window_days" in rel:
        changes["relapse_origin_window_days"] = _cited(rel["origin_window_days"])
    if instrument in rel.get("score_min", {}):
        changes["relapse_score_min"] = _cited(rel["score_min"][instrument])
    gaps = rel.get("gap_days", {})
    gap = gaps.get(instrument, gaps.get("default"))
    if gap:
        grade = Grade(gap.get("grade", "U"))
        changes["relapse_gap_min_days"] = Cited(gap["min"], "d", gap["source"], grade)
        changes["relapse_gap_max_days"] = Cited(gap["max"], "d", gap["source"], grade)
    by_treatment = config.get("remission_by_treatment", {}).get(treatment, {})
    if instrument in by_treatment:
        changes["remission_max"] = _cited(by_treatment[instrument])
    out = replace(crit, **changes)
    if out.relapse_gap_min_days.value > out.relapse_gap_max_days.value:
        raise ClinicalInputError(f"{instrument}: relapse gap min is above max")
    return out


def remission_overrides(
    config: Mapping[str, Any] | None = None,
) -> dict[tuple[str, str], float]:
    """(treatment, instrument) → remission threshold where the treatment's literature sets its
    own (``remission_by_treatment`` in the outcome configuration)."""
    if config is None:
        config = load_outcome_config()
    return {(t, i): float(v["value"])
            for t, by in config.get("remission_by_treatment", {}).items()
            for i, v in by.items() if i in _BUILTIN_CRITERIA}


MADRS_REMISSION_ACADEMIC = Cited(
    10, "{score}", f"{P7}: MADRS ≤ 10 (many academic trials; Daly 2018)", Grade.CONFIRMED
)
MADRS_RELAPSE_SUSTAIN1 = Cited(
    22, "{score}", f"{P7}: MADRS ≥ 22 at 2 consecutive visits (SUSTAIN-1)", Grade.UNCONFIRMED
)
HAMD_RELAPSE_JANSSEN = Cited(
    18, "{score}", f"{P7}: HAM-D17 ≥ 18 on 2 visits 7–14 days apart (NCT04007367)", Grade.CONFIRMED
)


DEFAULT_CRITERIA: dict[str, OutcomeCriteria] = {
    name: criteria_from_config(name) for name in _BUILTIN_CRITERIA
}


@dataclass(frozen=True)
class CourseOutcome:
    instrument: str
    # not_started | no_baseline | baseline_only | non_response | response | remission
    # | response_lost | relapsed
    status: str
    baseline: Assessment | None
    latest: Assessment | None
    percent_change_latest: float | None
    first_response: Assessment | None
    first_remission: Assessment | None
    time_to_response_days: int | None
    relapse_at: date | datetime | None
    relapse_reason: str
    days_since_last_dose: int | None
    criteria: OutcomeCriteria
    notes: tuple[str, ...] = field(default_factory=tuple)
    # the response assessment at the end of induction: relapse is counted from it
    relapse_origin: Assessment | None = None


def default_criteria(instrument: str, treatment: str = "") -> OutcomeCriteria:
    """The shipped criteria for ``instrument`` (phq9, qids-sr16, madrs, hamd17), with the
    remission threshold of ``treatment`` ("esketamine", "ketamine-iv") where it differs."""
    if instrument not in DEFAULT_CRITERIA:
        raise ClinicalInputError(
            f"no outcome criteria for {instrument!r}; known: {', '.join(DEFAULT_CRITERIA)}"
        )
    if not treatment:
        return DEFAULT_CRITERIA[instrument]
    return criteria_from_config(instrument, treatment)


def evaluate_course(
    assessments: Iterable[Assessment],
    dose_times: Iterable[date | datetime],
    criteria: OutcomeCriteria,
    events: Iterable[ClinicalEvent] = (),
    as_of: date | datetime | None = None,
    end_of_induction: date | datetime | None = None,
) -> CourseOutcome:
    """Baseline, response, remission, relapse and status of one course for one instrument.

    Parameters
    ----------
    assessments : iterable of Assessment
        Scores of any instruments; only ``criteria.instrument`` is used.
    dose_times : iterable of date or datetime
        Doses (infusions, esketamine sessions) of this course.
    criteria : OutcomeCriteria
        e.g. ``default_criteria("madrs")``.
    events : iterable of ClinicalEvent
        Hospitalisations and suicide-related events recorded during the course.
    as_of : date or datetime, optional
        "Today", for ``days_since_last_dose``.
    end_of_induction : date or datetime, optional
        The last induction dose, once no induction session is pending. Relapse is counted from
        the response assessment after it; without it relapse is not assessed.
    """
    doses = sorted(_check_times(dose_times, "dose"), key=_dt)
    events = list(events)
    scores = [a for a in assessments if a.instrument == criteria.instrument]
    eoi = [end_of_induction] if end_of_induction is not None else []
    _check_times(
        [a.at for a in scores] + [e.at for e in events] + doses + eoi
        + ([as_of] if as_of else []), "time"
    )
    scores.sort(key=lambda a: _dt(a.at))
    since = (_day(as_of) - _day(doses[-1])).days if (doses and as_of is not None) else None

    def early(status: str, baseline: Assessment | None = None,
              notes: tuple[str, ...] = ()) -> CourseOutcome:
        return CourseOutcome(
            instrument=criteria.instrument,
            status=status,
            baseline=baseline,
            latest=scores[-1] if scores else None,
            percent_change_latest=None,
            first_response=None,
            first_remission=None,
            time_to_response_days=None,
            relapse_at=None,
            relapse_reason="",
            days_since_last_dose=since,
            criteria=criteria,
            notes=notes,
        )

    if not doses:
        return early("not_started")
    first_dose = _dt(doses[0])
    baseline, why = select_baseline(scores, first_dose, criteria)
    if baseline is None:
        return early("no_baseline", notes=(why,))
    after = [a for a in scores if _dt(a.at) > first_dose]
    if not after:
        return early("baseline_only", baseline)
    return _evaluate_follow_up(baseline, after, doses, criteria, events, since,
                               _dt(end_of_induction) if end_of_induction is not None else None)


def end_of_induction_time(
    induction_doses: Iterable[date | datetime], induction_pending: int
) -> date | datetime | None:
    """The end of induction: the last given induction dose once no induction session is
    pending (booked or planned and not cancelled or missed); None before that."""
    doses = list(induction_doses)
    if induction_pending or not doses:
        return None
    return max(doses, key=_dt)


def select_baseline(
    scores: Sequence[Assessment], first_dose: datetime, criteria: OutcomeCriteria
) -> tuple[Assessment | None, str]:
    """The qualifying baseline (or None) and, without one, the reason.

    The last score in the ``baseline_window_days`` up to the first dose; it must reach
    ``baseline_min``. ``scores`` are of one instrument, in time (and recording) order.
    """
    window = timedelta(days=float(criteria.baseline_window_days.value))
    before = [a for a in scores if _dt(a.at) <= first_dose]
    recent = [a for a in before if _dt(a.at) >= first_dose - window]
    days = criteria.baseline_window_days.value
    if not recent:
        why = (f"no baseline: no {criteria.instrument} score in the {days} days up to the first "
               "dose" + (" (only older ones)" if before else ""))
        return None, why
    last = recent[-1]
    minimum = criteria.baseline_min
    if minimum is not None and last.total < minimum.value:
        return None, (f"no baseline: the last score before the first dose ({last.total:g}) is "
                      f"below the minimum baseline severity {minimum.value} "
                      f"({minimum.source})")
    return last, ""


def _evaluate_follow_up(
    baseline: Assessment,
    after: list[Assessment],
    doses: list,
    criteria: OutcomeCriteria,
    events: list[ClinicalEvent],
    since: int | None,
    eoi: datetime | None,
) -> CourseOutcome:
    notes: list[str] = []
    responding = _response_test(baseline, criteria, notes)
    remitting = lambda a: a.total <= criteria.remission_max.value  # noqa: E731
    first_response = next((a for a in after if responding(a)), None)
    first_remission = next((a for a in after if remitting(a)), None)
    relapse_at, reason = (None, "")
    origin = relapse_origin(after, eoi, criteria, responding, notes)
    if origin is not None:
        relapse_at, reason = _find_relapse(origin, after, events, criteria, responding)
    latest = after[-1]
    change = (
        None
        if baseline.total == 0
        else round(100 * (latest.total - baseline.total) / baseline.total, 1)
    )
    return CourseOutcome(
        instrument=criteria.instrument,
        status=_status(latest, first_response, relapse_at, responding, remitting),
        baseline=baseline,
        latest=latest,
        percent_change_latest=change,
        first_response=first_response,
        first_remission=first_remission,
        time_to_response_days=(
            (_day(first_response.at) - _day(doses[0])).days if first_response else None
        ),
        relapse_at=relapse_at,
        relapse_reason=reason,
        days_since_last_dose=since,
        criteria=criteria,
        notes=tuple(notes),
        relapse_origin=origin,
    )


def relapse_origin(
    after: Sequence[Assessment],
    eoi: datetime | None,
    criteria: OutcomeCriteria,
    responding: Any,
    notes: list[str] | None = None,
) -> Assessment | None:
    """The end-of-induction response assessment that relapse is counted from, or None.

    The first score after the last induction dose and at most ``relapse_origin_window_days``
    later; it must meet the response criterion.
    """
    notes = notes if notes is not None else []
    if eoi is None:
        notes.append("relapse not assessed: induction has not ended")
        return None
    limit = eoi + timedelta(days=float(criteria.relapse_origin_window_days.value))
    first = next((a for a in after if eoi < _dt(a.at) <= limit), None)
    if first is None:
        notes.append("relapse not assessed: no score in the "
                     f"{criteria.relapse_origin_window_days.value} days after the end of "
                     "induction")
        return None
    if not responding(first):
        notes.append("relapse not assessed: no response at the end of induction")
        return None
    return first


def _response_test(baseline: Assessment, criteria: OutcomeCriteria, notes: list[str]):
    fraction = float(criteria.response_fraction.value)
    if baseline.total <= 0:
        notes.append("baseline total is 0: response cannot be computed")
        return lambda a: False
    return lambda a: (baseline.total - a.total) / baseline.total >= fraction


def _find_relapse(
    response: Assessment,
    after: list[Assessment],
    events: list[ClinicalEvent],
    criteria: OutcomeCriteria,
    responding,
) -> tuple[date | datetime | None, str]:
    def relapse_level(a: Assessment) -> bool:
        if criteria.relapse_score_min is not None:
            return a.total >= criteria.relapse_score_min.value
        return not responding(a)

    later = [a for a in after if _dt(a.at) > _dt(response.at)]
    lo, hi = criteria.relapse_gap_min_days.value, criteria.relapse_gap_max_days.value
    by_scores = None
    for first, second in zip(later, later[1:], strict=False):
        gap = (_day(second.at) - _day(first.at)).days
        if relapse_level(first) and relapse_level(second) and lo <= gap <= hi:
            by_scores = second
            break
    by_event = next(
        (
            e
            for e in sorted(events, key=lambda e: _dt(e.at))
            if e.kind in criteria.relapse_events and _dt(e.at) > _dt(response.at)
        ),
        None,
    )
    if by_event and (by_scores is None or _dt(by_event.at) <= _dt(by_scores.at)):
        return by_event.at, f"event: {by_event.kind}"
    if by_scores:
        level = (
            f"≥ {criteria.relapse_score_min.value}"
            if criteria.relapse_score_min
            else "above the response threshold"
        )
        return by_scores.at, f"two consecutive scores {level} {lo}–{hi} days apart"
    return None, ""


def _status(latest, first_response, relapse_at, responding, remitting) -> str:
    if relapse_at is not None:
        return "relapsed"
    if remitting(latest):
        return "remission"
    if responding(latest):
        return "response"
    return "response_lost" if first_response is not None else "non_response"


def _dt(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day)


def _day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _check_times(values: Sequence | Iterable, what: str) -> list:
    values = list(values)
    for v in values:
        if not isinstance(v, date):
            raise ClinicalInputError(f"{what} {v!r} is not a date or datetime")
    aware = {
        isinstance(v, datetime) and v.tzinfo is not None for v in values if isinstance(v, datetime)
    }
    if len(aware) > 1:
        raise ClinicalInputError(f"{what}s mix timezone-aware and naive datetimes")
    return values

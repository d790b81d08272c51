"""Outcomes of a treatment course from dated scores: baseline, response, remission, relapse.

Definitions are cited, configurable data (:class:`OutcomeCriteria`, protocols.md §7):

* **baseline**: the last score of the instrument at or before the first dose of the course (a
  date-only score on the day of the first dose counts as the pre-infusion score);
* **response**: a fall of at least ``response_fraction`` (default 50 %) from baseline;
* **remission**: a total at or below ``remission_max`` (PHQ-9 ≤ 4 i.e. < 5, QIDS-SR16 ≤ 5,
  MADRS ≤ 12 or ≤ 10, HAM-D17 ≤ 7);
* **relapse** (only after a response): two consecutive scores of the instrument that are both
  "relapse-level" and lie ``relapse_gap_min_days``–``relapse_gap_max_days`` calendar days apart
  (inclusive), or a recorded hospitalisation / suicide-related event. "Relapse-level" is by
  default "no longer meets the response criterion" (above the response threshold); a fixed score
  such as MADRS ≥ 22 (SUSTAIN-1) can be configured with ``relapse_score_min``.

Day counts (time to response, days since the last dose, relapse spacing) are calendar days.
The functions never read the clock: pass ``as_of``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from ketaclinic.clinical.rules import Cited, ClinicalInputError, Grade

P7 = "protocols.md §7"
RELAPSE_EVENT_KINDS = (
    "hospitalisation_for_depression",
    "suicide_attempt",
    "suicide",
    "suicide_prevention_admission",
    "other_relapse_event",
)


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


DEFAULT_CRITERIA: dict[str, OutcomeCriteria] = {
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
MADRS_REMISSION_ACADEMIC = Cited(
    10, "{score}", f"{P7}: MADRS ≤ 10 (many academic trials; Daly 2018)", Grade.CONFIRMED
)
MADRS_RELAPSE_SUSTAIN1 = Cited(
    22, "{score}", f"{P7}: MADRS ≥ 22 at 2 consecutive visits (SUSTAIN-1)", Grade.UNCONFIRMED
)
HAMD_RELAPSE_JANSSEN = Cited(
    18, "{score}", f"{P7}: HAM-D17 ≥ 18 on 2 visits 7–14 days apart (NCT04007367)", Grade.CONFIRMED
)


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


def default_criteria(instrument: str) -> OutcomeCriteria:
    """The shipped criteria for ``instrument`` (phq9, qids-sr16, madrs, hamd17)."""
    try:
        return DEFAULT_CRITERIA[instrument]
    except KeyError:
        raise ClinicalInputError(
            f"no outcome criteria for {instrument!r}; known: {', '.join(DEFAULT_CRITERIA)}"
        ) from None


def evaluate_course(
    assessments: Iterable[Assessment],
    dose_times: Iterable[date | datetime],
    criteria: OutcomeCriteria,
    events: Iterable[ClinicalEvent] = (),
    as_of: date | datetime | None = None,
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
    """
    doses = sorted(_check_times(dose_times, "dose"), key=_dt)
    events = list(events)
    scores = [a for a in assessments if a.instrument == criteria.instrument]
    _check_times(
        [a.at for a in scores] + [e.at for e in events] + doses + ([as_of] if as_of else []), "time"
    )
    scores.sort(key=lambda a: _dt(a.at))
    since = (_day(as_of) - _day(doses[-1])).days if (doses and as_of is not None) else None

    def early(status: str, baseline: Assessment | None = None) -> CourseOutcome:
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
        )

    if not doses:
        return early("not_started")
    first_dose = _dt(doses[0])
    before = [a for a in scores if _dt(a.at) <= first_dose]
    if not before:
        return early("no_baseline")
    baseline = before[-1]
    after = [a for a in scores if _dt(a.at) > first_dose]
    if not after:
        return early("baseline_only", baseline)
    return _evaluate_follow_up(baseline, after, doses, criteria, events, since)


def _evaluate_follow_up(
    baseline: Assessment,
    after: list[Assessment],
    doses: list,
    criteria: OutcomeCriteria,
    events: list[ClinicalEvent],
    since: int | None,
) -> CourseOutcome:
    notes: list[str] = []
    responding = _response_test(baseline, criteria, notes)
    remitting = lambda a: a.total <= criteria.remission_max.value  # noqa: E731
    first_response = next((a for a in after if responding(a)), None)
    first_remission = next((a for a in after if remitting(a)), None)
    relapse_at, reason = (None, "")
    if first_response is not None:
        relapse_at, reason = _find_relapse(first_response, after, events, criteria, responding)
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
    )


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

"""Treatment-course templates and dated session plans.

A course template (bundled JSON under ``data/courses/``) lists phases; each phase has a length
(a number of sessions or a number of weeks), a frequency and a dose text, every value cited.
:func:`plan_course` turns a template and a start date into dated :class:`PlannedSession` rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from typing import Any

from ketaclinic.clinical.chair_data import cited_from_dict, list_bundled, load_bundled_json
from ketaclinic.clinical.rules import Cited, ClinicalInputError

#: frequency name -> (sessions per block, block length in days)
FREQUENCIES: dict[str, tuple[int, int]] = {
    "3x_weekly": (3, 7),
    "2x_weekly": (2, 7),
    "weekly": (1, 7),
    "every_2_weeks": (1, 14),
    "every_4_weeks": (1, 28),
}

#: default weekdays (0 = Monday) when the caller gives none
DEFAULT_WEEKDAYS: dict[str, tuple[int, ...]] = {
    "3x_weekly": (0, 2, 4),
    "2x_weekly": (0, 3),
}

_MAX_PLAN_DAYS = 3 * 365


@dataclass(frozen=True)
class CoursePhase:
    """One phase of a course template."""

    name: str
    sessions: Cited | None
    weeks: Cited | None
    frequency_options: tuple[str, ...]
    default_frequency: Cited
    dose_text: str
    dose_source: Cited
    first_dose_text: str | None = None
    first_dose: Cited | None = None


@dataclass(frozen=True)
class CourseTemplate:
    """A cited course template (see ``data/courses/*.json``)."""

    id: str
    name: str
    treatment: str
    jurisdiction: str
    version: str
    min_interval_h: Cited
    phases: tuple[CoursePhase, ...]
    futility_review_after: Cited | None = None


@dataclass(frozen=True)
class PlannedSession:
    """A dated session of a planned course."""

    number: int
    on: date
    phase: str
    dose_text: str
    notes: tuple[str, ...] = ()
    sources: tuple[str, ...] = field(default=())


def _phase_from_dict(raw: dict[str, Any]) -> CoursePhase:
    phase = CoursePhase(
        name=raw["name"],
        sessions=cited_from_dict(raw.get("sessions")),
        weeks=cited_from_dict(raw.get("weeks")),
        frequency_options=tuple(raw["frequency_options"]),
        default_frequency=cited_from_dict(raw["default_frequency"]),
        dose_text=raw["dose_text"],
        dose_source=cited_from_dict(raw["dose_source"]),
        first_dose_text=raw.get("first_dose_text"),
        first_dose=cited_from_dict(raw.get("first_dose")),
    )
    if (phase.sessions is None) == (phase.weeks is None):
        raise ClinicalInputError(f"phase {phase.name!r} needs exactly one of sessions or weeks")
    unknown = set(phase.frequency_options) - set(FREQUENCIES)
    if unknown:
        raise ClinicalInputError(f"phase {phase.name!r} has unknown frequencies {sorted(unknown)}")
    return phase


def template_from_dict(raw: dict[str, Any]) -> CourseTemplate:
    """Build a :class:`CourseTemplate` from its JSON form (bundled or clinic-supplied)."""
    try:
        return CourseTemplate(
            id=raw["id"],
            name=raw["name"],
            treatment=raw["treatment"],
            jurisdiction=raw["jurisdiction"],
            version=raw["version"],
            min_interval_h=cited_from_dict(raw["min_interval_h"]),
            phases=tuple(_phase_from_dict(p) for p in raw["phases"]),
            futility_review_after=cited_from_dict(raw.get("futility_review_after")),
        )
    except KeyError as exc:
        raise ClinicalInputError(f"course template lacks field {exc.args[0]!r}") from exc


def list_course_templates() -> list[str]:
    """Ids of the bundled course templates."""
    return list(_template_ids())


@cache
def _template_ids() -> tuple[str, ...]:
    return tuple(list_bundled("courses"))  # package data: fixed while the process runs


def load_course_template(template_id: str) -> CourseTemplate:
    """Load one bundled course template by id (e.g. ``"esketamine_trd"``)."""
    if template_id not in _template_ids():
        raise ClinicalInputError(f"unknown course template {template_id!r}")
    return _bundled_template(template_id)


@cache
def _bundled_template(template_id: str) -> CourseTemplate:
    # Parsed once per process (the patient page lists every template on each view); the
    # template is frozen, so sharing it is safe.
    return template_from_dict(load_bundled_json(f"courses/{template_id}.json"))


def _weekdays_for(frequency: str, start: date, preferred: tuple[int, ...] | None) -> set[int]:
    if preferred:
        if any(not 0 <= d <= 6 for d in preferred):
            raise ClinicalInputError("preferred weekdays must be 0 (Monday) to 6 (Sunday)")
        return set(preferred)
    if frequency in DEFAULT_WEEKDAYS:
        return set(DEFAULT_WEEKDAYS[frequency])
    return {start.weekday() if start.weekday() < 5 else 0}


def _plan_phase(
    phase: CoursePhase,
    frequency: str,
    start: date,
    weekdays: set[int],
    last: date | None,
    min_gap_days: float,
) -> tuple[list[date], date]:
    """Dates for one phase, and the date the next phase starts."""
    per_block, block_days = FREQUENCIES[frequency]
    wanted = int(phase.sessions.value) if phase.sessions else None
    end = start + timedelta(days=7 * int(phase.weeks.value)) if phase.weeks else None
    dates: list[date] = []
    counts: dict[int, int] = {}
    day = start
    while (wanted is None or len(dates) < wanted) and (end is None or day < end):
        if (day - start).days > _MAX_PLAN_DAYS:
            raise ClinicalInputError("course plan does not fit the preferred weekdays")
        block = (day - start).days // block_days
        gap_ok = last is None or (day - last).days >= min_gap_days
        if day.weekday() in weekdays and gap_ok and counts.get(block, 0) < per_block:
            dates.append(day)
            counts[block] = counts.get(block, 0) + 1
            last = day
        day += timedelta(days=1)
    next_start = end if end is not None else (dates[-1] + timedelta(days=1) if dates else start)
    return dates, next_start


def plan_course(
    template: CourseTemplate,
    start_date: date,
    preferred_weekdays: tuple[int, ...] | None = None,
    frequencies: dict[str, str] | None = None,
    min_interval_h: float | None = None,
) -> list[PlannedSession]:
    """Plan the dated sessions of a course.

    Parameters
    ----------
    template : CourseTemplate
        A loaded course template.
    start_date : date
        First possible session date; phases defined in weeks count from here.
    preferred_weekdays : tuple of int, optional
        Weekdays (0 = Monday) on which sessions may fall. Defaults: Mon/Thu for twice weekly,
        Mon/Wed/Fri for three times weekly, otherwise the start weekday (Monday if a weekend).
    frequencies : dict, optional
        Phase name -> frequency (one of the phase's ``frequency_options``).
    min_interval_h : float, optional
        Override of the template's cited minimum interval between sessions.

    Returns
    -------
    list of PlannedSession
        Numbered from 1, with the phase, dose text, notes and sources.

    Examples
    --------
    >>> t = load_course_template("iv_ketamine_induction")
    >>> [s.on.isoformat() for s in plan_course(t, date(2026, 1, 5))][:3]
    ['2026-01-05', '2026-01-08', '2026-01-12']
    """
    chosen = dict(frequencies or {})
    gap_h = template.min_interval_h.value if min_interval_h is None else min_interval_h
    if gap_h < 0:
        raise ClinicalInputError("minimum interval must not be negative")
    sessions: list[PlannedSession] = []
    phase_start, last = start_date, None
    for phase in template.phases:
        frequency = chosen.pop(phase.name, phase.default_frequency.value)
        if frequency not in phase.frequency_options:
            raise ClinicalInputError(
                f"frequency {frequency!r} not allowed in phase {phase.name!r}; "
                f"choose one of {list(phase.frequency_options)}"
            )
        weekdays = _weekdays_for(frequency, phase_start, preferred_weekdays)
        dates, phase_start = _plan_phase(phase, frequency, phase_start, weekdays, last, gap_h / 24)
        for on in dates:
            sessions.append(_planned(template, phase, len(sessions) + 1, on, frequency))
        last = dates[-1] if dates else last
    if chosen:
        raise ClinicalInputError(f"template has no phase named {sorted(chosen)}")
    return sessions


def _planned(
    template: CourseTemplate, phase: CoursePhase, number: int, on: date, frequency: str
) -> PlannedSession:
    dose_text = phase.dose_text
    sources = [phase.dose_source.source, phase.default_frequency.source]
    if number == 1 and phase.first_dose_text:
        dose_text = phase.first_dose_text
        if phase.first_dose is not None:
            sources.append(phase.first_dose.source)
    notes = [f"{phase.name} phase, {frequency.replace('_', ' ')}"]
    review = template.futility_review_after
    if review is not None and number == int(review.value):
        notes.append(
            f"futility review: if no response after {review.value} sessions, review "
            f"continuing the series (grade {review.grade.value})"
        )
        sources.append(review.source)
    return PlannedSession(number, on, phase.name, dose_text, tuple(notes), tuple(sources))

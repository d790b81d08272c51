"""Chair scheduling: opening hours, session length, patient spacing, explained conflicts.

Bookings are plain frozen values. :func:`check_booking` returns only the problems it found
(an empty list means the booking fits); each :class:`Finding` names the rule and its source.
Reschedule and cancel return new :class:`Booking` values that keep the coded reason.

Times: either all naive clinic-local wall times, or all aware instants together with the
clinic's zone ``tz``. Opening hours are wall-clock times, so they (and the times in messages)
are read in ``tz``; overlaps and intervals are measured in elapsed time, which stays right
across a daylight-saving change only with aware instants.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from ketaclinic.clinical.chair_data import cited_from_dict, load_bundled_json
from ketaclinic.clinical.rules import Cited, ClinicalInputError, Finding, Level

BOOKED = "booked"
CANCELLED = "cancelled"


@dataclass(frozen=True)
class OpeningHours:
    """One opening window of a chair on a weekday (0 = Monday)."""

    weekday: int
    opens: time
    closes: time


@dataclass(frozen=True)
class Chair:
    """A treatment chair (recliner) with its opening windows."""

    chair_id: str
    name: str
    hours: tuple[OpeningHours, ...]


@dataclass(frozen=True)
class Booking:
    """A patient's booked session on one chair (naive local times or all aware)."""

    booking_id: str
    patient_id: str
    chair_id: str
    treatment: str
    start: datetime
    end: datetime
    status: str = BOOKED
    change_reason_code: str = ""
    change_reason: str = ""

    @property
    def duration_min(self) -> float:
        return (self.end - self.start).total_seconds() / 60


@dataclass(frozen=True)
class SessionLength:
    """Dosing (infusion or devices) plus observation minutes for one treatment."""

    dosing_min: Cited
    observation_min: Cited
    min_session_is_hard: bool

    @property
    def total_min(self) -> int:
        return int(self.dosing_min.value) + int(self.observation_min.value)


@dataclass(frozen=True)
class SchedulingRules:
    """Rule set for bookings (load the bundled defaults with :func:`load_scheduling_rules`)."""

    version: str
    sessions: dict[str, SessionLength]
    min_interval_h: Cited
    reason_codes: tuple[str, ...]


@dataclass(frozen=True)
class Slot:
    """A free start time on a chair."""

    chair_id: str
    start: datetime
    end: datetime


def load_scheduling_rules() -> SchedulingRules:
    """Load the bundled scheduling rule set (``data/chair/scheduling.json``)."""
    raw = load_bundled_json("chair/scheduling.json")
    sessions = {
        name: SessionLength(
            dosing_min=cited_from_dict(t["dosing_min"]),
            observation_min=cited_from_dict(t["observation_min"]),
            min_session_is_hard=bool(t["min_session_is_hard"]),
        )
        for name, t in raw["treatments"].items()
    }
    return SchedulingRules(
        version=raw["version"],
        sessions=sessions,
        min_interval_h=cited_from_dict(raw["min_interval_h"]),
        reason_codes=tuple(raw["change_reason_codes"]),
    )


def session_length_for(treatment: str, rules: SchedulingRules) -> SessionLength:
    """The session length rule of a treatment, or a one-line error."""
    try:
        return rules.sessions[treatment]
    except KeyError:
        raise ClinicalInputError(
            f"unknown treatment {treatment!r}; known: {sorted(rules.sessions)}"
        ) from None


def _wall(t: datetime, tz: tzinfo | None) -> datetime:
    """``t`` on the clinic's wall clock (naive times already are)."""
    return t if tz is None or t.tzinfo is None else t.astimezone(tz)


def _active_others(existing: Iterable[Booking], new: Booking) -> list[Booking]:
    return [b for b in existing if b.status == BOOKED and b.booking_id != new.booking_id]


def _overlaps(a: Booking, b: Booking) -> bool:
    return a.start < b.end and b.start < a.end


def _check_overlaps(others: list[Booking], new: Booking, tz: tzinfo | None) -> list[Finding]:
    findings = []
    for other in others:
        if not _overlaps(other, new):
            continue
        start, end = _wall(other.start, tz), _wall(other.end, tz)
        if other.chair_id == new.chair_id:
            findings.append(Finding(
                "schedule.chair_double_booked", Level.HARD,
                f"chair {new.chair_id} is already booked {start:%H:%M}-{end:%H:%M}",
                "chair capacity: one patient per chair",
                {"other_booking_id": other.booking_id, "chair_id": new.chair_id},
            ))
        if other.patient_id == new.patient_id:
            findings.append(Finding(
                "schedule.patient_double_booked", Level.HARD,
                f"the patient already has a session {start:%Y-%m-%d %H:%M} "
                f"on chair {other.chair_id}",
                "one session at a time per patient",
                {"other_booking_id": other.booking_id},
            ))
    return findings


def is_within_opening_hours(chair: Chair, start: datetime, end: datetime) -> bool:
    """True if ``[start, end]`` lies inside one opening window of the chair on that day."""
    if start.date() != end.date() and end.time() != time(0):
        return False
    return any(
        w.weekday == start.weekday() and w.opens <= start.time() and end.time() <= w.closes
        for w in chair.hours
    )


def _check_hours(chair: Chair, new: Booking, tz: tzinfo | None) -> list[Finding]:
    start, end = _wall(new.start, tz), _wall(new.end, tz)
    if is_within_opening_hours(chair, start, end):
        return []
    windows = [f"{w.opens:%H:%M}-{w.closes:%H:%M}" for w in chair.hours
               if w.weekday == start.weekday()]
    return [Finding(
        "schedule.outside_opening_hours", Level.SOFT,
        f"{start:%a %H:%M}-{end:%H:%M} is outside chair {chair.chair_id} opening hours "
        f"({', '.join(windows) or 'closed that day'})",
        "clinic opening hours (clinic configuration)",
        {"chair_id": chair.chair_id, "windows": windows},
    )]


def _check_interval(others: list[Booking], new: Booking, rules: SchedulingRules,
                    tz: tzinfo | None) -> list[Finding]:
    gap = timedelta(hours=float(rules.min_interval_h.value))
    findings = []
    for other in others:
        if other.patient_id != new.patient_id or _overlaps(other, new):
            continue
        distance = min(abs(new.start - other.end), abs(other.start - new.end))
        if distance < gap:
            findings.append(Finding(
                "schedule.min_interval", Level.SOFT,
                f"only {distance.total_seconds() / 3600:.1f} h from the patient's session on "
                f"{_wall(other.start, tz):%Y-%m-%d %H:%M}; minimum is "
                f"{rules.min_interval_h.value} h (grade {rules.min_interval_h.grade.value})",
                rules.min_interval_h.source,
                {"other_booking_id": other.booking_id,
                 "min_interval_h": rules.min_interval_h.value},
            ))
    return findings


def _check_length(new: Booking, rules: SchedulingRules) -> list[Finding]:
    length = session_length_for(new.treatment, rules)
    if new.duration_min >= length.total_min:
        return []
    return [Finding(
        "schedule.session_too_short",
        Level.HARD if length.min_session_is_hard else Level.SOFT,
        f"{new.duration_min:.0f} min booked; {new.treatment} needs "
        f"{length.dosing_min.value} min dosing + {length.observation_min.value} min observation",
        length.observation_min.source,
        {"booked_min": new.duration_min, "required_min": length.total_min},
    )]


def check_booking(
    existing_bookings: Sequence[Booking],
    new_booking: Booking,
    chairs: Sequence[Chair],
    rules: SchedulingRules,
    tz: tzinfo | None = None,
) -> list[Finding]:
    """Explain every conflict of ``new_booking`` with the chairs, hours and other bookings.

    ``tz`` is the clinic's zone when the bookings carry aware instants (see the module
    docstring); opening hours are then checked on the clinic's wall clock.

    Returns an empty list when the booking fits. Hard findings (chair or patient double-booked,
    esketamine session shorter than dosing + 2 h observation, unknown chair) must block;
    soft ones (outside opening hours, too soon after the patient's last session, short IV
    session) need an override reason.
    """
    if new_booking.end <= new_booking.start:
        raise ClinicalInputError("a booking must end after it starts")
    chair = next((c for c in chairs if c.chair_id == new_booking.chair_id), None)
    findings: list[Finding] = []
    if chair is None:
        findings.append(Finding("schedule.unknown_chair", Level.HARD,
                                f"no chair {new_booking.chair_id!r}", "clinic configuration"))
    else:
        findings += _check_hours(chair, new_booking, tz)
    others = _active_others(existing_bookings, new_booking)
    findings += _check_overlaps(others, new_booking, tz)
    findings += _check_interval(others, new_booking, rules, tz)
    findings += _check_length(new_booking, rules)
    return findings


def find_slots(
    day: date,
    treatment: str,
    patient_id: str,
    existing_bookings: Sequence[Booking],
    chairs: Sequence[Chair],
    rules: SchedulingRules,
    step_min: int = 15,
    duration_min: int | None = None,
    tz: tzinfo | None = None,
) -> list[Slot]:
    """Free start times on the clinic's ``day`` where a booking would raise no finding at all
    (with ``tz``: aware UTC instants, the existing bookings aware too)."""
    if step_min <= 0:
        raise ClinicalInputError("slot step must be positive")
    minutes = duration_min or session_length_for(treatment, rules).total_min

    def at(t: time) -> datetime:
        wall = datetime.combine(day, t)
        return wall if tz is None else wall.replace(tzinfo=tz).astimezone(UTC)

    slots = []
    for chair in chairs:
        for window in (w for w in chair.hours if w.weekday == day.weekday()):
            start, closes = at(window.opens), at(window.closes)
            while start + timedelta(minutes=minutes) <= closes:
                probe = Booking("__probe__", patient_id, chair.chair_id, treatment, start,
                                start + timedelta(minutes=minutes))
                if not check_booking(existing_bookings, probe, chairs, rules, tz):
                    slots.append(Slot(chair.chair_id, probe.start, probe.end))
                start += timedelta(minutes=step_min)
    return sorted(slots, key=lambda s: (s.start, s.chair_id))


def validate_change_reason(
    action: str, reason_code: str, reason_text: str, rules: SchedulingRules
) -> list[Finding]:
    """Findings for a reschedule or cancel reason; empty when the reason is acceptable."""
    findings = []
    if action not in ("reschedule", "cancel"):
        raise ClinicalInputError(f"unknown action {action!r}; use reschedule or cancel")
    if reason_code not in rules.reason_codes:
        findings.append(Finding("schedule.reason_code", Level.HARD,
                                f"{action} needs a reason code, one of {list(rules.reason_codes)}",
                                "ketaclinic: nothing is changed without a reason"))
    if not reason_text.strip():
        findings.append(Finding("schedule.reason_text", Level.HARD,
                                f"{action} needs a free-text reason",
                                "ketaclinic: nothing is changed without a reason"))
    return findings


def _require_reason(action: str, code: str, text: str, rules: SchedulingRules) -> None:
    problems = validate_change_reason(action, code, text, rules)
    if problems:
        raise ClinicalInputError("; ".join(f.message for f in problems))


def cancel_booking(
    booking: Booking, reason_code: str, reason_text: str, rules: SchedulingRules
) -> Booking:
    """A cancelled copy of ``booking`` that keeps the reason (raises without a reason)."""
    _require_reason("cancel", reason_code, reason_text, rules)
    if booking.status == CANCELLED:
        raise ClinicalInputError("booking is already cancelled")
    return replace(booking, status=CANCELLED, change_reason_code=reason_code,
                   change_reason=reason_text.strip())


def reschedule_booking(
    booking: Booking,
    new_start: datetime,
    reason_code: str,
    reason_text: str,
    rules: SchedulingRules,
    new_chair_id: str | None = None,
) -> Booking:
    """A moved copy of ``booking`` (same length) that keeps the reason; check it afterwards."""
    _require_reason("reschedule", reason_code, reason_text, rules)
    if booking.status == CANCELLED:
        raise ClinicalInputError("a cancelled booking cannot be rescheduled")
    return replace(
        booking,
        start=new_start,
        end=new_start + (booking.end - booking.start),
        chair_id=new_chair_id or booking.chair_id,
        change_reason_code=reason_code,
        change_reason=reason_text.strip(),
    )

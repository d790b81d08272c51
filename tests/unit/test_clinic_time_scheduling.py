"""Booking checks with aware instants and the clinic's zone: opening hours are read on the wall
clock, spacing between sessions in real elapsed time, and iCalendar carries UTC instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ketaclinic.clinical.ics import to_ics
from ketaclinic.clinical.scheduling import (
    Booking,
    Chair,
    OpeningHours,
    check_booking,
    find_slots,
    load_scheduling_rules,
)

RULES = load_scheduling_rules()
NY = ZoneInfo("America/New_York")
CHAIRS = (Chair("c1", "Chair 1", tuple(OpeningHours(d, time(8), time(18)) for d in range(7))),)


def ny(day: date, hh: int, mm: int = 0) -> datetime:
    """A New York wall time as an aware UTC instant (what the schedule service passes)."""
    return datetime.combine(day, time(hh, mm), tzinfo=NY).astimezone(UTC)


def book(bid: str, patient: str, start: datetime, minutes: int = 135) -> Booking:
    return Booking(bid, patient, "c1", "esketamine", start, start + timedelta(minutes=minutes))


def rules_of(findings) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.rule for f in findings}


def test_a_0900_new_york_booking_is_inside_0800_to_1800_opening_hours():
    new = book("b1", "p1", ny(date(2026, 1, 15), 9))
    assert new.start.hour == 14  # 14:00 UTC: outside 08-18 if the hours were read in UTC
    assert check_booking([], new, CHAIRS, RULES, NY) == []


def test_a_late_afternoon_booking_is_outside_hours_and_the_message_uses_clinic_time():
    new = book("b1", "p1", ny(date(2026, 1, 15), 16))  # 16:00-18:15 local
    findings = check_booking([], new, CHAIRS, RULES, NY)
    assert rules_of(findings) == {"schedule.outside_opening_hours"}
    assert "Thu 16:00-18:15" in findings[0].message


def test_the_conflict_message_names_the_other_booking_in_clinic_time():
    existing = [book("b1", "p1", ny(date(2026, 1, 15), 9))]
    findings = check_booking(existing, book("b2", "p2", ny(date(2026, 1, 15), 10)), CHAIRS,
                             RULES, NY)
    assert "already booked 09:00-11:15" in findings[0].message


def test_the_48_hour_spacing_is_measured_in_real_hours_across_spring_forward():
    sat = book("b1", "p1", ny(date(2026, 3, 7), 9))  # ends 11:15 EST
    mon = book("b2", "p1", ny(date(2026, 3, 9), 11, 15))  # 48 h later by the wall clock
    assert mon.start - sat.end == timedelta(hours=47)  # but the clocks went forward Sunday
    findings = check_booking([sat], mon, CHAIRS, RULES, NY)
    interval = [f for f in findings if f.rule == "schedule.min_interval"]
    assert interval, "the 48 h minimum interval is measured in real hours"
    assert "only 47.0 h" in interval[0].message and "2026-03-07 09:00" in interval[0].message


def test_free_slots_on_a_new_york_day_start_at_opening_time_on_the_wall_clock():
    slots = find_slots(date(2026, 7, 15), "esketamine", "p1", [], CHAIRS, RULES, tz=NY)
    assert slots[0].start == datetime(2026, 7, 15, 12, 0, tzinfo=UTC)  # 08:00 EDT
    last_end = max(s.end for s in slots).astimezone(NY)
    assert last_end.time() <= time(18)


def test_icalendar_events_carry_the_utc_instant_of_a_local_0900_session():
    winter = book("b1", "p1", ny(date(2026, 1, 15), 9))
    summer = book("b2", "p1", ny(date(2026, 7, 15), 9))
    text = to_ics([winter, summer], datetime(2026, 1, 1, tzinfo=UTC))
    assert "DTSTART:20260115T140000Z" in text
    assert "DTSTART:20260715T130000Z" in text

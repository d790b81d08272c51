"""Chair scheduling: conflicts are explained; changes keep a reason; iCalendar export."""

from datetime import UTC, date, datetime, time, timedelta

import pytest

from ketaclinic.clinical.ics import escape_text, fold_line, to_ics
from ketaclinic.clinical.rules import ClinicalInputError, Level
from ketaclinic.clinical.scheduling import (
    CANCELLED,
    Booking,
    Chair,
    OpeningHours,
    cancel_booking,
    check_booking,
    find_slots,
    load_scheduling_rules,
    reschedule_booking,
    validate_change_reason,
)

RULES = load_scheduling_rules()
HOURS = tuple(OpeningHours(d, time(8), time(18)) for d in range(5))
CHAIRS = (Chair("c1", "Chair 1", HOURS), Chair("c2", "Chair 2", HOURS))
MON = date(2026, 1, 5)


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm))


def book(bid, patient, chair, start, minutes=135, treatment="esketamine"):
    return Booking(bid, patient, chair, treatment, start, start + timedelta(minutes=minutes))


def rules_of(findings):
    return {f.rule for f in findings}


def test_a_booking_that_fits_has_no_findings():
    assert check_booking([], book("b1", "p1", "c1", at(MON, 9)), CHAIRS, RULES) == []


def test_a_chair_cannot_hold_two_patients_at_once():
    existing = [book("b1", "p1", "c1", at(MON, 9))]
    findings = check_booking(existing, book("b2", "p2", "c1", at(MON, 10)), CHAIRS, RULES)
    assert rules_of(findings) == {"schedule.chair_double_booked"}
    assert findings[0].level is Level.HARD and findings[0].values["other_booking_id"] == "b1"


def test_back_to_back_bookings_on_one_chair_do_not_conflict():
    existing = [book("b1", "p1", "c1", at(MON, 9))]
    assert check_booking(existing, book("b2", "p2", "c1", at(MON, 11, 15)), CHAIRS, RULES) == []


def test_a_patient_cannot_sit_in_two_chairs_at_once():
    existing = [book("b1", "p1", "c1", at(MON, 9))]
    findings = check_booking(existing, book("b2", "p1", "c2", at(MON, 10)), CHAIRS, RULES)
    assert "schedule.patient_double_booked" in rules_of(findings)


def test_a_booking_outside_opening_hours_is_a_warning():
    findings = check_booking([], book("b1", "p1", "c1", at(MON, 17)), CHAIRS, RULES)
    assert rules_of(findings) == {"schedule.outside_opening_hours"}
    assert findings[0].level is Level.SOFT


def test_a_weekend_booking_says_the_chair_is_closed():
    findings = check_booking([], book("b1", "p1", "c1", at(date(2026, 1, 10), 9)), CHAIRS, RULES)
    assert "closed that day" in findings[0].message


def test_a_session_the_next_day_is_too_soon_for_the_same_patient():
    existing = [book("b1", "p1", "c1", at(MON, 9))]
    findings = check_booking(existing, book("b2", "p1", "c1", at(MON + timedelta(1), 9)),
                             CHAIRS, RULES)
    assert rules_of(findings) == {"schedule.min_interval"}
    assert findings[0].level is Level.SOFT and "48" in findings[0].message


def test_an_esketamine_session_shorter_than_two_hours_observation_is_blocked():
    findings = check_booking([], book("b1", "p1", "c1", at(MON, 9), minutes=90), CHAIRS, RULES)
    assert rules_of(findings) == {"schedule.session_too_short"}
    assert findings[0].level is Level.HARD


def test_a_short_iv_session_is_only_a_warning():
    short = book("b1", "p1", "c1", at(MON, 9), minutes=60, treatment="iv_ketamine")
    assert check_booking([], short, CHAIRS, RULES)[0].level is Level.SOFT


def test_cancelled_bookings_do_not_block_the_chair():
    old = cancel_booking(book("b1", "p1", "c1", at(MON, 9)), "patient_request", "flu", RULES)
    assert check_booking([old], book("b2", "p2", "c1", at(MON, 9)), CHAIRS, RULES) == []


def test_a_booking_ending_before_it_starts_is_refused():
    with pytest.raises(ClinicalInputError):
        check_booking([], book("b1", "p1", "c1", at(MON, 9), minutes=-5), CHAIRS, RULES)


def test_find_slots_skips_taken_times_and_respects_closing_time():
    existing = [book("b1", "p1", "c1", at(MON, 8))]
    slots = find_slots(MON, "esketamine", "p2", existing, CHAIRS[:1], RULES, step_min=30)
    starts = [s.start.time() for s in slots]
    assert time(8) not in starts and time(10, 30) in starts
    assert starts[-1] == time(15, 30)  # 15:30 + 135 min = 17:45 <= 18:00


def test_cancel_and_reschedule_need_a_reason_code_and_text():
    b = book("b1", "p1", "c1", at(MON, 9))
    assert validate_change_reason("cancel", "", " ", RULES)
    with pytest.raises(ClinicalInputError, match="reason"):
        cancel_booking(b, "patient_request", "", RULES)
    moved = reschedule_booking(b, at(MON, 13), "staff_unavailable", "nurse ill", RULES)
    assert moved.start == at(MON, 13) and moved.duration_min == b.duration_min
    assert moved.change_reason == "nurse ill"
    cancelled = cancel_booking(b, "no_show", "did not attend", RULES)
    assert cancelled.status == CANCELLED and b.status != CANCELLED


def test_ics_export_uses_crlf_uid_dtstamp_and_escaped_text():
    b = cancel_booking(book("b1", "p1", "c1", at(MON, 9)), "other", "moved; see note, ok",
                       RULES)
    stamp = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    ics = to_ics([b, book("b2", "p1", "c1", at(MON + timedelta(3), 9))], stamp,
                 uid_domain="clinic.example", location="Room 1, Floor 2")
    assert ics.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n")
    assert ics.endswith("END:VCALENDAR\r\n")
    assert "\n" not in ics.replace("\r\n", "")
    assert "UID:b1@clinic.example\r\n" in ics and "DTSTAMP:20260101T120000Z\r\n" in ics
    assert "DTSTART:20260105T090000\r\n" in ics and "STATUS:CANCELLED" in ics
    assert "LOCATION:Room 1\\, Floor 2" in ics and "COMMENT:moved\\; see note\\, ok" in ics
    assert ics.count("BEGIN:VEVENT") == 2


def test_ics_requires_an_aware_dtstamp():
    with pytest.raises(ClinicalInputError):
        to_ics([], datetime(2026, 1, 1))


def test_long_ics_lines_are_folded_at_75_octets():
    folded = fold_line("COMMENT:" + "é" * 100)
    parts = folded.split("\r\n")
    assert all(len(p.encode("utf-8")) <= 75 for p in parts)
    assert all(p.startswith(" ") for p in parts[1:])
    assert "".join([parts[0]] + [p[1:] for p in parts[1:]]) == "COMMENT:" + "é" * 100


def test_ics_text_escaping_handles_backslash_and_newline():
    assert escape_text("a\\b\nc") == "a\\\\b\\nc"

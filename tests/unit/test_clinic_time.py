"""ClinicTime: stored UTC instants <-> the clinic's wall clock, with the daylight-saving edges
of America/New_York, Europe/Berlin and Australia/Sydney, and UTC itself."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kctest import examples

from ketaclinic.cli import main
from ketaclinic.config import load_settings
from ketaclinic.services.clinic_time import ClinicTime
from ketaclinic.services.errors import InvalidInput

NY, BERLIN, SYDNEY = (ClinicTime("America/New_York"), ClinicTime("Europe/Berlin"),
                      ClinicTime("Australia/Sydney"))


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args)  # naive = UTC, the storage convention


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args)  # naive wall-clock time


# --- plain conversions ---------------------------------------------------------------------
def test_utc_is_the_identity_both_ways():
    ct = ClinicTime("UTC")
    assert ct.from_local(local(2026, 3, 8, 2, 30)) == utc(2026, 3, 8, 2, 30)
    assert ct.to_local(utc(2026, 3, 8, 2, 30)).replace(tzinfo=None) == local(2026, 3, 8, 2, 30)
    assert ct.format(utc(2026, 11, 2, 9, 0), zone=True) == "2026-11-02 09:00 UTC"
    assert ct.today(utc(2026, 11, 2, 23, 59)) == dt.date(2026, 11, 2)


def test_a_nine_oclock_session_in_new_york_is_1400_utc_in_winter_and_1300_in_summer():
    assert NY.from_local(local(2026, 1, 15, 9, 0)) == utc(2026, 1, 15, 14, 0)
    assert NY.from_local(local(2026, 7, 15, 9, 0)) == utc(2026, 7, 15, 13, 0)
    assert NY.format(utc(2026, 1, 15, 14, 0), "%H:%M", zone=True) == "09:00 EST"
    assert NY.format(utc(2026, 7, 15, 13, 0), "%H:%M", zone=True) == "09:00 EDT"


def test_an_aware_time_is_taken_at_its_word():
    aware = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert NY.from_local(aware) == utc(2026, 1, 15, 8, 0)


def test_nothing_is_formatted_for_a_missing_time():
    assert NY.format(None) == ""


# --- spring forward: skipped local times are refused ---------------------------------------
@pytest.mark.parametrize(("ct", "skipped", "before", "before_utc", "after", "after_utc"), [
    (NY, local(2026, 3, 8, 2, 30), local(2026, 3, 8, 1, 59), utc(2026, 3, 8, 6, 59),
     local(2026, 3, 8, 3, 0), utc(2026, 3, 8, 7, 0)),
    (BERLIN, local(2026, 3, 29, 2, 30), local(2026, 3, 29, 1, 59), utc(2026, 3, 29, 0, 59),
     local(2026, 3, 29, 3, 0), utc(2026, 3, 29, 1, 0)),
    (SYDNEY, local(2026, 10, 4, 2, 30), local(2026, 10, 4, 1, 59), utc(2026, 10, 3, 15, 59),
     local(2026, 10, 4, 3, 0), utc(2026, 10, 3, 16, 0)),
], ids=["new-york", "berlin", "sydney"])
def test_a_local_time_skipped_when_clocks_go_forward_is_refused_with_a_clear_message(
        ct, skipped, before, before_utc, after, after_utc):
    with pytest.raises(InvalidInput, match=r"taken_at: .* does not exist in .*clocks were put "
                                           r"forward"):
        ct.from_local(skipped, "taken_at")
    assert ct.from_local(before) == before_utc
    assert ct.from_local(after) == after_utc
    assert after_utc - before_utc == dt.timedelta(minutes=1)  # one real minute apart


# --- fall back: repeated local times are the first occurrence ------------------------------
@pytest.mark.parametrize(("ct", "repeated", "first_utc", "first_abbr", "second_abbr"), [
    (NY, local(2026, 11, 1, 1, 30), utc(2026, 11, 1, 5, 30), "EDT", "EST"),
    (BERLIN, local(2026, 10, 25, 2, 30), utc(2026, 10, 25, 0, 30), "CEST", "CET"),
    (SYDNEY, local(2026, 4, 5, 2, 30), utc(2026, 4, 4, 15, 30), "AEDT", "AEST"),
], ids=["new-york", "berlin", "sydney"])
def test_a_local_time_repeated_when_clocks_go_back_is_read_as_its_first_occurrence(
        ct, repeated, first_utc, first_abbr, second_abbr):
    assert ct.is_ambiguous(repeated)
    assert ct.from_local(repeated) == first_utc
    second_utc = first_utc + dt.timedelta(hours=1)
    assert ct.to_local(second_utc).replace(tzinfo=None) == repeated  # shown the same ...
    assert ct.abbreviation(first_utc) == first_abbr  # ... but told apart by the zone
    assert ct.abbreviation(second_utc) == second_abbr
    assert not ct.is_ambiguous(repeated - dt.timedelta(hours=2))


# --- days and weeks ------------------------------------------------------------------------
def test_today_is_the_clinics_date_not_utcs():
    assert NY.today(utc(2026, 11, 3, 3, 0)) == dt.date(2026, 11, 2)  # 22:00 in New York
    assert SYDNEY.today(utc(2026, 11, 2, 14, 0)) == dt.date(2026, 11, 3)  # 01:00 in Sydney


@pytest.mark.parametrize(("ct", "day", "hours"), [
    (NY, dt.date(2026, 3, 8), 23), (NY, dt.date(2026, 11, 1), 25),
    (BERLIN, dt.date(2026, 3, 29), 23), (BERLIN, dt.date(2026, 10, 25), 25),
    (SYDNEY, dt.date(2026, 10, 4), 23), (SYDNEY, dt.date(2026, 4, 5), 25),
    (ClinicTime("UTC"), dt.date(2026, 3, 8), 24),
])
def test_a_clinic_day_runs_from_local_midnight_to_local_midnight(ct, day, hours):
    start, end = ct.day_range(day)
    assert end - start == dt.timedelta(hours=hours)
    assert ct.to_local(start).replace(tzinfo=None) == dt.datetime.combine(day, dt.time(0))


def test_where_midnight_is_skipped_the_day_starts_when_the_clocks_jump():
    havana = ClinicTime("America/Havana")  # 2026-03-08 00:00 -> 01:00
    start = havana.start_of_day(dt.date(2026, 3, 8))
    assert start == utc(2026, 3, 8, 5, 0)
    assert havana.format(start, "%H:%M") == "01:00"


def test_the_week_of_the_spring_change_in_new_york_is_monday_to_monday_local():
    start, end = NY.week_range(dt.date(2026, 3, 5))  # Thursday
    assert NY.week_start(dt.date(2026, 3, 5)) == dt.date(2026, 3, 2)
    assert start == utc(2026, 3, 2, 5, 0)  # Monday 00:00 EST
    assert end == utc(2026, 3, 9, 4, 0)  # next Monday 00:00 EDT
    assert end - start == dt.timedelta(days=7, hours=-1)


def test_a_sunday_belongs_to_the_week_that_began_on_the_monday_before():
    assert ClinicTime.week_start(dt.date(2026, 11, 8)) == dt.date(2026, 11, 2)
    assert ClinicTime.week_start(dt.date(2026, 11, 9)) == dt.date(2026, 11, 9)


# --- round trip ----------------------------------------------------------------------------
ZONES = [ClinicTime(z) for z in ("UTC", "America/New_York", "Europe/Berlin",
                                 "Australia/Sydney", "Australia/Lord_Howe", "America/Havana")]


@settings(max_examples=examples(300), deadline=None)
@given(zone=st.sampled_from(ZONES),
       instant=st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2035, 1, 1)))
def test_every_instant_shown_on_the_clinic_clock_reads_back_as_itself_unless_repeated(
        zone, instant):
    instant = instant.replace(second=0, microsecond=0)
    wall = zone.to_local(instant).replace(tzinfo=None)
    back = zone.from_local(wall)
    if back != instant:  # the second pass through a repeated hour reads as the first
        assert zone.is_ambiguous(wall) and back < instant <= back + dt.timedelta(hours=1)


# --- the setting ---------------------------------------------------------------------------
def test_the_clinic_time_zone_defaults_to_utc_and_takes_iana_names():
    assert load_settings({}).clinic_timezone == "UTC"
    s = load_settings({"KETACLINIC_CLINIC_TIMEZONE": "Europe/Berlin"})
    assert s.clinic_timezone == "Europe/Berlin"


@pytest.mark.parametrize("name", ["Mars/Olympus", "EST+5", "", "../etc/passwd", " UTC"])
def test_an_unknown_time_zone_is_refused(name):
    with pytest.raises(ValueError, match="unknown time zone"):
        load_settings({"KETACLINIC_CLINIC_TIMEZONE": name})
    with pytest.raises(ValueError, match="unknown time zone"):
        ClinicTime(name)


def test_the_server_refuses_to_start_with_an_unknown_zone_in_one_line(capsys, tmp_path):
    code = main(["serve"], environ={"KETACLINIC_CLINIC_TIMEZONE": "Mars/Olympus",
                                    "KETACLINIC_DATA_DIR": str(tmp_path)})
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0
    assert err.startswith("error: invalid configuration: KETACLINIC_CLINIC_TIMEZONE: unknown "
                          "time zone 'Mars/Olympus'")

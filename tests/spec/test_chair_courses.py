"""Course templates: label phases and IV series as published, planned on real dates."""

from datetime import date

import pytest

from ketaclinic.clinical.courses import (
    list_course_templates,
    load_course_template,
    plan_course,
    template_from_dict,
)
from ketaclinic.clinical.rules import ClinicalInputError, Grade

MONDAY = date(2026, 1, 5)


def test_every_bundled_template_loads_and_every_value_is_cited():
    for template_id in list_course_templates():
        t = load_course_template(template_id)
        assert t.min_interval_h.source and t.min_interval_h.grade in Grade
        for phase in t.phases:
            for cited in (phase.sessions, phase.weeks, phase.default_frequency, phase.dose_source):
                assert cited is None or cited.source


def test_iv_induction_twice_weekly_is_six_infusions_over_three_weeks():
    plan = plan_course(load_course_template("iv_ketamine_induction"), MONDAY)
    assert len(plan) == 6
    assert (plan[-1].on - plan[0].on).days <= 21
    assert [s.on.weekday() for s in plan] == [0, 3] * 3


def test_iv_induction_three_times_weekly_fits_in_twelve_days():
    plan = plan_course(load_course_template("iv_ketamine_induction"), MONDAY,
                       frequencies={"induction": "3x_weekly"})
    assert len(plan) == 6 and (plan[-1].on - plan[0].on).days == 11


def test_iv_induction_flags_a_futility_review_at_the_third_infusion():
    plan = plan_course(load_course_template("iv_ketamine_induction"), MONDAY)
    flagged = [s.number for s in plan if any("futility" in n for n in s.notes)]
    assert flagged == [3]


@pytest.mark.parametrize(
    ("phase", "count"), [("induction", 8), ("maintenance", 4), ("continuation", 4)]
)
def test_esketamine_trd_phases_follow_the_label(phase, count):
    plan = plan_course(load_course_template("esketamine_trd"), MONDAY)
    assert sum(1 for s in plan if s.phase == phase) == count


def test_esketamine_maintenance_starts_in_week_five_and_continuation_in_week_nine():
    plan = plan_course(load_course_template("esketamine_trd"), MONDAY)
    first = {s.phase: s.on for s in reversed(plan)}
    assert (first["maintenance"] - MONDAY).days == 28
    assert (first["continuation"] - MONDAY).days == 56


def test_esketamine_first_dose_is_56_mg_us_and_28_mg_eu_over_65():
    us = plan_course(load_course_template("esketamine_trd"), MONDAY)
    eu = plan_course(load_course_template("esketamine_trd_eu_65plus"), MONDAY)
    assert us[0].dose_text.startswith("56 mg") and "84" in us[1].dose_text
    assert eu[0].dose_text.startswith("28 mg")


def test_esketamine_suicidal_ideation_is_84_mg_twice_weekly_for_four_weeks():
    plan = plan_course(load_course_template("esketamine_suicidal_ideation"), MONDAY)
    assert len(plan) == 8 and all(s.dose_text.startswith("84 mg") for s in plan)


def test_weekly_continuation_can_be_chosen_instead_of_every_two_weeks():
    plan = plan_course(load_course_template("esketamine_trd"), MONDAY,
                       frequencies={"continuation": "weekly"})
    assert sum(1 for s in plan if s.phase == "continuation") == 8


def test_preferred_weekdays_are_respected_and_sessions_keep_the_minimum_interval():
    plan = plan_course(load_course_template("iv_ketamine_induction"), MONDAY,
                       preferred_weekdays=(1, 2, 4), frequencies={"induction": "3x_weekly"})
    assert {s.on.weekday() for s in plan} <= {1, 2, 4}
    gaps = [(b.on - a.on).days for a, b in zip(plan, plan[1:], strict=False)]
    assert min(gaps) >= 2  # Tue/Wed adjacent days are skipped by the 48 h rule


def test_a_shorter_configured_interval_allows_adjacent_days():
    plan = plan_course(load_course_template("iv_ketamine_induction"), MONDAY,
                       preferred_weekdays=(1, 2, 4), frequencies={"induction": "3x_weekly"},
                       min_interval_h=24)
    assert [s.on.weekday() for s in plan[:3]] == [1, 2, 4]


def test_a_frequency_the_phase_does_not_allow_is_refused():
    with pytest.raises(ClinicalInputError, match="not allowed"):
        plan_course(load_course_template("esketamine_trd"), MONDAY,
                    frequencies={"induction": "weekly"})


def test_unknown_template_is_refused():
    with pytest.raises(ClinicalInputError):
        load_course_template("nope")


def test_a_phase_with_both_sessions_and_weeks_is_refused():
    raw = {"id": "x", "name": "x", "treatment": "iv_ketamine", "jurisdiction": "any",
           "version": "1", "min_interval_h": {"value": 48, "unit": "h", "source": "s"},
           "phases": [{"name": "p", "sessions": {"value": 1, "unit": "s", "source": "s"},
                       "weeks": {"value": 1, "unit": "w", "source": "s"},
                       "frequency_options": ["weekly"],
                       "default_frequency": {"value": "weekly", "unit": "f", "source": "s"},
                       "dose_text": "d", "dose_source": {"value": 1, "unit": "mg", "source": "s"}}]}
    with pytest.raises(ClinicalInputError, match="exactly one"):
        template_from_dict(raw)

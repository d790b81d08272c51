"""Opening hours shown to people name the weekdays; the compact admin form stays as it is."""

from ketaclinic.services.chair.schedule import hours_label


def test_weekday_runs_and_single_days_are_named():
    assert hours_label("0-4 08:00-18:00; 5 09:00-13:00") == "Mon–Fri 08:00–18:00; Sat 09:00–13:00"


def test_two_windows_on_one_day_are_both_shown():
    assert hours_label("2 08:00-12:00; 2 13:00-17:00") == "Wed 08:00–12:00; Wed 13:00–17:00"


def test_text_that_is_not_the_compact_form_is_shown_unchanged():
    assert hours_label("by appointment") == "by appointment"
    assert hours_label("") == ""

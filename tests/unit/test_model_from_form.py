"""The one form → model function: what a form sends becomes the model the JSON body is."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from ketaclinic.http.inputs import LocalDay, describe_errors, model_from_form
from ketaclinic.schemas_chair import DischargeCreate, PredoseVitals, VitalsCreate
from ketaclinic.services.clinic_time import ClinicTime
from ketaclinic.services.errors import InvalidInput
from ketaclinic.services.mbc.inputs import ReminderCreate, parse_days
from ketaclinic.services.mbc.instrument_forms import answers_from_items

NEW_YORK = LocalDay(dt.date(2026, 11, 2), ClinicTime("America/New_York"))


def test_empty_fields_are_left_out_and_undeclared_ones_ignored():
    form = {"csrf_token": "t", "idempotency_key": "k", "sbp_mmhg": "128", "dbp_mmhg": "",
            "button": "save"}
    assert model_from_form(VitalsCreate, form) == VitalsCreate(sbp_mmhg=128)


def test_a_time_typed_on_the_clinics_clock_is_the_utc_instant_the_json_body_gives():
    form = {"taken_at": "09:00", "sbp_mmhg": "128", "dbp_mmhg": "80", "version": "3"}
    typed = model_from_form(PredoseVitals, form, local=NEW_YORK, times=("taken_at",))
    sent = PredoseVitals.model_validate({"taken_at": "2026-11-02T09:00:00-05:00",
                                         "sbp_mmhg": 128, "dbp_mmhg": 80, "version": 3})
    assert typed == sent and typed.taken_at == dt.datetime(2026, 11, 2, 14, 0)


def test_a_full_date_and_time_on_the_clinics_clock_is_read_too():
    typed = model_from_form(VitalsCreate, {"taken_at": "2026-07-01T09:00"}, local=NEW_YORK,
                            times=("taken_at",))
    assert typed.taken_at == dt.datetime(2026, 7, 1, 13, 0)  # EDT in July


def test_a_time_that_is_not_one_names_the_field():
    with pytest.raises(InvalidInput, match="taken_at: enter a time like 14:05"):
        model_from_form(VitalsCreate, {"taken_at": "soon"}, local=NEW_YORK,
                        times=("taken_at",))


def test_times_without_the_clinics_day_are_a_programming_error():
    with pytest.raises(ValueError, match="LocalDay"):
        model_from_form(VitalsCreate, {"taken_at": "09:00"}, times=("taken_at",))


def test_checkboxes_are_true_when_ticked_and_false_when_not_sent():
    data = model_from_form(DischargeCreate, {"version": "2", "dissociation_resolved": "on"},
                           checkboxes=("dissociation_resolved", "responsible_adult_present"))
    assert data.dissociation_resolved is True and data.responsible_adult_present is False


def test_extra_fields_win_over_the_form():
    data = model_from_form(VitalsCreate, {"sbp_mmhg": "128"}, extra={"sbp_mmhg": 140})
    assert data.sbp_mmhg == 140


def test_a_refused_form_reads_as_the_json_routes_422():
    form = {"sbp_mmhg": "999", "hr_bpm": "²"}
    with pytest.raises(ValidationError) as exc:
        VitalsCreate.model_validate(form)
    with pytest.raises(InvalidInput) as refused:
        model_from_form(VitalsCreate, form)
    assert str(refused.value) == describe_errors(exc.value.errors())
    assert str(refused.value).startswith("sbp_mmhg: Input should be less than or equal to 400")
    assert "²" not in str(refused.value)  # the value typed is never echoed


# --- the shapes a form has and the JSON body has not ------------------------------------
@pytest.mark.parametrize(("form", "answers"), [
    ({"item_1": "2", "item_3": "0"}, ["2", None, "0"]),
    ({"item_1": "2", "item_3": "0", "items": "5"}, ["2", None, "0", None, None]),
    ({"item_2": " 1 ", "item_4": "", "items": "2"}, [None, " 1 "]),
])
def test_radio_rows_become_the_answers_list_as_long_as_the_form_was(form, answers):
    assert answers_from_items(form) == answers


@pytest.mark.parametrize(("form", "message"), [
    ({"item_x": "1"}, "answers: unknown field 'item_x'"),
    ({"item_61": "1"}, "answers: item 61 does not exist"),
    ({"item_1": "1", "items": "٣"}, "items: must be a whole number"),
    ({"item_1": "1", "items": "61"}, "items: must be a whole number from 1 to 60"),
    ({"items": "3"}, "answers: answer at least one item"),
])
def test_radio_rows_that_cannot_be_a_form_of_ours_are_refused(form, message):
    with pytest.raises(InvalidInput, match=message):
        answers_from_items(form)


def test_an_unanswered_phone_form_goes_on_as_missing_answers_for_its_service_to_judge():
    assert answers_from_items({"items": "3"}, required=False) == [None, None, None]


@pytest.mark.parametrize(("typed", "days"), [("1,3,7", "1,3,7"), (" 7, 1,,3,3", "1,3,7"),
                                              ("0", "0")])
def test_reminder_days_are_kept_in_one_plain_shape(typed, days):
    data = model_from_form(ReminderCreate, {"course_id": "4", "instrument": "phq9",
                                            "days": typed})
    assert data.days == days


@pytest.mark.parametrize("typed", ["١,٣", "1,٣", "²", "1.5", "-1", "1;3", "366", ",".join(
    map(str, range(21)))])
def test_reminder_days_that_are_not_whole_ascii_days_are_refused(typed):
    with pytest.raises(InvalidInput, match=r"^days: "):
        model_from_form(ReminderCreate, {"course_id": "4", "instrument": "phq9",
                                         "days": typed})
    with pytest.raises(InvalidInput, match=r"^days: "):
        parse_days(typed)

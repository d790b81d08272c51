"""Spravato REMS Patient Monitoring Form: mapping, missing fields, due dates, PDF."""

from dataclasses import fields, replace
from datetime import date, datetime, timedelta

import pytest
from kcpdf import pdf_text

from ketaclinic.clinical.rems import (
    FIELD_LABELS,
    BpReading,
    RemsMonitoringForm,
    RemsSessionRecord,
    RemsTrackerItem,
    build_rems_form,
    check_rems_form,
    form_due_date,
    forms_due_within,
    missing_fields,
)
from ketaclinic.clinical.rules import ClinicalInputError, Level
from ketaclinic.renderers.rems_pdf import render_rems_pdf

T0 = datetime(2026, 1, 5, 10, 0)


def full_record(**changes) -> RemsSessionRecord:
    base = dict(
        patient_name="Alex Synthetic", patient_dob=date(1980, 2, 3), patient_sex="F",
        first_treatment=False, rems_enrolled=True,
        concomitant={"benzodiazepines": False, "non_benzo_sedative_hypnotics": False,
                     "psychostimulants": True, "maois": False, "opioids": False},
        provider_name="Nurse Demo", provider_phone="555-0100", provider_email="nurse@example.org",
        setting_name="Demo Clinic", setting_address="1 Example Way, Springfield",
        dose_mg=84, lot_numbers=("LOT-A1", "LOT-A2"),
        first_device_at=T0, monitoring_end_at=T0 + timedelta(minutes=125),
        ready_without_2h_rule_at=T0 + timedelta(minutes=75),
        bp_readings=(BpReading(T0 - timedelta(minutes=10), 128, 82),
                     BpReading(T0 + timedelta(minutes=38), 146, 90),
                     BpReading(T0 + timedelta(minutes=45), 140, 88),
                     BpReading(T0 + timedelta(minutes=118), 130, 84)),
        vitals_acceptable_before_dosing=True, vitals_acceptable_before_completion=True,
        sedation=True, dissociation=True, respiratory_depression=False,
        left_against_advice=False,
    )
    base.update(changes)
    return RemsSessionRecord(**base)


def test_every_form_field_has_a_label():
    assert set(FIELD_LABELS) == {f.name for f in fields(RemsMonitoringForm)}


def test_a_complete_record_fills_every_field():
    form = build_rems_form(full_record())
    assert missing_fields(form) == [] and check_rems_form(form) == []
    assert form.treatment_date == date(2026, 1, 5) and form.dose == "84"
    assert form.lot_numbers == "LOT-A1, LOT-A2"
    assert form.minutes_first_device_to_end_of_monitoring == 125
    assert form.minutes_until_ready_without_2h_rule == 75
    assert (form.bp_before_dosing, form.bp_at_40_min, form.bp_before_completion) == (
        "128/82", "146/90", "130/84")
    assert form.psychostimulants is True and form.opioids is False


def test_an_unusual_dose_is_other_with_its_milligrams():
    form = build_rems_form(full_record(dose_mg=28))
    assert (form.dose, form.dose_other_mg) == ("other", 28)
    assert missing_fields(replace(form, dose_other_mg=None)) == ["dose_other_mg"]


def test_missing_values_are_listed_and_block_as_hard_findings():
    form = build_rems_form(full_record(provider_email=None, concomitant={"maois": False},
                                       bp_readings=(), lot_numbers=()))
    missing = missing_fields(form)
    assert {"provider_email", "benzodiazepines", "opioids", "bp_before_dosing", "bp_at_40_min",
            "bp_before_completion", "lot_numbers"} <= set(missing)
    assert "maois" not in missing
    assert all(f.level is Level.HARD for f in check_rems_form(form))


def test_a_bp_far_from_40_minutes_is_not_the_40_minute_bp():
    rec = full_record(bp_readings=(BpReading(T0 - timedelta(minutes=5), 120, 80),
                                   BpReading(T0 + timedelta(minutes=60), 130, 85)))
    form = build_rems_form(rec)
    assert form.bp_at_40_min is None and form.bp_before_completion == "130/85"


def test_monitoring_under_120_minutes_is_flagged():
    form = build_rems_form(full_record(monitoring_end_at=T0 + timedelta(minutes=100)))
    assert [f.rule for f in check_rems_form(form)] == ["rems.monitoring_short"]


def test_unknown_concomitant_group_is_refused():
    with pytest.raises(ClinicalInputError):
        build_rems_form(full_record(concomitant={"alcohol": True}))


def test_form_is_due_seven_days_after_treatment():
    assert form_due_date(date(2026, 1, 5)) == date(2026, 1, 12)


def test_tracker_lists_unsubmitted_forms_due_within_seven_days_including_overdue():
    items = [RemsTrackerItem("late", date(2026, 1, 1)),
             RemsTrackerItem("soon", date(2026, 1, 8)),
             RemsTrackerItem("done", date(2026, 1, 8), submitted_on=date(2026, 1, 9)),
             RemsTrackerItem("future", date(2026, 1, 30))]
    due = forms_due_within(items, today=date(2026, 1, 10))
    assert [(d.form_id, d.overdue, d.days_left) for d in due] == [("late", True, -2),
                                                                  ("soon", False, 5)]


def _pdf_text(pdf: bytes) -> bytes:
    return pdf_text(pdf).encode("utf-8")  # the font is embedded: read as a reader would


def test_the_pdf_is_a_pdf_with_the_patient_and_fields_in_it():
    pdf = render_rems_pdf(build_rems_form(full_record()))
    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")
    text = _pdf_text(pdf)
    for needle in (b"Alex Synthetic", b"LOT-A1, LOT-A2", b"146/90", b"2026-01-12",
                   b"Psychostimulants"):
        assert needle in text


def test_the_pdf_marks_missing_fields():
    pdf = render_rems_pdf(build_rems_form(full_record(provider_phone=None)), compress=False)
    assert b"MISSING" in _pdf_text(pdf)


def test_a_patient_who_left_against_advice_is_on_the_form_never_as_ready():
    record = full_record(monitoring_end_at=T0 + timedelta(minutes=70), left_against_advice=True,
                         left_against_advice_note="Nurse Demo, 11:10: told to stay; said taxi")
    form = build_rems_form(record)
    assert form.left_against_advice is True and form.minutes_until_ready_without_2h_rule is None
    assert missing_fields(form) == []
    rules = [f.rule for f in check_rems_form(form)]
    assert rules == ["rems.left_against_advice", "rems.monitoring_short"]
    assert missing_fields(replace(form, left_against_advice_note=None)) == [
        "left_against_advice_note"]
    text = render_rems_pdf(form, compress=False)
    text = _pdf_text(text)
    assert b"LEFT AGAINST ADVICE" in text and b"said taxi" in text

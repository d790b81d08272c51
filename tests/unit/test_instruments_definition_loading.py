"""Clinic-supplied definition files: validated with clear errors before anything uses them."""

from __future__ import annotations

import json

import pytest

from ketaclinic.clinical.instruments import (
    DefinitionError,
    load_bundled,
    load_definition,
    score_answers,
)


def madrs_with_text() -> dict:
    raw = json.loads(json.dumps(load_bundled("madrs").raw))
    raw["version"] = "1.1.0"
    raw["licence"]["supplied_by"] = "Example Clinic (licence on file)"
    for item in raw["items"]:
        item["text"] = f"Licensed text of item {item['number']} (synthetic placeholder)"
    return raw


def test_a_clinic_supplied_madrs_with_item_text_loads_and_scores_the_same():
    d = load_definition(json.dumps(madrs_with_text()))
    assert d.rule_version == "madrs@1.1.0" and d.item(1).text.startswith("Licensed")
    assert score_answers(d, [3] * 10).total == 30


def test_item_text_in_a_licensed_definition_without_supplied_by_is_refused():
    raw = madrs_with_text()
    del raw["licence"]["supplied_by"]
    with pytest.raises(DefinitionError, match="clinic-supplied file"):
        load_definition(json.dumps(raw))


def test_every_problem_is_reported_with_its_path():
    raw = madrs_with_text()
    raw["version"] = "one"
    raw["items"][2]["max"] = "6"
    raw["alerts"][0]["threshold"] = 9
    raw["bands"]["sets"]["snaith"]["bands"][1]["min"] = 8
    with pytest.raises(DefinitionError) as caught:
        load_definition(json.dumps(raw))
    errors = caught.value.errors
    assert "version: must look like 1.0.0" in errors
    assert "items[2].max: must be an integer" in errors
    assert "\n" not in str(caught.value)


def test_band_gap_and_bad_alert_threshold_are_reported():
    raw = madrs_with_text()
    raw["alerts"][0]["threshold"] = 9
    raw["bands"]["sets"]["snaith"]["bands"][1]["min"] = 8
    with pytest.raises(DefinitionError) as caught:
        load_definition(json.dumps(raw))
    text = str(caught.value)
    assert "alerts[0].threshold: outside item 10 range" in text
    assert "bands.sets.snaith: bands must be contiguous" in text


def test_a_wrong_loinc_check_digit_is_refused():
    raw = json.loads(json.dumps(load_bundled("gad7").raw))
    raw["items"][0]["code"] = "69725-1"
    with pytest.raises(
        DefinitionError, match=r"items\[0\].code: '69725-1' is not a valid LOINC code"
    ):
        load_definition(json.dumps(raw))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "top level must be a JSON object"),
        ('{"schema": "other"}', "schema: must be 'ketaclinic.instrument/1'"),
    ],
)
def test_malformed_files_are_refused_clearly(text, message):
    with pytest.raises(DefinitionError, match=message):
        load_definition(text)


def test_item_numbers_must_run_in_order():
    raw = json.loads(json.dumps(load_bundled("gad7").raw))
    raw["items"][1]["number"] = 5
    with pytest.raises(DefinitionError, match="items: numbers must be 1, 2, 3"):
        load_definition(json.dumps(raw))

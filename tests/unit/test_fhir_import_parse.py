"""Reading a FHIR Bundle and a CSV roster into import items (no database)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from ketaclinic.services.interop.fhir_import_parse import parse_bundle
from ketaclinic.services.interop.import_model import (
    ChildItem,
    ImportRejected,
    PatientItem,
    SkippedItem,
)
from ketaclinic.services.interop.roster_import import parse_roster

BUNDLE = json.loads((Path(__file__).parents[1] / "data" / "fhir_import_bundle.json"
                     ).read_text(encoding="utf-8"))


def rejected(bundle) -> list[tuple[int, str, str]]:  # type: ignore[no-untyped-def]
    with pytest.raises(ImportRejected) as info:
        parse_bundle(bundle)
    return [(e.entry, e.resource_type, e.field) for e in info.value.errors]


def test_the_synthetic_bundle_yields_one_item_per_entry_with_the_core_s_answers():
    items = parse_bundle(BUNDLE)
    assert len(items) == len(BUNDLE["entry"])
    assert isinstance(items[0], PatientItem) and items[0].mrn == "FHIR-001"
    forms = {i.instrument_id: i.answers for i in items
             if isinstance(i, ChildItem) and i.kind == "assessment"}
    assert forms["phq9"] == {1: 1, 2: 2, 3: 1, 4: 2, 5: 1, 6: 0, 7: 1, 8: 0, 9: 1, 10: 1}
    assert forms["gad7"] == {1: 2, 2: 1, 3: 1, 4: 0, 5: 1, 6: 2, 7: 1}
    assert isinstance(items[-1], SkippedItem) and items[-1].resource_type == "Encounter"


@pytest.mark.parametrize("bundle, field", [
    ({"resourceType": "Patient"}, "resourceType"),
    ({"resourceType": "Bundle", "type": "searchset", "entry": []}, "type"),
    ({"resourceType": "Bundle", "type": "batch", "entry": [{}] * 5001}, "entry"),
])
def test_a_bundle_that_is_not_an_importable_bundle_is_refused_as_a_whole(bundle, field):
    assert rejected(bundle) == [(-1, "Bundle", field)]


def test_every_bad_entry_is_reported_with_its_index_type_and_field():
    bundle = copy.deepcopy(BUNDLE)
    bundle["entry"][1]["resource"]["subject"] = {"reference": "Patient/elsewhere"}
    bundle["entry"][6]["resource"]["code"] = {"coding": [{"system": "http://snomed.info/sct",
                                                          "code": "1"}]}
    bundle["entry"][7]["resource"]["valueQuantity"]["code"] = "g"
    bundle["entry"][8]["resource"]["item"][0]["answer"] = [{"valueCoding": {
        "system": "http://loinc.org", "code": "LA0000-0"}}]
    bundle["entry"][0]["resource"]["identifier"] = []
    assert rejected(bundle) == [
        (0, "Patient", "identifier"), (1, "Condition", "subject"),
        (6, "AllergyIntolerance", "code"), (7, "Observation", "valueQuantity.code"),
        (8, "QuestionnaireResponse", "item[0].answer")]


def test_a_structurally_invalid_resource_is_refused_by_the_r4b_model():
    bundle = copy.deepcopy(BUNDLE)
    bundle["entry"][1]["resource"]["onsetDateTime"] = "yesterday"
    assert rejected(bundle) == [(1, "Condition", "onsetDateTime")]


def test_a_roster_with_a_missing_column_names_the_columns_it_expects():
    with pytest.raises(ImportRejected) as info:
        parse_roster("mrn,family\nA-1,Roe\n")
    assert "birth_date" in info.value.errors[0].message


def test_an_international_phone_number_is_not_taken_for_a_formula():
    items = parse_roster("mrn,family,given,birth_date,sex,phone\n"
                         "A-1,Roe,Ann,1970-01-02,female,+44 20 7946 0000\n")
    assert items[0].fields["phone"] == "+44 20 7946 0000"  # type: ignore[union-attr]


def _status(kind: str, code: str | None) -> dict:
    return {} if code is None else {kind: {"coding": [{"code": code}]}}


@pytest.mark.parametrize("clinical, verification, reason, review", [
    ("active", None, None, False), ("recurrence", None, None, False),
    ("relapse", "confirmed", None, False), ("inactive", None, "resolved", False),
    ("remission", None, "resolved", False), ("resolved", "confirmed", "resolved", False),
    ("active", "refuted", "resolved", True),  # never dropped: history, for a person to review
    (None, "confirmed", None, True),  # no status: still counts, and is flagged
])
def test_a_condition_s_status_decides_its_inactive_reason(clinical, verification, reason,
                                                          review):
    bundle = copy.deepcopy(BUNDLE)
    i, condition = next((i, e["resource"]) for i, e in enumerate(bundle["entry"])
                        if e["resource"]["resourceType"] == "Condition")
    for key in ("clinicalStatus", "verificationStatus"):
        condition.pop(key, None)
    condition.update(_status("clinicalStatus", clinical))
    condition.update(_status("verificationStatus", verification))
    item = parse_bundle(bundle)[i]
    assert isinstance(item, ChildItem)
    assert (item.inactive_reason, bool(item.review)) == (reason, review)


@pytest.mark.parametrize("clinical, verification, reason, review", [
    ("active", "confirmed", None, False), ("inactive", "refuted", "refuted", False),
    ("inactive", None, None, True), ("resolved", "confirmed", None, True),  # keeps counting
    (None, "unconfirmed", None, True), ("active", "unconfirmed", None, False),
])
def test_an_allergy_stops_counting_on_import_only_when_refuted(clinical, verification, reason,
                                                              review):
    bundle = copy.deepcopy(BUNDLE)
    i, allergy = next((i, e["resource"]) for i, e in enumerate(bundle["entry"])
                      if e["resource"]["resourceType"] == "AllergyIntolerance")
    for key in ("clinicalStatus", "verificationStatus"):
        allergy.pop(key, None)
    allergy.update(_status("clinicalStatus", clinical))
    allergy.update(_status("verificationStatus", verification))
    item = parse_bundle(bundle)[i]
    assert isinstance(item, ChildItem)
    assert (item.inactive_reason, bool(item.review)) == (reason, review)

"""FHIR R4B mapping of completed PHQ-9 and GAD-7 forms (instruments.md §4–5)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ketaclinic.clinical.instruments import load_bundled, score_answers
from ketaclinic.clinical.rules import ClinicalInputError
from ketaclinic.services.fhir_scores import build_score_resources, validate_r4b

WHEN = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
EXPECTED = {
    "phq9": (
        "44249-1",
        "44261-6",
        [
            "44250-9",
            "44255-8",
            "44259-0",
            "44254-1",
            "44251-7",
            "44258-2",
            "44252-5",
            "44253-3",
            "44260-8",
        ],
    ),
    "gad7": (
        "69737-5",
        "70274-6",
        ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"],
    ),
}


def build(instrument, answers):
    d = load_bundled(instrument)
    result = score_answers(d, answers)
    return result, build_score_resources(
        d, result, patient_reference="Patient/synthetic-1", authored=WHEN, id_prefix="a1"
    )


@pytest.mark.parametrize(
    ("instrument", "answers"),
    [("phq9", [1, 2, 0, 3, 1, 1, 0, 2, 1, 1]), ("gad7", [0, 1, 2, 3, 0, 1, 2])],
)
def test_completed_form_maps_to_valid_r4b_resources_with_pinned_codes(instrument, answers):
    result, res = build(instrument, answers)
    panel_code, total_code, item_codes = EXPECTED[instrument]
    qr = res["questionnaire_response"]
    validate_r4b(qr)
    assert qr["status"] == "completed"
    link_ids = [i["linkId"] for i in qr["item"]]
    assert link_ids[: len(item_codes)] == [f"/{c}" for c in item_codes]
    assert link_ids[-1] == f"/{total_code}"
    observations = res["observations"]
    for obs in observations:
        model = validate_r4b(obs)
        assert model.get_resource_type() == "Observation"
        assert obs["category"][0]["coding"][0]["code"] == "survey"
        assert obs["derivedFrom"] == [{"reference": "QuestionnaireResponse/a1-qr"}]
    panel, *members = observations
    assert panel["code"]["coding"][0]["code"] == panel_code
    assert [m["code"]["coding"][0]["code"] for m in members] == item_codes + [total_code]
    assert panel["hasMember"] == [{"reference": f"Observation/{m['id']}"} for m in members]
    total = members[-1]
    assert total["valueQuantity"] == {
        "value": result.total,
        "unit": "{score}",
        "system": "http://unitsofmeasure.org",
        "code": "{score}",
    }
    first_answer = members[0]["valueCodeableConcept"]["coding"][0]
    assert first_answer["system"] == "http://loinc.org" and first_answer["code"].startswith("LA")


def test_phq9_item_9_answer_uses_loinc_answer_codes():
    _, res = build("phq9", [0] * 8 + [2])
    item9 = next(o for o in res["observations"] if o["id"] == "a1-item-9")
    assert item9["code"]["coding"][0]["code"] == "44260-8"
    assert item9["valueCodeableConcept"]["coding"][0]["code"] == "LA6570-1"


def test_incomplete_or_other_instruments_are_not_mapped():
    d = load_bundled("phq9")
    prorated = score_answers(d, [1, None, 1, 1, 1, 1, 1, 1, 1])
    with pytest.raises(ClinicalInputError, match="only a completed form"):
        build_score_resources(
            d, prorated, patient_reference="Patient/x", authored=WHEN, id_prefix="p"
        )
    madrs = load_bundled("madrs")
    with pytest.raises(ClinicalInputError, match="covers phq9, gad7 only"):
        build_score_resources(
            madrs,
            score_answers(madrs, [0] * 10),
            patient_reference="Patient/x",
            authored=WHEN,
            id_prefix="p",
        )


def test_r4b_validation_rejects_an_unknown_element():
    _, res = build("gad7", [0] * 7)
    broken = dict(res["observations"][1], valueStrng="x")
    with pytest.raises(Exception):  # noqa: B017  (pydantic ValidationError)
        validate_r4b(broken)

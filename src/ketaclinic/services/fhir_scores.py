"""FHIR R4 mapping of a completed PHQ-9 or GAD-7: a QuestionnaireResponse plus Observations.

Resources are built as plain dicts from the pure core's :class:`ScoreResult` and the bundled
definition (LOINC codes pinned there), and can be checked with :func:`validate_r4b`, which uses
``fhir.resources.R4B`` (the library's default package is R5; see instruments.md §5). Following
the US Behavioral Health IG, QuestionnaireResponse ``linkId`` carries the LOINC code ("/44250-9")
because R4 has no ``item.code``. Observations follow the US Core screening-assessment shape:
category ``survey``, a panel with ``hasMember`` → item and total Observations, ``derivedFrom`` →
the QuestionnaireResponse, total as ``valueQuantity`` in UCUM ``{score}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ketaclinic.clinical.instruments import InstrumentDefinition, ScoreResult
from ketaclinic.clinical.instruments.definitions import LOINC_SYSTEM
from ketaclinic.clinical.rules import ClinicalInputError

FHIR_MAPPED = ("phq9", "gad7")
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
UCUM = "http://unitsofmeasure.org"


def build_score_resources(
    definition: InstrumentDefinition,
    result: ScoreResult,
    *,
    patient_reference: str,
    authored: datetime,
    id_prefix: str,
) -> dict[str, Any]:
    """QuestionnaireResponse and Observations (panel, items, total) for one completed form.

    Parameters
    ----------
    definition : InstrumentDefinition
        The bundled PHQ-9 or GAD-7 definition.
    result : ScoreResult
        A complete (not prorated) result from :func:`score_answers`.
    patient_reference : str
        e.g. ``"Patient/123"``.
    authored : datetime
        When the form was completed (timezone-aware preferred).
    id_prefix : str
        Prefix for the resource ids (``<prefix>-qr``, ``<prefix>-panel`` …).

    Returns
    -------
    dict
        ``{"questionnaire_response": {...}, "observations": [panel, item 1, …, total]}``.
    """
    _check_mappable(definition, result)
    when = authored.isoformat()
    qr = _questionnaire_response(definition, result, patient_reference, when, f"{id_prefix}-qr")
    qr_ref = {"reference": f"QuestionnaireResponse/{qr['id']}"}
    common = {
        "status": "final",
        "category": [_survey()],
        "subject": {"reference": patient_reference},
        "effectiveDateTime": when,
        "derivedFrom": [qr_ref],
    }
    members = [
        _item_observation(definition, n, v, common, id_prefix)
        for n, v in _scored_answers(definition, result)
    ]
    total = {
        "resourceType": "Observation",
        "id": f"{id_prefix}-total",
        **common,
        "code": _loinc(definition.codes.total, f"{definition.short_name} total score"),
        "valueQuantity": {
            "value": result.total,
            "unit": "{score}",
            "system": UCUM,
            "code": "{score}",
        },
    }
    members.append(total)
    panel = {
        "resourceType": "Observation",
        "id": f"{id_prefix}-panel",
        **common,
        "code": _loinc(definition.codes.panel, definition.name),
        "hasMember": [{"reference": f"Observation/{m['id']}"} for m in members],
    }
    return {"questionnaire_response": qr, "observations": [panel, *members]}


def validate_r4b(resource: dict[str, Any]) -> Any:
    """Parse a resource dict with the fhir.resources R4B model; raises on invalid content."""
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def _check_mappable(definition: InstrumentDefinition, result: ScoreResult) -> None:
    if definition.id not in FHIR_MAPPED or definition.codes.system != LOINC_SYSTEM:
        raise ClinicalInputError(
            f"FHIR mapping covers {', '.join(FHIR_MAPPED)} only, not {definition.id}"
        )
    if result.instrument != definition.id:
        raise ClinicalInputError(
            f"result is for {result.instrument}, definition is {definition.id}"
        )
    if not result.complete or result.total is None or result.prorated:
        raise ClinicalInputError(f"{definition.short_name}: only a completed form maps to FHIR")


def _scored_answers(definition: InstrumentDefinition, result: ScoreResult) -> list[tuple[int, int]]:
    scored = {i.number for i in definition.items if i.scored}
    return [(i.number, i.value) for i in result.items if i.number in scored and i.value is not None]


def _answer_coding(definition: InstrumentDefinition, number: int, value: int) -> dict[str, Any]:
    item = definition.item(number)
    option = next((o for o in item.options if o.score == value), None)
    coding: dict[str, Any] = {"display": option.label} if option and option.label else {}
    if option and option.code:
        coding = {"system": LOINC_SYSTEM, "code": option.code, **coding}
    return coding


def _questionnaire_response(
    d: InstrumentDefinition, result: ScoreResult, patient: str, when: str, rid: str
) -> dict[str, Any]:
    items = []
    for score in result.items:
        if score.value is None:
            continue
        item = d.item(score.number)
        coding = _answer_coding(d, score.number, score.value)
        items.append(
            {
                "linkId": f"/{item.code}",
                "text": item.text or item.label,
                "answer": [{"valueCoding": coding}],
            }
        )
    items.append(
        {
            "linkId": f"/{d.codes.total}",
            "text": f"{d.short_name} total score",
            "answer": [{"valueInteger": result.total}],
        }
    )
    return {
        "resourceType": "QuestionnaireResponse",
        "id": rid,
        "status": "completed",
        "questionnaire": f"http://loinc.org/q/{d.codes.panel}",
        "subject": {"reference": patient},
        "authored": when,
        "item": items,
    }


def _item_observation(
    d: InstrumentDefinition, number: int, value: int, common: dict[str, Any], prefix: str
) -> dict[str, Any]:
    item = d.item(number)
    return {
        "resourceType": "Observation",
        "id": f"{prefix}-item-{number}",
        **common,
        "code": _loinc(item.code, item.text or item.label),
        "valueCodeableConcept": {"coding": [_answer_coding(d, number, value)]},
    }


def _loinc(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": LOINC_SYSTEM, "code": code, "display": display}], "text": display}


def _survey() -> dict[str, Any]:
    return {"coding": [{"system": CATEGORY_SYSTEM, "code": "survey", "display": "Survey"}]}

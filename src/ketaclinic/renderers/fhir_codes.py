"""FHIR R4 codes and bundle checks shared by the one mapper (:mod:`ketaclinic.renderers.fhir_map`).

Codes come only from shared/clinical/instruments.md §3 (grades there) and are pinned in
``tests/unit/test_fhir_map.py``; SNOMED CT displays and RxNorm codes with their sources are in
``data/fhir_terminology.json``. Bundles are validated with ``fhir.resources.R4B`` (structure,
required elements, primitive formats) and by :func:`check_bundle` here (status bindings,
reference targets, code systems, UCUM units), because fhir.resources does not check those
(instruments.md §5).

* Esketamine: RxNorm 2201623 (esketamine nasal spray, SCDF; C) + ATC N06AX27 (C).
* Racemic ketamine: RxNorm 6130 (ingredient) + ATC N01AX03 (C); see fhir_terminology.json.
* Routes: SNOMED 47625008 intravenous, 46713006 nasal (C). Oral and IM routes have no pinned code
  and are sent as text only.
* Instruments without LOINC codes use the project CodeSystem :data:`INSTRUMENT_SYSTEM`.
"""

from __future__ import annotations

from typing import Any

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
UCUM = "http://unitsofmeasure.org"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
COND_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
COND_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
COND_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
INSTRUMENT_SYSTEM = "https://ketaclinic.org/fhir/CodeSystem/instruments"
PROCEDURE_SYSTEM = "https://ketaclinic.org/fhir/CodeSystem/procedures"
MED_STOP_REASON_SYSTEM = "https://ketaclinic.org/fhir/CodeSystem/medication-stop-reasons"
QUESTIONNAIRE_BASE = "https://ketaclinic.org/fhir/Questionnaire/"
MRN_SYSTEM = "https://ketaclinic.org/fhir/sid/mrn"

KNOWN_SYSTEMS = frozenset({
    "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
    "http://terminology.hl7.org/CodeSystem/adverse-event-severity",
    "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness",
    "http://terminology.hl7.org/CodeSystem/medication-statement-category",
    "http://hl7.org/fhir/us/core/CodeSystem/careplan-category",
    "https://ketaclinic.org/fhir/CodeSystem/adverse-events",
    LOINC, SNOMED, RXNORM, ATC, UCUM, ICD10CM, OBS_CATEGORY, COND_CLINICAL, COND_VERIFICATION,
    COND_CATEGORY, V2_0203, INSTRUMENT_SYSTEM, PROCEDURE_SYSTEM, MED_STOP_REASON_SYSTEM,
})
UCUM_UNITS = frozenset({"kg", "{score}", "mm[Hg]", "/min", "%", "mg", "mg/h", "mg/min", "mg/kg"})

# instruments.md §3.1 (C)
PHQ9_ITEMS = ("44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5",
              "44253-3", "44260-8")
GAD7_ITEMS = ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7")
PHQ_ANSWERS = ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9")  # answer list LL358-3, 0–3
INSTRUMENT_CODES: dict[str, dict[str, Any]] = {
    "phq9": {"panel": "44249-1", "total": "44261-6", "items": PHQ9_ITEMS,
             "display": "PHQ-9 total score", "answers": PHQ_ANSWERS},
    "gad7": {"panel": "69737-5", "total": "70274-6", "items": GAD7_ITEMS,
             "display": "GAD-7 total score", "answers": None},
}
PROJECT_INSTRUMENTS = {
    "madrs": "MADRS total score", "qids_sr16": "QIDS-SR16 total score",
    "hamd17": "HAM-D17 total score", "cadss": "CADSS total score", "cadss6": "CADSS-6 score",
    "moaas": "MOAA/S score", "rass": "RASS score", "bprs_pos": "BPRS positive subscale",
}
ROUTES = {"iv": ("47625008", "Intravenous route"), "nasal": ("46713006", "Nasal route"),
          "oral": None, "im": None}
ROUTE_TEXT = {"iv": "intravenous", "nasal": "nasal", "oral": "oral", "im": "intramuscular"}
ALLOWED_STATUS = {
    "Observation": {"registered", "preliminary", "final", "amended", "corrected", "cancelled",
                    "entered-in-error", "unknown"},
    "QuestionnaireResponse": {"in-progress", "completed", "amended", "entered-in-error",
                              "stopped"},
    "MedicationAdministration": {"in-progress", "not-done", "on-hold", "completed",
                                 "entered-in-error", "stopped", "unknown"},
    "Procedure": {"preparation", "in-progress", "not-done", "on-hold", "stopped", "completed",
                  "entered-in-error", "unknown"},
    "CarePlan": {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error",
                 "unknown"},
}
ALLOWED_GENDER = {"male", "female", "other", "unknown"}
REFERENCE_TARGETS = {
    ("Observation", "subject"): {"Patient"},
    ("Observation", "derivedFrom"): {"QuestionnaireResponse"},
    ("Observation", "hasMember"): {"Observation"},
    ("Observation", "encounter"): {"Encounter"},
    ("Encounter", "subject"): {"Patient"},
    ("Encounter", "basedOn"): {"CarePlan"},
    ("AllergyIntolerance", "patient"): {"Patient"},
    ("MedicationStatement", "subject"): {"Patient"},
    ("MedicationRequest", "subject"): {"Patient"},
    ("MedicationRequest", "requester"): {"Practitioner"},
    ("MedicationAdministration", "context"): {"Encounter"},
    ("MedicationAdministration", "request"): {"MedicationRequest"},
    ("AdverseEvent", "subject"): {"Patient"},
    ("AdverseEvent", "encounter"): {"Encounter"},
    ("AdverseEvent", "recorder"): {"Practitioner"},
    ("QuestionnaireResponse", "subject"): {"Patient"},
    ("Condition", "subject"): {"Patient"},
    ("MedicationAdministration", "subject"): {"Patient"},
    ("MedicationAdministration", "partOf"): {"Procedure", "MedicationAdministration"},
    ("Procedure", "subject"): {"Patient"},
    ("Procedure", "basedOn"): {"CarePlan"},
    ("CarePlan", "subject"): {"Patient"},
    ("CarePlan", "addresses"): {"Condition"},
}


def _score_code(instrument: str) -> dict[str, Any]:
    if instrument in INSTRUMENT_CODES:
        spec = INSTRUMENT_CODES[instrument]
        return {"coding": [{"system": LOINC, "code": spec["total"], "display": spec["display"]}]}
    display = PROJECT_INSTRUMENTS.get(instrument, f"{instrument} score")
    return {"coding": [{"system": INSTRUMENT_SYSTEM, "code": instrument, "display": display}],
            "text": display}


# ------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------


def validate_bundle(bundle: dict[str, Any]) -> list[str]:
    """Structural validation (fhir.resources R4B) plus project binding checks; [] when valid."""
    from fhir.resources.R4B.bundle import Bundle

    try:
        Bundle.model_validate(bundle)
    except Exception as exc:  # noqa: BLE001 - pydantic ValidationError; report, don't raise
        return [f"R4B structure: {str(exc).splitlines()[0]} ({exc.__class__.__name__})",
                *[line.strip() for line in str(exc).splitlines()[1:6]]]
    return check_bundle(bundle)


def _walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, path)


def check_bundle(bundle: dict[str, Any]) -> list[str]:
    """Bindings fhir.resources does not enforce: statuses, reference targets, systems, UCUM."""
    problems: list[str] = []
    types = {e["fullUrl"]: e["resource"]["resourceType"] for e in bundle.get("entry", [])}
    types.update({f"{e['resource']['resourceType']}/{e['resource']['id']}":
                  e["resource"]["resourceType"] for e in bundle.get("entry", [])
                  if "id" in e["resource"]})
    if bundle.get("type") not in ("collection", "transaction"):
        problems.append("bundle type must be 'collection' or 'transaction'")
    for e in bundle.get("entry", []):
        res = e["resource"]
        rtype = res["resourceType"]
        if rtype in ALLOWED_STATUS and res.get("status") not in ALLOWED_STATUS[rtype]:
            problems.append(f"{rtype}.status {res.get('status')!r} not in the R4 value set")
        if rtype == "Patient" and res.get("gender") not in ALLOWED_GENDER | {None}:
            problems.append(f"Patient.gender {res.get('gender')!r} not allowed")
        if rtype == "CarePlan" and res.get("intent") not in {"proposal", "plan", "order",
                                                              "option"}:
            problems.append(f"CarePlan.intent {res.get('intent')!r} not allowed")
        for (src, element), targets in REFERENCE_TARGETS.items():
            if src != rtype or element not in res:
                continue
            refs = res[element] if isinstance(res[element], list) else [res[element]]
            for ref in refs:
                target = types.get(ref.get("reference", ""))
                if target is None:
                    problems.append(f"{rtype}.{element} → {ref.get('reference')} not in bundle")
                elif target not in targets:
                    problems.append(f"{rtype}.{element} must reference {sorted(targets)}, "
                                    f"not {target}")
        for path, node in _walk(res):
            if "system" in node and "code" in node:
                if node["system"] not in KNOWN_SYSTEMS:
                    problems.append(f"{rtype}.{path}: unknown code system {node['system']}")
                if node["system"] == UCUM and node["code"] not in UCUM_UNITS:
                    problems.append(f"{rtype}.{path}: UCUM unit {node['code']!r} not allowed")
    return problems

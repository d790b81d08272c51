"""FHIR R4 export: one Bundle (type ``collection``) per patient from plain records.

Codes come only from shared/clinical/instruments.md §3 (grades there) and are pinned in
``tests/unit/test_fhir_*.py``. Each bundle is validated with ``fhir.resources.R4B`` (structure,
required elements, primitive formats) and by :func:`check_bundle` here (status bindings, reference
targets, code systems, UCUM units), because fhir.resources does not check those
(instruments.md §5).

Notes on codes
--------------
* Esketamine: RxNorm 2201623 (esketamine nasal spray, SCDF; C) + ATC N06AX27 (C).
* Racemic ketamine: ATC N01AX03 (C). RxNorm 238082/238083/238084 are ketamine injectable
  strengths (mapping C, TTY S) but instruments.md does not say which CUI is which strength, so
  an RxNorm coding is added only when the caller passes ``DoseRecord.rxnorm`` (checked against
  that list). RxNorm 6130 (ingredient) is U and not used.
* Routes: SNOMED 47625008 intravenous, 46713006 nasal (C). Oral and IM routes have no pinned code
  and are sent as text only.
* Instruments without LOINC codes use the project CodeSystem :data:`INSTRUMENT_SYSTEM`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
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
QUESTIONNAIRE_BASE = "https://ketaclinic.org/fhir/Questionnaire/"
MRN_SYSTEM = "https://ketaclinic.org/fhir/sid/mrn"
_NS = uuid.UUID("6f3c1f5e-7d1c-4c3e-9a51-4b1f0c5e2a90")

KNOWN_SYSTEMS = frozenset({
    "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
    "http://terminology.hl7.org/CodeSystem/adverse-event-severity",
    "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness",
    "http://terminology.hl7.org/CodeSystem/medication-statement-category",
    "http://hl7.org/fhir/us/core/CodeSystem/careplan-category",
    "https://ketaclinic.org/fhir/CodeSystem/adverse-events",
    LOINC, SNOMED, RXNORM, ATC, UCUM, ICD10CM, OBS_CATEGORY, COND_CLINICAL, COND_VERIFICATION,
    COND_CATEGORY, V2_0203, INSTRUMENT_SYSTEM, PROCEDURE_SYSTEM,
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
RXNORM_ALLOWED = frozenset({"2201623", "2201625", "238082", "238083", "238084"})
ROUTES = {"iv": ("47625008", "Intravenous route"), "nasal": ("46713006", "Nasal route"),
          "oral": None, "im": None}
ROUTE_TEXT = {"iv": "intravenous", "nasal": "nasal", "oral": "oral", "im": "intramuscular"}
DRUG_CODINGS = {
    "esketamine": [(RXNORM, "2201623", "esketamine Nasal Spray"),
                   (ATC, "N06AX27", "esketamine")],
    "ketamine": [(ATC, "N01AX03", "ketamine")],
}

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


class FhirExportError(ValueError):
    """A bundle could not be built or failed validation (message lists the problems)."""


# ------------------------------------------------------------------------------------------
# Plain input records
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatientRecord:
    id: str
    mrn: str
    family: str
    given: tuple[str, ...]
    birth_date: date | None
    sex: str  # male | female | other | unknown


@dataclass(frozen=True)
class ConditionRecord:
    id: str
    snomed: str | None = "370143000"
    icd10: str | None = None
    display: str = "Major depressive disorder"
    onset: date | None = None
    # active | recurrence | relapse | inactive | remission | resolved
    clinical_status: str = "active"


@dataclass(frozen=True)
class ScoreRecord:
    id: str
    instrument: str  # phq9, gad7, madrs, ...
    total: float
    taken_at: datetime
    items: tuple[int | None, ...] | None = None


@dataclass(frozen=True)
class VitalRecord:
    id: str
    taken_at: datetime
    sbp_mmhg: float | None = None
    dbp_mmhg: float | None = None
    hr_per_min: float | None = None
    rr_per_min: float | None = None
    spo2_pct: float | None = None


@dataclass(frozen=True)
class DoseRecord:
    id: str
    drug: str  # ketamine | esketamine
    dose_mg: float
    route: str  # iv | nasal | oral | im
    start: datetime
    end: datetime | None = None
    rate_mg_per_h: float | None = None
    session_id: str | None = None
    rxnorm: str | None = None  # optional product CUI from instruments.md §3.3


@dataclass(frozen=True)
class ProcedureRecord:
    id: str
    kind: str  # iv_infusion | esketamine_nasal
    start: datetime
    end: datetime | None = None
    status: str = "completed"
    course_id: str | None = None


@dataclass(frozen=True)
class CarePlanRecord:
    id: str
    treatment: str  # iv_ketamine | esketamine
    title: str
    status: str  # draft | active | on-hold | revoked | completed | ...
    start: date
    end: date | None = None
    condition_id: str | None = None


@dataclass(frozen=True)
class PatientExport:
    patient: PatientRecord
    conditions: Sequence[ConditionRecord] = ()
    scores: Sequence[ScoreRecord] = ()
    vitals: Sequence[VitalRecord] = ()
    doses: Sequence[DoseRecord] = ()
    procedures: Sequence[ProcedureRecord] = ()
    careplans: Sequence[CarePlanRecord] = ()
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------
# Builders
# ------------------------------------------------------------------------------------------


def _urn(patient_id: str, kind: str, local_id: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NS, f'{patient_id}/{kind}/{local_id}')}"


def _dt(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise FhirExportError("datetimes must be timezone-aware for FHIR dateTime")
    return value.isoformat()


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def _qty(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _category(code: str, display: str) -> list[dict[str, Any]]:
    return [{"coding": [_coding(OBS_CATEGORY, code, display)]}]


def _patient(p: PatientRecord) -> dict[str, Any]:
    if p.sex not in ALLOWED_GENDER:
        raise FhirExportError(f"patient sex must be one of {sorted(ALLOWED_GENDER)}")
    d: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{
            "type": {"coding": [_coding(V2_0203, "MR", "Medical record number")]},
            "system": MRN_SYSTEM, "value": p.mrn,
        }],
        "name": [{"family": p.family, "given": list(p.given)}],
        "gender": p.sex,
    }
    if p.birth_date:
        d["birthDate"] = p.birth_date.isoformat()
    return d


def _condition(c: ConditionRecord, subject: str) -> dict[str, Any]:
    codings = []
    if c.snomed:
        codings.append(_coding(SNOMED, c.snomed, c.display))
    if c.icd10:
        codings.append(_coding(ICD10CM, c.icd10))
    if not codings:
        raise FhirExportError("a condition needs a SNOMED CT or ICD-10-CM code")
    d = {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [_coding(COND_CLINICAL, c.clinical_status)]},
        "verificationStatus": {"coding": [_coding(COND_VERIFICATION, "confirmed")]},
        "category": [{"coding": [_coding(COND_CATEGORY, "problem-list-item")]}],
        "code": {"coding": codings, "text": c.display},
        "subject": {"reference": subject},
    }
    if c.onset:
        d["onsetDateTime"] = c.onset.isoformat()
    return d


def _score_code(instrument: str) -> dict[str, Any]:
    if instrument in INSTRUMENT_CODES:
        spec = INSTRUMENT_CODES[instrument]
        return {"coding": [_coding(LOINC, spec["total"], spec["display"])]}
    display = PROJECT_INSTRUMENTS.get(instrument, f"{instrument} score")
    return {"coding": [_coding(INSTRUMENT_SYSTEM, instrument, display)], "text": display}


def _questionnaire_response(s: ScoreRecord, subject: str) -> dict[str, Any] | None:
    spec = INSTRUMENT_CODES.get(s.instrument)
    if spec is None or not s.items or all(v is None for v in s.items):
        return None
    if len(s.items) != len(spec["items"]):
        raise FhirExportError(f"{s.instrument}: expected {len(spec['items'])} item answers")
    items = []
    for code, value in zip(spec["items"], s.items, strict=True):
        item: dict[str, Any] = {"linkId": f"/{code}"}
        if value is not None:
            if not 0 <= value <= 3:
                raise FhirExportError(f"{s.instrument}: item answer out of range 0-3")
            if spec["answers"]:
                item["answer"] = [{"valueCoding": _coding(LOINC, spec["answers"][value])}]
            else:
                item["answer"] = [{"valueInteger": int(value)}]
        items.append(item)
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{QUESTIONNAIRE_BASE}{s.instrument}",
        "status": "completed",
        "subject": {"reference": subject},
        "authored": _dt(s.taken_at),
        "item": items,
    }


def _score(s: ScoreRecord, subject: str, qr_ref: str | None) -> dict[str, Any]:
    d = {
        "resourceType": "Observation",
        "status": "final",
        "category": _category("survey", "Survey"),
        "code": _score_code(s.instrument),
        "subject": {"reference": subject},
        "effectiveDateTime": _dt(s.taken_at),
        "valueQuantity": _qty(s.total, "{score}"),
    }
    if qr_ref:
        d["derivedFrom"] = [{"reference": qr_ref}]
    return d


def _vital_obs(code: list[dict[str, Any]], subject: str, when: datetime,
               **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": _category("vital-signs", "Vital Signs"),
        "code": {"coding": code},
        "subject": {"reference": subject},
        "effectiveDateTime": _dt(when),
        **value,
    }


def _vitals(v: VitalRecord, subject: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    if v.sbp_mmhg is not None and v.dbp_mmhg is not None:
        out.append(("bp", _vital_obs(
            [_coding(LOINC, "85354-9", "Blood pressure panel with all children optional")],
            subject, v.taken_at,
            component=[
                {"code": {"coding": [_coding(LOINC, "8480-6", "Systolic blood pressure")]},
                 "valueQuantity": _qty(v.sbp_mmhg, "mm[Hg]")},
                {"code": {"coding": [_coding(LOINC, "8462-4", "Diastolic blood pressure")]},
                 "valueQuantity": _qty(v.dbp_mmhg, "mm[Hg]")},
            ])))
    if v.hr_per_min is not None:
        out.append(("hr", _vital_obs([_coding(LOINC, "8867-4", "Heart rate")], subject,
                                     v.taken_at, valueQuantity=_qty(v.hr_per_min, "/min"))))
    if v.rr_per_min is not None:
        out.append(("rr", _vital_obs([_coding(LOINC, "9279-1", "Respiratory rate")], subject,
                                     v.taken_at, valueQuantity=_qty(v.rr_per_min, "/min"))))
    if v.spo2_pct is not None:
        out.append(("spo2", _vital_obs(
            [_coding(LOINC, "2708-6", "Oxygen saturation in Arterial blood"),
             _coding(LOINC, "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry")],
            subject, v.taken_at, valueQuantity=_qty(v.spo2_pct, "%"))))
    return out


def _medication(d: DoseRecord) -> dict[str, Any]:
    if d.drug not in DRUG_CODINGS:
        raise FhirExportError(f"unknown drug {d.drug!r}")
    codings = [_coding(*c) for c in DRUG_CODINGS[d.drug]]
    if d.rxnorm:
        if d.rxnorm not in RXNORM_ALLOWED:
            raise FhirExportError(f"RxNorm {d.rxnorm} is not in the pinned list")
        if not any(c["system"] == RXNORM and c["code"] == d.rxnorm for c in codings):
            codings.insert(0, _coding(RXNORM, d.rxnorm))
    text = "esketamine nasal spray" if d.drug == "esketamine" else "ketamine (racemic)"
    return {"coding": codings, "text": text}


def _dose(d: DoseRecord, subject: str, part_of: str | None) -> dict[str, Any]:
    if d.route not in ROUTES:
        raise FhirExportError(f"unknown route {d.route!r}")
    route: dict[str, Any] = {"text": ROUTE_TEXT[d.route]}
    if ROUTES[d.route]:
        route["coding"] = [_coding(SNOMED, *ROUTES[d.route])]
    dosage: dict[str, Any] = {"route": route, "dose": _qty(d.dose_mg, "mg")}
    if d.rate_mg_per_h is not None:
        dosage["rateQuantity"] = _qty(d.rate_mg_per_h, "mg/h")
    period = {"start": _dt(d.start)}
    if d.end:
        period["end"] = _dt(d.end)
    res = {
        "resourceType": "MedicationAdministration",
        "status": "completed",
        "medicationCodeableConcept": _medication(d),
        "subject": {"reference": subject},
        "effectivePeriod": period,
        "dosage": dosage,
    }
    if part_of:
        res["partOf"] = [{"reference": part_of}]
    return res


def _procedure(p: ProcedureRecord, subject: str, based_on: str | None) -> dict[str, Any]:
    if p.kind == "iv_infusion":
        code = {"coding": [_coding(SNOMED, "14152002", "Intravenous infusion")],
                "text": "IV ketamine infusion session"}
    elif p.kind == "esketamine_nasal":
        code = {"coding": [_coding(PROCEDURE_SYSTEM, "esketamine-nasal-session",
                                   "Esketamine nasal spray treatment session")],
                "text": "Esketamine nasal spray treatment session"}
    else:
        raise FhirExportError(f"unknown procedure kind {p.kind!r}")
    period = {"start": _dt(p.start)}
    if p.end:
        period["end"] = _dt(p.end)
    d = {"resourceType": "Procedure", "status": p.status, "code": code,
         "subject": {"reference": subject}, "performedPeriod": period}
    if based_on:
        d["basedOn"] = [{"reference": based_on}]
    return d


def _careplan(c: CarePlanRecord, subject: str, condition: str | None) -> dict[str, Any]:
    period = {"start": c.start.isoformat()}
    if c.end:
        period["end"] = c.end.isoformat()
    activity_status = {"active": "in-progress", "completed": "completed", "draft": "not-started",
                       "on-hold": "on-hold", "revoked": "stopped"}.get(c.status, "unknown")
    proc = ({"coding": [_coding(SNOMED, "14152002", "Intravenous infusion")]}
            if c.treatment == "iv_ketamine" else
            {"coding": [_coding(PROCEDURE_SYSTEM, "esketamine-nasal-session",
                                "Esketamine nasal spray treatment session")]})
    d = {
        "resourceType": "CarePlan",
        "status": c.status,
        "intent": "plan",
        "title": c.title,
        "subject": {"reference": subject},
        "period": period,
        "activity": [{"detail": {"kind": "ServiceRequest", "code": proc,
                                 "status": activity_status}}],
    }
    if condition:
        d["addresses"] = [{"reference": condition}]
    return d


def build_patient_bundle(export: PatientExport, validate: bool = True) -> dict[str, Any]:
    """One FHIR R4 Bundle (collection) for a patient, as a JSON-ready dict.

    Raises :class:`FhirExportError` when input is invalid or the bundle fails validation.
    """
    pid = export.patient.id
    entries: list[tuple[str, dict[str, Any]]] = []

    def add(kind: str, local: str, resource: dict[str, Any]) -> str:
        url = _urn(pid, kind, local)
        entries.append((url, resource))
        return url

    subject = add("Patient", pid, _patient(export.patient))
    cond_urls = {c.id: add("Condition", c.id, _condition(c, subject)) for c in export.conditions}
    plan_urls = {
        c.id: add("CarePlan", c.id, _careplan(c, subject, cond_urls.get(c.condition_id or "")))
        for c in export.careplans
    }
    proc_urls = {
        p.id: add("Procedure", p.id, _procedure(p, subject, plan_urls.get(p.course_id or "")))
        for p in export.procedures
    }
    for d in export.doses:
        add("MedicationAdministration", d.id,
            _dose(d, subject, proc_urls.get(d.session_id or "")))
    for s in export.scores:
        qr = _questionnaire_response(s, subject)
        qr_url = add("QuestionnaireResponse", s.id, qr) if qr else None
        add("Observation", f"score/{s.id}", _score(s, subject, qr_url))
    for v in export.vitals:
        for kind, obs in _vitals(v, subject):
            add("Observation", f"vital/{v.id}/{kind}", obs)
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": url, "resource": res} for url, res in entries],
    }
    if validate:
        problems = validate_bundle(bundle)
        if problems:
            raise FhirExportError("; ".join(problems[:10]))
    return bundle


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


def build_bundles(exports: Sequence[PatientExport]) -> list[dict[str, Any]]:
    """Bundles for many patients (the CLI adds a progress bar around this)."""
    return [build_patient_bundle(e) for e in exports]

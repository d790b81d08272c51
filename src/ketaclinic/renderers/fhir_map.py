"""The one FHIR R4 (4.0.1/R4B-compatible) mapper: stored rows → resources as JSON-ready dicts.

Every export (one patient's bundle, the bulk bundles, NDJSON, the ``$export`` endpoint, one
assessment's resources) goes through these functions (rows loaded by
:mod:`ketaclinic.services.interop.fhir_records`).
Resources are plain dicts, built once; their shape is
checked with ``fhir.resources.R4B`` in the tests (all of them) and on a sample at run time
(``fhir_bulk.r4b_problems``), and by Medplum's validator in the tests. A pydantic model per
resource would cost ~100× more (benchmarks/bench_fhir.py).

Ids are stable: ``<prefix>-<row id>`` (a PHQ-9 answer set ``a-12`` gives ``a-12-qr``,
``a-12-panel``, ``a-12-item-3``, ``a-12-total``), so a re-export replaces rather than
duplicates. Codes come from shared/clinical/instruments.md §3 (LOINC, pinned in
:mod:`ketaclinic.renderers.fhir_codes`) and ``data/fhir_terminology.json`` (SNOMED CT with one
display per code, RxNorm with its source, US Core profile URLs).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources as ir
from typing import Any

from ketaclinic.clinical.medications import MEDICATION_STOP_REASONS
from ketaclinic.renderers import fhir_codes as fx

Res = dict[str, Any]
V3_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
AE_SEVERITY = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
AE_SERIOUSNESS = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
MED_STATEMENT_CATEGORY = "http://terminology.hl7.org/CodeSystem/medication-statement-category"
AE_SYSTEM = "https://ketaclinic.org/fhir/CodeSystem/adverse-events"
USER_SYSTEM = "https://ketaclinic.org/fhir/sid/user"
DEFAULT_MRN_SYSTEM = fx.MRN_SYSTEM  # used when the clinic sets no KETACLINIC_FHIR_MRN_SYSTEM
ENCOUNTER_STATUS = {"planned": "planned", "booked": "planned", "checked-in": "arrived",
                    "monitoring": "in-progress", "discharge": "in-progress",
                    "discharged": "finished", "left-against-advice": "finished",
                    "cancelled": "cancelled", "missed": "cancelled"}
CAREPLAN_STATUS = {"planned": "draft", "active": "active", "completed": "completed",
                   "stopped": "revoked"}
MDD_ICD10_PREFIXES = ("F32", "F33")
AE_SEVERITIES = {"mild": "mild", "moderate": "moderate", "severe": "severe", "serious": "severe"}


@cache
def terminology() -> dict[str, Any]:
    text = ir.files("ketaclinic.renderers.data").joinpath("fhir_terminology.json").read_text(
        encoding="utf-8")
    return json.loads(text)


def snomed(code: str) -> Res:
    """The one SNOMED CT coding for ``code`` (display from the data file)."""
    return {"system": fx.SNOMED, "code": code, "display": terminology()["snomed"][code]["display"]}


def profile(key: str) -> dict[str, list[str]]:
    return {"profile": [terminology()["us_core_profiles"][key]]}


@dataclass(frozen=True)
class MapOptions:
    mrn_system: str
    clinic_name: str = ""


# --- small helpers ----------------------------------------------------------------------------


def when(v: dt.datetime | dt.date | None) -> str | None:
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.UTC)
        return v.isoformat()
    return v.isoformat()


def num(v: Any) -> Any:
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


def qty(value: Any, unit: str) -> Res:
    return {"value": num(value), "unit": unit, "system": fx.UCUM, "code": unit}


def ref(rtype: str, rid: str) -> Res:
    return {"reference": f"{rtype}/{rid}"}


def coding(system: str, code: str, display: str | None = None) -> Res:
    return {"system": system, "code": code, **({"display": display} if display else {})}


def category(code: str, display: str) -> list[Res]:
    return [{"coding": [coding(fx.OBS_CATEGORY, code, display)]}]


def user_ref(uid: int | None) -> Res | None:
    return None if uid is None else ref("Practitioner", f"u-{uid}")


def drug_concept(drug: str) -> Res:
    t = terminology()
    rx, atc = t["rxnorm"][drug], t["atc"][drug]
    return {"coding": [coding(fx.RXNORM, rx["code"], rx["display"]),
                       coding(fx.ATC, atc["code"], atc["display"])],
            "text": "esketamine nasal spray" if drug == "esketamine" else "ketamine (racemic)"}


def route_concept(route: str) -> Res:
    spec = fx.ROUTES.get(route)
    out: Res = {"text": fx.ROUTE_TEXT.get(route, route)}
    if spec:
        out["coding"] = [snomed(spec[0])]
    return out


def drug_of(treatment: str) -> str:
    return "esketamine" if treatment == "esketamine" else "ketamine"


# --- resources --------------------------------------------------------------------------------


def patient(p: Any, opt: MapOptions) -> Res:
    r: Res = {
        "resourceType": "Patient", "id": f"p-{p.id}", "meta": profile("Patient"),
        "identifier": [{"use": "usual",
                        "type": {"coding": [coding(fx.V2_0203, "MR", "Medical record number")]},
                        "system": opt.mrn_system, "value": p.mrn}],
        "name": [{"family": p.family_name, "given": [p.given_name]}],
        "gender": p.sex if p.sex in fx.ALLOWED_GENDER else "unknown",
        "birthDate": when(p.birth_date),
    }
    telecom = [{"system": s, "value": v} for s, v in (("phone", p.phone), ("email", p.email)) if v]
    if telecom:
        r["telecom"] = telecom
    if p.address:
        r["address"] = [{"text": p.address}]
    return r


def practitioner(u: Any) -> Res:
    return {"resourceType": "Practitioner", "id": f"u-{u.id}", "meta": profile("Practitioner"),
            "identifier": [{"system": USER_SYSTEM, "value": str(u.id)}],
            "active": bool(u.active), "name": [{"text": u.full_name}]}


def _condition_system(stored: str) -> str:
    """The FHIR code system URI for a diagnosis's stored system name ("icd10", "snomed")."""
    name = stored.lower()
    if name.startswith("icd"):
        return fx.ICD10CM
    if name in {"snomed", "sct", "snomed-ct", fx.SNOMED}:
        return fx.SNOMED
    return stored


def condition(d: Any, pref: Res) -> Res:
    is_icd = d.system.lower().startswith("icd")
    codings = []
    if is_icd and d.code.upper().startswith(MDD_ICD10_PREFIXES):
        codings.append(snomed("370143000"))
    codings.append(coding(_condition_system(d.system), d.code, d.display or None))
    r: Res = {
        "resourceType": "Condition", "id": f"dx-{d.id}",
        "meta": profile("Condition"),
        "clinicalStatus": {"coding": [coding(fx.COND_CLINICAL, _condition_clinical(d))]},
        "verificationStatus": {"coding": [coding(fx.COND_VERIFICATION, "confirmed")]},
        "category": [{"coding": [coding(fx.COND_CATEGORY, "problem-list-item",
                                        "Problem List Item")]}],
        "code": {"coding": codings, "text": d.display or d.code},
        "subject": pref, "recordedDate": when(d.recorded_at),
    }
    if d.onset_on:
        r["onsetDateTime"] = when(d.onset_on)
    if not d.active and _reason(d) == "entered-in-error":
        # con-5: no clinicalStatus on a Condition entered in error
        del r["clinicalStatus"]
        r["verificationStatus"] = {"coding": [coding(fx.COND_VERIFICATION, "entered-in-error")]}
    return r


def _reason(row: Any) -> str | None:
    return getattr(row, "inactive_reason", None)


def _condition_clinical(d: Any) -> str:
    if d.active:
        return "active"
    return "resolved" if _reason(d) == "resolved" else "inactive"


def allergy(a: Any, pref: Res) -> Res:
    r: Res = {
        "resourceType": "AllergyIntolerance", "id": f"al-{a.id}",
        "meta": profile("AllergyIntolerance"),
        "clinicalStatus": {"coding": [coding(ALLERGY_CLINICAL,
                                             "active" if a.active else "inactive")]},
        "code": {"text": a.substance}, "patient": pref, "recordedDate": when(a.recorded_at),
    }
    reason = None if a.active else _reason(a)
    if reason == "entered-in-error":  # ait-2: no clinicalStatus on one entered in error
        del r["clinicalStatus"]
    if reason in ("entered-in-error", "refuted"):
        r["verificationStatus"] = {"coding": [coding(ALLERGY_VERIFICATION, reason)]}
    if a.reaction:
        r["reaction"] = [{"manifestation": [{"text": a.reaction}]}]
    return r


def medication_statement(m: Any, pref: Res) -> Res:
    """A registry medicine. A stopped one is status ``stopped`` (``entered-in-error`` when it
    was stopped as entered in error), with the day it was stopped as effectivePeriod.end and
    the coded reason (its note as the text) as statusReason, where they were recorded."""
    reason: str | None = None if m.active else getattr(m, "stop_reason", None)
    r: Res = {
        "resourceType": "MedicationStatement", "id": f"ms-{m.id}",
        "status": _medication_status(m.active, reason),
        "category": {"coding": [coding(MED_STATEMENT_CATEGORY, "community", "Community")]},
        "medicationCodeableConcept": {"text": m.name},
        "subject": pref, "dateAsserted": when(m.recorded_at),
    }
    period = {"start": when(m.started_on),
              "end": None if m.active else when(getattr(m, "stopped_on", None))}
    if any(period.values()):
        r["effectivePeriod"] = {k: v for k, v in period.items() if v}
    if reason is not None and reason in MEDICATION_STOP_REASONS:
        label = MEDICATION_STOP_REASONS[reason]
        r["statusReason"] = [{"coding": [coding(fx.MED_STOP_REASON_SYSTEM, reason, label)],
                              "text": getattr(m, "stop_note", None) or label}]
    if m.daily_dose_mg is not None:
        r["dosage"] = [{"text": f"{num(m.daily_dose_mg)} mg daily",
                        "doseAndRate": [{"doseQuantity": qty(m.daily_dose_mg, "mg")}],
                        "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}}]
    return r


def _medication_status(active: bool, reason: str | None) -> str:
    if active:
        return "active"
    return "entered-in-error" if reason == "entered-in-error" else "stopped"


def medication_request(o: Any, pref: Res) -> Res:
    dose: Res = {"doseQuantity": qty(o.dose_mg, "mg")}
    if o.rate_mg_per_h is not None:
        dose["rateQuantity"] = qty(o.rate_mg_per_h, "mg/h")
    r: Res = {
        "resourceType": "MedicationRequest", "id": f"mr-{o.id}",
        "meta": profile("MedicationRequest"), "status": "completed", "intent": "order",
        "reportedBoolean": False, "medicationCodeableConcept": drug_concept(drug_of(o.treatment)),
        "subject": pref, "authoredOn": when(o.created_at),
        "dosageInstruction": [{"route": route_concept(o.route), "doseAndRate": [dose]}],
    }
    if o.ordered_by is not None:
        r["requester"] = user_ref(o.ordered_by)
    return r


def encounter(t: Any, pref: Res) -> Res:
    drug = drug_of(t.treatment)
    start = t.dose_started_at or t.scheduled_start
    end = t.discharged_at or t.dose_ended_at
    r: Res = {
        "resourceType": "Encounter", "id": f"enc-{t.id}", "meta": profile("Encounter"),
        "status": ENCOUNTER_STATUS.get(t.status, "unknown"),
        "class": coding(V3_ACT, "AMB", "ambulatory"),
        "type": [_session_code(drug)], "subject": pref,
    }
    if start:
        r["period"] = {"start": when(start), **({"end": when(end)} if end else {})}
    if t.course_id:
        r["basedOn"] = [ref("CarePlan", f"cp-{t.course_id}")]
    return r


def _session_code(drug: str) -> Res:
    if drug == "esketamine":
        return {"coding": [coding(fx.PROCEDURE_SYSTEM, "esketamine-nasal-session",
                                  "Esketamine nasal spray treatment session")],
                "text": "Esketamine nasal spray treatment session"}
    return {"coding": [snomed("14152002")], "text": "IV ketamine infusion session"}


def careplan(c: Any, pref: Res) -> Res:
    status = CAREPLAN_STATUS.get(c.status, "unknown")
    drug = drug_of(c.treatment)
    period = {"start": when(c.start_date), **({"end": when(c.end_date)} if c.end_date else {})}
    return {
        "resourceType": "CarePlan", "id": f"cp-{c.id}", "meta": profile("CarePlan"),
        "text": {"status": "generated",
                 "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{c.treatment} course</div>'},
        "status": status, "intent": "plan",
        "category": [{"coding": [coding("http://hl7.org/fhir/us/core/CodeSystem/careplan-category",
                                        "assess-plan")]}],
        "title": f"{c.treatment} course ({c.template_id})", "subject": pref, "period": period,
        "activity": [{"detail": {"kind": "ServiceRequest", "code": _session_code(drug),
                                 "status": {"active": "in-progress", "completed": "completed",
                                            "draft": "not-started", "revoked": "stopped"}.get(
                                     status, "unknown")}}],
    }


def administration(d: Any, t: Any, pref: Res) -> Res:
    drug = drug_of(t.treatment)
    lot = (d.lot or t.lot_numbers or "").strip()
    dosage: Res = {"route": route_concept(d.route), "dose": qty(d.dose_mg, "mg")}
    if d.route == "iv" and d.ended_at and d.started_at and d.ended_at > d.started_at:
        hours = (d.ended_at - d.started_at).total_seconds() / 3600
        dosage["rateQuantity"] = qty(round(float(d.dose_mg) / hours, 3), "mg/h")
    period = {"start": when(d.started_at), **({"end": when(d.ended_at)} if d.ended_at else {})}
    r: Res = {"resourceType": "MedicationAdministration", "id": f"ma-{d.id}",
              "status": "completed"}
    if lot:
        r["contained"] = [{"resourceType": "Medication", "id": "med",
                           "code": drug_concept(drug), "batch": {"lotNumber": lot}}]
        r["medicationReference"] = {"reference": "#med"}
    else:
        r["medicationCodeableConcept"] = drug_concept(drug)
    r.update({"subject": pref, "context": ref("Encounter", f"enc-{t.id}"),
              "effectivePeriod": period, "dosage": dosage})
    if d.recorded_by is not None:
        r["performer"] = [{"actor": user_ref(d.recorded_by)}]
    order = d.dose_order_id or t.dose_order_id
    if order:
        r["request"] = ref("MedicationRequest", f"mr-{order}")
    return r


def adverse_event(e: Any, t: Any, pref: Res, dose_id: int | str | None) -> Res:
    sev = AE_SEVERITIES.get(e.severity)
    r: Res = {
        "resourceType": "AdverseEvent", "id": f"ae-{e.id}", "actuality": "actual",
        "event": {"coding": [coding(AE_SYSTEM, e.code)],
                  "text": e.description or e.code.replace("_", " ")},
        "subject": pref, "encounter": ref("Encounter", f"enc-{t.id}"),
        "date": when(e.onset_at), "recordedDate": when(e.created_at),
        "seriousness": {"coding": [coding(AE_SERIOUSNESS, "serious" if e.severity == "serious"
                                          else "non-serious")]},
    }
    if sev:
        r["severity"] = {"coding": [coding(AE_SEVERITY, sev)]}
    if e.recorded_by is not None:
        r["recorder"] = user_ref(e.recorded_by)
    if dose_id is not None:
        r["suspectEntity"] = [{"instance": ref("MedicationAdministration", f"ma-{dose_id}")}]
    return r


def weight(w: Any, pref: Res) -> Res:
    r: Res = {"resourceType": "Observation", "id": f"wt-{w.id}", "meta": profile("weight"),
              "status": "final", "category": category("vital-signs", "Vital Signs"),
              "code": {"coding": [coding(fx.LOINC, "29463-7", "Body weight")],
                       "text": "Body weight"},
              "subject": pref, "effectiveDateTime": when(w.measured_on),
              "valueQuantity": qty(w.weight_kg, "kg")}
    if w.recorded_by is not None:
        r["performer"] = [user_ref(w.recorded_by)]
    return r


VITAL_SPECS = (
    ("hr", "hr_bpm", [("8867-4", "Heart rate")], "/min"),
    ("rr", "rr_per_min", [("9279-1", "Respiratory rate")], "/min"),
    ("spo2", "spo2_pct", [("2708-6", "Oxygen saturation in Arterial blood"),
                          ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry")],
     "%"),
)


def vitals(v: Any, pref: Res, enc: Res) -> Iterator[Res]:
    base = {"resourceType": "Observation", "status": "final",
            "category": category("vital-signs", "Vital Signs"), "subject": pref,
            "encounter": enc, "effectiveDateTime": when(v.taken_at)}
    if v.sbp_mmhg is not None and v.dbp_mmhg is not None:
        yield {**base, "id": f"v-{v.id}-bp", "meta": profile("bp"),
               "code": {"coding": [coding(fx.LOINC, "85354-9", "Blood pressure panel with all "
                                          "children optional")]},
               "component": [
                   {"code": {"coding": [coding(fx.LOINC, "8480-6", "Systolic blood pressure")]},
                    "valueQuantity": qty(v.sbp_mmhg, "mm[Hg]")},
                   {"code": {"coding": [coding(fx.LOINC, "8462-4", "Diastolic blood pressure")]},
                    "valueQuantity": qty(v.dbp_mmhg, "mm[Hg]")}]}
    for key, col, codes, unit in VITAL_SPECS:
        value = getattr(v, col)
        if value is not None:
            yield {**base, "id": f"v-{v.id}-{key}", "meta": profile(key),
                   "code": {"coding": [coding(fx.LOINC, c, d) for c, d in codes]},
                   "valueQuantity": qty(value, unit)}


# --- assessments: PHQ-9/GAD-7 QuestionnaireResponse + panel + items + total --------------------


QR_INSTRUMENTS = tuple(fx.INSTRUMENT_CODES)  # PHQ-9 and GAD-7 (LOINC panels)


@cache
def _definition(instrument: str) -> Any:
    from ketaclinic.clinical.instruments import load_bundled

    return load_bundled(instrument)


def _answer_values(answers_json: str, numbers: list[int]) -> list[int | None] | None:
    """Stored answers as ints, one per item (stored as a list or as {"item number": value},
    strings or ints); None when they do not fit the definition."""
    try:
        data = json.loads(answers_json or "[]")
    except ValueError:
        return None
    if isinstance(data, dict):
        data = [data.get(str(n)) for n in numbers]
    if not isinstance(data, list) or len(data) != len(numbers):
        return None
    out: list[int | None] = []
    for v in data:
        if v is None or v == "":
            out.append(None)
            continue
        try:
            out.append(int(v))
        except (TypeError, ValueError):
            return None
    return out


def _answer_coding(item: Any, value: int) -> Res:
    option = next((o for o in item.options if o.score == value), None)
    if option is None:
        return {}
    out: Res = {}
    if option.code:
        out = {"system": fx.LOINC, "code": option.code}
    if option.label:
        out["display"] = option.label
    return out


def assessment(a: Any, pref: Res) -> list[Res]:
    """The total score Observation; for a complete PHQ-9/GAD-7 also the QuestionnaireResponse,
    the panel and one Observation per answered item, each ``derivedFrom`` the response."""
    instrument = a.instrument_id.replace("-", "_")
    rid = f"a-{a.id}"
    at = when(a.administered_at)
    common: Res = {"status": "final", "category": category("survey", "Survey"),
                   "subject": pref, "effectiveDateTime": at}
    if a.session_id:
        common["encounter"] = ref("Encounter", f"enc-{a.session_id}")
    if a.entered_by is not None:
        common["performer"] = [user_ref(a.entered_by)]
    spec = fx.INSTRUMENT_CODES.get(instrument)
    total_code = ({"coding": [coding(fx.LOINC, spec["total"], spec["display"])],
                   "text": spec["display"]} if spec else fx._score_code(instrument))
    total: Res = {"resourceType": "Observation", "id": f"{rid}-total", **common,
                  "code": total_code, "valueQuantity": qty(a.total, "{score}")}
    if spec is None or not a.complete or a.prorated:
        return [total]
    d = _definition(instrument)
    values = _answer_values(a.answers_json, [i.number for i in d.items])
    if values is None:
        return [total]
    qr_items, members = [], []
    for item, value in zip(d.items, values, strict=True):
        if value is None or not item.code:
            continue
        answer = _answer_coding(item, value)
        qr_items.append({"linkId": f"/{item.code}", "text": item.text or item.label,
                         "answer": [{"valueCoding": answer} if answer
                                    else {"valueInteger": value}]})
        members.append({"resourceType": "Observation", "id": f"{rid}-item-{item.number}",
                        "meta": profile("survey"), **common,
                        "code": {"coding": [coding(fx.LOINC, item.code)],
                                 "text": item.text or item.label},
                        **({"valueCodeableConcept": {"coding": [answer]}} if answer
                           else {"valueInteger": value})})
    qr_items.append({"linkId": f"/{spec['total']}", "text": spec["display"],
                     "answer": [{"valueInteger": int(a.total)}]})
    qr: Res = {"resourceType": "QuestionnaireResponse", "id": f"{rid}-qr",
               "meta": profile("QuestionnaireResponse"),
               "questionnaire": f"http://loinc.org/q/{spec['panel']}", "status": "completed",
               "subject": pref, "authored": at, "item": qr_items}
    if a.entered_by is not None:
        qr["author"] = user_ref(a.entered_by)
    derived = {"derivedFrom": [ref("QuestionnaireResponse", qr["id"])]}
    total.update(derived)
    total["meta"] = profile("survey")
    for m in members:
        m.update(derived)
    panel: Res = {"resourceType": "Observation", "id": f"{rid}-panel", "meta": profile("survey"),
                  **common, "code": {"coding": [coding(fx.LOINC, spec["panel"], d.name)],
                                     "text": d.name},
                  "hasMember": [ref("Observation", m["id"]) for m in (*members, total)],
                  **derived}
    return [qr, panel, *members, total]

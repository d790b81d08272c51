"""Read a FHIR R4/R4B Bundle into import items (no database; see docs/import.md).

Each entry's resource is first validated with the ``fhir.resources`` R4B model of its type, then
mapped to the request models the pages use. Every bad entry is reported (entry index, resource
type, field) and the whole Bundle is refused: nothing is written from a Bundle with one bad
entry. Resource types and Observations the clinic does not keep are reported as skipped.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from ketaclinic.clinical.instruments.definitions import InstrumentDefinition
from ketaclinic.clinical.instruments.loading import load_bundled
from ketaclinic.clinical.medications import MEDICATION_STOP_REASONS, load_bundled_vocabulary
from ketaclinic.schemas import (
    AllergyCreate,
    DiagnosisCreate,
    MedicationCreate,
    MedicationStop,
    WeightCreate,
)
from ketaclinic.services.interop.import_model import (
    MAX_ENTRIES,
    ChildItem,
    EntryError,
    EntryInvalid,
    ImportItem,
    ImportRejected,
    PatientItem,
    SkippedItem,
    build,
    patient_fields,
)

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
ICD10 = ("http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10")
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
MR_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
DEFAULT_MRN_SYSTEM = "https://ketaclinic.org/fhir/sid/mrn"
BODY_WEIGHT = "29463-7"
BUNDLE_TYPES = ("collection", "transaction", "batch")
INSTRUMENTS = ("phq9", "gad7")
_ACTIVE_MED = {"active", "intended", "on-hold", "unknown"}
_STOPPED_MED = {"completed", "stopped"}  # (entered-in-error resources are skipped)
MED_STOP_REASON_SYSTEM = "https://ketaclinic.org/fhir/CodeSystem/medication-stop-reasons"
# Condition.clinicalStatus: the condition goes on / is over (imported resolved: still history
# for the screening flags, no longer the indication)
_CONDITION_ONGOING = {"active", "recurrence", "relapse"}
_CONDITION_OVER = {"inactive", "remission", "resolved"}
_ASCII_NUMBER = re.compile(r"^[0-9]+(\.[0-9]+)?$")


def parse_bundle(bundle: Any, *, mrn_system: str = DEFAULT_MRN_SYSTEM) -> list[ImportItem]:
    """The import items of a Bundle; :class:`ImportRejected` listing every bad entry."""
    entries = _entries(bundle)
    index = _Index(entries)
    items: list[ImportItem] = []
    errors: list[EntryError] = []
    for i, resource in enumerate(index.resources):
        rtype = resource.get("resourceType", "") if isinstance(resource, dict) else ""
        try:
            _validate(resource)
            items.append(_item(i, rtype, resource, index, mrn_system))
        except EntryInvalid as exc:
            errors.append(EntryError(i, rtype or "?", exc.field, exc.message))
    if errors:
        raise ImportRejected(errors)
    return items


def _entries(bundle: Any) -> list[Any]:
    def bad(field: str, message: str) -> ImportRejected:
        return ImportRejected([EntryError(-1, "Bundle", field, message)])

    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise bad("resourceType", "expected a FHIR Bundle")
    if bundle.get("type") not in BUNDLE_TYPES:
        raise bad("type", f"must be one of {', '.join(BUNDLE_TYPES)}")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise bad("entry", "must be a list")
    if len(entries) > MAX_ENTRIES:
        raise bad("entry", f"more than {MAX_ENTRIES} entries; split the Bundle")
    return entries


class _Index:
    """Entries by the references other entries may use (fullUrl, ``Type/id``)."""

    def __init__(self, entries: list[Any]) -> None:
        self.resources: list[Any] = []
        self.by_ref: dict[str, int] = {}
        for i, entry in enumerate(entries):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            self.resources.append(resource if isinstance(resource, dict) else {})
            if not isinstance(resource, dict):
                continue
            full_url = entry.get("fullUrl")
            if isinstance(full_url, str) and full_url:
                self.by_ref[full_url] = i
            if resource.get("id"):
                self.by_ref[f"{resource.get('resourceType')}/{resource['id']}"] = i

    def find(self, reference: Any) -> int | None:
        ref = reference.get("reference") if isinstance(reference, dict) else None
        if not isinstance(ref, str):
            return None
        if ref in self.by_ref:
            return self.by_ref[ref]
        tail = "/".join(ref.rstrip("/").split("/")[-2:])  # an absolute URL ending Type/id
        return self.by_ref.get(tail)

    def patient_key(self, resource: dict, field: str) -> str:
        at = self.find(resource.get(field))
        if at is None or self.resources[at].get("resourceType") != "Patient":
            raise EntryInvalid(field, "must reference a Patient entry of this Bundle")
        return f"entry-{at}"


def _validate(resource: Any) -> None:
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise EntryInvalid("resource", "missing, or has no resourceType")
    try:
        model = get_fhir_model_class(resource["resourceType"])
    except KeyError:
        raise EntryInvalid("resourceType", "is not a FHIR R4B resource type") from None
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__") or "resource"
        raise EntryInvalid(where, str(err.get("msg", "invalid")).removeprefix(
            "Value error, ")) from None
    except (ValueError, TypeError) as exc:
        raise EntryInvalid("resource", str(exc).splitlines()[0][:200]) from None


def _item(i: int, rtype: str, r: dict, index: _Index, mrn_system: str) -> ImportItem:
    if r.get("status") == "entered-in-error" or r.get("verificationStatus", {}).get(
            "coding", [{}])[0].get("code") == "entered-in-error":
        return SkippedItem(i, rtype, "entered in error")
    if rtype == "Patient":
        return _patient(i, r, mrn_system)
    if rtype == "Condition":
        return _condition(i, r, index)
    if rtype == "MedicationStatement":
        return _medication(i, r, index)
    if rtype == "AllergyIntolerance":
        return _allergy(i, r, index)
    if rtype == "Observation":
        return _observation(i, r, index)
    if rtype == "QuestionnaireResponse":
        return _questionnaire_response(i, r, index)
    return SkippedItem(i, rtype, f"{rtype} is not imported")


# --- Patient -----------------------------------------------------------------------------------
_PATIENT_FIELDS = {"family_name": "name.family", "given_name": "name.given",
                   "birth_date": "birthDate", "sex": "gender", "phone": "telecom",
                   "email": "telecom", "address": "address", "mrn": "identifier"}


def _patient(i: int, r: dict, mrn_system: str) -> PatientItem:
    mrn = _mrn(r.get("identifier") or [], mrn_system)
    names = [n for n in r.get("name") or [] if n.get("use") != "old"] or [{}]
    name = next((n for n in names if n.get("use") == "official"), names[0])
    telecom = r.get("telecom") or []
    values: dict[str, Any] = {
        "family_name": name.get("family"),
        "given_name": " ".join(name.get("given") or []) or None,
        "birth_date": r.get("birthDate"),
        "sex": r.get("gender"),
        "phone": next((t.get("value") for t in telecom if t.get("system") == "phone"), None),
        "email": next((t.get("value") for t in telecom if t.get("system") == "email"), None),
        "address": _address((r.get("address") or [None])[0]),
    }
    for required, where in (("family_name", "name.family"), ("given_name", "name.given"),
                            ("birth_date", "birthDate"), ("sex", "gender")):
        if not values[required]:
            raise EntryInvalid(where, "is required")
    mrn, fields = patient_fields(_PATIENT_FIELDS, mrn, **values)
    return PatientItem(i, "Patient", f"entry-{i}", mrn, fields)


def _mrn(identifiers: list[dict], system: str) -> str:
    """The clinic's MRN: the identifier of the clinic's system, else the one typed MR, else the
    only identifier there is."""
    chosen = next((x for x in identifiers if x.get("system") == system), None)
    if chosen is None:
        chosen = next((x for x in identifiers if any(
            c.get("system") == MR_TYPE and c.get("code") == "MR"
            for c in (x.get("type") or {}).get("coding") or [])), None)
    if chosen is None and len(identifiers) == 1:
        chosen = identifiers[0]
    if chosen is None or not chosen.get("value"):
        raise EntryInvalid("identifier", f"no MRN: needs an identifier of system {system}, "
                           "or one of type MR, or exactly one identifier")
    return str(chosen["value"])


def _address(a: dict | None) -> str | None:
    if not a:
        return None
    if a.get("text"):
        return str(a["text"])
    parts = [*(a.get("line") or []), a.get("postalCode"), a.get("city"), a.get("state"),
             a.get("country")]
    return ", ".join(str(p) for p in parts if p) or None


# --- Condition, MedicationStatement, AllergyIntolerance ----------------------------------------
def _text_of(concept: dict | None) -> str:
    concept = concept or {}
    return str(concept.get("text") or next(
        (c.get("display") for c in concept.get("coding") or [] if c.get("display")), "") or "")


def _date(value: Any, field: str) -> dt.date | None:
    if not value:
        return None
    text = str(value)
    try:
        return dt.date.fromisoformat(text[:10]) if len(text) >= 10 else dt.date(
            int(text[:4]), int(text[5:7] or 1) if len(text) >= 7 else 1, 1)
    except ValueError:
        raise EntryInvalid(field, "is not a date") from None


def _condition(i: int, r: dict, index: _Index) -> ImportItem:
    key = index.patient_key(r, "subject")
    codings = (r.get("code") or {}).get("coding") or []
    coding, system = None, ""
    for c in codings:
        if c.get("system") in ICD10:
            coding, system = c, "icd10"
            break
    if coding is None:
        coding = next((c for c in codings if c.get("system") == SNOMED), None)
        system = "snomed"
    if coding is None or not coding.get("code"):
        raise EntryInvalid("code.coding", "needs an ICD-10(-CM) or SNOMED CT code")
    display = coding.get("display") or _text_of(r.get("code")) or str(coding["code"])
    onset = _date(r.get("onsetDateTime") or (r.get("onsetPeriod") or {}).get("start"),
                  "onsetDateTime")
    data = build(DiagnosisCreate, {"code": "code.coding.code", "display": "code.coding.display",
                                   "onset_on": "onsetDateTime"},
                 system=system, code=str(coding["code"]), display=display, onset_on=onset)
    reason, review = _condition_status(r)
    return ChildItem(i, "Condition", key, "diagnosis", data, inactive_reason=reason,
                     review=review)


def _status(r: dict, field: str) -> str | None:
    """The code of ``clinicalStatus`` / ``verificationStatus`` (None: not given)."""
    codings = (r.get(field) or {}).get("coding") or []
    return next((str(c["code"]) for c in codings if c.get("code")), None)


def _condition_status(r: dict) -> tuple[str | None, str]:
    """(inactive_reason, what to review) of a Condition. Over (inactive, remission, resolved):
    imported resolved. Refuted: imported resolved too, never dropped: a refuted depressive
    episode is then not the indication, a refuted psychotic episode still a flag for a person
    to review (the import does not decide that a contraindication never was). A status not
    given or not known: active (unknown is not negative), and the report says so."""
    clinical, verification = _status(r, "clinicalStatus"), _status(r, "verificationStatus")
    if verification == "refuted":
        return "resolved", ("verificationStatus refuted: imported as resolved (history for "
                            "the screening flags, not the indication); review it")
    if clinical in _CONDITION_OVER:
        return "resolved", ""
    if clinical in _CONDITION_ONGOING:
        return None, ""
    what = "no clinicalStatus" if clinical is None else f"clinicalStatus {clinical!r} not known"
    return None, f"{what}: imported as active (unknown is not negative); review it"


def _medication(i: int, r: dict, index: _Index) -> ImportItem:
    status = r.get("status")
    if status == "not-taken":
        return SkippedItem(i, "MedicationStatement", "not taken")
    if status not in _ACTIVE_MED | _STOPPED_MED:
        raise EntryInvalid("status", "must be a MedicationStatement status (active, completed, "
                           "stopped, intended, on-hold, unknown, not-taken)")
    key = index.patient_key(r, "subject")
    concept = r.get("medicationCodeableConcept")
    if concept is None:
        at = index.find(r.get("medicationReference"))
        if at is None or index.resources[at].get("resourceType") != "Medication":
            raise EntryInvalid("medicationReference", "must reference a Medication entry")
        concept = index.resources[at].get("code")
    name = _text_of(concept) or _rxnorm_name(concept)
    if not name:
        raise EntryInvalid("medicationCodeableConcept", "needs a text, a display or a known "
                           "RxNorm code")
    period = r.get("effectivePeriod") or {}
    started = _date(r.get("effectiveDateTime") or period.get("start"), "effective")
    data = build(MedicationCreate, {"name": "medicationCodeableConcept.text",
                                    "daily_dose_mg": "dosage"},
                 name=name, daily_dose_mg=_daily_mg(r.get("dosage") or []), started_on=started)
    if status in _ACTIVE_MED:
        return ChildItem(i, "MedicationStatement", key, "medication", data)
    stop = _medication_stop(status, r.get("statusReason") or [],
                            _date(period.get("end"), "effectivePeriod.end"))
    return ChildItem(i, "MedicationStatement", key, "medication", data, active=False,
                     inactive_reason=stop.reason if stop else None,
                     stopped_on=stop.stopped_on if stop else None,
                     note=stop.note if stop else "")


def _medication_stop(status: str, reasons: list[dict],
                     ended: dt.date | None) -> MedicationStop | None:
    """Why and when a stopped statement was stopped: the project's reason code, else a
    statusReason text that names one of them, else ``other`` with the text as the note;
    a ``completed`` statement that says no more was completed. None when nothing says
    why (stored "reason not recorded", never a reason nobody gave)."""
    reason, note = _stop_reason(reasons)
    if status == "completed" and reason is None:
        reason = status
    if reason is None:
        return None
    return build(MedicationStop, {"note": "statusReason.text", "reason": "statusReason",
                                  "stopped_on": "effectivePeriod.end"},
                 stopped_on=ended, reason=reason, note=note)


def _stop_reason(reasons: list[dict]) -> tuple[str | None, str]:
    labels = {label: code for code, label in MEDICATION_STOP_REASONS.items()}
    for concept in reasons:
        text = str(concept.get("text") or "").strip()
        for c in concept.get("coding") or []:
            code = c.get("code")
            if c.get("system") == MED_STOP_REASON_SYSTEM and code in MEDICATION_STOP_REASONS:
                return code, "" if text in ("", MEDICATION_STOP_REASONS[code]) else text[:200]
    text = _text_of(reasons[0]).strip() if reasons else ""
    if not text:
        return None, ""
    code = labels.get(text.lower()) or (text.lower() if text.lower() in MEDICATION_STOP_REASONS
                                         else None)
    return (code, "") if code else ("other", text[:200])


def _rxnorm_name(concept: dict | None) -> str:
    codes = {c.get("code") for c in (concept or {}).get("coding") or []
             if c.get("system") == RXNORM}
    return next((e.ingredient for e in load_bundled_vocabulary().entries if e.rxnorm in codes), "")


def _daily_mg(dosage: list[dict]) -> Decimal | None:
    """mg per day from the first dosage (dose in mg, timing per day); else unknown (None)."""
    if not dosage:
        return None
    d = dosage[0]
    dose = ((d.get("doseAndRate") or [{}])[0] or {}).get("doseQuantity") or {}
    repeat = (d.get("timing") or {}).get("repeat") or {}
    if (dose.get("code") or dose.get("unit")) != "mg" or dose.get("value") is None:
        return None
    per_day = {"d": Decimal(1), "wk": Decimal(1) / 7, "h": Decimal(24)}.get(
        repeat.get("periodUnit", "d"))
    if per_day is None:
        return None
    times = Decimal(str(repeat.get("frequency", 1))) / Decimal(str(repeat.get("period", 1)))
    return (Decimal(str(dose["value"])) * times * Decimal(per_day)).quantize(Decimal("0.01"))


def _allergy(i: int, r: dict, index: _Index) -> ImportItem:
    key = index.patient_key(r, "patient")
    substance = _text_of(r.get("code"))
    if not substance:
        raise EntryInvalid("code", "needs a text or display naming the substance")
    reactions = r.get("reaction") or [{}]
    manifest = ", ".join(_text_of(m) for m in reactions[0].get("manifestation") or [])
    data = build(AllergyCreate, {"substance": "code.text", "reaction": "reaction.manifestation"},
                 substance=substance, reaction=manifest[:200])
    reason, review = _allergy_status(r)
    return ChildItem(i, "AllergyIntolerance", key, "allergy", data, inactive_reason=reason,
                     review=review)


def _allergy_status(r: dict) -> tuple[str | None, str]:
    """(inactive_reason, what to review) of an AllergyIntolerance. Refuted: imported refuted
    (screening stops counting it). An allergy merely clinically inactive or resolved (not
    refuted) is imported ACTIVE: an allergy stops counting only when refuted or entered in
    error, and an "inactive" one from elsewhere (outgrown? desensitised?) is for a person to
    withdraw, not for the import to drop. Likewise one without a clinicalStatus."""
    clinical, verification = _status(r, "clinicalStatus"), _status(r, "verificationStatus")
    if verification == "refuted":
        return "refuted", ""
    if clinical == "active":
        return None, ""
    what = "no clinicalStatus" if clinical is None else f"clinicalStatus {clinical!r}"
    return None, (f"{what}: imported as active (an allergy stops counting only when refuted "
                  "or entered in error); review it")


# --- Observations and QuestionnaireResponses ----------------------------------------------------
def _loinc_codes(r: dict) -> set[str]:
    return {str(c.get("code")) for c in (r.get("code") or {}).get("coding") or []
            if c.get("system") == LOINC}


def _definitions() -> dict[str, InstrumentDefinition]:
    return {i: load_bundled(i) for i in INSTRUMENTS}


def _observation(i: int, r: dict, index: _Index) -> ImportItem:
    codes = _loinc_codes(r)
    if BODY_WEIGHT in codes:
        return _weight(i, r, index)
    for iid, d in _definitions().items():
        if d.codes.panel in codes:
            return _panel(i, r, index, iid, d)
        if d.codes.total in codes or codes & {item.code for item in d.items}:
            return SkippedItem(i, "Observation", f"{d.short_name} total or item: imported "
                               "through its panel or QuestionnaireResponse")
    return SkippedItem(i, "Observation", "only body weight and PHQ-9/GAD-7 are imported")


def _weight(i: int, r: dict, index: _Index) -> ImportItem:
    key = index.patient_key(r, "subject")
    q = r.get("valueQuantity") or {}
    unit = q.get("code") or q.get("unit")
    if q.get("system") not in (None, UCUM) or unit != "kg":
        raise EntryInvalid("valueQuantity.code", f"kilograms only (UCUM kg), got {unit!r}; "
                           "convert before importing")
    value = str(q.get("value", ""))
    if not _ASCII_NUMBER.match(value):
        raise EntryInvalid("valueQuantity.value", "is not a number of kilograms")
    when = _date(r.get("effectiveDateTime") or (r.get("effectivePeriod") or {}).get("start"),
                 "effectiveDateTime")
    data = build(WeightCreate, {"weight": "valueQuantity.value",
                                "measured_on": "effectiveDateTime"},
                 weight=f"{value} kg", measured_on=when)
    return ChildItem(i, "Observation", key, "weight", data)


def _panel(i: int, r: dict, index: _Index, iid: str, d: InstrumentDefinition) -> ImportItem:
    key = index.patient_key(r, "subject")
    for ref in r.get("derivedFrom") or []:
        at = index.find(ref)
        if at is not None and index.resources[at].get("resourceType") == "QuestionnaireResponse":
            return SkippedItem(i, "Observation", f"the same form as entry {at} "
                               "(QuestionnaireResponse)")
    answers: dict[int, int] = {}
    for n, ref in enumerate(r.get("hasMember") or []):
        at = index.find(ref)
        if at is None:
            raise EntryInvalid(f"hasMember[{n}]", "must reference an Observation of this Bundle")
        member = index.resources[at]
        item = _item_by_code(d, _loinc_codes(member))
        if item is None:
            continue  # the total: the core scores the items
        answers[item.number] = _member_value(d, item.number, member, f"hasMember[{n}]")
    if not answers:
        raise EntryInvalid("hasMember", f"no {d.short_name} item answers")
    return ChildItem(i, "Observation", key, "assessment", instrument_id=iid, answers=answers,
                     administered_at=_instant(r.get("effectiveDateTime"), "effectiveDateTime"))


def _item_by_code(d: InstrumentDefinition, codes: set[str]):
    return next((item for item in d.items if item.code and item.code in codes), None)


def _member_value(d: InstrumentDefinition, number: int, member: dict, field: str) -> int:
    if "valueInteger" in member:
        return int(member["valueInteger"])
    if "valueQuantity" in member:
        return _integer((member["valueQuantity"] or {}).get("value"), field)
    return _option_score(d, number, member.get("valueCodeableConcept"), field)


def _integer(value: Any, field: str) -> int:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise EntryInvalid(field, "is not a number") from None
    if number != number.to_integral_value():
        raise EntryInvalid(field, "is not a whole number")
    return int(number)


def _option_score(d: InstrumentDefinition, number: int, concept: dict | None, field: str) -> int:
    item = d.item(number)
    codings = (concept or {}).get("coding") or []
    codes = {c.get("code") for c in codings}
    labels = {str(c.get("display", "")).strip().lower() for c in codings} | {
        str((concept or {}).get("text", "")).strip().lower()}
    option = next((o for o in item.options if o.code and o.code in codes), None) or next(
        (o for o in item.options if not o.code and o.label.lower() in labels), None)
    if option is None:
        raise EntryInvalid(field, f"{d.short_name} item {number}: not one of its LOINC answers")
    return option.score


def _instant(value: Any, field: str) -> dt.datetime | None:
    if not value:
        return None
    text = str(value)
    try:
        when = dt.datetime.fromisoformat(text) if len(text) > 10 else dt.datetime.fromisoformat(
            f"{text[:10]}T00:00:00+00:00")
    except ValueError:
        raise EntryInvalid(field, "is not a date-time") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _questionnaire_response(i: int, r: dict, index: _Index) -> ImportItem:
    canonical = str(r.get("questionnaire") or "")
    found = [(iid, d) for iid, d in _definitions().items() if d.codes.panel in canonical]
    if not found:
        return SkippedItem(i, "QuestionnaireResponse", "not a PHQ-9 or GAD-7 questionnaire "
                           f"(LOINC {', '.join(d.codes.panel for d in _definitions().values())})")
    iid, d = found[0]
    if r.get("status") not in ("completed", "amended"):
        raise EntryInvalid("status", "only a completed form is imported")
    key = index.patient_key(r, "subject")
    answers: dict[int, int] = {}
    for n, entry in enumerate(r.get("item") or []):
        link = str(entry.get("linkId", "")).lstrip("/")
        if link == d.codes.total:
            continue
        item = _item_by_code(d, {link}) or next(
            (x for x in d.items if str(x.number) == link), None)
        if item is None:
            raise EntryInvalid(f"item[{n}].linkId", f"not a {d.short_name} item")
        answer = (entry.get("answer") or [{}])[0]
        field = f"item[{n}].answer"
        if "valueInteger" in answer:
            answers[item.number] = int(answer["valueInteger"])
        else:
            answers[item.number] = _option_score(d, item.number, {
                "coding": [answer.get("valueCoding") or {}]}, field)
    return ChildItem(i, "QuestionnaireResponse", key, "assessment", instrument_id=iid,
                     answers=answers, administered_at=_instant(r.get("authored"), "authored"))

"""The FHIR export of the demo clinic: every stored row becomes its resource, every resource
validates (fhir.resources R4B here; Medplum's validator in test_fhir_medplum.py), ids are stable
and every reference resolves inside the export."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import func, select

from ketaclinic.renderers.fhir_codes import check_bundle, validate_bundle
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.interop.fhir_bulk import bundle, r4b_problems
from ketaclinic.store.tables import (
    AuditEvent,
    Patient,
    PatientAllergy,
    PatientDiagnosis,
    PatientMedication,
    PatientWeight,
)
from ketaclinic.store.tables_chair import AdverseEventRow, DoseRecord
from ketaclinic.store.tables_dosing import DoseOrder
from ketaclinic.store.tables_treatment import Assessment, Course, TreatmentSession

PHQ9_ITEMS = ("44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5",
              "44253-3", "44260-8")
ANSWER_CODES = ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9")


@pytest.fixture
def demo(demo_clinic):
    """The shared demo clinic (tests/conftest.py), with an allergy; these tests only read it."""
    return demo_clinic


def _count(s, model, *where):
    return s.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def _by_type(resources):
    return Counter(r["resourceType"] for r in resources)


def test_every_stored_row_of_the_demo_clinic_is_exported_as_its_resource(demo):
    resources = demo.outcomes.fhir_resources(SYSTEM)
    kinds = _by_type(resources)
    with demo.db.transaction() as s:
        session_only = _count(s, TreatmentSession, TreatmentSession.dose_mg.is_not(None),
                              TreatmentSession.dose_started_at.is_not(None),
                              TreatmentSession.status.not_in(("cancelled", "missed")),
                              ~TreatmentSession.id.in_(select(DoseRecord.session_id)))
        expected = {
            "Patient": _count(s, Patient), "Condition": _count(s, PatientDiagnosis),
            "AllergyIntolerance": _count(s, PatientAllergy),
            "MedicationStatement": _count(s, PatientMedication),
            "CarePlan": _count(s, Course), "Encounter": _count(s, TreatmentSession),
            "MedicationRequest": _count(s, DoseOrder),
            "MedicationAdministration": _count(s, DoseRecord) + session_only,
            "AdverseEvent": _count(s, AdverseEventRow),
            "QuestionnaireResponse": _count(
                s, Assessment, Assessment.instrument_id.in_(("phq9", "gad7")),
                Assessment.complete.is_(True), Assessment.prorated.is_(False),
                Assessment.total.is_not(None)),
        }
        weights = _count(s, PatientWeight)
        scored = _count(s, Assessment, Assessment.total.is_not(None))
    assert expected["QuestionnaireResponse"] > 20 and weights >= 10
    assert expected["AllergyIntolerance"] == 1 and expected["AdverseEvent"] > 0
    assert {k: kinds[k] for k in expected} == expected
    obs = [r for r in resources if r["resourceType"] == "Observation"]
    codes = Counter(c["code"] for r in obs for c in r["code"]["coding"][:1])
    assert codes["29463-7"] == weights
    totals = [r for r in obs if r["id"].endswith("-total")]
    assert len(totals) == scored
    assert codes["44249-1"] + codes["69737-5"] == expected["QuestionnaireResponse"]
    assert kinds["Practitioner"] >= 2
    assert r4b_problems(resources) == []


def test_ids_are_stable_unique_and_every_reference_resolves_inside_the_export(demo):
    with demo.db.transaction() as s:
        exports_before = _count(s, AuditEvent, AuditEvent.action == "export.fhir_bulk")
    first = demo.outcomes.fhir_resources(SYSTEM)
    second = demo.outcomes.fhir_resources(SYSTEM)
    assert json.dumps(first) == json.dumps(second)
    keys = [f"{r['resourceType']}/{r['id']}" for r in first]
    assert len(keys) == len(set(keys))
    known = set(keys)

    def refs(node):
        if isinstance(node, dict):
            if isinstance(node.get("reference"), str) and not node["reference"].startswith("#"):
                yield node["reference"]
            for v in node.values():
                yield from refs(v)
        elif isinstance(node, list):
            for v in node:
                yield from refs(v)

    dangling = {x for r in first for x in refs(r)} - known
    assert dangling == set()
    with demo.db.transaction() as s:
        exports = _count(s, AuditEvent, AuditEvent.action == "export.fhir_bulk")
    assert exports == exports_before + 2


def test_a_phq9_answer_set_becomes_a_response_a_panel_items_and_a_total_derived_from_it(demo):
    resources = demo.outcomes.fhir_resources(SYSTEM)
    by_key = {f"{r['resourceType']}/{r['id']}": r for r in resources}
    with demo.db.transaction() as s:
        a = s.execute(select(Assessment).where(
            Assessment.instrument_id == "phq9", Assessment.complete.is_(True),
            Assessment.prorated.is_(False)).order_by(Assessment.id)).scalars().first()
        stored = json.loads(a.answers_json)
    assert len(stored) == 10 and all(isinstance(v, str) for v in stored if v is not None)
    qr = by_key[f"QuestionnaireResponse/a-{a.id}-qr"]
    panel = by_key[f"Observation/a-{a.id}-panel"]
    assert panel["code"]["coding"][0]["code"] == "44249-1"
    members = [by_key[m["reference"]] for m in panel["hasMember"]]
    total = members[-1]
    assert total["code"]["coding"][0]["code"] == "44261-6"
    assert total["valueQuantity"]["value"] == int(a.total)
    for m in [panel, *members]:
        assert m["derivedFrom"] == [{"reference": f"QuestionnaireResponse/a-{a.id}-qr"}]
    answers = {i["linkId"]: i["answer"][0] for i in qr["item"]}
    for code, value in zip(PHQ9_ITEMS, stored[:9], strict=True):
        assert answers[f"/{code}"]["valueCoding"]["code"] == ANSWER_CODES[int(value)]
    item_obs = {m["code"]["coding"][0]["code"]: m for m in members[:-1]}
    assert set(PHQ9_ITEMS) <= set(item_obs)
    assert sum(ANSWER_CODES.index(item_obs[c]["valueCodeableConcept"]["coding"][0]["code"])
               for c in PHQ9_ITEMS) == int(a.total)


def test_weights_doses_and_snomed_codes_carry_what_an_integrator_needs(demo, monkeypatch):
    monkeypatch.setattr(demo.ctx, "settings", demo.ctx.settings.model_copy(
        update={"fhir_mrn_system": "urn:oid:2.16.840.1.113883.3.999.1"}))
    resources = demo.outcomes.fhir_resources(SYSTEM)
    with demo.db.transaction() as s:
        w = s.execute(select(PatientWeight).order_by(PatientWeight.id)).scalars().first()
        p = s.get(Patient, w.patient_id)
    by_key = {f"{r['resourceType']}/{r['id']}": r for r in resources}
    obs = by_key[f"Observation/wt-{w.id}"]
    assert obs["valueQuantity"] == {"value": float(w.weight_kg), "unit": "kg",
                                    "system": "http://unitsofmeasure.org", "code": "kg"}
    assert obs["effectiveDateTime"] == w.measured_on.isoformat()
    assert obs["meta"]["profile"][0].endswith("us-core-body-weight")
    patient = by_key[f"Patient/p-{p.id}"]
    assert patient["identifier"][0] == {
        "use": "usual", "type": patient["identifier"][0]["type"],
        "system": "urn:oid:2.16.840.1.113883.3.999.1", "value": p.mrn}
    mas = [r for r in resources if r["resourceType"] == "MedicationAdministration"]
    assert mas and all(r.get("performer") for r in mas)
    with_lot = [r for r in mas if "contained" in r]
    assert with_lot and all(r["contained"][0]["batch"]["lotNumber"] for r in with_lot)
    rx = {c["code"] for r in mas for c in (r.get("medicationCodeableConcept")
                                             or r["contained"][0]["code"])["coding"]
          if c["system"].endswith("rxnorm")}
    assert rx <= {"6130", "2201623"} and rx
    displays: dict[str, set[str]] = {}

    def walk(node):
        if isinstance(node, dict):
            if node.get("system") == "http://snomed.info/sct":
                displays.setdefault(node["code"], set()).add(node.get("display"))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(resources)
    assert displays and all(len(d) == 1 and None not in d for d in displays.values())


def test_collection_and_transaction_bundles_validate_and_put_each_resource_at_its_id(demo):
    resources = demo.outcomes.fhir_resources(SYSTEM)
    coll = bundle(resources, "collection", "https://clinic.example.org/fhir")
    assert validate_bundle(coll) == []
    tx = bundle(resources, "transaction", "https://clinic.example.org/fhir")
    # The transaction holds the very resources the collection just validated, entry by entry:
    # what differs is its envelope. Every entry gets the project's binding checks; the R4B
    # structure of a transaction is validated with one resource of every type (validating
    # each resource a second time was most of this test's time).
    assert check_bundle(tx) == []
    one_of_each = list({r["resourceType"]: r for r in resources}.values())
    assert len(one_of_each) >= 12
    Bundle.model_validate(bundle(one_of_each, "transaction", "https://clinic.example.org/fhir"))
    assert all(e["request"] == {"method": "PUT", "url": f"{e['resource']['resourceType']}/"
                                f"{e['resource']['id']}"} for e in tx["entry"])
    assert all(e["fullUrl"].startswith("https://clinic.example.org/fhir/") for e in tx["entry"])
    with demo.db.transaction() as s:
        pid = s.execute(select(Patient.id).order_by(Patient.id)).scalars().first()
    one = demo.outcomes.fhir_bundle(SYSTEM, pid, "transaction")
    assert one["type"] == "transaction" and validate_bundle(one) == []

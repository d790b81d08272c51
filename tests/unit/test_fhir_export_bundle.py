"""FHIR R4 export: bundles validate under fhir.resources R4B, codes pinned to instruments.md §3."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta

import pytest
from fhir.resources.R4B.bundle import Bundle

from ketaclinic.services import fhir_export as fx
from ketaclinic.services.fhir_export import (
    CarePlanRecord,
    ConditionRecord,
    DoseRecord,
    FhirExportError,
    PatientExport,
    PatientRecord,
    ProcedureRecord,
    ScoreRecord,
    VitalRecord,
    build_patient_bundle,
    check_bundle,
    validate_bundle,
)

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def _export() -> PatientExport:
    return PatientExport(
        patient=PatientRecord("p1", "MRN-0001", "Testperson", ("Synth",), date(1980, 5, 1),
                              "female"),
        conditions=[ConditionRecord("c1", icd10="F33.2")],
        careplans=[CarePlanRecord("k1", "iv_ketamine", "IV ketamine induction", "active",
                                  date(2025, 3, 3), condition_id="c1"),
                   CarePlanRecord("k2", "esketamine", "Esketamine induction", "completed",
                                  date(2024, 1, 8), date(2024, 2, 5))],
        procedures=[ProcedureRecord("s1", "iv_infusion", T0, T0 + timedelta(minutes=40),
                                    course_id="k1"),
                    ProcedureRecord("s2", "esketamine_nasal", T0 - timedelta(days=400),
                                    course_id="k2")],
        doses=[DoseRecord("d1", "ketamine", 35.0, "iv", T0, T0 + timedelta(minutes=40),
                          rate_mg_per_h=52.5, session_id="s1"),
               DoseRecord("d2", "esketamine", 56.0, "nasal", T0 - timedelta(days=400),
                          session_id="s2")],
        scores=[ScoreRecord("q1", "phq9", 17, T0 - timedelta(hours=1),
                            (2, 2, 3, 2, 1, 2, 2, 1, 2)),
                ScoreRecord("q2", "gad7", 9, T0 - timedelta(hours=1), (1, 1, 2, 1, 1, 2, 1)),
                ScoreRecord("q3", "madrs", 31, T0 - timedelta(hours=1))],
        vitals=[VitalRecord("v1", T0 + timedelta(minutes=40), 138, 86, 78, 14, 97)],
    )


def _resources(bundle, rtype):
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def _codes(resource):
    return {(c["system"], c["code"]) for c in resource["code"]["coding"]}


def test_bundle_is_a_valid_r4b_collection_with_every_resource_type():
    b = build_patient_bundle(_export())
    assert b["type"] == "collection"
    Bundle.model_validate(b)
    kinds = {e["resource"]["resourceType"] for e in b["entry"]}
    assert kinds == {"Patient", "Condition", "Observation", "QuestionnaireResponse",
                     "MedicationAdministration", "Procedure", "CarePlan"}
    assert validate_bundle(b) == []
    assert len({e["fullUrl"] for e in b["entry"]}) == len(b["entry"])
    # deterministic ids: same input, same bundle
    assert build_patient_bundle(_export()) == b


def test_pinned_loinc_codes_for_phq9_and_gad7():
    assert fx.INSTRUMENT_CODES["phq9"]["panel"] == "44249-1"
    assert fx.INSTRUMENT_CODES["phq9"]["total"] == "44261-6"
    assert fx.PHQ9_ITEMS == ("44250-9", "44255-8", "44259-0", "44254-1", "44251-7",
                             "44258-2", "44252-5", "44253-3", "44260-8")
    assert fx.PHQ9_ITEMS[8] == "44260-8"  # item 9, not 44258-2 (item 6)
    assert fx.PHQ_ANSWERS == ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9")
    assert fx.INSTRUMENT_CODES["gad7"]["panel"] == "69737-5"
    assert fx.INSTRUMENT_CODES["gad7"]["total"] == "70274-6"
    assert fx.GAD7_ITEMS == ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9",
                             "69689-8", "69736-7")
    assert "69726-8" not in fx.GAD7_ITEMS and "69730-0" not in fx.GAD7_ITEMS


def test_scores_are_survey_observations_with_score_units_and_questionnaire_links():
    b = build_patient_bundle(_export())
    obs = [o for o in _resources(b, "Observation")
           if o["category"][0]["coding"][0]["code"] == "survey"]
    by_code = {next(iter(_codes(o)))[1]: o for o in obs}
    assert set(by_code) == {"44261-6", "70274-6", "madrs"}
    assert next(iter(_codes(by_code["madrs"])))[0] == "https://ketaclinic.org/fhir/CodeSystem/instruments"
    for o in obs:
        assert o["valueQuantity"]["system"] == "http://unitsofmeasure.org"
        assert o["valueQuantity"]["code"] == "{score}"
    qrs = {q["questionnaire"].rsplit("/", 1)[1]: q for q in _resources(b, "QuestionnaireResponse")}
    assert set(qrs) == {"phq9", "gad7"}  # MADRS is score-only: no item answers
    phq = qrs["phq9"]
    assert [i["linkId"] for i in phq["item"]] == [f"/{c}" for c in fx.PHQ9_ITEMS]
    assert phq["item"][2]["answer"][0]["valueCoding"]["code"] == "LA6571-9"  # item 3 = 3
    urls = {e["resource"]["resourceType"] + e["resource"].get("questionnaire", ""): e["fullUrl"]
            for e in b["entry"]}
    assert by_code["44261-6"]["derivedFrom"][0]["reference"] == urls[
        "QuestionnaireResponse" + phq["questionnaire"]]


def test_vital_signs_use_the_bp_panel_components_and_both_spo2_codes():
    b = build_patient_bundle(_export())
    vitals = [o for o in _resources(b, "Observation")
              if o["category"][0]["coding"][0]["code"] == "vital-signs"]
    by_code = {frozenset(c for _, c in _codes(o)): o for o in vitals}
    bp = by_code[frozenset({"85354-9"})]
    comps = {c["code"]["coding"][0]["code"]: c["valueQuantity"] for c in bp["component"]}
    assert comps["8480-6"] == {"value": 138, "unit": "mm[Hg]",
                               "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}
    assert comps["8462-4"]["value"] == 86
    assert by_code[frozenset({"8867-4"})]["valueQuantity"]["code"] == "/min"
    assert by_code[frozenset({"9279-1"})]["valueQuantity"]["code"] == "/min"
    spo2 = by_code[frozenset({"2708-6", "59408-5"})]
    assert spo2["valueQuantity"]["code"] == "%"
    assert all(o["category"][0]["coding"][0]["system"] ==
               "http://terminology.hl7.org/CodeSystem/observation-category" for o in vitals)


def test_medication_administrations_pin_rxnorm_atc_snomed_route_and_ucum():
    b = build_patient_bundle(_export())
    mas = {m["medicationCodeableConcept"]["text"]: m for m in
           _resources(b, "MedicationAdministration")}
    es = mas["esketamine nasal spray"]
    es_codes = {(c["system"], c["code"]) for c in es["medicationCodeableConcept"]["coding"]}
    assert ("http://www.nlm.nih.gov/research/umls/rxnorm", "2201623") in es_codes
    assert ("http://www.whocc.no/atc", "N06AX27") in es_codes
    assert es["dosage"]["route"]["coding"][0] == {"system": "http://snomed.info/sct",
                                                  "code": "46713006", "display": "Nasal route"}
    assert es["dosage"]["dose"] == {"value": 56.0, "unit": "mg",
                                    "system": "http://unitsofmeasure.org", "code": "mg"}
    iv = mas["ketamine (racemic)"]
    iv_codes = {(c["system"], c["code"]) for c in iv["medicationCodeableConcept"]["coding"]}
    assert iv_codes == {("http://www.whocc.no/atc", "N01AX03")}  # no unpinned RxNorm CUI
    assert iv["dosage"]["route"]["coding"][0]["code"] == "47625008"
    assert iv["dosage"]["rateQuantity"]["code"] == "mg/h"
    assert iv["dosage"]["rateQuantity"]["value"] == 52.5
    assert "start" in iv["effectivePeriod"] and "end" in iv["effectivePeriod"]
    procs = {e["fullUrl"]: e["resource"] for e in b["entry"]
             if e["resource"]["resourceType"] == "Procedure"}
    assert procs[iv["partOf"][0]["reference"]]["code"]["coding"][0]["code"] == "14152002"


def test_explicit_ketamine_rxnorm_must_come_from_the_pinned_list():
    ex = _export()
    ok = DoseRecord("d9", "ketamine", 40, "iv", T0, rxnorm="238082")
    b = build_patient_bundle(PatientExport(ex.patient, doses=[ok]))
    codes = {c["code"] for c in _resources(b, "MedicationAdministration")[0][
        "medicationCodeableConcept"]["coding"]}
    assert codes == {"238082", "N01AX03"}
    with pytest.raises(FhirExportError):
        build_patient_bundle(PatientExport(ex.patient, doses=[
            DoseRecord("d9", "ketamine", 40, "iv", T0, rxnorm="6130")]))


def test_condition_procedure_careplan_and_patient_codes():
    b = build_patient_bundle(_export())
    cond = _resources(b, "Condition")[0]
    assert _codes(cond) == {("http://snomed.info/sct", "370143000"),
                            ("http://hl7.org/fhir/sid/icd-10-cm", "F33.2")}
    plans = _resources(b, "CarePlan")
    assert {p["status"] for p in plans} == {"active", "completed"}
    assert all(p["intent"] == "plan" for p in plans)
    pat = _resources(b, "Patient")[0]
    assert pat["identifier"][0]["type"]["coding"][0]["code"] == "MR"
    assert pat["gender"] == "female" and pat["birthDate"] == "1980-05-01"


def test_project_checks_catch_bad_status_and_wrong_reference_targets():
    b = build_patient_bundle(_export())
    bad = copy.deepcopy(b)
    obs = next(e["resource"] for e in bad["entry"]
               if e["resource"]["resourceType"] == "Observation")
    obs["status"] = "bogus"
    Bundle.model_validate(bad)  # fhir.resources accepts it...
    assert any("status 'bogus'" in p for p in check_bundle(bad))  # ...we do not
    bad2 = copy.deepcopy(b)
    cond_url = next(e["fullUrl"] for e in bad2["entry"]
                    if e["resource"]["resourceType"] == "Condition")
    obs2 = next(e["resource"] for e in bad2["entry"]
                if e["resource"]["resourceType"] == "Observation")
    obs2["subject"] = {"reference": cond_url}
    assert any("must reference ['Patient']" in p for p in check_bundle(bad2))
    bad3 = copy.deepcopy(b)
    next(e["resource"] for e in bad3["entry"]
         if e["resource"]["resourceType"] == "MedicationAdministration"
         )["dosage"]["dose"]["code"] = "milligram"
    assert any("UCUM" in p for p in check_bundle(bad3))


def test_naive_datetimes_and_unknown_routes_are_refused():
    ex = _export()
    with pytest.raises(FhirExportError):
        build_patient_bundle(PatientExport(ex.patient, vitals=[
            VitalRecord("v", datetime(2025, 1, 1, 9), hr_per_min=70)]))
    with pytest.raises(FhirExportError):
        build_patient_bundle(PatientExport(ex.patient, doses=[
            DoseRecord("d", "ketamine", 40, "rectal", T0)]))


def test_structural_errors_are_reported_not_raised():
    b = build_patient_bundle(_export())
    b["entry"][0]["resource"]["birthDate"] = "1980-13-01"
    problems = validate_bundle(b)
    assert problems and problems[0].startswith("R4B structure")

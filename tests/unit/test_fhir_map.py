"""The one FHIR mapper without a database: pinned codes, answer sets as stored (strings, ten
PHQ-9 items, or a mapping), one display per SNOMED code, and the project's bundle checks."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from types import SimpleNamespace

import pytest

from ketaclinic.clinical.instruments import load_bundled
from ketaclinic.renderers import fhir_codes as fx
from ketaclinic.renderers import fhir_map as fm
from ketaclinic.services.interop.fhir_bulk import bundle, r4b_problems

AT = dt.datetime(2026, 11, 2, 9, 30)
PREF = {"reference": "Patient/p-1"}


def _row(instrument="phq9", answers=None, total=None, complete=True, prorated=False, **kw):
    answers = answers if answers is not None else ["1", "2", "0", "3", "1", "0", "2", "1", "0",
                                                   "1"]
    if total is None:
        values = answers.values() if isinstance(answers, dict) else answers
        total = sum(int(v) for v in list(values)[:9] if v is not None)
    return SimpleNamespace(id=7, instrument_id=instrument, administered_at=AT,
                           total=Decimal(total), complete=complete, prorated=prorated,
                           answers_json=json.dumps(answers), session_id=kw.get("session_id"),
                           entered_by=kw.get("entered_by", 3))


def test_pinned_loinc_codes_match_the_bundled_phq9_and_gad7_definitions():
    assert fx.INSTRUMENT_CODES["phq9"]["panel"] == "44249-1"
    assert fx.INSTRUMENT_CODES["phq9"]["total"] == "44261-6"
    assert fx.INSTRUMENT_CODES["gad7"]["panel"] == "69737-5"
    assert fx.INSTRUMENT_CODES["gad7"]["total"] == "70274-6"
    assert fx.PHQ9_ITEMS[8] == "44260-8"  # item 9, not 44258-2 (item 6)
    assert "69726-8" not in fx.GAD7_ITEMS and "69730-0" not in fx.GAD7_ITEMS
    for instrument, items in (("phq9", fx.PHQ9_ITEMS), ("gad7", fx.GAD7_ITEMS)):
        d = load_bundled(instrument)
        assert tuple(i.code for i in d.items if i.scored) == items
        assert (d.codes.panel, d.codes.total) == (fx.INSTRUMENT_CODES[instrument]["panel"],
                                                 fx.INSTRUMENT_CODES[instrument]["total"])


def test_a_phq9_stored_as_ten_strings_maps_to_response_panel_items_and_total():
    out = fm.assessment(_row(), PREF)
    kinds = [r["resourceType"] for r in out]
    assert kinds[0] == "QuestionnaireResponse" and kinds.count("Observation") == 1 + 10 + 1
    qr, panel, *members = out
    total = members[-1]
    assert [m["reference"] for m in panel["hasMember"]] == [f"Observation/{m['id']}"
                                                             for m in members]
    assert total["valueQuantity"]["value"] == 10 and total["id"] == "a-7-total"
    assert all(m["derivedFrom"] == [{"reference": "QuestionnaireResponse/a-7-qr"}]
               for m in [panel, *members])
    item9 = next(i for i in qr["item"] if i["linkId"] == "/44260-8")
    assert item9["answer"][0]["valueCoding"]["code"] == "LA6568-5"  # "0"
    difficulty = next(i for i in qr["item"] if i["linkId"] == "/69722-7")
    assert difficulty["answer"]
    assert r4b_problems(out) == []


def test_gad7_as_ints_or_a_mapping_and_unusable_answers_still_give_the_total():
    gad = fm.assessment(_row("gad7", [1, 1, 2, 0, 3, 1, 0]), PREF)
    assert gad[0]["resourceType"] == "QuestionnaireResponse"
    assert gad[-1]["code"]["coding"][0]["code"] == "70274-6"
    mapped = fm.assessment(_row("gad7", {str(n): "1" for n in range(1, 8)}), PREF)
    assert mapped[-1]["valueQuantity"]["value"] == 7 and len(mapped) == 1 + 1 + 7 + 1
    for row in (_row(answers=["1"] * 9, total=9), _row(complete=False), _row(prorated=True),
                _row(answers=["x"] * 10, total=3)):
        only = fm.assessment(row, PREF)
        assert [r["id"] for r in only] == ["a-7-total"] and "derivedFrom" not in only[0]
    madrs = fm.assessment(_row("madrs", [2] * 10, total=20), PREF)
    assert madrs[0]["code"]["coding"][0]["system"] == fx.INSTRUMENT_SYSTEM
    assert r4b_problems([*gad, *mapped, *madrs]) == []


def test_the_terminology_file_gives_one_display_per_snomed_code_and_a_source_for_rxnorm():
    t = fm.terminology()
    assert set(t["snomed"]) == {"370143000", "47625008", "46713006", "14152002"}
    assert all(v["display"] and v["source"] for v in t["snomed"].values())
    assert t["rxnorm"]["ketamine"]["code"] == "6130"
    assert t["rxnorm"]["esketamine"]["code"] == "2201623"
    assert all(v["source"] for v in t["rxnorm"].values())
    assert fm.snomed("47625008") == {"system": fx.SNOMED, "code": "47625008",
                                     "display": "Intravenous route"}
    with pytest.raises(KeyError):
        fm.snomed("720433000")  # not in the file: add it with its source first


def test_the_bundle_checks_catch_a_wrong_reference_target_and_a_bad_status():
    out = fm.assessment(_row(), PREF)
    patient = {"resourceType": "Patient", "id": "p-1", "gender": "female"}
    good = bundle([patient, *out], "collection", "https://clinic.example.org/fhir")
    assert fx.validate_bundle(good) == []
    bad = json.loads(json.dumps(good))
    bad["entry"][2]["resource"]["derivedFrom"] = [{"reference": "Patient/p-1"}]
    bad["entry"][1]["resource"]["status"] = "done"
    problems = fx.check_bundle(bad)
    assert any("derivedFrom must reference" in p for p in problems)
    assert any("QuestionnaireResponse.status" in p for p in problems)
    with pytest.raises(ValueError):
        bundle([patient], "batch", "https://clinic.example.org/fhir")


def _dx(active=True, reason=None):  # type: ignore[no-untyped-def]
    return SimpleNamespace(id=3, system="icd10", code="F33.2", display="MDD", onset_on=None,
                           active=active, inactive_reason=reason, recorded_at=AT)


def _al(active=True, reason=None):  # type: ignore[no-untyped-def]
    return SimpleNamespace(id=4, substance="latex", reaction="", active=active,
                           inactive_reason=reason, recorded_at=AT)


def _status(r, key):  # type: ignore[no-untyped-def]
    return r[key]["coding"][0]["code"] if key in r else None


@pytest.mark.parametrize(("active", "reason", "clinical", "verification"), [
    (True, None, "active", "confirmed"),
    (False, "resolved", "resolved", "confirmed"),
    (False, "entered-in-error", None, "entered-in-error"),  # con-5: no clinicalStatus
    (False, None, "inactive", "confirmed"),  # inactive for a reason nobody recorded
])
def test_a_condition_carries_why_it_is_no_longer_active(active, reason, clinical,
                                                        verification):
    r = fm.condition(_dx(active, reason), PREF)
    assert (_status(r, "clinicalStatus"), _status(r, "verificationStatus")) == (
        clinical, verification)
    assert r4b_problems([r]) == []


@pytest.mark.parametrize(("active", "reason", "clinical", "verification"), [
    (True, None, "active", None),
    (False, "refuted", "inactive", "refuted"),
    (False, "entered-in-error", None, "entered-in-error"),  # ait-2: no clinicalStatus
    (False, None, "inactive", None),
])
def test_an_allergy_carries_why_it_is_no_longer_active(active, reason, clinical,
                                                      verification):
    r = fm.allergy(_al(active, reason), PREF)
    assert (_status(r, "clinicalStatus"), _status(r, "verificationStatus")) == (
        clinical, verification)
    if verification:
        assert r["verificationStatus"]["coding"][0]["system"] == fm.ALLERGY_VERIFICATION
    assert r4b_problems([r]) == []

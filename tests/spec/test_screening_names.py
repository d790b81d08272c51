"""Which recorded allergies and non-ICD-10 diagnoses screening reads as what (the core only)."""

from __future__ import annotations

import pytest

from ketaclinic.clinical.screening_checks import allergy_conditions, is_depressive_diagnosis


@pytest.mark.parametrize("substance", [
    "ketamine", "Ketamine HCl", "ESKETAMINE", "esketamine hydrochloride", "arketamine",
    "Ketalar", "Spravato", "spravato nasal spray", "Ketanest S", "ketamines"])
def test_every_name_of_the_ketamine_family_sets_hypersensitivity(substance):
    assert allergy_conditions([substance]) == {"hypersensitivity_ketamine"}


@pytest.mark.parametrize("substance", ["penicillin", "latex", "", "midazolam", "ketorolac"])
def test_other_allergies_set_nothing(substance):
    assert allergy_conditions([substance]) == set()


def test_one_ketamine_allergy_among_others_is_enough():
    assert allergy_conditions(["latex", "penicillin", "Spravato"]) == {
        "hypersensitivity_ketamine"}


@pytest.mark.parametrize(("system", "code", "label", "expected"), [
    ("icd10", "F32.2", "", True),
    ("icd10", "F33", "anything", True),
    ("icd10", "F41.1", "depression, says the label", False),  # ICD-10: the code decides
    ("snomed", "370143000", "Major depressive disorder", True),
    ("snomed", "35489007", "Depressive disorder", True),
    ("snomed", "197480006", "Anxiety disorder without depression", False),
    ("snomed", "1", "No depression", False),
    ("snomed", "1", "Non-depressive psychosis", False),
    ("snomed", "1", "", False),  # no label: not the indication (screening then says so)
])
def test_the_indication_is_read_from_the_icd10_code_or_an_unnegated_label(
        system, code, label, expected):
    assert is_depressive_diagnosis(system, code, label) is expected

"""Eligibility screening: every rule, for IV ketamine and for US and EU esketamine."""

from dataclasses import replace

import pytest
from kcfacts import ALL, BASE, EU, FAILED, IV, ON, US

from ketaclinic.clinical.eligibility import (
    BloodPressure,
    Diagnosis,
    Medication,
    allergy_counts,
    diagnosis_standing,
    patient_from_dict,
    screen_patient,
)
from ketaclinic.clinical.rules import ClinicalInputError, Level
from ketaclinic.clinical.rulesets import load_bundled_maudsley
from ketaclinic.clinical.staging import AntidepressantTrial, score_maudsley


def _screen(patient, rs, treatment):
    return screen_patient(patient, treatment, rs, ON)


def _levels(result, rule):
    return [f.level for f in result.findings if f.rule == rule]


@pytest.mark.parametrize(("rs", "treatment"), ALL)
def test_a_typical_trd_patient_is_eligible(rs, treatment):
    result = _screen(BASE, rs, treatment)
    assert result.decision == "eligible"
    assert result.rule_set == rs.ref and result.adequate_failed_trials == 2


@pytest.mark.parametrize(("rs", "treatment"), ALL)
def test_a_17_year_old_is_ineligible(rs, treatment):
    result = _screen(replace(BASE, age_years=17), rs, treatment)
    assert result.decision == "ineligible" and _levels(result, "age-minimum") == [Level.HARD]


@pytest.mark.parametrize(("rs", "treatment"), ALL)
def test_no_depressive_episode_diagnosis_is_ineligible(rs, treatment):
    patient = replace(BASE, diagnoses=(Diagnosis("F41.1", "GAD", False),))
    assert _screen(patient, rs, treatment).decision == "ineligible"


@pytest.mark.parametrize(("rs", "treatment"), ALL)
def test_a_resolved_depressive_episode_is_not_the_indication(rs, treatment):
    patient = replace(BASE, diagnoses=(Diagnosis("F33.2", "MDD", True, resolved=True),))
    result = _screen(patient, rs, treatment)
    assert result.decision == "ineligible"
    assert _levels(result, "depressive-episode") == [Level.HARD]


@pytest.mark.parametrize(("rs", "treatment"), ALL)
def test_a_resolved_psychotic_disorder_is_still_a_history_of_psychosis(rs, treatment):
    dx = (Diagnosis("F33.2", "MDD", True), Diagnosis("F23", "psychotic", resolved=True))
    result = _screen(replace(BASE, diagnoses=dx), rs, treatment)
    assert any(f.values.get("condition") == "psychosis_history" and f.level is not Level.OK
               for f in result.findings)
    assert _levels(result, "depressive-episode") == [Level.OK]


def test_a_deactivated_row_stops_counting_only_for_a_clear_reason():
    assert diagnosis_standing(True, None) == "active"
    assert diagnosis_standing(False, "resolved") == "resolved"
    assert diagnosis_standing(False, None) == "resolved"  # reason unknown: still history
    assert diagnosis_standing(False, "entered-in-error") is None
    assert allergy_counts(True, None) and allergy_counts(False, None)
    assert not allergy_counts(False, "entered-in-error")
    assert not allergy_counts(False, "refuted")


def test_the_screening_json_takes_resolved_as_a_boolean_only():
    doc = {"age_years": 40, "diagnoses": [{"code": "F33.2", "resolved": True}]}
    assert patient_from_dict(doc).diagnoses[0].resolved is True
    with pytest.raises(ClinicalInputError, match="resolved"):
        patient_from_dict({"age_years": 40, "diagnoses": [{"code": "F33.2",
                                                           "resolved": "yes"}]})


ABSOLUTE = [
    (rs, t, c)
    for rs, t in ALL
    for c in (
        "aneurysmal_vascular_disease_or_avm",
        "intracerebral_haemorrhage_history",
        "hypersensitivity_ketamine",
    )
] + [(EU, "esketamine", "recent_cardiovascular_event")]


@pytest.mark.parametrize(("rs", "treatment", "condition"), ABSOLUTE)
def test_absolute_contraindication_makes_the_patient_ineligible(rs, treatment, condition):
    result = _screen(replace(BASE, conditions=frozenset({condition})), rs, treatment)
    assert result.decision == "ineligible"
    hard = [f for f in result.findings if f.level is Level.HARD]
    assert hard[0].source and hard[0].values["condition"] == condition


RELATIVE = [
    (rs, t, c)
    for rs, t in ALL
    for c in (
        "psychosis_history",
        "uncontrolled_hypertension",
        "hepatic_impairment_child_pugh_c",
        "raised_intracranial_pressure",
        "cardio_cerebrovascular_disease",
    )
] + [(EU, "esketamine", "unstable_cardiorespiratory_disease")]


@pytest.mark.parametrize(("rs", "treatment", "condition"), RELATIVE)
def test_relative_contraindication_needs_review(rs, treatment, condition):
    result = _screen(replace(BASE, conditions=frozenset({condition})), rs, treatment)
    assert result.decision == "review"


@pytest.mark.parametrize(("rs", "treatment"), ALL)
@pytest.mark.parametrize(
    "change",
    [
        {"pregnant": True},
        {"breastfeeding": True},
        {"substance_use_disorder": "history"},
        {"substance_use_disorder": "current"},
        {"symptom_severity": "severe-psychotic"},
    ],
)
def test_pregnancy_breastfeeding_substance_use_and_psychosis_need_review(rs, treatment, change):
    assert _screen(replace(BASE, **change), rs, treatment).decision == "review"


def test_unstable_cardiorespiratory_disease_is_not_a_us_rule_so_it_is_flagged_for_review():
    result = _screen(
        replace(BASE, conditions=frozenset({"unstable_cardiorespiratory_disease"})),
        US,
        "esketamine",
    )
    assert result.decision == "review" and _levels(result, "condition-unrecognised") == [Level.SOFT]


@pytest.mark.parametrize(
    ("meds", "rule", "level"),
    [
        (
            (Medication("lorazepam", "benzodiazepine", 1),),
            "ix-benzodiazepine",
            Level.SOFT,
        ),  # 10 mg eq
        (
            (Medication("oddazepam", "benzodiazepine", 1),),
            "ix-benzodiazepine",
            Level.SOFT,
        ),  # unknown
        ((Medication("oxycodone", "opioid", 10),), "ix-opioid", Level.SOFT),
        ((Medication("naltrexone", "", 50),), "ix-naltrexone", Level.SOFT),
        ((Medication("methylphenidate", "stimulant", 20),), "ix-stimulant", Level.SOFT),
        ((Medication("phenelzine", "maoi", 45),), "ix-maoi", Level.SOFT),
        ((Medication("lamotrigine", "anticonvulsant", 200),), "ix-lamotrigine", Level.INFO),
    ],
)
@pytest.mark.parametrize(("rs", "treatment"), ALL)
def test_interacting_medicines_name_the_expected_effect(rs, treatment, meds, rule, level):
    result = _screen(replace(BASE, medications=meds), rs, treatment)
    found = [f for f in result.findings if f.rule == rule]
    assert [f.level for f in found] == [level] and found[0].source


@pytest.mark.parametrize(
    ("meds", "level"),
    [
        ((Medication("lorazepam", "benzodiazepine", 0.5),), Level.INFO),  # 5 mg eq
        ((Medication("diazepam", "benzodiazepine", 8),), Level.INFO),  # at threshold
    ],
)
def test_a_low_benzodiazepine_dose_is_information_under_iv_ketamine(meds, level):
    result = _screen(replace(BASE, medications=meds), IV, "ketamine-iv")
    assert _levels(result, "ix-benzodiazepine") == [level]


@pytest.mark.parametrize("rs", [US, EU])
@pytest.mark.parametrize("dose", [0.5, 1, 4])
def test_any_benzodiazepine_under_esketamine_is_a_sedation_warning_at_any_dose(rs, dose):
    result = _screen(replace(BASE, medications=(Medication("lorazepam", "", dose),)), rs,
                     "esketamine")
    finding = next(f for f in result.findings if f.rule == "ix-benzodiazepine")
    assert finding.level is Level.SOFT and "sedation" in finding.message.lower()
    assert "response to ketamine" not in finding.message


def test_two_benzodiazepines_add_up_in_diazepam_equivalents():
    meds = (
        Medication("lorazepam", "benzodiazepine", 0.5),
        Medication("diazepam", "benzodiazepine", 5),
    )
    finding = next(
        f
        for f in _screen(replace(BASE, medications=meds), IV, "ketamine-iv").findings
        if f.rule == "ix-benzodiazepine"
    )
    assert finding.values["diazepam_eq_mg_per_day"] == 10 and finding.level is Level.SOFT


@pytest.mark.parametrize("name", ["theophylline", "ergometrine", "levothyroxine", "vasopressin"])
def test_eu_extra_interactions_fire_only_under_the_eu_rule_set(name):
    patient = replace(BASE, medications=(Medication(name, "", 1),))
    assert _screen(patient, EU, "esketamine").decision == "review"
    assert _screen(patient, US, "esketamine").decision == "eligible"


@pytest.mark.parametrize(
    ("rs", "age", "bp", "level"),
    [
        (US, 70, (145, 85), Level.SOFT),
        (US, 40, (140, 90), Level.OK),
        (EU, 40, (145, 85), Level.SOFT),
        (EU, 70, (145, 85), Level.OK),  # EU guide value from 65 is 150/90
        (EU, 70, (151, 85), Level.SOFT),
        (EU, 65, (150, 91), Level.SOFT),
        (IV, 40, (141, 80), Level.SOFT),
    ],
)
def test_pre_dose_bp_gate_by_jurisdiction_and_age(rs, age, bp, level):
    treatment = rs.treatment
    result = _screen(replace(BASE, age_years=age, bp=BloodPressure(*bp)), rs, treatment)
    assert _levels(result, "bp-pre-dose") == [level]


@pytest.mark.parametrize(
    ("trial", "counted"),
    [
        (AntidepressantTrial("sertraline", 6, 100, improvement_pct=25), True),
        (AntidepressantTrial("sertraline", 6, 100, improvement_pct=26), False),
        (AntidepressantTrial("sertraline", 5.9, 100, improvement_pct=0), False),
        (AntidepressantTrial("sertraline", 8, 100, improvement_pct=0, current_episode=False),
         False),
        (AntidepressantTrial("sertraline", 8, improvement_pct=0, adequate_dose=False), False),
        (AntidepressantTrial("sertraline", 8, 100, response="minimal"), True),
        (AntidepressantTrial("sertraline", 8, 100, response="partial"), False),
        (AntidepressantTrial("sertraline", 8, 100), False),
    ],
)
def test_adequate_failed_trial_definition(trial, counted):
    result = _screen(replace(BASE, antidepressant_trials=(trial,)), IV, "ketamine-iv")
    assert result.adequate_failed_trials == int(counted)


@pytest.mark.parametrize(("rs", "treatment"), ALL)
def test_fewer_than_two_failed_trials_needs_review(rs, treatment):
    result = _screen(replace(BASE, antidepressant_trials=FAILED[:1]), rs, treatment)
    assert result.decision == "review" and _levels(result, "trd-definition") == [Level.SOFT]


MAUDSLEY = [  # duration, severity, failed, augmentation, ect -> total, band, breakdown
    (12, "subsyndromal", 1, False, False, 3, "mild", (1, 1, 1, 0, 0)),
    (13, "mild", 3, False, False, 6, "mild", (2, 2, 2, 0, 0)),
    (24, "moderate", 4, True, False, 8, "moderate", (2, 3, 2, 1, 0)),
    (25, "severe", 5, False, False, 10, "moderate", (3, 4, 3, 0, 0)),
    (30, "severe-psychotic", 7, True, False, 13, "severe", (3, 5, 4, 1, 0)),
    (30, "severe-psychotic", 11, True, True, 15, "severe", (3, 5, 5, 1, 1)),
    (6, "moderate", 10, False, True, 9, "moderate", (1, 3, 4, 0, 1)),
]


@pytest.mark.parametrize(
    ("months", "severity", "failed", "aug", "ect", "total", "band", "parts"), MAUDSLEY
)
def test_maudsley_staging_method_table(months, severity, failed, aug, ect, total, band, parts):
    score = score_maudsley(months, severity, failed, aug, ect, load_bundled_maudsley())
    assert (score.total, score.band) == (total, band)
    assert (
        score.duration,
        score.severity,
        score.failed_antidepressants,
        score.augmentation,
        score.ect,
    ) == parts


def test_screening_reports_maudsley_with_augmentation_and_ect():
    trials = FAILED + (AntidepressantTrial("aripiprazole", 6, 5, 0, augmentation=True),)
    patient = replace(
        BASE,
        antidepressant_trials=trials,
        ect_used=True,
        episode_duration_months=30,
        symptom_severity="severe",
    )
    result = _screen(patient, US, "esketamine")
    # aripiprazole is augmentation, scored once and never as a failed antidepressant
    assert result.adequate_failed_trials == 2
    assert result.maudsley.total == 3 + 4 + 1 + 1 + 1
    assert result.as_dict()["maudsley_score"] == 10


def test_maudsley_is_not_computable_without_a_failed_trial():
    result = _screen(replace(BASE, antidepressant_trials=()), IV, "ketamine-iv")
    assert result.maudsley is None and result.as_dict()["maudsley_score"] is None


@pytest.mark.parametrize(("rs", "treatment"), ALL)
def test_screening_expires_after_the_configured_days(rs, treatment):
    result = _screen(BASE, rs, treatment)
    days = rs.param("screening-validity-days").value
    assert (result.expires_on - result.screened_on).days == days


def test_a_rule_set_for_another_treatment_is_refused():
    with pytest.raises(ClinicalInputError):
        _screen(BASE, US, "ketamine-iv")


def test_example_patient_file_parses_and_screens_eligible():
    import json
    from pathlib import Path

    doc = json.loads(Path("docs/examples/screen-patient.json").read_text())
    result = _screen(patient_from_dict(doc), US, "esketamine")
    assert result.decision == "eligible" and result.maudsley.total == 8


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"age_years": 0}, "age_years"),
        ({"age_years": float("nan")}, "finite"),
        ({"age_years": 40, "bogus": 1}, "bogus"),
        ({"age_years": 40, "symptom_severity": "awful"}, "symptom_severity"),
        ({"age_years": 40, "medications": [{"name": "x", "daily_dose_mg": -1}]}, "daily_dose_mg"),
        ({"age_years": 40, "pregnant": "yes"}, "pregnant"),
    ],
)
def test_bad_patient_json_is_refused_with_a_one_line_reason(doc, fragment):
    with pytest.raises(ClinicalInputError, match=fragment):
        patient_from_dict(doc)

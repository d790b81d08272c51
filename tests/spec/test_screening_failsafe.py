"""Issue 13, screening and staging: unknown means review, never eligible (every reproduced case)."""

from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from kcfacts import ALL, BASE, FAILED, IV, ON, US
from kctest import examples

from ketaclinic.clinical.eligibility import (
    DECISIONS,
    BloodPressure,
    Diagnosis,
    Medication,
    could_be_pregnant,
    is_depressive_icd10,
    patient_from_dict,
    screen_patient,
)
from ketaclinic.clinical.medications import load_bundled_vocabulary, normalise
from ketaclinic.clinical.rules import Level
from ketaclinic.clinical.staging import AntidepressantTrial, load_bundled_doses

VOCAB = load_bundled_vocabulary()
RANK = {"eligible": 0, "review": 1, "ineligible": 2}


def _screen(patient, rs=US, treatment="esketamine"):
    return screen_patient(patient, treatment, rs, ON)


def _finding(result, rule):
    return next(f for f in result.findings if f.rule == rule)


@pytest.mark.parametrize(("rs", "treatment"), ALL)
def test_the_base_patient_is_eligible_so_every_case_below_is_the_change_alone(rs, treatment):
    assert _screen(BASE, rs, treatment).decision == "eligible"


# ------------------------------------------------------------------ interactions (issue cases)

REPRODUCED = [  # name, class typed, daily mg -> rule that must fire
    ("lorazepam", "", 1, "ix-benzodiazepine"),
    ("clonazepam", "Benzodiazepines", 0.5, "ix-benzodiazepine"),
    ("alprazolam", "anxiolytic", 0.5, "ix-benzodiazepine"),
    ("Ativan", "", 1, "ix-benzodiazepine"),
    ("phenelzine", "", 45, "ix-maoi"),
    ("selegiline", "", 6, "ix-maoi"),
    ("Emsam", "", 6, "ix-maoi"),
    ("tranylcypromine", "", 30, "ix-maoi"),
    ("isocarboxazid", "", 30, "ix-maoi"),
    ("linezolid", "", 1200, "ix-maoi"),
    ("methylene blue", "", 100, "ix-maoi"),
    ("buprenorphine", "", 8, "ix-opioid"),
    ("Suboxone", "", 8, "ix-opioid"),
    ("modafinil", "", 200, "ix-stimulant"),
    ("armodafinil", "", 150, "ix-stimulant"),
    ("Adderall", "", 20, "ix-stimulant"),
    ("lisdexamfetamine", "", 50, "ix-stimulant"),
    ("zolpidem", "", 10, "ix-sedative-hypnotic"),
    ("gabapentin", "", 900, "ix-cns-depressant"),
    ("Lyrica", "", 150, "ix-cns-depressant"),
]


@pytest.mark.parametrize(("rs", "treatment"), ALL)
@pytest.mark.parametrize(("name", "typed_class", "dose", "rule"), REPRODUCED)
def test_an_interacting_medicine_is_recognised_by_name_whatever_class_was_typed(
    rs, treatment, name, typed_class, dose, rule
):
    patient = replace(BASE, medications=(Medication(name, typed_class, dose),))
    result = _screen(patient, rs, treatment)
    assert result.decision == "review"
    assert _finding(result, rule).level is Level.SOFT


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("Benzodiazepines", "benzodiazepine"),
        ("BENZOS", "benzodiazepine"),
        ("Opioids", "opioid"),
        ("Stimulants", "psychostimulant"),
        ("MAO inhibitors", "maoi"),
        ("MAOIs", "maoi"),
        ("z-drugs", "sedative-hypnotic"),
    ],
)
def test_class_names_match_whatever_the_case_or_plural(text, canonical):
    assert VOCAB.class_id(text) == canonical


@pytest.mark.parametrize(("rs", "treatment"), ALL)
def test_an_unknown_medicine_typed_as_a_benzodiazepine_still_hits_the_benzodiazepine_rule(
    rs, treatment
):
    patient = replace(BASE, medications=(Medication("oddazepam", "Benzodiazepines", 1),))
    result = _screen(patient, rs, treatment)
    assert _finding(result, "ix-benzodiazepine").level is Level.SOFT
    assert _finding(result, "medication-unrecognised").values["medications"] == ["oddazepam"]


@pytest.mark.parametrize(("rs", "treatment"), ALL)
def test_a_medicine_the_vocabulary_does_not_know_sends_screening_to_review(rs, treatment):
    patient = replace(BASE, medications=(Medication("Zzyzxamab", "", 10),))
    result = _screen(patient, rs, treatment)
    assert result.decision == "review"
    finding = _finding(result, "medication-unrecognised")
    assert finding.level is Level.SOFT and "Zzyzxamab" in finding.message and finding.source


@pytest.mark.parametrize("name", ["metformin", "Lipitor", "omeprazole", "sertraline"])
def test_a_known_medicine_without_an_interaction_leaves_the_patient_eligible(name):
    assert _screen(replace(BASE, medications=(Medication(name, "", 10),))).decision == "eligible"


def test_the_vocabulary_cites_every_class_and_grades_every_id():
    for cls in VOCAB.classes.values():
        assert cls.source and cls.grade in ("C", "S", "U")
    assert VOCAB.lookup("lorazepam").rxnorm == "6470"
    assert VOCAB.lookup("sertraline").atc == ("N06AB06",)


def test_every_medicine_in_the_rule_sets_is_known_to_the_vocabulary():
    for rs, _ in ALL:
        for name in rs.diazepam_equivalents:
            assert VOCAB.lookup(name), name
        for ix in rs.interactions:
            for name in ix.names:
                assert VOCAB.lookup(name), name


def test_normalising_twice_changes_nothing():
    for text in ("Benzodiazepines", "Sertraline HCl", "MAO-B inhibitors", "methylene blue"):
        assert normalise(normalise(text)) == normalise(text)


# ------------------------------------------------------------------ missing facts

def test_a_46_year_old_woman_with_no_pregnancy_substance_or_bp_answer_needs_review():
    doc = {
        "age_years": 46,
        "sex": "female",
        "diagnoses": [{"code": "F33.2", "depressive_episode": True}],
        "antidepressant_trials": [
            {"drug": "sertraline", "dose_mg": 150, "weeks": 8, "improvement_pct": 10},
            {"drug": "venlafaxine", "dose_mg": 225, "weeks": 8, "response": "none"},
        ],
    }
    for rs, treatment in ALL:
        result = _screen(patient_from_dict(doc), rs, treatment)
        assert result.decision == "review"
        missing = _finding(result, "facts-missing")
        assert missing.level is Level.SOFT
        assert set(missing.values["missing"]) == {
            "pregnant", "breastfeeding", "substance_use_disorder", "bp"
        }
        assert _finding(result, "bp-pre-dose").level is Level.SOFT


@pytest.mark.parametrize(
    ("change", "missing"),
    [
        ({"pregnant": None}, ["pregnant"]),
        ({"breastfeeding": None}, ["breastfeeding"]),
        ({"substance_use_disorder": None}, ["substance_use_disorder"]),
        ({"bp": None}, ["bp"]),
        ({"pregnant": None, "sex": "unknown"}, ["pregnant"]),
        ({"pregnant": None, "sex": "other"}, ["pregnant"]),
    ],
)
def test_each_missing_fact_alone_needs_review_and_is_listed(change, missing):
    result = _screen(replace(BASE, **change))
    assert result.decision == "review"
    assert _finding(result, "facts-missing").values["missing"] == missing


@pytest.mark.parametrize(
    ("sex", "age", "asked"),
    [("male", 40, False), ("female", 60, True), ("female", 61, False), ("unknown", 55, True)],
)
def test_pregnancy_is_required_for_anyone_who_could_be_pregnant(sex, age, asked):
    patient = replace(BASE, sex=sex, age_years=age, pregnant=None, breastfeeding=None)
    result = _screen(patient)
    assert (result.decision == "review") is asked
    assert _finding(result, "facts-missing").level is (Level.SOFT if asked else Level.OK)


def test_null_answers_in_the_json_mean_not_asked():
    doc = {"age_years": 40, "pregnant": None, "substance_use_disorder": None}
    patient = patient_from_dict(doc)
    assert patient.pregnant is None and patient.substance_use_disorder is None


# ------------------------------------------------------------------ diagnoses

@pytest.mark.parametrize(("rs", "treatment"), ALL)
@pytest.mark.parametrize("code", ["F31.4", "F31.3", "F31.5", "F31.9", "F31.81"])
def test_bipolar_depression_sets_the_bipolar_finding(rs, treatment, code):
    result = _screen(replace(BASE, diagnoses=(Diagnosis(code, "", True),)), rs, treatment)
    assert result.decision == "review"
    finding = _finding(result, "ci-bipolar")
    assert finding.level is Level.SOFT and finding.values["diagnoses"] == [code]
    assert finding.source


@pytest.mark.parametrize(("rs", "treatment"), ALL)
@pytest.mark.parametrize("code", ["F32.3", "F33.3", "F323", "f33.3", "F31.5", "F20.0", "F25.1"])
def test_psychotic_features_set_the_psychosis_finding(rs, treatment, code):
    diagnoses = (Diagnosis("F32.2", "", True), Diagnosis(code, "", False))
    result = _screen(replace(BASE, diagnoses=diagnoses), rs, treatment)
    assert result.decision == "review"
    finding = _finding(result, "ci-psychosis")
    assert finding.level is Level.SOFT and code in finding.values["diagnoses"]


@pytest.mark.parametrize(
    ("code", "depressive"),
    [("F32.2", True), ("F33.3", True), ("F31.4", True), ("F31.0", False), ("F41.1", False)],
)
def test_depressive_episode_codes(code, depressive):
    assert is_depressive_icd10(code) is depressive


def test_a_bipolar_depressive_episode_code_is_a_depressive_episode_even_if_unflagged():
    result = _screen(replace(BASE, diagnoses=(Diagnosis("F31.4", "", False),)))
    assert _finding(result, "depressive-episode").level is Level.OK
    assert result.decision == "review"


# ------------------------------------------------------------------ staging

def test_sertraline_25_and_fluoxetine_10_is_not_trd():
    trials = (
        AntidepressantTrial("sertraline", 8, 25, improvement_pct=0),
        AntidepressantTrial("fluoxetine", 8, 10, improvement_pct=0),
    )
    result = _screen(replace(BASE, antidepressant_trials=trials))
    assert result.adequate_failed_trials == 0 and result.decision == "review"
    assert _finding(result, "trd-definition").level is Level.SOFT


@pytest.mark.parametrize(
    ("trial", "counted", "unjudged"),
    [
        (AntidepressantTrial("sertraline", 8, 50, improvement_pct=0), True, False),
        (AntidepressantTrial("Zoloft", 8, 50, improvement_pct=0), True, False),
        (AntidepressantTrial("sertraline", 8, 49, improvement_pct=0), False, False),
        (AntidepressantTrial("sertraline", 8, None, improvement_pct=0), False, True),
        (AntidepressantTrial("sertraline", 8, None, improvement_pct=0, adequate_dose=True),
         True, False),
        (AntidepressantTrial("sertraline", 8, 25, improvement_pct=0, adequate_dose=True),
         False, True),
        (AntidepressantTrial("obscurine", 8, 40, improvement_pct=0), False, True),
        (AntidepressantTrial("obscurine", 8, 40, improvement_pct=0, adequate_dose=True),
         True, False),
        (AntidepressantTrial("aripiprazole", 8, 10, improvement_pct=0), False, False),
        (AntidepressantTrial("lithium", 8, 800, improvement_pct=0), False, False),
        (AntidepressantTrial("sertraline", 8, 150, improvement_pct=0, augmentation=True),
         False, False),
    ],
)
def test_only_antidepressants_at_adequate_dose_and_duration_count(trial, counted, unjudged):
    result = _screen(replace(BASE, antidepressant_trials=(FAILED[0], trial)))
    assert result.adequate_failed_trials == 1 + int(counted)
    has_unjudged = any(f.rule == "trd-trial-unjudged" for f in result.findings)
    assert has_unjudged is unjudged
    if unjudged:
        assert result.decision == "review"


def test_an_unjudged_trial_sends_screening_to_review_even_when_trd_is_met():
    trials = FAILED + (AntidepressantTrial("mirtazapine", 8, None, improvement_pct=0),)
    result = _screen(replace(BASE, antidepressant_trials=trials))
    assert result.adequate_failed_trials == 2 and result.decision == "review"


def test_augmentation_is_scored_once_and_never_as_a_failed_antidepressant():
    trials = FAILED + (AntidepressantTrial("lithium", 8, 800, improvement_pct=0),)
    result = _screen(replace(BASE, antidepressant_trials=trials))
    assert result.adequate_failed_trials == 2
    assert result.maudsley.augmentation == 1 and result.maudsley.failed_antidepressants == 1


def test_the_minimum_dose_table_cites_every_value():
    doses = load_bundled_doses()
    for name, entry in doses["antidepressants"].items():
        assert entry["min_daily_mg"] > 0 and entry["source"] and entry["grade"] in "CSU", name
        assert VOCAB.lookup(name), name
    for name in doses["augmentation_agents"]:
        assert VOCAB.lookup(name), name


# ------------------------------------------------------------------ properties

FACTS = ("pregnant", "breastfeeding", "substance_use_disorder", "bp")
patients = st.builds(
    lambda age, sex, preg, bf, sud, bp, meds: replace(
        BASE, age_years=age, sex=sex, pregnant=preg, breastfeeding=bf,
        substance_use_disorder=sud, bp=bp, medications=meds,
    ),
    st.integers(18, 90),
    st.sampled_from(["female", "male", "other", "unknown"]),
    st.sampled_from([True, False, None]),
    st.sampled_from([True, False, None]),
    st.sampled_from(["none", "history", "current", None]),
    st.sampled_from([BloodPressure(120, 80), BloodPressure(160, 100), None]),
    st.lists(
        st.sampled_from([Medication("metformin"), Medication("lorazepam", "", 1),
                         Medication("phenelzine"), Medication("sertraline", "", 100)]),
        max_size=3,
    ).map(tuple),
)


@settings(max_examples=examples(150), deadline=None)
@given(patients, st.sampled_from(FACTS), st.sampled_from(range(3)))
def test_removing_any_fact_never_makes_a_decision_more_permissive(patient, fact, which):
    rs, treatment = ALL[which]
    # pregnancy and breast-feeding are asked of anyone who could be pregnant (rule set age)
    assume(fact not in ("pregnant", "breastfeeding") or could_be_pregnant(patient, rs))
    before = _screen(patient, rs, treatment).decision
    after = _screen(replace(patient, **{fact: None}), rs, treatment).decision
    assert before in DECISIONS and RANK[after] >= RANK[before]


@settings(max_examples=examples(150), deadline=None)
@given(patients, st.text(min_size=1, max_size=20), st.sampled_from(range(3)))
def test_adding_an_unknown_medicine_never_yields_eligible(patient, name, which):
    rs, treatment = ALL[which]
    if VOCAB.lookup(name):
        name = name + " qqq-unknown"
    patient = replace(patient, medications=patient.medications + (Medication(name),))
    assert _screen(patient, rs, treatment).decision != "eligible"


@pytest.mark.parametrize(
    ("code", "label", "rule", "fires"),
    [
        ("35481005", "Bipolar disorder, most recent episode depressed", "ci-bipolar", True),
        ("191618007", "Manic episode, severe", "ci-bipolar", True),
        ("68019004", "Schizoaffective disorder", "ci-psychosis", True),
        ("191613003", "Severe major depression with psychotic features", "ci-psychosis", True),
        ("36923009", "Severe major depression without psychotic features", "ci-psychosis",
         False),
        ("36923009", "Major depression, non-psychotic", "ci-psychosis", False),
        ("F32.2", "Severe depressive episode without psychotic symptoms", "ci-psychosis", False),
        ("F32.2", "said bipolar once", "ci-bipolar", False),  # ICD-10 codes decide by code
    ],
)
def test_non_icd_diagnoses_set_flags_from_their_label_unless_negated(code, label, rule, fires):
    diagnoses = (Diagnosis("F32.2", "", True), Diagnosis(code, label, False))
    result = _screen(replace(BASE, diagnoses=diagnoses))
    assert any(f.rule == rule for f in result.findings) is fires
    assert (result.decision == "review") is fires


def test_several_typed_classes_each_count():
    patient = replace(BASE, medications=(Medication("Frobnazol", "Opioids, benzodiazepines", 1),))
    rules = {f.rule for f in _screen(patient, IV, "ketamine-iv").findings}
    assert {"ix-opioid", "ix-benzodiazepine", "medication-unrecognised"} <= rules


trials = st.lists(
    st.builds(
        AntidepressantTrial,
        st.sampled_from(["sertraline", "fluoxetine", "Zoloft", "lithium", "aripiprazole",
                         "obscurine", "mirtazapine", "venlafaxine"]),
        st.sampled_from([4, 6, 8, 12]),
        st.sampled_from([None, 10, 25, 50, 150, 225]),
        st.sampled_from([None, 0, 20, 30]),
        st.sampled_from([None, "none", "partial"]),
        st.booleans(),
        st.booleans(),
        st.sampled_from([None, True, False]),
    ),
    max_size=5,
).map(tuple)


@settings(max_examples=examples(150), deadline=None)
@given(trials, st.integers(0, 4))
def test_forgetting_a_trial_dose_never_adds_an_adequate_trial_or_permits_more(ts, which):
    before = _screen(replace(BASE, antidepressant_trials=ts))
    if ts:
        i = which % len(ts)
        ts = ts[:i] + (replace(ts[i], dose_mg=None, adequate_dose=None),) + ts[i + 1:]
    after = _screen(replace(BASE, antidepressant_trials=ts))
    assert after.adequate_failed_trials <= before.adequate_failed_trials
    assert RANK[after.decision] >= RANK[before.decision]
    assert after.adequate_failed_trials <= sum(
        1 for t in ts if not t.augmentation and t.drug not in ("lithium", "aripiprazole"))

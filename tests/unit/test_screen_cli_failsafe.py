"""CLI `ketaclinic screen`: the issue-13 screening cases end in review, never eligible."""

import json

import pytest

from ketaclinic.cli import main

ANSWERED = {
    "age_years": 40,
    "sex": "female",
    "pregnant": False,
    "breastfeeding": False,
    "substance_use_disorder": "none",
    "diagnoses": [{"code": "F33.2", "depressive_episode": True}],
    "antidepressant_trials": [
        {"drug": "sertraline", "dose_mg": 150, "weeks": 8, "improvement_pct": 10},
        {"drug": "venlafaxine", "dose_mg": 225, "weeks": 8, "response": "none"},
    ],
    "bp": {"systolic_mmhg": 120, "diastolic_mmhg": 80},
}


def _screen(capsys, tmp_path, doc, treatment="esketamine"):
    path = tmp_path / "patient.json"
    path.write_text(json.dumps(doc))
    code = main(["screen", "--file", str(path), "--treatment", treatment,
                 "--screened-on", "2026-01-05", "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    data = json.loads(out)
    return data["decision"], {f["rule"]: f for f in data["findings"]}, data


@pytest.mark.parametrize("treatment", ["esketamine", "ketamine-iv"])
def test_the_answered_patient_is_eligible(capsys, tmp_path, treatment):
    assert _screen(capsys, tmp_path, ANSWERED, treatment)[0] == "eligible"


CASES = [  # change to the answered patient -> rule that must fire
    ({"medications": [{"name": "lorazepam", "daily_dose_mg": 1}]}, "ix-benzodiazepine"),
    ({"medications": [{"name": "clonazepam", "class": "Benzodiazepines"}]}, "ix-benzodiazepine"),
    ({"medications": [{"name": "alprazolam", "class": "anxiolytic"}]}, "ix-benzodiazepine"),
    ({"medications": [{"name": "phenelzine"}]}, "ix-maoi"),
    ({"medications": [{"name": "selegiline"}]}, "ix-maoi"),
    ({"medications": [{"name": "buprenorphine"}]}, "ix-opioid"),
    ({"medications": [{"name": "modafinil"}]}, "ix-stimulant"),
    ({"medications": [{"name": "Frobnazol"}]}, "medication-unrecognised"),
    ({"pregnant": None}, "facts-missing"),
    ({"bp": None}, "bp-pre-dose"),
    ({"diagnoses": [{"code": "F31.4", "depressive_episode": True}]}, "ci-bipolar"),
    ({"diagnoses": [{"code": "F32.3", "depressive_episode": True}]}, "ci-psychosis"),
    ({"diagnoses": [{"code": "F33.3", "depressive_episode": True}]}, "ci-psychosis"),
]


@pytest.mark.parametrize("treatment", ["esketamine", "ketamine-iv"])
@pytest.mark.parametrize(("change", "rule"), CASES)
def test_each_reproduced_case_is_review_with_its_finding(capsys, tmp_path, treatment, change,
                                                         rule):
    decision, findings, _ = _screen(capsys, tmp_path, ANSWERED | change, treatment)
    assert decision == "review" and findings[rule]["level"] == "soft"


def test_the_46_year_old_woman_with_no_answers_lists_what_is_missing(capsys, tmp_path):
    doc = {k: v for k, v in ANSWERED.items()
           if k not in ("pregnant", "breastfeeding", "substance_use_disorder", "bp")}
    decision, findings, _ = _screen(capsys, tmp_path, doc | {"age_years": 46})
    assert decision == "review"
    assert findings["facts-missing"]["values"]["missing"] == [
        "pregnant", "breastfeeding", "substance_use_disorder", "bp"]


def test_sertraline_25_and_fluoxetine_10_is_not_trd(capsys, tmp_path):
    trials = [{"drug": "sertraline", "dose_mg": 25, "weeks": 8, "improvement_pct": 0},
              {"drug": "fluoxetine", "dose_mg": 10, "weeks": 8, "improvement_pct": 0}]
    decision, findings, data = _screen(capsys, tmp_path,
                                       ANSWERED | {"antidepressant_trials": trials})
    assert decision == "review" and data["adequate_failed_trials"] == 0
    assert findings["trd-definition"]["level"] == "soft"


def test_the_unanswered_example_file_is_review_with_every_reproduced_finding(capsys):
    code = main(["screen", "--file", "docs/examples/screen-patient-unanswered.json",
                 "--treatment", "esketamine", "--screened-on", "2026-01-05", "--json"])
    data = json.loads(capsys.readouterr().out)
    soft = {f["rule"] for f in data["findings"] if f["level"] == "soft"}
    assert code == 0 and data["decision"] == "review" and data["adequate_failed_trials"] == 0
    assert {"facts-missing", "ci-psychosis", "medication-unrecognised", "ix-benzodiazepine",
            "ix-opioid", "bp-pre-dose", "trd-definition", "trd-trial-unjudged"} <= soft

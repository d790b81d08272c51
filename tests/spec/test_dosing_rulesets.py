"""Rule sets: the bundled values match the clinical reference, per jurisdiction, and validate."""

import json

import pytest

from ketaclinic.clinical.rules import Grade
from ketaclinic.clinical.rulesets import (
    BUNDLED_IDS,
    RuleSetError,
    confirm_rule,
    copy_ruleset,
    list_unconfirmed,
    load_bundled_ruleset,
    load_ruleset,
)

US, EU, IV = (load_bundled_ruleset(i) for i in ("esketamine-us", "esketamine-eu", "ketamine-iv"))

PARAMETERS = [
    (US, "age-min-years", 18, "C"),
    (EU, "age-min-years", 18, "C"),
    (IV, "age-min-years", 18, "S"),
    (US, "trd-min-failed-trials", 2, "C"),
    (US, "trd-min-trial-weeks", 6, "C"),
    (US, "trd-max-improvement-pct", 25, "C"),
    (IV, "benzodiazepine-diazepam-eq-max-mg", 8, "C"),
    (US, "bp-pre-dose-systolic-max-mmhg", 140, "S"),
    (US, "bp-pre-dose-diastolic-max-mmhg", 90, "S"),
    (EU, "bp-pre-dose-systolic-max-mmhg", 140, "C"),
    (EU, "bp-pre-dose-older-systolic-max-mmhg", 150, "C"),
    (EU, "bp-pre-dose-older-diastolic-max-mmhg", 90, "C"),
    (EU, "older-adult-age-years", 65, "C"),
    (IV, "bp-pre-dose-systolic-max-mmhg", 140, "U"),
    (IV, "screening-validity-days", 90, "U"),
    (IV, "weight-change-max-pct", 10, "U"),
    (IV, "standard-mg-per-kg", 0.5, "S"),
    (IV, "standard-infusion-min", 40, "S"),
    (IV, "dose-weight-basis", "actual", "S"),
    (EU, "older-adult-step-mg", 28, "C"),
    (US, "observation-min", 120, "C"),
]


@pytest.mark.parametrize(("rs", "rule_id", "value", "grade"), PARAMETERS)
def test_bundled_parameter_matches_the_reference(rs, rule_id, value, grade):
    rule = rs.param(rule_id)
    assert (rule.value, rule.cited.grade) == (value, Grade(grade))
    assert rule.source and rule.version


def test_us_label_has_no_age_based_bp_gate_but_eu_does():
    assert "bp-pre-dose-older-systolic-max-mmhg" not in US.parameters
    assert "bp-pre-dose-older-systolic-max-mmhg" in EU.parameters


@pytest.mark.parametrize("rs", [US, EU])
def test_esketamine_max_dose_is_84_mg_in_28_mg_devices_5_min_apart(rs):
    assert rs.limit("intranasal", "total-mg-hard-max").value == 84
    assert rs.limit("intranasal", "device-mg").value == 28
    assert rs.limit("intranasal", "device-interval-min").value == 5


@pytest.mark.parametrize(
    ("stem", "value"),
    [
        ("rate-mg-per-kg-per-h-soft-max", 1.0),
        ("mg-per-kg-hard-max", 1.0),
        ("typical-mg-per-kg", 0.5),
    ],
)
def test_iv_limits_are_cited(stem, value):
    assert IV.limit("iv", stem).value == value


def test_pennsylvania_low_dose_rate_is_confirmed():
    assert IV.limit("iv", "rate-mg-per-kg-per-h-soft-max").cited.grade is Grade.CONFIRMED


@pytest.mark.parametrize("route", ["iv", "im", "oral", "sublingual"])
def test_every_racemic_route_has_hard_limits_and_bioavailability(route):
    assert IV.limit(route, "mg-per-kg-hard-max") and IV.limit(route, "total-mg-hard-max")
    assert 0 < IV.bioavailability[route].value <= 1


@pytest.mark.parametrize(
    ("rs", "absolute"),
    [
        (US, {"ci-aneurysm-avm", "ci-intracerebral-haemorrhage", "ci-hypersensitivity"}),
        (
            EU,
            {
                "ci-aneurysm-avm",
                "ci-intracerebral-haemorrhage",
                "ci-hypersensitivity",
                "ci-recent-cardiovascular-event",
            },
        ),
    ],
)
def test_esketamine_absolute_contraindications_are_the_label_ones(rs, absolute):
    assert {c.id for c in rs.contraindications if c.severity == "absolute"} == absolute


@pytest.mark.parametrize("rs", [US, EU, IV])
@pytest.mark.parametrize(
    "condition",
    [
        "psychosis_history",
        "substance_use_disorder",
        "uncontrolled_hypertension",
        "pregnancy",
        "breastfeeding",
        "hepatic_impairment_child_pugh_c",
        "raised_intracranial_pressure",
        "cardio_cerebrovascular_disease",
    ],
)
def test_relative_contraindications_exist_for_every_treatment(rs, condition):
    assert any(c.condition == condition and c.severity == "relative" for c in rs.contraindications)


def test_eu_has_unstable_cardiorespiratory_disease_and_extra_interactions():
    assert any(c.condition == "unstable_cardiorespiratory_disease" for c in EU.contraindications)
    eu_only = {"ix-xanthine", "ix-ergometrine", "ix-thyroid-hormone", "ix-vasopressin"}
    assert eu_only <= {i.id for i in EU.interactions}
    assert not eu_only & {i.id for i in US.interactions}


@pytest.mark.parametrize("rs", [US, EU, IV])
def test_interaction_classes_cover_the_reference(rs):
    ids = {i.id for i in rs.interactions}
    assert {
        "ix-benzodiazepine",
        "ix-opioid",
        "ix-naltrexone",
        "ix-stimulant",
        "ix-maoi",
        "ix-lamotrigine",
    } <= ids


def test_diazepam_equivalence_table_marks_recalled_values_unconfirmed():
    assert IV.diazepam_equivalents["diazepam"].value == 10
    assert IV.diazepam_equivalents["lorazepam"].cited.grade is Grade.UNCONFIRMED


@pytest.mark.parametrize(
    ("rs", "phase", "population", "first", "allowed"),
    [
        (US, "induction", "all", 56, (56, 84)),
        (US, "suicidal-ideation", "all", 84, (56, 84)),
        (EU, "induction", "all", 56, (56, 84)),
        (EU, "induction", "65-plus", 28, (28, 56, 84)),
    ],
)
def test_label_phase_schedule(rs, phase, population, first, allowed):
    entry = next(p for p in rs.phase_schedule if p.id == phase and p.population == population)
    assert (entry.first_session_dose_mg, entry.allowed_doses_mg) == (first, allowed)


@pytest.mark.parametrize("ruleset_id", BUNDLED_IDS)
def test_grade_u_rules_are_listed_as_needing_confirmation(ruleset_id):
    rs = load_bundled_ruleset(ruleset_id)
    paths = [u.path for u in list_unconfirmed(rs)]
    assert "parameters.screening-validity-days" in paths
    assert all(
        not r.needs_confirmation
        for r in rs.parameters.values()
        if r.cited.grade != Grade.UNCONFIRMED
    )


def test_confirming_a_rule_records_who_and_when_and_removes_it_from_the_report():
    confirmed = confirm_rule(
        IV, "parameters.screening-validity-days", "Dr Medical Director", "2026-02-01"
    )
    assert confirmed.param("screening-validity-days").confirmed_by == "Dr Medical Director"
    assert "parameters.screening-validity-days" not in [u.path for u in list_unconfirmed(confirmed)]


def test_copy_gets_a_new_id_and_version_and_keeps_the_rules():
    copy = copy_ruleset(US, "clinic-esketamine", "2026.2")
    assert copy.ref == "clinic-esketamine@2026.2"
    assert copy.parameters == US.parameters


def _doc():
    return json.loads(US.document)


@pytest.mark.parametrize(
    ("mutate", "path", "reason"),
    [
        (
            lambda d: d["parameters"]["age-min-years"].update(grade="X"),
            "parameters.age-min-years.grade",
            "C, S, U",
        ),
        (lambda d: d["parameters"].pop("age-min-years"), "parameters.age-min-years", "required"),
        (
            lambda d: d["dose_limits"]["intranasal"]["total-mg-hard-max"].update(value="84"),
            "dose_limits.intranasal.total-mg-hard-max.value",
            "number",
        ),
        (
            lambda d: d["contraindications"][0].update(severity="maybe"),
            "contraindications[0].severity",
            "absolute",
        ),
        (
            lambda d: d["parameters"]["age-min-years"].pop("source"),
            "parameters.age-min-years.source",
            "required",
        ),
        (lambda d: d.update(extra=1), "$.extra", "not a known field"),
        (
            lambda d: d["dose_limits"]["intranasal"].update(
                {
                    "change-pct-soft-max": dict(
                        d["dose_limits"]["intranasal"]["change-pct-hard-max"], value=500
                    )
                }
            ),
            "dose_limits.intranasal.change-pct-soft-max",
            "hard maximum",
        ),
        (
            lambda d: d["parameters"]["age-min-years"].update(confirmed_by="Dr X"),
            "parameters.age-min-years.confirmed_at",
            "required",
        ),
    ],
)
def test_validator_names_the_path_and_the_reason(mutate, path, reason):
    doc = _doc()
    mutate(doc)
    with pytest.raises(RuleSetError) as info:
        load_ruleset(doc)
    message = str(info.value)
    assert path in message and reason in message and "\n" not in message


def test_invalid_json_is_refused_in_one_line():
    with pytest.raises(RuleSetError, match="not valid JSON"):
        load_ruleset("{not json")

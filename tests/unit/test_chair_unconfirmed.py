"""Grade-U chair rules are listed for medical-director confirmation."""

from ketaclinic.clinical.chair_data import iter_cited, list_unconfirmed
from ketaclinic.clinical.courses import load_course_template
from ketaclinic.clinical.scheduling import load_scheduling_rules
from ketaclinic.clinical.session_rules import load_session_rules


def test_unconfirmed_session_rules_include_the_bp_stop_but_not_the_label_fasting_rule():
    paths = {p for p, _ in list_unconfirmed(load_session_rules())}
    assert {"bp_stop_sbp", "vital_thresholds_source", "pre_checks.iv_ketamine.no_food_min"} <= paths
    assert "pre_checks.esketamine.no_food_min" not in paths


def test_esketamine_observation_is_confirmed_and_the_minimum_interval_is_not():
    paths = {p for p, _ in list_unconfirmed(load_scheduling_rules())}
    assert "min_interval_h" in paths and "sessions.esketamine.observation_min" not in paths


def test_every_cited_value_in_a_template_has_a_source():
    cited = iter_cited(load_course_template("esketamine_trd"))
    assert len(cited) > 10 and all(c.source for _, c in cited)

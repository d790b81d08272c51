"""Rule-set governance in the clinical core (issue 12 item 6): what loosens a hard limit."""

from __future__ import annotations

import pytest

from ketaclinic.clinical.rules import Level
from ketaclinic.clinical.ruleset_governance import (
    check_change,
    loosened_hard_limits,
    missing_hard_limits,
)
from ketaclinic.clinical.rulesets import BUNDLED_IDS, load_bundled_ruleset, load_ruleset

IV = load_bundled_ruleset("ketamine-iv")
ESK = load_bundled_ruleset("esketamine-us")


def _edit(rs, section, key, value, route=None):
    doc = rs.to_dict()
    node = doc[section][route] if route else doc[section]
    if value is None:
        del node[key]
    else:
        node[key]["value"] = value
    return load_ruleset(doc)


@pytest.mark.parametrize("ruleset_id", BUNDLED_IDS)
def test_every_bundled_rule_set_is_complete(ruleset_id):
    assert missing_hard_limits(load_bundled_ruleset(ruleset_id)) == ()


def test_tightening_is_free():
    tighter = _edit(IV, "dose_limits", "mg-per-kg-hard-max", 0.8, "iv")
    tighter = _edit(tighter, "parameters", "discharge-sbp-max-mmhg", 150)
    decision = check_change(tighter, IV)
    assert not decision.blocked and not decision.needs_cosign
    assert decision.findings[0].level is Level.OK


@pytest.mark.parametrize(
    ("section", "key", "value", "route"),
    [("dose_limits", "mg-per-kg-hard-max", 4.0, "iv"),
     ("dose_limits", "infusion-min-hard-min", 5, "iv"),
     ("dose_limits", "rate-ml-per-h-hard-max", 900, "iv"),
     ("parameters", "discharge-vitals-window-min", 60, None),
     ("parameters", "weight-min-kg", 10, None)],
)
def test_raising_a_hard_maximum_or_lowering_a_hard_minimum_needs_a_cosign(
        section, key, value, route):
    looser = _edit(IV, section, key, value, route)
    decision = check_change(looser, IV)
    assert decision.needs_cosign and not decision.blocked
    assert [x.path for x in decision.loosened] == [
        f"{section}.{route}.{key}" if route else f"{section}.{key}"]
    assert decision.findings[0].rule == "ruleset.loosened" and "co-sign" in \
        decision.findings[0].message


def test_removing_a_hard_limit_is_both_incomplete_and_a_loosening():
    bare = _edit(IV, "dose_limits", "mg-per-kg-hard-max", None, "iv")
    decision = check_change(bare, IV)
    assert decision.blocked and decision.missing == ("dose_limits.iv.mg-per-kg-hard-max",)
    assert decision.loosened[0].new is None
    assert "removed" in decision.loosened[0].describe()


def test_soft_limits_change_freely():
    assert loosened_hard_limits(IV, _edit(IV, "dose_limits", "mg-per-kg-soft-max", 0.9,
                                          "iv")) == ()


def test_adding_a_pump_concentration_loosens_removing_one_tightens():
    doc = IV.to_dict()
    extra = dict(doc["infusion_concentrations"]["iv"][0], id="k-5", value=5)
    doc["infusion_concentrations"]["iv"].append(extra)
    assert [x.path for x in loosened_hard_limits(IV, load_ruleset(doc))] == [
        "infusion_concentrations.iv"]
    doc = IV.to_dict()
    doc["infusion_concentrations"]["iv"].pop()
    assert loosened_hard_limits(IV, load_ruleset(doc)) == ()


def test_esketamine_needs_its_observation_time_and_device_size():
    assert "parameters.observation-min" in missing_hard_limits(
        _edit(ESK, "parameters", "observation-min", None))
    assert [x.path for x in loosened_hard_limits(ESK, _edit(ESK, "parameters",
                                                            "observation-min", 60))] == [
        "parameters.observation-min"]
    bigger = _edit(ESK, "dose_limits", "device-mg", 56, "intranasal")
    assert [x.path for x in loosened_hard_limits(ESK, bigger)] == [
        "dose_limits.intranasal.device-mg"]

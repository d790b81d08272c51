"""Pump drug library (issue 12 item 3): concentrations, mL/h, volume and minutes, as programmed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kctest import examples

from ketaclinic.clinical.dose_checks import DoseOrder, can_save, check_dose, check_dose_safely
from ketaclinic.clinical.rules import Level
from ketaclinic.clinical.rulesets import RuleSetError, load_bundled_ruleset, load_ruleset

IV = load_bundled_ruleset("ketamine-iv")


def _iv(dose_mg=41.0, weight=82.0, minutes=40.0, conc=1.0, **kw):
    order = DoseOrder("iv", dose_mg, weight, weight, minutes, concentration_mg_per_ml=conc, **kw)
    return check_dose(order, IV)


def _hard(result):
    return {f.rule for f in result.checks if f.level is Level.HARD}


def test_the_issue_reproduction_0_01_mg_per_ml_at_6150_ml_per_h_is_a_hard_stop():
    result = _iv(conc=0.01)
    assert {"concentration-library", "rate-ml-per-h", "volume-ml"} <= _hard(result)
    rate = next(f for f in result.checks if f.rule == "rate-ml-per-h")
    assert rate.values["value"] == pytest.approx(6150) and rate.values["limit"] == 500
    assert rate.source and not can_save(result)


@pytest.mark.parametrize("conc", [50.0, 100.0])
def test_an_undiluted_vial_given_iv_is_a_hard_stop_that_says_dilute(conc):
    result = _iv(conc=conc)
    finding = next(f for f in result.checks if f.rule == "concentration")
    assert finding.level is Level.HARD and "undiluted" in finding.message
    assert finding.values == {"value": conc, "limit": 10} and "Ketalar" in finding.source
    assert not can_save(result)


@pytest.mark.parametrize("conc", [0.5, 1.0, 2.0, 10.0])
def test_every_library_concentration_passes_at_a_standard_dose(conc):
    result = _iv(conc=conc)
    assert not result.blocked, [f.message for f in result.checks if f.level is Level.HARD]
    entry = next(f for f in result.checks if f.rule == "concentration-library")
    assert entry.level is Level.OK and entry.values["entry"]


def test_a_concentration_outside_the_library_is_a_hard_stop_naming_the_allowed_ones():
    finding = next(f for f in _iv(conc=1.5).checks if f.rule == "concentration-library")
    assert finding.level is Level.HARD and "0.5, 1, 2, 10 mg/mL" in finding.message


def test_a_missing_concentration_fails_closed():
    result = check_dose(DoseOrder("iv", 41, 82, 82, 40), IV)
    assert "concentration" in _hard(result) and not can_save(result)


def test_the_programmed_rate_is_what_is_checked_not_the_ordered_minutes():
    # the order says 40 min; the nurse programmed 600 mL/h (about 4 minutes)
    result = _iv(rate_ml_per_h=600, volume_ml=41)
    assert {"rate-ml-per-h", "infusion-min", "programmed-rate",
            "pump-programme-mismatch"} <= _hard(result)
    # the same rate derived from the order passes
    assert not _iv(rate_ml_per_h=61.5, volume_ml=41).blocked


def test_a_programmed_volume_that_delivers_another_dose_is_a_hard_stop():
    result = _iv(volume_ml=410)  # 410 mg at 1 mg/mL for a 41 mg order
    finding = next(f for f in result.checks if f.rule == "pump-programme-mismatch")
    assert finding.level is Level.HARD and finding.values["delivered_mg"] == 410


@pytest.mark.parametrize(
    ("minutes", "level"),
    [(10, Level.HARD), (30, Level.SOFT), (40, Level.OK), (120, Level.SOFT), (300, Level.HARD)],
)
def test_infusion_minutes_have_soft_and_hard_limits_like_a_pump(minutes, level):
    dose = 0.5 * 82
    finding = next(f for f in _iv(dose, minutes=minutes).checks if f.rule == "infusion-min")
    assert finding.level is level


def test_a_volume_above_the_soft_maximum_needs_an_override():
    result = _iv(dose_mg=140, weight=150, minutes=60, conc=0.5)  # 280 mL
    finding = next(f for f in result.checks if f.rule == "volume-ml")
    assert finding.level is Level.SOFT and finding.values["limit"] == 250


def test_a_rule_set_without_a_pump_library_blocks_iv_doses():
    doc = IV.to_dict()
    del doc["infusion_concentrations"]
    bare = load_ruleset(doc)
    result = check_dose_safely(DoseOrder("iv", 41, 82, 82, 40, concentration_mg_per_ml=1), bare)
    assert "pump-library" in _hard(result)


def test_esketamine_and_oral_doses_get_no_pump_checks():
    rs = load_bundled_ruleset("esketamine-us")
    order = DoseOrder("intranasal", 56, phase="induction", session_number=2, age_years=40)
    assert not {f.rule for f in check_dose(order, rs).checks} & {"concentration", "rate-ml-per-h"}


def test_a_library_concentration_must_be_positive_mg_per_ml():
    doc = IV.to_dict()
    doc["infusion_concentrations"]["iv"][0]["unit"] = "mg"
    doc["infusion_concentrations"]["iv"][1]["value"] = 0
    with pytest.raises(RuleSetError, match=r"iv\[0\]\.unit.*iv\[1\]\.value"):
        load_ruleset(doc)


def test_a_soft_pump_limit_above_its_hard_limit_is_refused():
    doc = IV.to_dict()
    doc["dose_limits"]["iv"]["rate-ml-per-h-soft-max"]["value"] = 900
    with pytest.raises(RuleSetError, match="rate-ml-per-h-soft-max"):
        load_ruleset(doc)


@settings(max_examples=examples(200), deadline=None)
@given(
    conc=st.floats(0.001, 200), rate=st.floats(0.01, 5000), minutes=st.floats(1, 600),
    dose=st.floats(1, 150),
)
def test_no_programmed_rate_above_the_hard_maximum_is_ever_saveable(conc, rate, minutes, dose):
    order = DoseOrder("iv", dose, 80, 80, minutes, concentration_mg_per_ml=conc,
                      rate_ml_per_h=rate)
    result = check_dose_safely(order, IV)
    if rate > 500 or conc > 10 or conc not in (0.5, 1.0, 2.0, 10.0):
        assert not can_save(result)

"""Dose calculation and dose-error checks: published schedules, limits and ISMP display."""

import math

import pytest

from ketaclinic.clinical.dose_checks import (
    DoseOrder,
    Override,
    can_save,
    check_dose,
    check_dose_safely,
    format_dose,
    missing_overrides,
    override_records,
)
from ketaclinic.clinical.dosing import (
    calculate_dose_weight,
    calculate_esketamine_dose,
    calculate_ideal_body_weight_kg,
    calculate_iv_dose,
    calculate_route_dose,
    titrate_mg_per_kg,
)
from ketaclinic.clinical.inputs import parse_number
from ketaclinic.clinical.rules import ClinicalInputError, Level

US, EU, IV = (
    __import__("ketaclinic.clinical.rulesets", fromlist=["x"]).load_bundled_ruleset(i)
    for i in ("esketamine-us", "esketamine-eu", "ketamine-iv")
)


def _levels(result):
    return {f.rule: f.level for f in result.checks}


# ---------------------------------------------------------------- IV calculation


def test_standard_iv_dose_82_kg_half_mg_per_kg_over_40_min_at_10_mg_per_ml():
    d = calculate_iv_dose(82, 0.5, 40, 10, IV)
    assert (d.dose_mg, d.rate_mg_per_h, d.rate_ml_per_h, d.volume_ml) == (41.0, 61.5, 6.15, 4.1)
    assert d.rate_mg_per_kg_per_h == 0.75 and d.rule_set == IV.ref


@pytest.mark.parametrize(
    ("height_cm", "sex", "ibw"),
    [
        (152.4, "male", 50.0),
        (152.4, "female", 45.5),
        (177.8, "male", 73.0),
        (165.1, "female", 57.0),
    ],
)
def test_devine_ideal_body_weight(height_cm, sex, ibw):
    assert calculate_ideal_body_weight_kg(height_cm, sex, IV) == pytest.approx(ibw, abs=0.05)


def test_ideal_and_adjusted_weight_bases_with_evidence():
    ideal = calculate_dose_weight(120, IV, "ideal", 177.8, "male")
    adjusted = calculate_dose_weight(120, IV, "adjusted", 177.8, "male")
    assert ideal.dose_weight_kg == pytest.approx(73.0, abs=0.05)
    assert adjusted.dose_weight_kg == pytest.approx(73.0 + 0.4 * (120 - 73.0), abs=0.05)
    assert "RAPID" in ideal.evidence and "BMI" in ideal.evidence


def test_default_basis_is_actual_weight_as_in_rapid():
    assert calculate_dose_weight(120, IV).basis == "actual"


def test_ideal_weight_never_exceeds_actual_weight():
    assert calculate_dose_weight(50, IV, "ideal", 190, "male").dose_weight_kg == 50


def test_ideal_weight_needs_height_and_sex():
    with pytest.raises(ClinicalInputError, match="height_cm and sex"):
        calculate_dose_weight(90, IV, "ideal")


def test_titration_steps_from_the_previous_dose():
    assert titrate_mg_per_kg(0.5, IV) == 0.6
    assert titrate_mg_per_kg(0.5, IV, steps=-2) == 0.3


@pytest.mark.parametrize(("route", "f"), [("im", 0.93), ("oral", 0.2), ("sublingual", 0.3)])
def test_other_routes_note_their_bioavailability(route, f):
    d = calculate_route_dose(route, 70, 1.0, IV)
    assert d.bioavailability.value == f and d.bioavailability.source
    assert d.systemic_mg == pytest.approx(70 * f)


# ---------------------------------------------------------------- esketamine calculation

ESKETAMINE = [  # rule set, phase, session, age -> dose, devices, device times
    (US, "induction", 1, 40, 56, 2, (0, 5)),
    (US, "induction", 1, 70, 56, 2, (0, 5)),  # US: no age-based start dose
    (EU, "induction", 1, 40, 56, 2, (0, 5)),
    (EU, "induction", 1, 65, 28, 1, (0,)),  # EU: 65 and over start at 28 mg
    (US, "suicidal-ideation", 1, 40, 84, 3, (0, 5, 10)),
    (US, "maintenance", 1, 40, 56, 2, (0, 5)),
    (EU, "continuation", 3, 70, 28, 1, (0,)),
]


@pytest.mark.parametrize(("rs", "phase", "session", "age", "dose", "devices", "times"), ESKETAMINE)
def test_esketamine_label_dose_by_phase_and_population(
    rs, phase, session, age, dose, devices, times
):
    d = calculate_esketamine_dose(rs, phase, session, age)
    assert (d.dose_mg, d.devices, d.device_times_min) == (dose, devices, times)


def _es(rs, dose, phase="induction", session=2, age=40, previous=None):
    return check_dose(
        DoseOrder(
            "intranasal",
            dose,
            previous_dose_mg=previous,
            phase=phase,
            session_number=session,
            age_years=age,
        ),
        rs,
    )


@pytest.mark.parametrize("rs", [US, EU])
def test_esketamine_above_84_mg_is_a_hard_stop(rs):
    assert _levels(_es(rs, 112))["total-mg"] is Level.HARD


@pytest.mark.parametrize("rs", [US, EU])
def test_esketamine_dose_not_in_whole_devices_is_a_hard_stop(rs):
    assert _levels(_es(rs, 50))["device-multiple"] is Level.HARD


@pytest.mark.parametrize(
    ("rs", "dose", "age", "level"),
    [
        (US, 28, 40, Level.SOFT),
        (US, 28, 70, Level.SOFT),  # 28 mg is not a US label dose
        (EU, 28, 40, Level.SOFT),
        (EU, 28, 70, Level.OK),  # ...but is for EU 65 and over
        (US, 84, 40, Level.OK),
        (EU, 84, 40, Level.OK),
    ],
)
def test_esketamine_label_phase_dose(rs, dose, age, level):
    assert _levels(_es(rs, dose, age=age))["label-phase-dose"] is level


@pytest.mark.parametrize("rs", [US, EU])
def test_esketamine_first_induction_dose_other_than_56_mg_needs_a_reason(rs):
    assert _levels(_es(rs, 84, session=1))["label-first-dose"] is Level.SOFT


def test_esketamine_session_beyond_induction_is_flagged():
    assert _levels(_es(US, 56, session=9))["phase-session-count"] is Level.SOFT


def test_eu_older_adults_step_up_28_mg_at_a_time():
    assert _levels(_es(EU, 84, age=70, previous=28))["older-adult-step"] is Level.SOFT
    assert "older-adult-step" not in _levels(_es(EU, 56, age=70, previous=28))


# ---------------------------------------------------------------- IV checks


def _iv(mg_per_kg, weight=80.0, minutes=40.0, **kw):
    kw.setdefault("concentration_mg_per_ml", 1.0)
    return check_dose(DoseOrder("iv", mg_per_kg * weight, weight, weight, minutes, **kw), IV)


@pytest.mark.parametrize(
    ("mg_per_kg", "level"),
    [
        (0.04, Level.HARD),
        (0.2, Level.SOFT),
        (0.5, Level.OK),
        (0.75, Level.OK),
        (0.8, Level.SOFT),
        (1.0, Level.SOFT),
        (1.01, Level.HARD),
    ],
)
def test_iv_mg_per_kg_soft_and_hard_limits(mg_per_kg, level):
    assert _levels(_iv(mg_per_kg))["mg-per-kg"] is level


@pytest.mark.parametrize(
    ("minutes", "level"), [(40, Level.OK), (30, Level.OK), (25, Level.SOFT), (14, Level.HARD)]
)
def test_iv_rate_limit_follows_the_pennsylvania_low_dose_definition(minutes, level):
    assert _levels(_iv(0.5, minutes=minutes))["rate"] is level


@pytest.mark.parametrize(
    ("weight", "level"), [(120, Level.OK), (140, Level.SOFT), (200, Level.SOFT), (210, Level.HARD)]
)
def test_iv_total_mg_limits(weight, level):
    assert _levels(_iv(0.75, weight=weight))["total-mg"] is level


@pytest.mark.parametrize(
    ("previous", "level"), [(40, Level.OK), (25, Level.SOFT), (19, Level.HARD)]
)
def test_iv_change_from_previous_dose(previous, level):
    assert _levels(_iv(0.5, previous_dose_mg=previous))["change-from-previous"] is level


def test_missing_infusion_minutes_blocks_the_iv_rate_check():
    result = check_dose(DoseOrder("iv", 40, 80, 80), IV)
    assert _levels(result)["rate"] is Level.HARD


@pytest.mark.parametrize(
    ("dose", "previous", "rule"),
    [
        (400, 40, "tenfold-error"),
        (4, 40, "tenfold-error"),
        (40000, 40, "unit-swap-mg-mcg"),
        (0.04, 40, "unit-swap-mg-mcg"),
    ],
)
def test_ten_fold_and_mg_mcg_errors_force_re_entry(dose, previous, rule):
    result = check_dose(DoseOrder("iv", dose, 80, 80, 40, previous_dose_mg=previous), IV)
    assert _levels(result)[rule] is Level.HARD and result.reentry_required
    assert next(f for f in result.checks if f.rule == rule).values["action"] == "re-entry-required"


def test_ten_fold_against_the_typical_dose_without_a_previous_dose():
    assert _levels(_iv(5.0))["tenfold-error"] is Level.HARD


@pytest.mark.parametrize(
    ("kw", "rule"),
    [
        ({"previous_weight_kg": 70}, "weight-changed"),  # 80 vs 70 = +14 %
        ({"weight_age_days": 31}, "weight-stale"),
    ],
)
def test_weight_changed_or_stale_forces_re_entry(kw, rule):
    result = _iv(0.5, **kw)
    assert _levels(result)[rule] is Level.HARD and result.reentry_required and not can_save(result)


def test_weight_within_ten_percent_and_fresh_passes():
    result = _iv(0.5, previous_weight_kg=75, weight_age_days=30)
    assert not result.blocked and can_save(result)


def test_pounds_entered_as_kilograms_is_implausible():
    assert _levels(_iv(0.5, weight=330))["weight-implausible"] is Level.HARD


# ---------------------------------------------------------------- saving and overrides

OK_REASON = Override(
    "mg-per-kg", "titration-per-response", "Partial response at 0.75 mg/kg", "dr_a", "t"
)


def test_soft_limit_saves_only_with_a_coded_reason_and_free_text():
    result = _iv(0.8, minutes=60)
    assert not can_save(result) and missing_overrides(result, ()) == ("mg-per-kg",)
    assert can_save(result, [OK_REASON])
    assert not can_save(result, [Override("mg-per-kg", "because", "text")])
    assert not can_save(result, [Override("mg-per-kg", "titration-per-response", "   ")])
    rows = override_records(result, [OK_REASON])
    assert rows[0]["user"] == "dr_a" and rows[0]["limit"] == 0.75 and rows[0]["value"] == 0.8


def test_hard_limit_cannot_be_saved_whatever_the_overrides():
    result = _iv(1.2)
    overrides = [
        Override(f.rule, code, "admin says so", "admin")
        for f in result.checks
        for code in IV.override_reason_codes
    ]
    assert result.blocked and not can_save(result, overrides)


def test_a_checker_that_raises_blocks_the_dose():
    def broken(order, ruleset):
        raise ZeroDivisionError("boom")

    result = check_dose_safely(DoseOrder("iv", 40, 80, 80, 40), IV, checker=broken)
    assert [f.rule for f in result.checks] == ["checker-error"]
    assert result.blocked and not can_save(result)


def test_a_checker_that_returns_nothing_blocks_the_dose():
    result = check_dose_safely(DoseOrder("iv", 40, 80, 80, 40), IV, checker=lambda o, r: None)
    assert result.checks[0].rule == "checker-error" and not can_save(result)


def test_invalid_order_inside_the_safe_checker_blocks():
    result = check_dose_safely(DoseOrder("iv", float("nan"), 80, 80, 40), IV)
    assert result.checks[0].rule == "checker-error"


def test_unknown_route_blocks():
    assert check_dose_safely(DoseOrder("intrathecal", 40, 80, 80, 40), IV).blocked


# ---------------------------------------------------------------- input refusal and display


@pytest.mark.parametrize("bad", ["0", "-82", "nan", "inf", "82kg", "82 lb", "", "eighty", "1,5"])
def test_impossible_numbers_are_refused(bad):
    with pytest.raises(ClinicalInputError):
        value = parse_number("weight_kg", bad)
        calculate_iv_dose(value, 0.5, 40, 10, IV)


@pytest.mark.parametrize(
    "kw",
    [
        {"weight_kg": 0},
        {"weight_kg": -1},
        {"weight_kg": math.nan},
        {"weight_kg": math.inf},
        {"mg_per_kg": 0},
        {"infusion_min": -40},
        {"concentration_mg_per_ml": math.nan},
    ],
)
def test_calculation_refuses_zero_negative_nan_and_infinite(kw):
    args = {
        "weight_kg": 82,
        "mg_per_kg": 0.5,
        "infusion_min": 40,
        "concentration_mg_per_ml": 10,
    } | kw
    with pytest.raises(ClinicalInputError) as info:
        calculate_iv_dose(ruleset=IV, **args)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (5.0, "mg", "5 mg"),
        (0.5, "mg/kg", "0.5 mg/kg"),
        (0.50, "mg", "0.5 mg"),
        (41.0, "mg", "41 mg"),
        (6.15, "mL/h", "6.15 mL/h"),
        (250, "µg", "250 mcg"),
        (250, "μg", "250 mcg"),
        (2.5, "ug/kg", "2.5 mcg/kg"),
        (1000, "mg", "1,000 mg"),
        (12.5, "cc", "12.5 mL"),
        (0.125, "mg", "0.125 mg"),
        (0, "mg", "0 mg"),
    ],
)
def test_ismp_dose_display(value, unit, text):
    assert format_dose(value, unit) == text

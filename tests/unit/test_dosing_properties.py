"""Properties over weight x dose x route x role: hard never saves, soft needs reasons."""

from hypothesis import given, settings
from hypothesis import strategies as st
from kctest import examples

from ketaclinic.clinical.dose_checks import (
    DoseOrder,
    Override,
    can_save,
    check_dose,
    check_dose_safely,
    missing_overrides,
)
from ketaclinic.clinical.rules import Level
from ketaclinic.clinical.rulesets import load_bundled_ruleset

IV = load_bundled_ruleset("ketamine-iv")
US = load_bundled_ruleset("esketamine-us")
EU = load_bundled_ruleset("esketamine-eu")
ROLES = ("nurse", "prescriber", "medical-director", "admin")

weights = st.floats(min_value=1, max_value=400, allow_nan=False)
doses = st.floats(min_value=0.001, max_value=100_000, allow_nan=False)
routes = st.sampled_from(("iv", "im", "oral", "sublingual"))
minutes = st.one_of(st.none(), st.floats(min_value=0.5, max_value=240))
previous = st.one_of(st.none(), st.floats(min_value=0.5, max_value=500))


def _orders():
    iv = st.builds(
        lambda r, d, w, m, p: DoseOrder(r, d, w, w, m, p, concentration_mg_per_ml=1.0),
        routes, doses, weights, minutes, previous,
    )
    nasal = st.builds(
        lambda d, s, a, ph, p: DoseOrder(
            "intranasal", d, previous_dose_mg=p, phase=ph, session_number=s, age_years=a
        ),
        st.sampled_from((28, 56, 84, 112, 50, 5600)),
        st.integers(1, 12),
        st.integers(18, 95),
        st.sampled_from(("induction", "maintenance", "continuation", "suicidal-ideation")),
        st.one_of(st.none(), st.sampled_from((28, 56, 84))),
    )
    return st.one_of(st.tuples(iv, st.just(IV)), st.tuples(nasal, st.sampled_from((US, EU))))


def _hard_limit_exceeded(order, rs):
    lim = rs.dose_limits[order.route]
    over = "total-mg-hard-max" in lim and order.dose_mg > lim["total-mg-hard-max"].value
    if order.weight_kg and "mg-per-kg-hard-max" in lim:
        over |= round(order.dose_mg / order.weight_kg, 6) > lim["mg-per-kg-hard-max"].value
    return over


def _every_override(result, rs, role):
    return [
        Override(f.rule, code, f"{role} override", role)
        for f in result.checks
        for code in rs.override_reason_codes
    ]


@settings(max_examples=examples(250), deadline=None)
@given(_orders(), st.sampled_from(ROLES))
def test_nothing_above_a_hard_limit_is_ever_savable_by_any_role(case, role):
    order, rs = case
    result = check_dose_safely(order, rs)
    if _hard_limit_exceeded(order, rs):
        assert result.blocked
        assert not can_save(result, _every_override(result, rs, role))
    if result.blocked:
        assert not can_save(result, _every_override(result, rs, role))


@settings(max_examples=examples(250), deadline=None)
@given(_orders(), st.sampled_from(ROLES), st.data())
def test_every_savable_soft_result_has_its_override_reasons(case, role, data):
    order, rs = case
    result = check_dose_safely(order, rs)
    soft = [f for f in result.checks if f.level is Level.SOFT]
    chosen = data.draw(st.lists(st.sampled_from(soft), unique_by=lambda f: f.rule)) if soft else []
    overrides = [Override(f.rule, rs.override_reason_codes[0], "documented", role) for f in chosen]
    if can_save(result, overrides):
        assert not result.blocked
        assert {f.rule for f in soft} <= {o.rule for o in overrides}
        assert not missing_overrides(result, overrides)
    if soft and not result.blocked and len(chosen) < len({f.rule for f in soft}):
        assert not can_save(result, overrides)


@settings(max_examples=examples(100), deadline=None)
@given(
    _orders(), st.sampled_from((ValueError, KeyError, ZeroDivisionError, RuntimeError, TypeError))
)
def test_a_checker_that_raises_always_blocks(case, error):
    order, rs = case

    def raising(o, r):
        check_dose(o, r)
        raise error("injected failure")

    result = check_dose_safely(order, rs, checker=raising)
    assert result.blocked and result.checks[0].rule == "checker-error"
    assert not can_save(result, _every_override(result, rs, "admin"))


@settings(max_examples=examples(150), deadline=None)
@given(_orders())
def test_every_check_names_a_rule_a_level_and_a_source(case):
    order, rs = case
    result = check_dose_safely(order, rs)
    assert (
        result.checks
        and result.rule_set.startswith(rs.id)
        or result.checks[0].rule == "checker-error"
    )
    for f in result.checks:
        assert f.rule and f.source and f.level in (Level.OK, Level.SOFT, Level.HARD)


@settings(max_examples=examples(150), deadline=None)
@given(st.floats(min_value=30, max_value=300), st.floats(min_value=0.05, max_value=1.0))
def test_weight_change_over_ten_percent_always_forces_re_entry(weight, ratio):
    previous_weight = weight * (1 + 0.1 + ratio)
    order = DoseOrder(
        "iv", 0.5 * weight, weight, weight, 40, previous_weight_kg=previous_weight,
        concentration_mg_per_ml=1.0,
    )
    result = check_dose_safely(order, IV)
    assert result.reentry_required and not can_save(result)

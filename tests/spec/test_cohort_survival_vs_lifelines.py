"""The one Kaplan–Meier implementation agrees with lifelines; the Cox service survives bad data.

lifelines' KaplanMeierFitter is the independent reference here: production fits every curve with
:func:`ketaclinic.clinical.km.kaplan_meier` (the dashboard through ``fit_kaplan_meier``).
"""

from __future__ import annotations

import ast
import math
import random
from pathlib import Path

import kcsource
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kctest import examples

import ketaclinic
from ketaclinic.clinical.km import kaplan_meier
from ketaclinic.clinical.survival import SurvivalSubject
from ketaclinic.services.outcomes.survival import (
    OBSERVATIONAL_CAUTION,
    fit_cox_relapse,
    fit_kaplan_meier,
)

# Freireich 1963 6-MP arm (Gehan 1965): median remission duration 23 weeks (textbook value).
GEHAN_T = [6, 6, 6, 7, 10, 13, 16, 22, 23, 6, 9, 10, 11, 17, 19, 20, 25, 32, 32, 34, 35]
GEHAN_E = [1] * 9 + [0] * 12


def _first_at_or_below_half(timeline, values):
    """First time with value <= 0.5 on a lifelines curve, tolerant to its rounding.

    lifelines computes S(t) as exp(sum(log(1 - d/n))), so an exact 0.5 can come out as
    0.5000000000000001 and its ``median_survival_time_`` then reports "not reached".
    """
    below = [t for t, v in zip(timeline, values, strict=True) if v <= 0.5 + 1e-12]
    return float(below[0]) if below else None


def _assert_same(durations, events):
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter().fit(durations, events)
    timeline = list(kmf.survival_function_.index)
    survival = list(kmf.survival_function_.iloc[:, 0])
    ci = kmf.confidence_interval_survival_function_
    lo, hi = list(ci.iloc[:, 0]), list(ci.iloc[:, 1])
    ours = kaplan_meier(durations, events)
    summary = fit_kaplan_meier(durations, events)
    assert summary.estimable
    assert [s.t for s in ours.steps] == pytest.approx(timeline) == list(summary.timeline)
    assert [s.survival for s in ours.steps] == pytest.approx(survival, abs=1e-9)
    assert [s.lo for s in ours.steps] == pytest.approx(lo, abs=1e-9)
    assert [s.hi for s in ours.steps] == pytest.approx(hi, abs=1e-9)
    assert list(summary.survival) == [s.survival for s in ours.steps]
    assert (list(summary.lo), list(summary.hi)) == ([s.lo for s in ours.steps],
                                                    [s.hi for s in ours.steps])

    def fin(x):
        return None if math.isinf(x) else x

    assert fin(ours.median) == summary.median == _first_at_or_below_half(timeline, survival)
    assert fin(ours.median_lo) == summary.median_lo == _first_at_or_below_half(timeline, lo)
    assert fin(ours.median_hi) == summary.median_hi == _first_at_or_below_half(timeline, hi)


def test_gehan_6mp_median_is_23_weeks_in_both_implementations():
    assert kaplan_meier(GEHAN_T, GEHAN_E).median == 23
    assert fit_kaplan_meier(GEHAN_T, GEHAN_E).median == 23
    _assert_same(GEHAN_T, GEHAN_E)
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter().fit(GEHAN_T, GEHAN_E)
    assert kmf.median_survival_time_ == kaplan_meier(GEHAN_T, GEHAN_E).median
    hand = kaplan_meier([10, 18, 18, 25, 30, 40, 60, 90], [1, 1, 0, 1, 0, 1, 0, 0])
    kmf = KaplanMeierFitter().fit([10, 18, 18, 25, 30, 40, 60, 90], [1, 1, 0, 1, 0, 1, 0, 0])
    assert kmf.median_survival_time_ == hand.median == 40


def test_hand_cohort_km_matches_lifelines_at_every_event_time():
    _assert_same([10, 18, 18, 25, 30, 40, 60, 90], [1, 1, 0, 1, 0, 1, 0, 0])


@settings(max_examples=examples(150), deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=1, max_value=60), st.booleans()),
        min_size=1, max_size=40,
    )
)
def test_pure_km_agrees_with_lifelines_on_random_cohorts(data):
    durations = [d for d, _ in data]
    events = [e for _, e in data]
    _assert_same(durations, events)


def test_numbers_at_risk_are_reported_at_chosen_times():
    km = fit_kaplan_meier([10, 18, 18, 25, 30, 40, 60, 90], [1, 1, 0, 1, 0, 1, 0, 0],
                          at_times=[0, 30, 90, 180])
    assert km.at_risk == {0.0: 8, 30.0: 4, 90.0: 1, 180.0: 0}


def _synthetic_subjects(n=80, seed=7):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        psych = rng.random() < 0.5
        rate = 0.02 * (0.5 if psych else 1.0)
        t = rng.expovariate(rate)
        cens = rng.uniform(30, 180)
        out.append(SurvivalSubject(
            duration_days=round(min(t, cens), 1), relapsed=t <= cens,
            psychotherapy=psych, antidepressant=rng.random() < 0.6,
            comorbid_anxiety=rng.random() < 0.4, baseline_severity=rng.uniform(20, 45),
            age_band=rng.choice(["18-39", "40-64", "65+"]),
            treatment=rng.choice(["iv_ketamine", "esketamine"]),
        ))
    return out


def test_cox_model_returns_hazard_ratios_with_intervals_and_the_caution():
    res = fit_cox_relapse(_synthetic_subjects())
    assert res.estimable, res.reason
    assert res.n == 80 and res.events > 10
    names = {t.term for t in res.terms}
    assert {"psychotherapy", "antidepressant", "comorbid_anxiety", "baseline_severity"} <= names
    assert any(n.startswith("age_band[") for n in names)
    assert any(n.startswith("treatment[") for n in names)
    for t in res.terms:
        assert 0 < t.lo <= t.hr <= t.hi and 0 <= t.p <= 1
    assert "not a randomised trial" in res.caution and res.caution == OBSERVATIONAL_CAUTION
    assert res.as_dict()["terms"][0]["term"]


@pytest.mark.parametrize(
    "subjects",
    [
        [],
        [SurvivalSubject(10, True, True, True, True, 30, "18-39", "iv")],
        [SurvivalSubject(10 + i, False, bool(i % 2), True, False, 30, "18-39", "iv")
         for i in range(10)],  # no events
        [SurvivalSubject(10 + i, i < 5, True, True, True, 30, "18-39", "iv")
         for i in range(10)],  # no covariate varies
        [SurvivalSubject(10 + i, i % 2 == 0, i % 2 == 0, None, True, 30, "18-39", "iv")
         for i in range(6)],  # perfect separation + missing values
    ],
)
def test_degenerate_cohorts_are_not_estimable_but_never_raise(subjects):
    res = fit_cox_relapse(subjects)
    if not res.estimable:
        assert res.reason.startswith("not estimable")
    else:  # the penalizer may rescue separation; values must then be finite
        assert all(math.isfinite(t.hr) for t in res.terms)
    assert res.caution == OBSERVATIONAL_CAUTION


def test_empty_km_is_not_estimable():
    assert not fit_kaplan_meier([], []).estimable
    assert not fit_kaplan_meier([-1.0], [1]).estimable


def kaplan_meier_sites(tree: ast.Module) -> list[str]:
    """Where ``tree`` fits a Kaplan–Meier curve other than through the core: a lifelines
    univariate fitter, or a function of its own named like one."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lifelines"):
            found += [f"{node.lineno}: imports {a.name}" for a in node.names
                      if a.name.endswith("Fitter") and a.name != "CoxPHFitter"]
        elif isinstance(node, ast.FunctionDef) and "kaplan" in node.name.lower():
            found.append(f"{node.lineno}: defines {node.name}")
    return found


def test_production_has_one_kaplan_meier_the_cores():
    """The dashboard, the CLI and the charts take their curves, medians and numbers at risk
    from clinical/km.py; a second estimator (lifelines' fitter, a copy) would drift from it."""
    assert len(kaplan_meier_sites(ast.parse(
        "from lifelines import KaplanMeierFitter, CoxPHFitter\ndef my_kaplan(t): pass\n"))) == 2
    package = Path(ketaclinic.__file__).parent
    allowed = {("clinical/km.py", "kaplan_meier"),  # the one implementation
               ("services/outcomes/survival.py", "fit_kaplan_meier")}  # its never-raising view
    found = [f"{rel}:{site}"
             for path in sorted(package.rglob("*.py"))
             for rel in [path.relative_to(package).as_posix()]
             for site in kaplan_meier_sites(kcsource.tree(path))
             if (rel, site.rsplit(" ", 1)[-1]) not in allowed]
    assert not found, found

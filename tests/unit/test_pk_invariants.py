"""Invariants of linear PK: linearity, superposition, zero dose, mass balance, monotone decline."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kctest import examples

from ketaclinic.clinical.pk import (
    Bolus,
    Covariates,
    Infusion,
    NasalDose,
    OralDose,
    Regimen,
    simulate_population,
    simulate_regimen,
    summarize_population,
)
from ketaclinic.clinical.pk.registry import get_model
from ketaclinic.clinical.pk.simulate import individual_system

COV = Covariates()
TIMES = np.arange(0, 1441, 10.0)
MIXED = {
    "kamp2020": Regimen(infusions=(Infusion(35, 40, 0),), boluses=(Bolus(5, 100),)),
    "fanta2015": Regimen(infusions=(Infusion(20, 40, 0),), oral=(OralDose(50, 200),)),
    "perez-ruixo2021": Regimen(nasal=(NasalDose(56, 0),), oral=(OralDose(28, 300),)),
    "simons2022": Regimen(oral=(OralDose(50, 0),), infusions=(Infusion(20, 20, 360),)),
}


def conc(model_id, regimen, times=TIMES):
    return simulate_regimen(model_id, COV, regimen, times).concentration_ng_per_ml


@pytest.mark.parametrize("model_id", list(MIXED))
def test_doubling_every_dose_doubles_every_concentration(model_id):
    # nasal doses are whole devices with a later-device factor, so only IV and oral are scaled
    r = MIXED[model_id]
    r = Regimen(infusions=r.infusions, boluses=r.boluses, oral=r.oral)
    single, double = conc(model_id, r), conc(model_id, r.scaled(2.0))
    for analyte in single:
        np.testing.assert_allclose(double[analyte], 2 * single[analyte], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("model_id", list(MIXED))
def test_a_regimen_is_the_sum_of_its_parts(model_id):
    r = MIXED[model_id]
    parts = [
        Regimen(infusions=r.infusions),
        Regimen(boluses=r.boluses),
        Regimen(nasal=r.nasal),
        Regimen(oral=r.oral),
    ]
    total = conc(model_id, r)
    summed = [conc(model_id, p) for p in parts]
    for analyte in total:
        np.testing.assert_allclose(
            total[analyte], sum(s[analyte] for s in summed), rtol=1e-9, atol=1e-9
        )


@pytest.mark.parametrize(
    "model_id",
    ["domino", "clements", "kamp2020", "hijazi", "fanta2015", "perez-ruixo2021", "simons2022"],
)
def test_zero_dose_gives_zero_everywhere(model_id):
    route = get_model(model_id).routes[0]
    regimen = {
        "iv-infusion": Regimen(infusions=(Infusion(0, 40, 0),)),
        "nasal": Regimen(nasal=(NasalDose(0, 0),)),
        "oral": Regimen(oral=(OralDose(0, 0),)),
    }[route]
    for c in conc(model_id, regimen).values():
        assert np.all(c == 0)


@pytest.mark.parametrize("model_id", ["domino", "clements", "kamp2020", "hijazi"])
def test_iv_mass_balance_dose_equals_clearance_times_auc(model_id):
    model = get_model(model_id)
    system = individual_system(model, COV, model.typical_params(1))
    cl_l_per_h = system.eliminated_analyte_clearance_l_per_min["ketamine"][0] * 60
    summary = summarize_population(
        model_id, COV, Regimen(infusions=(Infusion(35, 40, 0),)), (0, 1e7)
    )
    auc_mg_h_per_l = summary.analytes["ketamine"].auc_ng_h_per_ml[0] / 1000
    assert auc_mg_h_per_l * cl_l_per_h == pytest.approx(35.0, rel=1e-8)


def test_kamp_concentration_declines_monotonically_after_the_last_infusion():
    c = conc("kamp2020", Regimen(infusions=(Infusion(35, 40, 0),)), np.arange(40, 5000, 1.0))[
        "ketamine"
    ]
    assert np.all(np.diff(c) < 0)


def test_summary_peak_and_time_above_match_a_fine_grid():
    r = Regimen(infusions=(Infusion(35, 40, 0), Infusion(35, 40, 2880)))
    s = summarize_population("kamp2020", COV, r, (0, 5000), threshold_ng_per_ml=100).analytes[
        "ketamine"
    ]
    grid = np.arange(0, 5000, 0.01)
    c = conc("kamp2020", r, grid)["ketamine"]
    assert s.cmax_ng_per_ml[0] == pytest.approx(c.max(), rel=1e-6)
    assert s.time_above_min[0] == pytest.approx((c >= 100).sum() * 0.01, abs=0.05)
    assert s.auc_ng_h_per_ml[0] == pytest.approx(np.trapezoid(c, grid) / 60, rel=1e-4)


def test_summary_finds_an_interior_peak_after_oral_dosing():
    r = Regimen(oral=(OralDose(50, 0),))
    s = summarize_population(
        "fanta2015", COV, r, (0, 1440), threshold_ng_per_ml=1, variability=0
    ).analytes["s-norketamine"]
    grid = np.arange(0, 1440, 0.05)
    c = conc("fanta2015", r, grid)["s-norketamine"]
    assert s.cmax_ng_per_ml[0] == pytest.approx(c.max(), rel=1e-6)
    assert s.tmax_min[0] == pytest.approx(grid[np.argmax(c)], abs=0.1)


def test_population_with_same_seed_is_reproducible_and_percentiles_are_ordered():
    r = Regimen(nasal=(NasalDose(56, 0),))
    a = simulate_population("perez-ruixo2021", COV, r, TIMES, n=200, seed=7)
    b = simulate_population("perez-ruixo2021", COV, r, TIMES, n=200, seed=7)
    np.testing.assert_array_equal(
        a.concentration_ng_per_ml["esketamine"], b.concentration_ng_per_ml["esketamine"]
    )
    p = a.percentiles()["esketamine"]
    assert np.all(p["p5"] <= p["p50"]) and np.all(p["p50"] <= p["p95"])
    assert np.any(p["p95"] > p["p5"])


def test_population_without_published_variability_warns_and_is_identical():
    pop = simulate_population("kamp2020", COV, MIXED["kamp2020"], TIMES, n=5, seed=1)
    c = pop.concentration_ng_per_ml["ketamine"]
    assert np.all(c == c[0]) and any("no inter-individual" in w for w in pop.warnings)


def test_population_with_user_variability_spreads_and_matches_single_patient_solver():
    pop = simulate_population(
        "simons2022", COV, MIXED["simons2022"], TIMES, n=3, seed=3, variability=0.3
    )
    c = pop.concentration_ng_per_ml["s-ketamine"]
    assert not np.allclose(c[0], c[1])


dose = st.floats(0, 100, allow_nan=False)
start = st.integers(0, 3000)


@settings(max_examples=examples(40), deadline=None)
@given(
    st.lists(st.tuples(dose, st.floats(1, 120), start), max_size=3),
    st.lists(st.tuples(dose, start), max_size=2),
    st.floats(0.1, 10),
)
def test_random_iv_regimens_agree_between_methods_and_scale_linearly(infs, boluses, factor):
    infusions, end = [], 0.0
    for d, dur, s in sorted(infs, key=lambda x: x[2]):
        s = max(float(s), end)
        infusions.append(Infusion(d, dur, s))
        end = s + dur
    r = Regimen(infusions=tuple(infusions), boluses=tuple(Bolus(d, float(s)) for d, s in boluses))
    times = np.arange(0, 4000, 7.0)
    modal = simulate_regimen("kamp2020", COV, r, times, method="modal").concentration_ng_per_ml[
        "ketamine"
    ]
    expo = simulate_regimen("kamp2020", COV, r, times, method="expm").concentration_ng_per_ml[
        "ketamine"
    ]
    np.testing.assert_allclose(modal, expo, rtol=1e-7, atol=1e-9)
    scaled = simulate_regimen("kamp2020", COV, r.scaled(factor), times).concentration_ng_per_ml[
        "ketamine"
    ]
    np.testing.assert_allclose(scaled, factor * modal, rtol=1e-9, atol=1e-9)
    assert np.all(modal >= -1e-9)


@settings(max_examples=examples(25), deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 5000)), min_size=1, max_size=3))
def test_random_nasal_courses_are_non_negative_and_superpose(doses):
    nasal = tuple(NasalDose(28.0 * k, float(s)) for k, s in doses)
    times = np.arange(0, 6000, 13.0)
    c = conc("perez-ruixo2021", Regimen(nasal=nasal), times)
    parts = [conc("perez-ruixo2021", Regimen(nasal=(n,)), times) for n in nasal]
    for analyte in c:
        assert np.all(c[analyte] >= -1e-9)
        np.testing.assert_allclose(c[analyte], sum(p[analyte] for p in parts), rtol=1e-9, atol=1e-9)


def test_a_second_nasal_device_adds_less_than_the_first():
    one = conc("perez-ruixo2021", Regimen(nasal=(NasalDose(28, 0),)), TIMES)["esketamine"]
    two = conc("perez-ruixo2021", Regimen(nasal=(NasalDose(56, 0),)), TIMES)["esketamine"]
    assert two.max() < 2 * one.max()

"""The fast paths of the PK engine agree with the general ones."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kctest import examples

from ketaclinic.clinical.pk import (
    Covariates,
    Infusion,
    Regimen,
    simulate_regimen,
    summarize_population,
)
from ketaclinic.clinical.pk.eigen import arrow_eigen, lapack_eigen
from ketaclinic.clinical.pk.racemic import mammillary

COV = Covariates(weight_kg=70)


@settings(max_examples=examples(100), deadline=None)
@given(
    st.lists(st.floats(1e-4, 2.0), min_size=5, max_size=5),
    st.booleans(),
)
def test_closed_form_arrow_eigen_matches_lapack(rates, three):
    k10, k12, k21, k13, k31 = (np.array([r]) for r in rates)
    sys = mammillary(
        np.array([10.0]), k10, k12, k21, k13 if three else None, k31 if three else None
    )
    fast, ref = arrow_eigen(sys.a_per_min), lapack_eigen(sys.a_per_min)
    if fast is None:  # near-equal peripheral rates are left to LAPACK on purpose
        return
    np.testing.assert_allclose(fast[0], ref[0], rtol=1e-10, atol=1e-14 * np.abs(ref[0]).max())
    # the decomposition reproduces A
    a = np.einsum("nik,nk,nkj->nij", fast[1], fast[0], fast[2])
    np.testing.assert_allclose(a, sys.a_per_min, atol=1e-11 * np.abs(sys.a_per_min).max())


def test_a_slow_infusion_after_a_large_one_peaks_inside_the_infusion_and_it_is_found():
    # the residual decline outpaces the small new input after a few minutes: the concentration
    # rises then falls during the second infusion, so "the peak is at an infusion end" does not
    # hold in general; the slope test at the segment ends detects it and the peak is located
    r = Regimen(infusions=(Infusion(200, 10, 0), Infusion(30, 600, 300)))
    s = summarize_population("kamp2020", COV, r, (300, 3000), threshold_ng_per_ml=5).analytes[
        "ketamine"
    ]
    grid = np.arange(300, 3000, 0.01)
    c = simulate_regimen("kamp2020", COV, r, grid).concentration_ng_per_ml["ketamine"]
    assert 300 < s.tmax_min[0] < 900  # strictly inside the infusion
    assert s.tmax_min[0] == pytest.approx(grid[np.argmax(c)], abs=0.02)
    assert s.cmax_ng_per_ml[0] == pytest.approx(c.max(), rel=1e-6)
    assert s.time_above_min[0] == pytest.approx((c >= 5).sum() * 0.01, abs=0.05)


def test_concentration_falls_between_infusions_for_iv_mammillary_models():
    r = Regimen(infusions=(Infusion(35, 40, 0), Infusion(35, 40, 300)))
    t = np.arange(40, 300, 0.5)
    c = simulate_regimen("kamp2020", COV, r, t).concentration_ng_per_ml["ketamine"]
    assert np.all(np.diff(c) < 0)


def test_population_summaries_match_a_fine_grid_patient_by_patient():
    r = Regimen(infusions=(Infusion(35, 40, 0), Infusion(35, 40, 1440), Infusion(35, 40, 2880)))
    s = summarize_population(
        "kamp2020", COV, r, (0, 4000), n=20, seed=4, variability=0.3, threshold_ng_per_ml=80
    ).analytes["ketamine"]
    from ketaclinic.clinical.pk import simulate_population

    grid = np.arange(0, 4000, 0.02)
    c = simulate_population(
        "kamp2020", COV, r, grid, n=20, seed=4, variability=0.3
    ).concentration_ng_per_ml["ketamine"]
    np.testing.assert_allclose(s.cmax_ng_per_ml, c.max(axis=1), rtol=1e-6)
    np.testing.assert_allclose(s.time_above_min, (c >= 80).sum(axis=1) * 0.02, atol=0.1)
    np.testing.assert_allclose(s.auc_ng_h_per_ml, np.trapezoid(c, grid, axis=1) / 60, rtol=1e-4)


def test_the_uniform_grid_path_equals_the_pointwise_path_across_events():
    r = Regimen(infusions=(Infusion(35, 40, 3.3), Infusion(35, 17.5, 700.25)))
    t = np.arange(0, 3000, 0.75)
    grid = simulate_regimen("kamp2020", COV, r, t).concentration_ng_per_ml["ketamine"]
    jitter = t.copy()
    jitter[1] += 1e-3  # not uniform: the pointwise path
    point = simulate_regimen("kamp2020", COV, r, jitter).concentration_ng_per_ml["ketamine"]
    np.testing.assert_allclose(np.delete(grid, 1), np.delete(point, 1), rtol=1e-10, atol=1e-12)


def test_the_matrix_exponential_fallback_matches_the_modal_solution_for_a_population():
    from ketaclinic.clinical.pk import NasalDose, OralDose
    from ketaclinic.clinical.pk.engine import simulate_system
    from ketaclinic.clinical.pk.population import sample_parameters
    from ketaclinic.clinical.pk.registry import get_model
    from ketaclinic.clinical.pk.simulate import individual_system, regimen_pulses

    model = get_model("perez-ruixo2021")
    system = individual_system(model, COV, sample_parameters(model, 5, seed=2))
    pulses = regimen_pulses(
        system, Regimen(nasal=(NasalDose(56, 10.25),), oral=(OralDose(50, 700),))
    )
    # a point before the first dose, an irregular one, then a grid whose steps are not exact
    times = np.concatenate([[0.0, 3.3], np.linspace(5.0, 1500.0, 997)])
    modal, how_modal = simulate_system(system, pulses, times, "modal")
    expo, how_expm = simulate_system(system, pulses, times, "expm")
    assert (how_modal, how_expm) == ("modal", "expm")
    assert np.all(expo[:, :, :2] == 0.0)
    np.testing.assert_allclose(expo, modal, rtol=1e-8, atol=1e-12 * modal.max())

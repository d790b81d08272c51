"""The fast paths of the PK engine agree with the general ones."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from kctest import examples

from ketaclinic.clinical.pk import (
    Covariates,
    Infusion,
    Regimen,
    simulate_regimen,
    summarize_population,
)
from ketaclinic.clinical.pk.eigen import (
    COINCIDENT_RTOL,
    arrow_eigen,
    decompose,
    lapack_eigen,
)
from ketaclinic.clinical.pk.racemic import mammillary

COV = Covariates(weight_kg=70)
# k10, k12, k21, k13, k31 (1/min): equal peripheral rates made the closed form return
# -0.157 and -0.009 instead of -1e-4 and -9.999e-5 (found by Hypothesis)
EQUAL_PERIPHERALS = (2.0, 1e-4, 1e-4, 1e-4, 1e-4)


def three_compartments(*rows):
    """Mammillary systems (V1 10 L), one patient per row of (k10, k12, k21, k13, k31)."""
    k = np.array(rows, dtype=float).T
    return mammillary(np.full(k.shape[1], 10.0), k[0], k[1], k[2], k[3], k[4])


@settings(max_examples=examples(100), deadline=None)
@given(
    st.lists(st.floats(1e-4, 2.0), min_size=5, max_size=5),
    st.booleans(),
)
@example(rates=list(EQUAL_PERIPHERALS), three=True)
@example(rates=[2.0, 1e-4, 1e-4, 1e-4, 1e-4 * (1 + 1e-9)], three=True)
@example(rates=[0.3, 0.05, 0.02, 0.05, 0.02], three=True)
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


def test_equal_peripheral_rates_leave_the_eigen_decomposition_to_lapack():
    a = three_compartments(EQUAL_PERIPHERALS).a_per_min
    assert arrow_eigen(a) is None
    lam, v, w = decompose(a)
    # d0 = −2.0002, d1 = d2 = −1e-4, b1² = b2² = 1e-8: det(A − λI) = (d1 − λ)·q(λ) with
    # q(λ) = (d0 − λ)(d1 − λ) − 2e-8 = λ² + 2.0003 λ + 2.0000e-4, so −1e-4 is an eigenvalue
    # and the other two are q's roots (the small one as c / big, without cancellation)
    big = (-2.0003 - np.sqrt(2.0003**2 - 4 * 2.0e-4)) / 2
    np.testing.assert_allclose(lam[0], [big, -1e-4, 2.0e-4 / big], rtol=1e-12)
    np.testing.assert_allclose(np.einsum("nik,nk,nkj->nij", v, lam, w), a, atol=1e-15)


def test_nearly_equal_peripheral_rates_use_the_closed_form_only_when_it_is_accurate():
    # peripheral rates apart by 1e-1 … 1e-15 (relative), across four decades of rates: the
    # closed form either declines or agrees with LAPACK; below COINCIDENT_RTOL it always declines
    rng = np.random.default_rng(7)
    declined = 0
    for k in range(1, 16):
        rates = 10 ** rng.uniform(-4, np.log10(2), size=(40, 5))
        rates[:, 4] = rates[:, 2] * (1 + 10.0**-k * rng.uniform(-1, 1, size=40))
        for row in rates:
            a = three_compartments(row).a_per_min
            fast, ref = arrow_eigen(a), lapack_eigen(a)
            d = np.diagonal(a[0])
            if abs(d[1] - d[2]) <= COINCIDENT_RTOL * np.abs(d).max():
                assert fast is None
            if fast is None:
                declined += 1
                continue
            np.testing.assert_allclose(
                fast[0], ref[0], rtol=1e-10, atol=1e-14 * np.abs(ref[0]).max()
            )
            rebuilt = np.einsum("nik,nk,nkj->nij", fast[1], fast[0], fast[2])
            np.testing.assert_allclose(rebuilt, a, atol=1e-11 * np.abs(a).max())
    assert 0 < declined < 15 * 40  # both branches were exercised


@pytest.mark.parametrize("model_id", ["domino", "clements", "kamp2020", "hijazi"])
def test_the_published_mammillary_models_keep_the_closed_form(model_id):
    from ketaclinic.clinical.pk.population import sample_parameters
    from ketaclinic.clinical.pk.registry import get_model
    from ketaclinic.clinical.pk.simulate import individual_system

    model = get_model(model_id)
    for params in (model.typical_params(1), sample_parameters(model, 2000, 3, 0.3)):
        assert arrow_eigen(individual_system(model, COV, params).a_per_min) is not None


@pytest.mark.parametrize(
    "rates",
    [EQUAL_PERIPHERALS, (0.056, 0.107, 0.02, 0.053, 0.02), (0.056, 0.107, 0.02, 0.053, 0.0200001)],
)
def test_concentrations_with_equal_peripheral_rates_match_the_matrix_exponential(rates):
    from ketaclinic.clinical.pk.engine import simulate_system
    from ketaclinic.clinical.pk.simulate import regimen_pulses

    system = three_compartments(rates)
    pulses = regimen_pulses(
        system, Regimen(infusions=(Infusion(35, 40, 0), Infusion(35, 40, 2880)))
    )
    times = np.concatenate([[0.0, 3.3], np.linspace(5.0, 20160.0, 1201)])
    modal, how_modal = simulate_system(system, pulses, times, "modal")
    expo, how_expm = simulate_system(system, pulses, times, "expm")
    assert (how_modal, how_expm) == ("modal", "expm")
    np.testing.assert_allclose(modal, expo, rtol=1e-9, atol=1e-12 * expo.max())


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

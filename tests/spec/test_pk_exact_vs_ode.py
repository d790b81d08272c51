"""The exact PK solutions agree with a tight ODE solver for every model and supported route."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from ketaclinic.clinical.pk import (
    Bolus,
    Covariates,
    Infusion,
    NasalDose,
    OralDose,
    Regimen,
    simulate_regimen,
)
from ketaclinic.clinical.pk.engine import build_schedule
from ketaclinic.clinical.pk.registry import get_model
from ketaclinic.clinical.pk.simulate import individual_system, regimen_pulses

COV = Covariates(weight_kg=80, age_years=45, sex="female", height_cm=165)
TIMES = np.concatenate([np.arange(0, 120, 3.0), np.arange(120, 1441, 20.0)])

ROUTE_REGIMENS = {
    "iv-infusion": Regimen(infusions=(Infusion(35, 40, 0), Infusion(20, 30, 300))),
    "iv-bolus": Regimen(boluses=(Bolus(10, 0), Bolus(5, 200))),
    "nasal": Regimen(nasal=(NasalDose(84, 0), NasalDose(28, 600))),
    "oral": Regimen(oral=(OralDose(50, 0), OralDose(25, 480))),
}
CASES = [
    (m, r)
    for m in [
        "domino",
        "clements",
        "kamp2020",
        "hijazi",
        "fanta2015",
        "perez-ruixo2021",
        "simons2022",
    ]
    for r in get_model(m).routes
]


def ode_reference(model_id, regimen, times):
    model = get_model(model_id)
    system = individual_system(model, COV, model.typical_params(1))
    pulses = regimen_pulses(system, regimen)
    sched = build_schedule(pulses, 1, system.a_per_min.shape[1], times[0])
    a = system.a_per_min[0]
    x = np.zeros(a.shape[0])
    out = np.zeros((len(system.analytes), times.size))
    edges = list(sched.t_min) + [times[-1] + 1.0]
    for s in range(sched.t_min.size):
        x = x + sched.bolus_mg[s, 0]
        u = sched.rate_mg_per_min[s, 0]
        t_lo, t_hi = edges[s], max(edges[s + 1], edges[s])
        mask = (times >= t_lo) & (times < t_hi)
        sol = solve_ivp(
            lambda t, y, u=u: a @ y + u,
            (t_lo, t_hi),
            x,
            method="LSODA",
            rtol=1e-10,
            atol=1e-14,
            t_eval=np.append(times[mask], t_hi),
            jac=lambda t, y: a,
        )
        out[:, mask] = system.c_per_l[0] @ sol.y[:, :-1]
        x = sol.y[:, -1]
    return system.analytes, out * 1000.0


@pytest.mark.parametrize(("model_id", "route"), CASES)
def test_exact_solution_matches_tight_ode_solver(model_id, route):
    regimen = ROUTE_REGIMENS[route]
    sim = simulate_regimen(model_id, COV, regimen, TIMES)
    analytes, ref = ode_reference(model_id, regimen, TIMES)
    for j, analyte in enumerate(analytes):
        got = sim.concentration_ng_per_ml[analyte]
        peak = ref[j].max()
        assert peak > 0
        mask = ref[j] > 1e-6 * peak
        rel = np.abs(got[mask] - ref[j][mask]) / ref[j][mask]
        assert rel.max() < 1e-6, (analyte, rel.max())


def test_uniform_grid_fast_path_equals_pointwise_evaluation():
    regimen = Regimen(infusions=tuple(Infusion(35, 40, d * 1440 + 7.5) for d in (0, 2, 4)))
    grid = np.arange(0, 8000, 1.0)
    fast = simulate_regimen("kamp2020", COV, regimen, grid).concentration_ng_per_ml["ketamine"]
    slow = np.concatenate(
        [
            simulate_regimen("kamp2020", COV, regimen, chunk).concentration_ng_per_ml["ketamine"]
            for chunk in np.array_split(grid, 40)
        ]
    )
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("model_id", ["kamp2020", "fanta2015", "perez-ruixo2021"])
def test_modal_and_matrix_exponential_methods_agree(model_id):
    route = get_model(model_id).routes[0]
    regimen = ROUTE_REGIMENS[route]
    modal = simulate_regimen(model_id, COV, regimen, TIMES, method="modal")
    expo = simulate_regimen(model_id, COV, regimen, TIMES, method="expm")
    assert modal.method == "modal" and expo.method == "expm"
    for analyte, c in modal.concentration_ng_per_ml.items():
        np.testing.assert_allclose(c, expo.concentration_ng_per_ml[analyte], rtol=1e-8, atol=1e-9)

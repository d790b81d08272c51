"""PK benchmark (issue 6): ratios against references timed in the same process; never asserts.

Course: six 0.5 mg/kg 40-min infusions (days 0, 2, 4, 7, 9, 11), 70 kg, Kamp 2020 parameters,
evaluated over 21 days at 1-minute resolution (30,240 points).

Run: PYTHONPATH=src python benchmarks/bench_pk.py
"""

from __future__ import annotations

import time

import numpy as np
from scipy.integrate import solve_ivp

from ketaclinic.clinical.pk import (
    Covariates,
    Infusion,
    Regimen,
    simulate_population,
    simulate_regimen,
    summarize_population,
)
from ketaclinic.clinical.pk.engine import build_schedule
from ketaclinic.clinical.pk.population import sample_parameters
from ketaclinic.clinical.pk.registry import get_model
from ketaclinic.clinical.pk.simulate import individual_system, regimen_pulses

COV = Covariates(weight_kg=70)
DAYS = (0, 2, 4, 7, 9, 11)
REGIMEN = Regimen(infusions=tuple(Infusion(0.5 * 70, 40, d * 1440.0) for d in DAYS))
TIMES = np.arange(0, 21 * 1440, 1.0)  # 30,240 points


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def solve_ivp_one(system, pulses, i=0):
    """LSODA (rtol 1e-10) integrated segment by segment, evaluated on the same grid."""
    sched = build_schedule(pulses, system.n_patients, system.a_per_min.shape[1], TIMES[0])
    a = system.a_per_min[i]
    x = np.zeros(a.shape[0])
    out = np.zeros(TIMES.size)
    edges = list(sched.t_min) + [TIMES[-1] + 1]
    for s in range(sched.t_min.size):
        x = x + sched.bolus_mg[s, i]
        u = sched.rate_mg_per_min[s, i]
        mask = (TIMES >= edges[s]) & (TIMES < edges[s + 1])
        sol = solve_ivp(
            lambda t, y, u=u: a @ y + u,
            (edges[s], edges[s + 1]),
            x,
            method="LSODA",
            rtol=1e-10,
            atol=1e-12,
            t_eval=np.append(TIMES[mask], edges[s + 1]),
        )
        out[mask] = system.c_per_l[i, 0] @ sol.y[:, :-1]
        x = sol.y[:, -1]
    return out


def opentiva_reference(ours: float, exact: np.ndarray) -> None:
    """Optional: opentiva's Pump.run() (1-second grid), same course and Kamp parameters.

    Install for the benchmark only (not a dependency):
    ``pip install cython wheel && pip install --no-build-isolation opentiva==1.1.2``.
    """
    try:
        from opentiva.ketamine import Klamp
        from opentiva.pump import Pump
    except ImportError:
        print(
            "    opentiva not installed: comparison skipped (target >= 1,000x; see docs/pk.md)"
        )
        return

    def run() -> np.ndarray:
        pump = Pump(Klamp(0, COV.age_years, COV.weight_kg, COV.height_cm), 10, 21 * 86400)
        for d in DAYS:  # dose per second over 2,400 s
            pump.add_infusion(d * 86400, 0.5 * COV.weight_kg / 2400, 2400)
        return pump.run()

    t = time.perf_counter()
    out = run()
    ref = time.perf_counter() - t
    cp = out[::60, 1][: TIMES.size] * 1000  # mg/L -> ng/mL at the same minutes
    mask = cp > 1e-3 * cp.max()
    err = np.max(np.abs(exact[mask] - cp[mask]) / cp[mask])
    print(
        f"    opentiva Pump.run (1-s grid) {ref:.2f} s -> {ref / ours:,.0f}x faster "
        f"(target >= 1,000x); max rel diff at the minutes {err:.1e}"
    )


def main() -> None:
    model = get_model("kamp2020")
    print(
        "PK benchmark: 6 x 0.5 mg/kg/40 min over 2 weeks, "
        "21 days at 1 min (30,240 points), kamp2020"
    )

    # (a) one patient
    ours = best_of(lambda: simulate_regimen("kamp2020", COV, REGIMEN, TIMES), 5)
    system = individual_system(model, COV, model.typical_params(1))
    pulses = regimen_pulses(system, REGIMEN)
    ref = best_of(lambda: solve_ivp_one(system, pulses), 2)
    exact = simulate_regimen("kamp2020", COV, REGIMEN, TIMES).concentration_ng_per_ml["ketamine"]
    lsoda = solve_ivp_one(system, pulses) * 1000
    mask = lsoda > 1e-6 * lsoda.max()
    err = np.max(np.abs(exact[mask] - lsoda[mask]) / lsoda[mask])
    print(
        f"(a) one patient: ours {ours * 1e3:.2f} ms, solve_ivp LSODA {ref * 1e3:.1f} ms "
        f"-> {ref / ours:.0f}x faster (target >= 100x); max rel diff {err:.1e}"
    )
    opentiva_reference(ours, exact)

    # (b) 1,000 patients, 30 % CV on every parameter, full grid
    n = 1000
    ours_b = best_of(
        lambda: simulate_population("kamp2020", COV, REGIMEN, TIMES, n=n, seed=1, variability=0.3),
        2,
    )
    pop_system = individual_system(model, COV, sample_parameters(model, n, 1, 0.3))
    pop_pulses = regimen_pulses(pop_system, REGIMEN)
    k = 10
    t = time.perf_counter()
    for i in range(k):
        solve_ivp_one(pop_system, pop_pulses, i)
    loop_est = (time.perf_counter() - t) / k * n
    arr = np.random.default_rng(0).uniform(-5, 0, size=n * TIMES.size)
    floor = best_of(lambda: np.exp(arr), 3)
    print(
        f"(b) {n} patients x {TIMES.size} points: ours {ours_b:.3f} s; looping solve_ivp "
        f"estimated {loop_est:.1f} s (timed {k} patients, scaled) -> "
        f"{loop_est / ours_b:.0f}x faster (target >= 200x)"
    )
    print(
        f"    one np.exp over {arr.size:,} values: {floor:.3f} s -> "
        f"ours / floor = {ours_b / floor:.2f} (target <= 3)"
    )

    # (c) 100,000 patients, per-patient summaries of the course
    n_c = 100_000
    ours_c = best_of(
        lambda: summarize_population(
            "kamp2020",
            COV,
            REGIMEN,
            (0, TIMES[-1]),
            n=n_c,
            seed=1,
            variability=0.3,
            threshold_ng_per_ml=100,
        ),
        2,
    )
    print(
        f"(c) {n_c:,} patients, Cmax/Tmax/AUC/time above 100 ng/mL without a grid: {ours_c:.3f} s "
        f"-> {ours_c / 1.0:.2f} of the 1 s budget"
    )


if __name__ == "__main__":
    main()

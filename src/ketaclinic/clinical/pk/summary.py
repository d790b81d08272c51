"""Per-patient summaries of a course without a time grid: Cmax, Tmax, AUC, time above a level.

On each segment between events the modal solution is c(τ) = H + Σ G_k e^{λ_k τ}:

* AUC is integrated in closed form, H·Δ + Σ G_k (e^{λ_k τ₁} − e^{λ_k τ₀}) / λ_k.
* Cmax is the largest of the segment ends and of the interior stationary point of each segment
  whose slope turns from positive to negative (found by bisection on the slope).
* Time above a threshold splits each segment at that stationary point into monotone pieces and
  finds each crossing by safeguarded bisection/Newton. A segment is assumed to have at most one
  interior maximum (true for every model here under ordinary regimens).

Models without a modal solution (defective transit chains) fall back to a 1-minute grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ketaclinic.clinical.pk.engine import ModalSolution, modal_solution, simulate_system
from ketaclinic.clinical.pk.population import sample_parameters
from ketaclinic.clinical.pk.regimen import Covariates, Regimen
from ketaclinic.clinical.pk.simulate import (
    NG_PER_ML_PER_MG_PER_L,
    individual_system,
    prepare,
    regimen_pulses,
    validity_warnings,
)
from ketaclinic.clinical.rules import ClinicalInputError

BISECTIONS = 40
NEWTON_STEPS = 6


@dataclass(frozen=True)
class AnalyteSummary:
    """Per-patient arrays (N,): peak ng/mL, its time (min), AUC (ng·h/mL), minutes above threshold."""

    cmax_ng_per_ml: np.ndarray
    tmax_min: np.ndarray
    auc_ng_h_per_ml: np.ndarray
    time_above_min: np.ndarray

    def percentiles(self, q=(5.0, 50.0, 95.0)) -> dict[str, list[float]]:
        return {
            name: np.percentile(getattr(self, name), q).tolist()
            for name in ("cmax_ng_per_ml", "tmax_min", "auc_ng_h_per_ml", "time_above_min")
        }


@dataclass(frozen=True)
class PopulationSummary:
    model_id: str
    window_min: tuple[float, float]
    threshold_ng_per_ml: float
    analytes: Mapping[str, AnalyteSummary]
    method: str
    warnings: tuple[str, ...]


def _value(
    sol: ModalSolution, a: int, seg: np.ndarray, tau: np.ndarray, deriv: bool = False
) -> np.ndarray:
    """c(τ) (or dc/dτ) for patient rows and segment columns; seg (S,), tau (N, S)."""
    g = sol.g[seg, :, a, :]  # (S, N, K)
    acc = np.zeros(tau.shape, dtype=g.dtype) if deriv else sol.h[seg, :, a].T.copy()
    for k in range(g.shape[-1]):
        lam = sol.lam[:, k][:, None]
        term = g[:, :, k].T * np.exp(lam * tau)
        acc += term * lam if deriv else term
    return np.real(acc)


class _Pairs:
    """c(τ) and dc/dτ for flat lists of (patient, segment) pairs, with coefficients gathered once."""

    def __init__(self, sol: ModalSolution, a: int, rows: np.ndarray, segs: np.ndarray) -> None:
        self.g = np.ascontiguousarray(sol.g[segs, rows, a, :].T)  # (K, P)
        self.h = sol.h[segs, rows, a]
        self.lam = np.ascontiguousarray(sol.lam[rows].T)

    def both(self, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        value, slope = self.h.copy(), np.zeros_like(self.h)
        for g, lam in zip(self.g, self.lam, strict=True):
            term = g * np.exp(lam * tau)
            value += term
            slope += term * lam
        return np.real(value), np.real(slope)

    def value(self, tau: np.ndarray) -> np.ndarray:
        return self.both(tau)[0]

    def slope(self, tau: np.ndarray) -> np.ndarray:
        return self.both(tau)[1]


def _root(
    fun, lo: np.ndarray, hi: np.ndarray, rising: np.ndarray, level: float = 0.0, deriv=None
) -> np.ndarray:
    """Root of a monotone function on [lo, hi] (rising: below level at lo).

    A few bisections shrink the bracket, then safeguarded Newton steps (when a derivative is
    given) or further bisections finish it.
    """
    steps = BISECTIONS if deriv is None else 6
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        up = (fun(mid) > level) == rising
        hi = np.where(up, mid, hi)
        lo = np.where(up, lo, mid)
    if deriv is None:
        return 0.5 * (lo + hi)
    t = 0.5 * (lo + hi)
    for _ in range(NEWTON_STEPS):
        f, df = deriv(t)
        up = (f > level) == rising
        hi, lo = np.where(up, t, hi), np.where(up, lo, t)
        with np.errstate(divide="ignore", invalid="ignore"):
            nxt = t - (f - level) / df
        inside = np.isfinite(nxt) & (nxt > lo) & (nxt < hi)
        t = np.where(inside, nxt, 0.5 * (lo + hi))
    return t


def _segment_bounds(sol: ModalSolution, window: tuple[float, float]) -> tuple[np.ndarray, ...]:
    t0, t1 = window
    starts = sol.t_min
    ends = np.append(starts[1:], np.inf)
    lo, hi = np.maximum(starts, t0), np.minimum(ends, t1)
    keep = np.nonzero(hi > lo)[0]
    return keep, lo[keep] - starts[keep], hi[keep] - starts[keep]


def summarize_modal(
    sol: ModalSolution, a: int, window: tuple[float, float], threshold_mg_per_l: float
):
    segs, tau_lo, tau_hi = _segment_bounds(sol, window)
    n = sol.lam.shape[0]
    lo = np.broadcast_to(tau_lo, (n, segs.size))
    hi = np.broadcast_to(tau_hi, (n, segs.size))
    c_lo, c_hi = _value(sol, a, segs, lo), _value(sol, a, segs, hi)
    # AUC in closed form
    integ = sol.h[segs, :, a].T * (hi - lo)
    for k in range(sol.lam.shape[1]):
        lam = sol.lam[:, k][:, None]
        integ = integ + sol.g[segs, :, a, k].T * (np.exp(lam * hi) - np.exp(lam * lo)) / lam
    auc = np.real(integ.sum(axis=1))
    # interior maxima
    d_lo, d_hi = _value(sol, a, segs, lo, True), _value(sol, a, segs, hi, True)
    peak_inside = (d_lo > 0) & (d_hi < 0)
    t_star = np.array(hi, copy=True)
    rows, cols = np.nonzero(peak_inside)
    if rows.size:
        pairs = _Pairs(sol, a, rows, segs[cols])
        t_star[rows, cols] = _root(
            pairs.slope, lo[rows, cols].copy(), hi[rows, cols].copy(), np.zeros(rows.size, bool)
        )
    c_star = np.where(peak_inside, _value(sol, a, segs, t_star), -np.inf)
    cand = np.stack([c_lo, c_hi, c_star], axis=-1).reshape(n, -1)
    cand_t = np.stack([lo, hi, t_star], axis=-1) + sol.t_min[segs][None, :, None]
    best = np.argmax(cand, axis=1)
    cmax = cand[np.arange(n), best]
    tmax = cand_t.reshape(n, -1)[np.arange(n), best]
    above = _time_above(
        sol, a, segs, lo, t_star, c_lo, np.where(peak_inside, c_star, c_hi), threshold_mg_per_l
    )
    above += _time_above(
        sol,
        a,
        segs,
        t_star,
        hi,
        np.where(peak_inside, c_star, c_hi),
        c_hi,
        threshold_mg_per_l,
        only=peak_inside,
    )
    return cmax, tmax, auc, above


def _time_above(sol, a, segs, lo, hi, c_lo, c_hi, thr, only=None) -> np.ndarray:
    """Minutes above thr on monotone pieces [lo, hi] (N, S), summed per patient."""
    length = hi - lo
    both = (c_lo >= thr) & (c_hi >= thr)
    result = np.where(both, length, 0.0)
    cross = (c_lo >= thr) != (c_hi >= thr)
    if only is not None:
        result = np.where(only, result, 0.0)
        cross &= only
    rows, cols = np.nonzero(cross)
    if rows.size:
        pairs = _Pairs(sol, a, rows, segs[cols])
        rising = c_lo[rows, cols] < thr
        root = _root(
            pairs.value, lo[rows, cols].copy(), hi[rows, cols].copy(), rising, thr, pairs.both
        )
        result[rows, cols] = np.where(rising, hi[rows, cols] - root, root - lo[rows, cols])
    return result.sum(axis=1)


def _summarize_grid(conc: np.ndarray, times: np.ndarray, thr: float):
    best = np.argmax(conc, axis=1)
    step = np.diff(times)
    auc = np.sum(0.5 * (conc[:, 1:] + conc[:, :-1]) * step, axis=1)
    above = np.sum(((conc[:, 1:] >= thr) & (conc[:, :-1] >= thr)) * step, axis=1)
    return conc.max(axis=1), times[best], auc, above


def summarize_population(
    model_id: str,
    covariates: Covariates,
    regimen: Regimen,
    window_min: tuple[float, float],
    n: int = 1,
    seed: int | None = None,
    threshold_ng_per_ml: float = 100.0,
    variability: float | Mapping[str, float] | None = None,
) -> PopulationSummary:
    """Cmax, Tmax, AUC and time above a threshold for each of N virtual patients over a window."""
    t0, t1 = (float(w) for w in window_min)
    if not (np.isfinite(t0) and np.isfinite(t1) and t1 > t0):
        raise ClinicalInputError(
            f"window must be two finite minutes with end > start, got {window_min}"
        )
    if not np.isfinite(threshold_ng_per_ml) or threshold_ng_per_ml < 0:
        raise ClinicalInputError(
            f"threshold must be a finite ng/mL >= 0, got {threshold_ng_per_ml}"
        )
    model, _ = prepare(model_id, covariates, regimen, [t0, t1])
    system = individual_system(model, covariates, sample_parameters(model, n, seed, variability))
    pulses = regimen_pulses(system, regimen)
    thr = threshold_ng_per_ml / NG_PER_ML_PER_MG_PER_L
    sol = modal_solution(system, pulses, t0)
    out = {}
    if sol is not None:
        for j, analyte in enumerate(system.analytes):
            cmax, tmax, auc, above = summarize_modal(sol, j, (t0, t1), thr)
            out[analyte] = AnalyteSummary(cmax * 1000.0, tmax, auc * 1000.0 / 60.0, above)
        method = "closed form"
    else:
        times = np.linspace(t0, t1, int(round(t1 - t0)) + 1)
        conc, _ = simulate_system(system, pulses, times)
        for j, analyte in enumerate(system.analytes):
            cmax, tmax, auc, above = _summarize_grid(conc[:, j], times, thr)
            out[analyte] = AnalyteSummary(cmax * 1000.0, tmax, auc * 1000.0 / 60.0, above)
        method = "1-minute grid"
    return PopulationSummary(
        model.model_id,
        (t0, t1),
        threshold_ng_per_ml,
        out,
        method,
        validity_warnings(model, covariates),
    )

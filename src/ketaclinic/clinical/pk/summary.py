"""Per-patient summaries of a course without a time grid: Cmax, Tmax, AUC, time above a level.

On each segment between events the modal solution is c(τ) = H + Σ_k G_k e^{λ_k τ} (real λ_k,
sorted ascending), so everything is vectorised over patients × segments:

* **AUC** is integrated in closed form: H·Δτ + Σ_k G_k (e^{λ_k τ₁} − e^{λ_k τ₀}) / λ_k.
* **Where can the peak be?** The slope c'(τ) = Σ_k G_k λ_k e^{λ_k τ} is an exponential sum; by
  Descartes' rule of signs for exponential sums (Pólya–Szegő), its number of real zeros is at
  most the number of sign changes of its weights ordered by exponent — the same as the sign
  changes of (G_k) since every λ_k < 0. With at most one sign change the slope has at most one
  zero in the segment, so the signs of the slope at both segment ends decide everything: a
  stationary point exists iff they differ, and only then is it located (bracketed Newton).
  Segments with two or more sign changes (rare) are cut into SUBDIVISIONS pieces first.
* **IV mammillary models** (proof of the usual "peak at the end of an infusion"): the central
  impulse response is Σ_i r_i e^{λ_i t} with r_i = Π_j(λ_i − d_j)/Π_{l≠i}(λ_i − λ_l) where the
  peripheral rates d_j strictly interlace the λ_i, so every r_i > 0. After an input stops, every
  modal amplitude is then ≥ 0 (G_k ≥ 0, no sign change), c is a positive sum of decaying
  exponentials and strictly decreasing: no peak between infusions. During an infusion the
  weights may change sign once (residual decline vs. new input), so the peak is the infusion's
  end unless the slope turns negative inside it (e.g. a slow infusion after a large one); the
  slope test at the infusion end detects that case and its interior maximum is then located.
  So for the usual course only infusion ends are candidates and no root is searched.
* **Time above a threshold** is summed over monotone pieces: a piece counts fully, not at all,
  or up to its single crossing, found by Newton on log c from the piece's left end, kept inside
  the bracket (log c of a positive exponential sum is convex, so on decays Newton approaches
  the root monotonically in a few steps).

Models without a real modal solution (defective transit chains) fall back to a 1-minute grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ketaclinic.clinical.pk.engine import (
    ModalSolution,
    exp_clamped,
    modal_solution,
    simulate_system,
)
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

SUBDIVISIONS = 64
MAX_ITERATIONS = 60
FULL_ITERATIONS = 4
FAST_STEPS = 6
FAST_TOLERANCE_MIN = 1e-7
TOLERANCE_MIN = 1e-8


@dataclass(frozen=True)
class AnalyteSummary:
    """Per-patient arrays (N,): peak ng/mL, its time (min), AUC (ng·h/mL), minutes above."""

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


class _Terms:
    """c(τ), c'(τ), c''(τ) for a flat list of segment pieces: H (M,), G and λ (K, M)."""

    def __init__(self, g: np.ndarray, lam: np.ndarray, h: np.ndarray) -> None:
        self.g, self.lam, self.h = g, lam, h

    def take(self, idx: np.ndarray) -> _Terms:
        if idx.size == self.h.size and (idx.size == 0 or idx[-1] == idx.size - 1):
            return self  # every item, in order (indices are sorted and unique)
        return _Terms(self.g[:, idx], self.lam[:, idx], self.h[idx])

    def repeat(self, times: int) -> _Terms:
        return _Terms(
            np.repeat(self.g, times, axis=1),
            np.repeat(self.lam, times, axis=1),
            np.repeat(self.h, times),
        )

    def at(self, tau: np.ndarray, curvature: bool = True) -> tuple[np.ndarray, ...]:
        """Value, slope (and curvature); explicit loop over the few modes on 1-D arrays."""
        c, d1 = self.h.copy(), np.zeros_like(tau)
        d2 = np.zeros_like(tau) if curvature else d1
        for g, lam in zip(self.g, self.lam, strict=True):
            term = exp_clamped(lam * tau)
            term *= g
            c += term
            term *= lam
            d1 += term
            if curvature:
                term *= lam
                d2 += term
        return c, d1, d2


def _newton(fun, lo: np.ndarray, hi: np.ndarray, rising: np.ndarray) -> np.ndarray:
    """Root of monotone f on [lo, hi] (f < 0 at lo iff rising): Halley steps from lo, in bracket.

    ``fun(t, idx) -> (f, f', f'')`` for the items idx (None = all). The first FULL_ITERATIONS
    run on every item without re-gathering; then only the unconverged items iterate.
    """
    t, lo, hi = lo.copy(), lo.copy(), hi.copy()
    active = None
    for i in range(MAX_ITERATIONS):
        sel = slice(None) if active is None else active
        ta = t[sel]
        f, df, d2f = fun(ta, active)
        below = (f < 0) == rising[sel]  # the root lies right of ta
        lo_a = np.where(below, ta, lo[sel])
        hi_a = np.where(below, hi[sel], ta)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            newton = f / df
            halley = 2.0 * f * df / (2.0 * df * df - f * d2f)
        nxt = ta - halley
        ok = np.isfinite(nxt) & (nxt >= lo_a) & (nxt <= hi_a)
        nxt_n = ta - newton  # Halley overshot: a Newton step, else bisection
        ok_n = np.isfinite(nxt_n) & (nxt_n >= lo_a) & (nxt_n <= hi_a)
        nxt = np.where(ok, nxt, np.where(ok_n, nxt_n, 0.5 * (lo_a + hi_a)))
        ok |= ok_n
        nxt = np.where(f == 0, ta, nxt)
        lo[sel], hi[sel], t[sel] = lo_a, hi_a, nxt
        if i + 1 >= FULL_ITERATIONS:
            tol = TOLERANCE_MIN * (1.0 + np.abs(nxt))  # |f/f'|: distance to the root
            done = (ok & (np.abs(newton) <= tol)) | (f == 0) | (hi_a - lo_a <= tol)
            base = np.arange(t.size) if active is None else active
            active = base[~done]
            if active.size == 0:
                break
    return t


def _sign_changes(g: np.ndarray) -> np.ndarray:
    """Sign changes of the weights along axis 0, zeros ignored."""
    last = np.sign(g[0])
    changes = np.zeros(g.shape[1:], dtype=np.int8)
    for k in range(1, g.shape[0]):
        sk = np.sign(g[k])
        changes += (sk * last) < 0
        last = np.where(sk != 0, sk, last)
    return changes


def _analyse(terms: _Terms, lo: np.ndarray, hi: np.ndarray, thr: float):
    """Peak value, its τ and minutes above thr on each piece [lo, hi] having ≤ 1 slope zero."""
    c_lo, s_lo, _ = terms.at(lo)
    c_hi, s_hi, _ = terms.at(hi)
    turn = np.nonzero(((s_lo > 0) & (s_hi < 0)) | ((s_lo < 0) & (s_hi > 0)))[0]
    t_star = hi.copy()
    c_star = np.full(lo.shape, -np.inf)
    if turn.size:
        sub = terms.take(turn)

        def slope(t, idx):
            _, d1, d2 = (sub if idx is None else sub.take(idx)).at(t)
            return d1, d2, np.zeros_like(d1)  # plain Newton on the slope

        root = _newton(slope, lo[turn], hi[turn], s_lo[turn] < 0)
        t_star[turn] = root
        c_turn = sub.at(root)[0]
        c_star[turn] = np.where(s_lo[turn] > 0, c_turn, -np.inf)  # only maxima are peaks
    cand = np.stack([c_lo, c_star, c_hi])
    cand_t = np.stack([lo, t_star, hi])
    best = np.argmax(cand, axis=0)
    cols = np.arange(lo.size)
    cmax, tmax = cand[best, cols], cand_t[best, cols]
    # monotone pieces: [lo, t*] and [t*, hi] where the slope turns, else [lo, hi]
    c_mid = c_hi.copy()
    if turn.size:
        c_mid[turn] = c_turn
    above = _time_above(terms, lo, t_star, c_lo, c_mid, thr)
    if turn.size:
        above[turn] += _time_above(
            terms.take(turn), t_star[turn], hi[turn], c_mid[turn], c_hi[turn], thr
        )
    return cmax, tmax, above


def _fast_crossings(
    terms: _Terms, lo: np.ndarray, hi: np.ndarray, c_lo, s_lo, rising: np.ndarray, thr: float
) -> tuple[np.ndarray, np.ndarray]:
    """Unguarded Newton from the left end (log c on decays), FAST_STEPS steps; (root, ok).

    From the left end Newton approaches the root monotonically whenever the piece is concave
    (rising) or log-convex (falling: a non-negative sum of exponentials), which covers the
    usual infusion and decay segments; the first step uses the known value and slope at lo.
    ``ok`` is False where a step left the bracket or did not converge: those items take the
    guarded solver. A crossing of a monotone piece is unique, so an accepted root is the root.
    """
    use_log = ~rising & (c_lo > 0) & (thr > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(use_log, np.log(c_lo / thr), c_lo - thr)
        df = np.where(use_log, s_lo / c_lo, s_lo)
        t = lo - f / df
    step = np.full(lo.shape, np.inf)
    for _ in range(FAST_STEPS):
        c, d1 = terms.at(t, curvature=False)[:2]
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(use_log, np.log(c / thr) * c / d1, (c - thr) / d1)
        t = t - step
    ok = np.isfinite(t) & (t >= lo) & (t <= hi)
    # the last step bounds the error before it; Newton's error after it is ~ step² / time scale
    ok &= np.abs(step) <= FAST_TOLERANCE_MIN * (1.0 + np.abs(t))
    return t, ok


def _time_above(
    terms: _Terms, lo, hi, c_lo, c_hi, thr: float, s_lo: np.ndarray | None = None
) -> np.ndarray:
    """Minutes at or above thr on monotone pieces [lo, hi]."""
    result = np.where((c_lo >= thr) & (c_hi >= thr), hi - lo, 0.0)
    cross = np.nonzero((c_lo >= thr) != (c_hi >= thr))[0]
    if cross.size and s_lo is not None:
        rising = c_lo[cross] < thr
        root, ok = _fast_crossings(
            terms.take(cross), lo[cross], hi[cross], c_lo[cross], s_lo[cross], rising, thr
        )
        done = cross[ok]
        result[done] = np.where(rising[ok], hi[done] - root[ok], root[ok] - lo[done])
        cross = cross[~ok]
    if cross.size:
        sub = terms.take(cross)
        rising = c_lo[cross] < thr
        use_log = (~rising) & (c_hi[cross] > 0)  # falling: log c is near-linear (and convex
        # for a positive sum of decaying exponentials); rising pieces may start at c = 0

        def level(t, idx):
            c, d1, d2 = (sub if idx is None else sub.take(idx)).at(t)
            logs = use_log if idx is None else use_log[idx]
            with np.errstate(divide="ignore", invalid="ignore"):
                g1 = d1 / c
                return (
                    np.where(logs, np.log(c / thr), c - thr),
                    np.where(logs, g1, d1),
                    np.where(logs, d2 / c - g1 * g1, d2),
                )

        root = _newton(level, lo[cross], hi[cross], rising)
        result[cross] = np.where(rising, hi[cross] - root, root - lo[cross])
    return result


def _segment_bounds(sol: ModalSolution, window: tuple[float, float]) -> tuple[np.ndarray, ...]:
    t0, t1 = window
    starts = sol.t_min
    ends = np.append(starts[1:], np.inf)
    lo, hi = np.maximum(starts, t0), np.minimum(ends, t1)
    keep = np.nonzero(hi > lo)[0]
    return keep, lo[keep] - starts[keep], hi[keep] - starts[keep]


def _ends(sol: ModalSolution, a: int, segs, tau_lo, tau_hi):
    """Value and slope at both ends of every (segment, patient), AUC, and the mode weights."""
    p, n = segs.size, sol.lam.shape[0]
    h = np.ascontiguousarray(sol.h[segs, :, a])
    c_lo, c_hi = h.copy(), h.copy()
    s_lo, s_hi = np.zeros((p, n)), np.zeros((p, n))
    auc = (h * (tau_hi - tau_lo)[:, None]).sum(axis=0)
    weights = []
    for k in range(sol.lam.shape[1]):
        g, lam = np.ascontiguousarray(sol.g[segs, :, a, k]), sol.lam[:, k]
        weights.append(g)
        e = []
        for tau in (tau_lo, tau_hi):
            ek = np.ones((p, n))
            rows = np.nonzero(tau != 0)[0]
            if rows.size:
                ek[rows] = exp_clamped(lam[None, :] * tau[rows, None])
            e.append(ek)
        for ek, c, sl in ((e[0], c_lo, s_lo), (e[1], c_hi, s_hi)):
            term = g * ek
            c += term
            term *= lam
            sl += term
        auc += (g * (e[1] - e[0])).sum(axis=0) / lam
    return c_lo, c_hi, s_lo, s_hi, auc, np.stack(weights)


def summarize_modal(sol: ModalSolution, a: int, window: tuple[float, float], thr: float):
    """(cmax, tmax, auc, minutes above) per patient (N,) for analyte a, in mg/L and minutes."""
    segs, tau_lo, tau_hi = _segment_bounds(sol, window)
    n, p = sol.lam.shape[0], segs.size
    c_lo, c_hi, s_lo, s_hi, auc, g = _ends(sol, a, segs, tau_lo, tau_hi)
    lo = np.broadcast_to(tau_lo[:, None], (p, n)).ravel()
    hi = np.broadcast_to(tau_hi[:, None], (p, n)).ravel()
    c_lo, c_hi, s_lo, s_hi = c_lo.ravel(), c_hi.ravel(), s_lo.ravel(), s_hi.ravel()
    g = g.reshape(g.shape[0], -1)
    hard = _sign_changes(g) > 1
    turn = ~hard & (((s_lo > 0) & (s_hi < 0)) | ((s_lo < 0) & (s_hi > 0)))
    first = c_lo >= c_hi
    cmax = np.where(first, c_lo, c_hi)
    tmax = np.where(first, lo, hi)
    lam_t, h = np.ascontiguousarray(sol.lam.T), sol.h[segs, :, a].ravel()

    def gather(idx: np.ndarray) -> _Terms:
        return _Terms(g[:, idx], lam_t[:, idx % n], h[idx])

    # monotone on the whole segment (the peak is an end): time above needs crossings only
    above = np.where(~hard & ~turn & (c_lo >= thr) & (c_hi >= thr), hi - lo, 0.0)
    idx = np.nonzero(~hard & ~turn & ((c_lo >= thr) != (c_hi >= thr)))[0]
    if idx.size:
        above[idx] = _time_above(
            gather(idx), lo[idx], hi[idx], c_lo[idx], c_hi[idx], thr, s_lo[idx]
        )
    idx = np.nonzero(turn)[0]
    if idx.size:
        cmax[idx], tmax[idx], above[idx] = _analyse(gather(idx), lo[idx], hi[idx], thr)
    idx = np.nonzero(hard)[0]
    if idx.size:
        cmax[idx], tmax[idx], above[idx] = _subdivided(gather(idx), lo[idx], hi[idx], thr)
    cmax, tmax = cmax.reshape(p, n), tmax.reshape(p, n) + sol.t_min[segs][:, None]
    best = np.argmax(cmax, axis=0)
    cols = np.arange(n)
    return cmax[best, cols], tmax[best, cols], auc, above.reshape(p, n).sum(axis=0)


def _subdivided(terms: _Terms, lo: np.ndarray, hi: np.ndarray, thr: float):
    """Pieces whose slope may vanish more than once: cut each into SUBDIVISIONS parts first."""
    frac = np.linspace(0.0, 1.0, SUBDIVISIONS + 1)
    width = (hi - lo)[:, None]
    sub_lo = (lo[:, None] + width * frac[None, :-1]).ravel()
    sub_hi = np.minimum((lo[:, None] + width * frac[None, 1:]).ravel(), np.repeat(hi, SUBDIVISIONS))
    c, t, above = _analyse(terms.repeat(SUBDIVISIONS), sub_lo, sub_hi, thr)
    c, t = c.reshape(-1, SUBDIVISIONS), t.reshape(-1, SUBDIVISIONS)
    best = np.argmax(c, axis=1)
    rows = np.arange(lo.size)
    return c[rows, best], t[rows, best], above.reshape(-1, SUBDIVISIONS).sum(axis=1)


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
    if sol is not None and np.iscomplexobj(sol.lam):
        sol = None
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

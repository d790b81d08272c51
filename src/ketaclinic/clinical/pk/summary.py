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

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ketaclinic.clinical.pk.engine import (
    ModalSolution,
    exp_clamped,
    modal_solution,
    simulate_system,
)
from ketaclinic.clinical.pk.model import FloatArray, Params, PkModel
from ketaclinic.clinical.pk.population import Variability, sample_parameters
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
FAST_STEPS = 8
TOLERANCE_MIN = 1e-8
CHUNK = 65536
PATIENT_CHUNK = 8192
GRID_VALUES = 4_000_000

IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]
# value, slope and curvature of the pieces at the given τ
Derivatives = tuple[FloatArray, FloatArray, FloatArray]
# per piece (or patient): peak value, its time, minutes above the threshold
Peaks = tuple[FloatArray, FloatArray, FloatArray]
# per patient: cmax, tmax, AUC, minutes above the threshold
Stats = tuple[FloatArray, FloatArray, FloatArray, FloatArray]


@dataclass(frozen=True)
class AnalyteSummary:
    """Per-patient arrays (N,): peak ng/mL, its time (min), AUC (ng·h/mL), minutes above."""

    cmax_ng_per_ml: FloatArray
    tmax_min: FloatArray
    auc_ng_h_per_ml: FloatArray
    time_above_min: FloatArray

    def percentiles(self, q: Sequence[float] = (5.0, 50.0, 95.0)) -> dict[str, list[float]]:
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


@dataclass(frozen=True)
class RealModal:
    """A :class:`ModalSolution` whose modes are all real (every model here but defective ones)."""

    t_min: FloatArray  # (S,)
    lam: FloatArray  # (N, K), all < 0
    g: FloatArray  # (S, N, A, K)
    h: FloatArray  # (S, N, A)

    @classmethod
    def of(cls, sol: ModalSolution | None) -> RealModal | None:
        if sol is None or np.iscomplexobj(sol.lam) or np.iscomplexobj(sol.g):
            return None
        lam, g, h = (np.asarray(x, dtype=np.float64) for x in (sol.lam, sol.g, sol.h))
        return cls(sol.t_min, lam, g, h)  # views: no copies of real arrays


class _Terms:
    """c(τ), c'(τ), c''(τ) for a flat list of segment pieces: H (M,), G and λ (K, M)."""

    def __init__(self, g: FloatArray, lam: FloatArray, h: FloatArray) -> None:
        self.g, self.lam, self.h = g, lam, h

    def take(self, idx: IntArray) -> _Terms:
        if idx.size == self.h.size and (idx.size == 0 or idx[-1] == idx.size - 1):
            return self  # every item, in order (indices are sorted and unique)
        return _Terms(np.take(self.g, idx, axis=1), np.take(self.lam, idx, axis=1), self.h[idx])

    def repeat(self, times: int) -> _Terms:
        return _Terms(
            np.repeat(self.g, times, axis=1),
            np.repeat(self.lam, times, axis=1),
            np.repeat(self.h, times),
        )

    def integral(self, lo: FloatArray, hi: FloatArray) -> FloatArray:
        """∫ c dτ over [lo, hi] per piece, closed form: H·Δτ + Σ G (e^{λ hi} − e^{λ lo})/λ."""
        total = self.h * (hi - lo)
        from_zero = not np.any(lo)  # pieces that start at their segment start (the usual case)
        for g, lam in zip(self.g, self.lam, strict=True):
            change = exp_clamped(lam * hi)
            change -= 1.0 if from_zero else exp_clamped(lam * lo)
            total += g * change / lam
        return total

    def at(self, tau: FloatArray) -> Derivatives:
        """Value, slope and curvature; an explicit loop over the few modes, on 1-D arrays."""
        c, d1, d2 = self.h.copy(), np.zeros_like(tau), np.zeros_like(tau)
        term = np.empty_like(tau)
        for g, lam in zip(self.g, self.lam, strict=True):
            np.multiply(lam, tau, out=term)
            np.maximum(term, -700.0, out=term)  # see exp_clamped
            np.exp(term, out=term)
            term *= g
            c += term
            term *= lam
            d1 += term
            term *= lam
            d2 += term
        return c, d1, d2


def _newton(
    fun: Callable[[FloatArray, IntArray | None], Derivatives],
    lo: FloatArray,
    hi: FloatArray,
    rising: BoolArray,
) -> FloatArray:
    """Root of monotone f on [lo, hi] (f < 0 at lo iff rising): Halley steps from lo, in bracket.

    ``fun(t, idx) -> (f, f', f'')`` for the items idx (None = all). The first FULL_ITERATIONS
    run on every item without re-gathering; then only the unconverged items iterate.
    """
    t, lo, hi = lo.copy(), lo.copy(), hi.copy()
    active: IntArray | None = None
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


def _sign_changes(g: FloatArray) -> NDArray[np.int8]:
    """Sign changes of the weights along axis 0, zeros ignored."""
    sign = np.sign(g)  # products of signs cannot underflow
    last = sign[0]
    changes = np.zeros(g.shape[1:], dtype=np.int8)
    for k in range(1, g.shape[0]):
        changes += (sign[k] * last) < 0
        if k + 1 < g.shape[0]:
            last = np.where(sign[k] != 0, sign[k], last)
    return changes


def _analyse(terms: _Terms, lo: FloatArray, hi: FloatArray, thr: float) -> Peaks:
    """Peak value, its τ and minutes above thr on each piece [lo, hi] having ≤ 1 slope zero."""
    c_lo, s_lo, _ = terms.at(lo)
    c_hi, s_hi, _ = terms.at(hi)
    turn = np.nonzero(((s_lo > 0) & (s_hi < 0)) | ((s_lo < 0) & (s_hi > 0)))[0]
    t_star = hi.copy()
    c_star = np.full(lo.shape, -np.inf)
    if turn.size:
        sub = terms.take(turn)

        def slope(t: FloatArray, idx: IntArray | None) -> Derivatives:
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


def _halley_step(
    c: FloatArray, d1: FloatArray, d2: FloatArray, log: bool, thr: float
) -> tuple[FloatArray, BoolArray]:
    """A Halley step towards c = thr (on log c when ``log``) and whether the result is final.

    Halley's correction to the Newton step is kept within a factor of two (damping far from
    the root). The result is final when the step is at most FAST_STEP_MIN and Newton's error
    estimate |f''/(2f')|·step² (Halley converges faster still) is at most TOLERANCE_MIN:
    step² · max(1, |f''/(2f')|) ≤ TOLERANCE_MIN, as FAST_STEP_MIN² = TOLERANCE_MIN.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if log:
            f = np.log(c)
            f -= np.log(thr)
            df = np.divide(d1, c)
            d2f = np.divide(d2, c)
            d2f -= df * df
        else:
            f, df, d2f = c - thr, d1, d2
        newton = np.divide(f, df, out=f)
        half_ratio = np.divide(d2f, df, out=d2f)
        half_ratio *= 0.5
        den = newton * half_ratio
        np.subtract(1.0, den, out=den)
        np.maximum(den, 0.5, out=den)
        np.minimum(den, 2.0, out=den)
        step = np.divide(newton, den, out=newton)
        size = np.abs(half_ratio, out=half_ratio)
        np.maximum(size, 1.0, out=size)
        size *= step
        size *= step
        final = np.abs(size, out=size) <= TOLERANCE_MIN
    return step, final


def _halley_crossings(
    pieces: _Terms, idx: IntArray, t: FloatArray, at_lo: Derivatives, log: bool, thr: float
) -> FloatArray:
    """Crossing τ of thr on pieces idx (all rising or all falling) from their left ends t.

    ``at_lo`` is the value, slope and curvature at t, so the first step costs no evaluation.
    Converged items leave the active set once it has halved; the rest iterate on (harmless).
    NaN where FAST_STEPS did not suffice.
    """
    root = np.full(idx.size, np.nan)
    rows = np.arange(idx.size)
    c, d1, d2 = at_lo
    terms: _Terms | None = None
    with np.errstate(invalid="ignore", over="ignore"):  # a diverging item turns NaN: guarded
        for i in range(FAST_STEPS):
            if i:
                terms = pieces.take(idx) if terms is None else terms
                c, d1, d2 = terms.at(t)
            step, final = _halley_step(c, d1, d2, log, thr)
            t = t - step
            root[rows[final]] = t[final]
            active = ~final
            n_active = int(np.count_nonzero(active))
            if n_active == 0:
                break
            if n_active < 0.5 * rows.size:
                rows, t = rows[active], t[active]
                terms = None if terms is None else terms.take(np.nonzero(active)[0])
                idx = idx[active]
    return root


def _crossing_time_above(
    pieces: _Terms,
    idx: IntArray,
    lo: FloatArray,
    hi: FloatArray,
    ends: Derivatives,
    c_hi: FloatArray,
    thr: float,
) -> FloatArray:
    """Minutes at or above thr on monotone pieces idx that cross it once.

    Halley steps from the left end (on log c for decays, on c for rises), CHUNK items at a
    time so that the work stays in cache. From the left end the iteration approaches the
    root monotonically when the piece is concave (rising) or log-convex (falling: a positive
    sum of exponentials), which covers the usual infusion and decay segments. A crossing of
    a monotone piece is unique, so a converged root inside the piece is the root; the items
    without one (rare) take the guarded solver.
    """
    c_lo, s_lo, k_lo = ends
    result = np.empty(idx.size)
    for start in range(0, idx.size, CHUNK):
        part = np.arange(start, min(start + CHUNK, idx.size))
        rising = c_lo[idx[part]] < thr
        for rows, log in ((part[rising], False), (part[~rising], True)):
            if not rows.size:
                continue
            items = idx[rows]
            t_lo, t_hi = lo[items], hi[items]
            at_lo = (c_lo[items], s_lo[items], k_lo[items])
            root = _halley_crossings(pieces, items, t_lo, at_lo, log, thr)
            miss = ~((root >= t_lo) & (root <= t_hi))  # also NaN
            if np.any(miss):
                m = items[miss]
                root[miss] = _guarded_crossings(pieces.take(m), lo[m], hi[m], c_lo[m], c_hi[m], thr)
            result[rows] = root - t_lo if log else t_hi - root
    return result


def _guarded_crossings(
    terms: _Terms, lo: FloatArray, hi: FloatArray, c_lo: FloatArray, c_hi: FloatArray, thr: float
) -> FloatArray:
    """The crossing of thr on monotone pieces that cross it once: bracketed Halley/Newton."""
    rising = c_lo < thr
    use_log = (~rising) & (c_hi > 0)  # falling: log c is near-linear (and convex
    # for a positive sum of decaying exponentials); rising pieces may start at c = 0

    def level(t: FloatArray, idx: IntArray | None) -> Derivatives:
        c, d1, d2 = (terms if idx is None else terms.take(idx)).at(t)
        logs = use_log if idx is None else use_log[idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            g1 = d1 / c
            return (
                np.where(logs, np.log(c / thr), c - thr),
                np.where(logs, g1, d1),
                np.where(logs, d2 / c - g1 * g1, d2),
            )

    return _newton(level, lo, hi, rising)


def _time_above(
    terms: _Terms, lo: FloatArray, hi: FloatArray, c_lo: FloatArray, c_hi: FloatArray, thr: float
) -> FloatArray:
    """Minutes at or above thr on monotone pieces [lo, hi]."""
    result = np.where((c_lo >= thr) & (c_hi >= thr), hi - lo, 0.0)
    cross = np.nonzero((c_lo >= thr) != (c_hi >= thr))[0]
    if cross.size:
        rising = c_lo[cross] < thr
        root = _guarded_crossings(
            terms.take(cross), lo[cross], hi[cross], c_lo[cross], c_hi[cross], thr
        )
        result[cross] = np.where(rising, hi[cross] - root, root - lo[cross])
    return result


def _segment_bounds(
    sol: RealModal, window: tuple[float, float]
) -> tuple[IntArray, FloatArray, FloatArray]:
    t0, t1 = window
    starts = sol.t_min
    ends = np.append(starts[1:], np.inf)
    lo, hi = np.maximum(starts, t0), np.minimum(ends, t1)
    keep = np.nonzero(hi > lo)[0]
    return keep, lo[keep] - starts[keep], hi[keep] - starts[keep]


def summarize_modal(sol: RealModal, a: int, window: tuple[float, float], thr: float) -> Stats:
    """(cmax, tmax, auc, minutes above) per patient (N,) for analyte a, in mg/L and minutes."""
    segs, tau_lo, tau_hi = _segment_bounds(sol, window)
    n, p = sol.lam.shape[0], segs.size
    lo = np.repeat(tau_lo, n)
    hi = np.repeat(tau_hi, n)
    pieces = _Terms(
        np.moveaxis(sol.g[segs, :, a], -1, 0).reshape(sol.lam.shape[1], -1),
        np.tile(sol.lam.T, (1, p)),
        sol.h[segs, :, a].ravel(),
    )
    c_lo, s_lo, k_lo = pieces.at(lo)
    c_hi, s_hi, _ = pieces.at(hi)
    auc = pieces.integral(lo, hi).reshape(p, n).sum(axis=0)
    hard = _sign_changes(pieces.g) > 1
    turn = ~hard & (((s_lo > 0) & (s_hi < 0)) | ((s_lo < 0) & (s_hi > 0)))
    first = c_lo >= c_hi
    cmax = np.where(first, c_lo, c_hi)
    tmax = np.where(first, lo, hi)
    # monotone on the whole segment (the peak is an end): time above needs crossings only
    monotone_above = c_lo >= thr
    monotone_above &= c_hi >= thr
    above = np.where(~hard & ~turn & monotone_above, hi - lo, 0.0)
    idx = np.nonzero(~hard & ~turn & ((c_lo >= thr) != (c_hi >= thr)))[0]
    if idx.size:
        above[idx] = _crossing_time_above(pieces, idx, lo, hi, (c_lo, s_lo, k_lo), c_hi, thr)
    idx = np.nonzero(turn)[0]
    if idx.size:
        cmax[idx], tmax[idx], above[idx] = _analyse(pieces.take(idx), lo[idx], hi[idx], thr)
    idx = np.nonzero(hard)[0]
    if idx.size:
        cmax[idx], tmax[idx], above[idx] = _subdivided(pieces.take(idx), lo[idx], hi[idx], thr)
    cmax, tmax = cmax.reshape(p, n), tmax.reshape(p, n) + sol.t_min[segs][:, None]
    best = np.argmax(cmax, axis=0)
    cols = np.arange(n)
    return cmax[best, cols], tmax[best, cols], auc, above.reshape(p, n).sum(axis=0)


def _subdivided(terms: _Terms, lo: FloatArray, hi: FloatArray, thr: float) -> Peaks:
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


def _summarize_grid(conc: FloatArray, times: FloatArray, thr: float) -> Stats:
    best = np.argmax(conc, axis=1)
    step = np.diff(times)
    auc = np.sum(0.5 * (conc[:, 1:] + conc[:, :-1]) * step, axis=1)
    above = np.sum(((conc[:, 1:] >= thr) & (conc[:, :-1] >= thr)) * step, axis=1)
    return conc.max(axis=1), times[best], auc, above


def _chunks(params: Params, size: int) -> Iterator[Params]:
    """The sampled parameters, ``size`` patients at a time."""
    n = next(iter(params.values())).size
    for start in range(0, n, size):
        yield {name: value[start : start + size] for name, value in params.items()}


class _NoRealModes(Exception):
    """A chunk's system is defective or has complex modes: no closed-form summary."""


def _chunk_summaries(
    model: PkModel,
    covariates: Covariates,
    regimen: Regimen,
    params: Params,
    window: tuple[float, float],
    thr: float,
    grid: bool,
) -> dict[str, list[Stats]]:
    """Per analyte, the stats of each chunk of patients (_NoRealModes if the closed form fails).

    In closed form, chunks of PATIENT_CHUNK patients keep the working set (modal coefficients,
    piece ends, crossings) in cache; on the 1-minute grid (``grid``), a chunk holds about
    GRID_VALUES concentrations. Every patient is independent: the chunking changes no result.
    """
    t0, t1 = window
    times = np.linspace(t0, t1, int(round(t1 - t0)) + 1)
    size = max(1, GRID_VALUES // (times.size * len(model.analytes))) if grid else PATIENT_CHUNK
    parts: dict[str, list[Stats]] = {}
    for chunk in _chunks(params, size):
        system = individual_system(model, covariates, chunk)
        pulses = regimen_pulses(system, regimen)
        if grid:
            conc, _ = simulate_system(system, pulses, times)
            stats = [_summarize_grid(conc[:, j], times, thr) for j in range(conc.shape[1])]
        else:
            sol = RealModal.of(modal_solution(system, pulses, t0))
            if sol is None:
                raise _NoRealModes
            stats = [summarize_modal(sol, j, window, thr) for j in range(sol.h.shape[2])]
        for analyte, st in zip(system.analytes, stats, strict=True):
            parts.setdefault(analyte, []).append(st)
    return parts


def summarize_population(
    model_id: str,
    covariates: Covariates,
    regimen: Regimen,
    window_min: tuple[float, float],
    n: int = 1,
    seed: int | None = None,
    threshold_ng_per_ml: float = 100.0,
    variability: Variability = None,
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
    params = sample_parameters(model, n, seed, variability)
    thr = threshold_ng_per_ml / NG_PER_ML_PER_MG_PER_L
    inputs = (model, covariates, regimen, params, (t0, t1), thr)
    try:
        method, parts = "closed form", _chunk_summaries(*inputs, grid=False)
    except _NoRealModes:  # e.g. defective transit chains: every chunk on the grid
        method, parts = "1-minute grid", _chunk_summaries(*inputs, grid=True)
    out = {}
    for analyte, stats in parts.items():
        cmax, tmax, auc, above = (np.concatenate(x) for x in zip(*stats, strict=True))
        out[analyte] = AnalyteSummary(cmax * 1000.0, tmax, auc * 1000.0 / 60.0, above)
    return PopulationSummary(
        model.model_id,
        (t0, t1),
        threshold_ng_per_ml,
        out,
        method,
        validity_warnings(model, covariates, regimen),
    )

"""Exact solution of dx/dt = A x + u(t) for piecewise-constant inputs; no ODE stepping.

Two exact methods share one event schedule:

* **Modal** (default): A = V Λ V⁻¹ per patient (batched ``np.linalg.eig``). Between two events
  every mode is ``a_k e^{λ_k τ} + o_k``, so each analyte is a constant plus a sum of
  exponentials per segment, evaluated only at the requested times. On a uniform grid the
  exponentials are factorised by blocks, e^{λ(τ_b + rΔ)} = e^{λτ_b}·e^{λrΔ}, so the whole grid
  costs one small batched matrix product instead of one ``exp`` per point and mode.
* **Matrix exponential** (fallback when A is defective or ill-conditioned, e.g. transit chains
  with equal rates): the augmented exponential expm([[A, u], [0, 0]] τ) propagates the state.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import overload

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import expm

from ketaclinic.clinical.pk.eigen import Eigen, ModalArray, cached_decompose
from ketaclinic.clinical.pk.model import FloatArray, LinearSystem, Pulse

BLOCK = 128


@overload
def exp_clamped(x: FloatArray) -> FloatArray: ...
@overload
def exp_clamped(x: ModalArray) -> ModalArray: ...
def exp_clamped(x: ModalArray) -> ModalArray:
    """exp(x) with real arguments below -700 clamped: e^-700 ≈ 1e-304 instead of a subnormal or 0.

    numpy's exp takes a slow path for results that underflow; far-decayed modes are common
    (a fast mode evaluated days after a dose), and 1e-304 is zero for every purpose here.
    """
    if np.iscomplexobj(x):
        return np.exp(x)
    y = np.maximum(x, -700.0)
    return np.exp(y, out=y)


@dataclass(frozen=True)
class Schedule:
    """Segment start times T (S,) between which every input rate is constant, and the pulses.

    The dense state-space inputs (rate per segment and bolus at each start, (S, N, n)) are
    built only when asked for (matrix-exponential fallback, ODE references); the modal method
    projects each pulse on the modes instead.
    """

    t_min: FloatArray
    pulses: tuple[Pulse, ...]
    n_patients: int
    n_states: int

    def _span(self, p: Pulse) -> tuple[int, int]:
        """Segments [i, j) that a pulse covers (j = i for a bolus)."""
        i = int(np.searchsorted(self.t_min, p.start_min))
        if p.duration_min > 0:
            return i, int(np.searchsorted(self.t_min, p.start_min + p.duration_min))
        return i, i

    @cached_property
    def rate_mg_per_min(self) -> FloatArray:
        rate = np.zeros((self.t_min.size, self.n_patients, self.n_states))
        for p in self.pulses:
            i, j = self._span(p)
            if j > i:
                rate[i:j] += p.amounts_mg / p.duration_min
        return rate

    @cached_property
    def bolus_mg(self) -> FloatArray:
        bolus = np.zeros((self.t_min.size, self.n_patients, self.n_states))
        for p in self.pulses:
            i, j = self._span(p)
            if j == i:
                bolus[i] += p.amounts_mg
        return bolus

    def modal_inputs(self, w: ModalArray) -> tuple[ModalArray, ModalArray]:
        """Boluses and rates projected on the modes, W·u: two (S, N, K) arrays.

        One small product per pulse (only over the states it doses), never over all segments
        and states: the dense (S, N, n) inputs are mostly zeros.
        """
        shape = (self.t_min.size, self.n_patients, w.shape[1])
        bolus, rate = np.zeros(shape, dtype=w.dtype), np.zeros(shape, dtype=w.dtype)
        for p in self.pulses:
            proj = np.zeros(shape[1:], dtype=w.dtype)
            for state in np.nonzero(np.any(p.amounts_mg != 0, axis=0))[0]:
                proj += w[:, :, state] * p.amounts_mg[:, state, None]
            i, j = self._span(p)
            if j > i:
                rate[i:j] += proj / p.duration_min
            else:
                bolus[i] += proj
        return bolus, rate


def build_schedule(pulses: list[Pulse], n_patients: int, n_states: int, t_first: float) -> Schedule:
    """Collect pulse starts and ends into segments with constant input rate."""
    edges = {float(t_first)}
    for p in pulses:
        edges.add(p.start_min)
        if p.duration_min > 0:
            edges.add(p.start_min + p.duration_min)
    return Schedule(np.array(sorted(edges)), tuple(pulses), n_patients, n_states)


@dataclass(frozen=True)
class ModalSolution:
    """Per segment: y(t) = H + Σ_k G_k e^{λ_k (t − T)} for every patient and analyte."""

    t_min: FloatArray  # (S,)
    lam: ModalArray  # (N, K)
    g: ModalArray  # (S, N, A, K)
    h: ModalArray  # (S, N, A)


def eigen_system(system: LinearSystem) -> Eigen | None:
    """Eigenvalues, eigenvectors and inverse; None when not safely diagonalisable."""
    return cached_decompose(system.a_per_min)


def solve_modal(
    system: LinearSystem, schedule: Schedule, eig: Eigen, scale: float = 1.0
) -> ModalSolution:
    """Propagate modal amplitudes through the segments (a loop over events, not over time).

    Inputs are projected on the modes once per pulse; the loop only carries the amplitudes z
    across segment ends: z ← (z + Wb_s − o_s) e^{λ Δ_s} + o_s, with o_s = −W·rate_s / λ.
    """
    lam, v, w = eig
    cm = np.matmul(system.c_per_l * scale, v)  # (N, A, K)
    wb, offset = schedule.modal_inputs(w)
    np.divide(offset, -lam, out=offset)
    decay = exp_clamped(lam[None] * np.diff(schedule.t_min)[:, None, None])  # (S-1, N, K)
    amp = np.empty_like(offset)
    z = wb[0]
    for s in range(schedule.t_min.size):
        np.subtract(z, offset[s], out=amp[s])
        if s + 1 < schedule.t_min.size:
            z = amp[s] * decay[s]
            z += offset[s]
            z += wb[s + 1]
    g = cm[None] * amp[:, :, None, :]
    h = np.einsum("nak,snk->sna", cm, offset)
    return ModalSolution(schedule.t_min, lam, g, h)


def evaluate_modal(sol: ModalSolution, times_min: FloatArray, chunk: int = 2048) -> FloatArray:
    """Concentrations (N, A, m) in mg/L at arbitrary sorted times."""
    n, a = sol.g.shape[1], sol.g.shape[2]
    out = np.empty((n, a, times_min.size))
    for start in range(0, times_min.size, chunk):
        t = times_min[start : start + chunk]
        seg = np.clip(np.searchsorted(sol.t_min, t, side="right") - 1, 0, None)
        tau = t - sol.t_min[seg]
        e = exp_clamped(sol.lam[:, None, :] * tau[None, :, None])  # (N, m, K)
        y = np.einsum("mnak,nmk->nam", sol.g[seg], e) + np.moveaxis(sol.h[seg], 0, -1)
        out[:, :, start : start + chunk] = y.real
    before = times_min < sol.t_min[0]
    out[:, :, before] = 0.0
    return out


def uniform_step(times_min: FloatArray) -> float | None:
    """The step of an (exactly, to 1e-13 relative) uniform grid long enough to block, else None."""
    m = times_min.size
    if m < 4 * BLOCK:
        return None
    step = (times_min[-1] - times_min[0]) / (m - 1)
    if not step > 0:
        return None
    buf = np.arange(m, dtype=float)  # one buffer, in place: large temporaries cost page faults
    buf *= step
    buf += times_min[0]
    buf -= times_min
    np.abs(buf, out=buf)
    scale = max(abs(float(times_min[0])), abs(float(times_min[-1])), float(step))
    return float(step) if float(buf.max()) <= 1e-13 * scale else None


def _anchored_terms(sol: ModalSolution, seg: NDArray[np.intp], tau: FloatArray) -> ModalArray:
    """P (N, A, rows, K + 1): G_seg·e^{λτ} per row, then H_seg, for rows anchored at (seg, τ)."""
    n, a, k = sol.g.shape[1], sol.g.shape[2], sol.g.shape[3]
    e = exp_clamped(sol.lam[:, None, :] * tau[None, :, None])  # (N, rows, K)
    p = np.empty((n, a, seg.size, k + 1), dtype=np.result_type(sol.g, e))
    np.multiply(np.moveaxis(sol.g[seg], 0, 2), e[:, None], out=p[..., :k])
    p[..., k] = np.moveaxis(sol.h[seg], 0, -1)
    return p


def evaluate_modal_grid(sol: ModalSolution, times_min: FloatArray, step: float) -> FloatArray:
    """Concentrations (N, A, m) on a uniform grid: one batched matmul of block exponentials.

    e^{λ(τ_b + rΔ)} = e^{λτ_b}·e^{λrΔ}: blocks of BLOCK points share one row of e^{λrΔ}, so
    the grid costs one product P·R per patient written straight into the (contiguous) result:
    one pass over the output, like a single ``np.exp``. Each block uses the segment of its
    first point. Where a segment starts inside a block, one extra row anchored at the
    segment's first point overwrites the points of that segment up to the block's end (a few
    slices per event), so every point is computed with its own segment's coefficients and
    τ ≥ 0 (no growing exponentials).
    """
    m = times_min.size
    n, a = sol.g.shape[1], sol.g.shape[2]
    r = exp_clamped(sol.lam[:, :, None] * (step * np.arange(BLOCK))[None, None, :])  # (N, K, L)
    r = np.concatenate([r, np.ones((n, 1, BLOCK), dtype=r.dtype)], axis=1)[:, None]
    block_t = times_min[::BLOCK]
    block_seg = np.clip(np.searchsorted(sol.t_min, block_t, side="right") - 1, 0, None)
    p = _anchored_terms(sol, block_seg, block_t - sol.t_min[block_seg])
    full = m // BLOCK
    out = np.empty((n, a, m))
    if np.iscomplexobj(p) or np.iscomplexobj(r):
        y = np.matmul(p, r).real  # complex modes: the real part is the solution
        out[...] = y.reshape(n, a, -1)[:, :, :m]
    else:
        body = out[:, :, : full * BLOCK].reshape(n, a, full, BLOCK)  # a view, no copy
        np.matmul(p[:, :, :full], r, out=body)
        if full * BLOCK < m:
            tail = np.matmul(p[:, :, full:], r)[:, :, 0, : m - full * BLOCK]
            out[:, :, full * BLOCK :] = tail
    first = np.searchsorted(times_min, sol.t_min, side="left")  # first point of each segment
    inner = np.nonzero((first < m) & (first % BLOCK != 0))[0]
    if inner.size:
        tau = times_min[first[inner]] - sol.t_min[inner]
        anchored = np.matmul(_anchored_terms(sol, inner, tau), r)
        stops = np.append(first[1:], m)
        for row, s in enumerate(inner):
            f = int(first[s])
            stop = min(int(stops[s]), (f // BLOCK + 1) * BLOCK)
            out[:, :, f:stop] = anchored[:, :, row, : stop - f].real
    if first[0] > 0:
        out[:, :, : first[0]] = 0.0
    return out


def solve_expm(system: LinearSystem, schedule: Schedule, times_min: FloatArray) -> FloatArray:
    """Fallback: exact discretisation with the augmented matrix exponential, all patients at once.

    Within a segment the augmented state y = (x, 1) moves from one requested time to the next
    by y ← expm([[A, u], [0, 0]]·δ) y. The exponentials are computed once per distinct step δ
    (one or two on a uniform grid; steps are compared exactly, never rounded), batched over
    patients, instead of once per patient and requested time.
    """
    n, s_count = system.n_patients, schedule.t_min.size
    n_states = system.a_per_min.shape[1]
    out = np.zeros((n, system.c_per_l.shape[1], times_min.size))
    seg = np.searchsorted(schedule.t_min, times_min, side="right") - 1
    aug = np.zeros((n, n_states + 1, n_states + 1))
    aug[:, :n_states, :n_states] = system.a_per_min
    y = np.zeros((n, n_states + 1))
    y[:, n_states] = 1.0
    for s in range(s_count):
        y[:, :n_states] += schedule.bolus_mg[s]
        aug[:, :n_states, n_states] = schedule.rate_mg_per_min[s]
        idx = np.nonzero(seg == s)[0]
        points = times_min[idx]
        if s + 1 < s_count:
            points = np.append(points, schedule.t_min[s + 1])
        if points.size == 0:
            continue
        steps = np.diff(points, prepend=schedule.t_min[s])
        uniq, inverse = np.unique(steps, return_inverse=True)
        mats = expm(aug[:, None] * uniq[None, :, None, None])  # (N, U, n + 1, n + 1)
        states = np.empty((n, points.size, n_states))
        for k, u in enumerate(inverse):
            y = np.einsum("nij,nj->ni", mats[:, u], y)
            states[:, k] = y[:, :n_states]
        out[:, :, idx] = np.einsum("nai,nki->nak", system.c_per_l, states[:, : idx.size])
    return out


def simulate_system(
    system: LinearSystem,
    pulses: list[Pulse],
    times_min: FloatArray,
    method: str = "auto",
    scale: float = 1.0,
) -> tuple[FloatArray, str]:
    """Concentrations (N, A, m) in mg/L × scale and the method used ('modal' or 'expm').

    ``scale`` (e.g. 1000 for ng/mL) is folded into the output coefficients, which saves a
    full pass over a large output.
    """
    n, n_states = system.a_per_min.shape[:2]
    if not pulses:
        return np.zeros((n, len(system.analytes), times_min.size)), "none"
    schedule = build_schedule(
        pulses, n, n_states, min(times_min[0], min(p.start_min for p in pulses))
    )
    eig = eigen_system(system) if method in ("auto", "modal") else None
    if eig is None:
        return solve_expm(system, schedule, times_min) * scale, "expm"
    sol = solve_modal(system, schedule, eig, scale)
    step = uniform_step(times_min)
    if step is not None:
        return evaluate_modal_grid(sol, times_min, step), "modal"
    return evaluate_modal(sol, times_min), "modal"


def modal_solution(
    system: LinearSystem, pulses: list[Pulse], t_first: float
) -> ModalSolution | None:
    """The per-segment exponential representation, or None when the modal method does not apply."""
    n, n_states = system.a_per_min.shape[:2]
    if not pulses:
        return None
    eig = eigen_system(system)
    if eig is None:
        return None
    schedule = build_schedule(pulses, n, n_states, min(t_first, min(p.start_min for p in pulses)))
    return solve_modal(system, schedule, eig)

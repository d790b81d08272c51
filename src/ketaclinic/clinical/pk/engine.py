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

import numpy as np
from scipy.linalg import expm

from ketaclinic.clinical.pk.model import LinearSystem, Pulse

CONDITION_LIMIT = 1e8
BLOCK = 128


@dataclass(frozen=True)
class Schedule:
    """Segment start times T (S,), input rate per segment (S, N, n) and bolus at each start."""

    t_min: np.ndarray
    rate_mg_per_min: np.ndarray
    bolus_mg: np.ndarray


def build_schedule(pulses: list[Pulse], n_patients: int, n_states: int, t_first: float) -> Schedule:
    """Collect pulse starts and ends into segments with constant input rate."""
    edges = {float(t_first)}
    for p in pulses:
        edges.add(p.start_min)
        if p.duration_min > 0:
            edges.add(p.start_min + p.duration_min)
    t = np.array(sorted(edges))
    rate = np.zeros((t.size, n_patients, n_states))
    bolus = np.zeros((t.size, n_patients, n_states))
    for p in pulses:
        i = int(np.searchsorted(t, p.start_min))
        if p.duration_min > 0:
            j = int(np.searchsorted(t, p.start_min + p.duration_min))
            rate[i:j] += p.amounts_mg / p.duration_min
        else:
            bolus[i] += p.amounts_mg
    return Schedule(t, rate, bolus)


@dataclass(frozen=True)
class ModalSolution:
    """Per segment: y(t) = H + Σ_k G_k e^{λ_k (t − T)} for every patient and analyte."""

    t_min: np.ndarray  # (S,)
    lam: np.ndarray  # (N, K)
    g: np.ndarray  # (S, N, A, K)
    h: np.ndarray  # (S, N, A)


def symmetric_eigen(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Mammillary systems (two-way exchange with the central compartment only) are similar to a
    symmetric matrix, D A D⁻¹ with d_j² = A_0j / A_j0; ``eigh`` on it is faster and exact."""
    off = a[0].copy()
    np.fill_diagonal(off, 0.0)
    if np.any((off != 0) != (off.T != 0)) or np.any(off[1:, 1:] != 0):
        return None
    if np.any(a[:, 0, 1:] <= 0) or np.any(a[:, 1:, 0] <= 0):
        return None
    d = np.ones(a.shape[:2])
    d[:, 1:] = np.sqrt(a[:, 0, 1:] / a[:, 1:, 0])
    sym = a * d[:, :, None] / d[:, None, :]
    lam, u = np.linalg.eigh(0.5 * (sym + np.swapaxes(sym, 1, 2)))
    return lam, u / d[:, :, None], np.swapaxes(u, 1, 2) * d[:, None, :]


def eigen_system(system: LinearSystem) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Eigenvalues, eigenvectors and inverse, or None when the matrix is not safely diagonalisable."""
    sym = symmetric_eigen(system.a_per_min)
    if sym is not None:
        return sym
    lam, v = np.linalg.eig(system.a_per_min)
    try:
        w = np.linalg.inv(v)
    except np.linalg.LinAlgError:
        return None
    cond = np.abs(v).sum(axis=1).max(axis=1) * np.abs(w).sum(axis=1).max(axis=1)
    if not np.all(np.isfinite(cond)) or cond.max() > CONDITION_LIMIT:
        return None
    if np.iscomplexobj(lam) and np.max(np.abs(lam.imag)) <= 1e-14 * np.max(np.abs(lam.real)):
        lam, v, w = lam.real, v.real, w.real
    return lam, v, w


def solve_modal(system: LinearSystem, schedule: Schedule, eig) -> ModalSolution:
    """Propagate modal amplitudes through the segments (a loop over events, not over time)."""
    lam, v, w = eig
    cm = np.einsum("nai,nik->nak", system.c_per_l, v)
    s_count, n, k = schedule.t_min.size, lam.shape[0], lam.shape[1]
    dtype = np.result_type(lam, cm)
    g = np.zeros((s_count, n, cm.shape[1], k), dtype=dtype)
    h = np.zeros((s_count, n, cm.shape[1]), dtype=dtype)
    z = np.zeros((n, k), dtype=dtype)
    for s in range(s_count):
        z = z + np.einsum("nki,ni->nk", w, schedule.bolus_mg[s])
        offset = -np.einsum("nki,ni->nk", w, schedule.rate_mg_per_min[s]) / lam
        amp = z - offset
        g[s] = cm * amp[:, None, :]
        h[s] = np.einsum("nak,nk->na", cm, offset)
        if s + 1 < s_count:
            z = amp * np.exp(lam * (schedule.t_min[s + 1] - schedule.t_min[s])) + offset
    return ModalSolution(schedule.t_min, lam, g, h)


def evaluate_modal(sol: ModalSolution, times_min: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Concentrations (N, A, m) in mg/L at arbitrary sorted times."""
    n, a = sol.g.shape[1], sol.g.shape[2]
    out = np.empty((n, a, times_min.size))
    for start in range(0, times_min.size, chunk):
        t = times_min[start : start + chunk]
        seg = np.clip(np.searchsorted(sol.t_min, t, side="right") - 1, 0, None)
        tau = t - sol.t_min[seg]
        e = np.exp(sol.lam[:, None, :] * tau[None, :, None])  # (N, m, K)
        y = np.einsum("mnak,nmk->nam", sol.g[seg], e) + np.moveaxis(sol.h[seg], 0, -1)
        out[:, :, start : start + chunk] = y.real
    before = times_min < sol.t_min[0]
    out[:, :, before] = 0.0
    return out


def is_uniform(times_min: np.ndarray) -> bool:
    if times_min.size < 4 * BLOCK:
        return False
    d = np.diff(times_min)
    return bool(d[0] > 0 and np.allclose(d, d[0], rtol=1e-12, atol=0))


def evaluate_modal_grid(sol: ModalSolution, times_min: np.ndarray) -> np.ndarray:
    """Concentrations on a uniform grid: one batched matmul of block exponentials."""
    m, step = times_min.size, times_min[1] - times_min[0]
    nb = -(-m // BLOCK)
    block_t = times_min[0] + step * BLOCK * np.arange(nb)
    block_seg = np.clip(np.searchsorted(sol.t_min, block_t, side="right") - 1, 0, None)
    tau_b = block_t - sol.t_min[block_seg]
    e_b = np.exp(sol.lam[:, None, :] * tau_b[None, :, None])  # (N, nb, K)
    g_b = np.moveaxis(sol.g[block_seg], 0, 2)  # (N, A, nb, K)
    p = np.concatenate(
        [g_b * e_b[:, None], np.moveaxis(sol.h[block_seg], 0, -1)[..., None]], axis=-1
    )
    r = np.exp(sol.lam[:, :, None] * (step * np.arange(BLOCK))[None, None, :])  # (N, K, L)
    r = np.concatenate([r, np.ones((r.shape[0], 1, BLOCK), dtype=r.dtype)], axis=1)
    y = np.matmul(p, r[:, None])  # (N, A, nb, L)
    if np.iscomplexobj(y):
        y = y.real.copy()
    y = y.reshape(y.shape[0], y.shape[1], nb * BLOCK)[:, :, :m]
    _fix_straddling_blocks(sol, times_min, block_seg, y)
    return y


def _fix_straddling_blocks(
    sol: ModalSolution, times_min: np.ndarray, block_seg: np.ndarray, y: np.ndarray
) -> None:
    point_seg = np.clip(np.searchsorted(sol.t_min, times_min, side="right") - 1, 0, None)
    bad = np.nonzero(
        (point_seg != np.repeat(block_seg, BLOCK)[: times_min.size]) | (times_min < sol.t_min[0])
    )[0]
    if bad.size:
        y[:, :, bad] = evaluate_modal(sol, times_min[bad])


def solve_expm(system: LinearSystem, schedule: Schedule, times_min: np.ndarray) -> np.ndarray:
    """Fallback: augmented matrix exponential per patient and segment, at the requested times."""
    n, s_count = system.n_patients, schedule.t_min.size
    n_states = system.a_per_min.shape[1]
    out = np.zeros((n, system.c_per_l.shape[1], times_min.size))
    seg = np.searchsorted(schedule.t_min, times_min, side="right") - 1
    for i in range(n):
        x = np.zeros(n_states)
        for s in range(s_count):
            x = x + schedule.bolus_mg[s, i]
            aug = np.zeros((n_states + 1, n_states + 1))
            aug[:n_states, :n_states] = system.a_per_min[i]
            aug[:n_states, n_states] = schedule.rate_mg_per_min[s, i]
            idx = np.nonzero(seg == s)[0]
            end = [schedule.t_min[s + 1] - schedule.t_min[s]] if s + 1 < s_count else []
            taus = np.concatenate([times_min[idx] - schedule.t_min[s], end])
            if taus.size == 0:
                continue
            uniq, inverse = np.unique(taus, return_inverse=True)
            mats = expm(aug[None] * uniq[:, None, None])[inverse]
            states = mats[:, :n_states, :n_states] @ x + mats[:, :n_states, n_states]
            out[i][:, idx] = system.c_per_l[i] @ states[: idx.size].T
            if end:
                x = states[-1]
    return out


def simulate_system(
    system: LinearSystem, pulses: list[Pulse], times_min: np.ndarray, method: str = "auto"
) -> tuple[np.ndarray, str]:
    """Concentrations (N, A, m) in mg/L and the method used ('modal' or 'expm')."""
    n, n_states = system.a_per_min.shape[:2]
    if not pulses:
        return np.zeros((n, len(system.analytes), times_min.size)), "none"
    schedule = build_schedule(
        pulses, n, n_states, min(times_min[0], min(p.start_min for p in pulses))
    )
    eig = eigen_system(system) if method in ("auto", "modal") else None
    if eig is None:
        return solve_expm(system, schedule, times_min), "expm"
    sol = solve_modal(system, schedule, eig)
    if is_uniform(times_min):
        return evaluate_modal_grid(sol, times_min), "modal"
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

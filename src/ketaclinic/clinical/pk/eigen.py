"""Eigen-decompositions of the state matrices, batched over patients, with closed forms.

Mammillary systems (peripherals exchange with the central compartment only) are similar to a
symmetric *arrow* matrix S = D A D⁻¹ (diagonal d, first row/column b, d_j² = A_0j / A_j0). For
up to three compartments its eigenvalues have closed forms (quadratic; trigonometric cubic),
polished by two Newton steps on det(S − λI) in product form, and its eigenvectors are explicit:
u = (1, b_1/(λ − d_1), …, b_m/(λ − d_m)), normalised. This is exact to rounding and far cheaper
than LAPACK's per-matrix ``eigh`` for 100,000 patients. Larger or non-mammillary matrices use
``eigh`` / ``eig``. Modes are always sorted by ascending eigenvalue (fastest decay first).

The closed form is only returned where it is accurate; otherwise :func:`arrow_eigen` returns
None and :func:`decompose` uses LAPACK for the whole batch. Two guards, relative to the
largest |diagonal entry| of each matrix (its scale):

- *Coincident peripherals*: two peripheral rates closer than ``COINCIDENT_RTOL`` × scale. With
  equal rates one eigenvalue sits exactly on a pole of the secular equation and another one
  nearly does, so the cubic has a near-double root: the trigonometric formula loses half the
  digits there and Newton's method can jump to a wrong root (rates 2, 1e-4, 1e-4, 1e-4, 1e-4
  gave −0.157 and −0.009 instead of −1e-4 twice), and u = b/(λ − d) is undefined.
- *A posteriori certificate*: every computed pair must satisfy ‖S u − λ u‖∞ ≤
  ``CERTIFICATE_RTOL`` × scale and the normalised vectors must be orthonormal,
  ‖UᵀU − I‖∞ ≤ ``CERTIFICATE_RTOL`` (the engine uses Uᵀ as the inverse). For a symmetric S
  this bounds every eigenvalue error by about that residual, so anything the first guard
  misses (an unconverged Newton polish, an ill-conditioned eigenvector matrix) also falls back.

Small batches (one patient, a handful) are memoised by the bytes of the matrix, so repeated
simulations of the same typical patient skip the decomposition.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

CONDITION_LIMIT = 1e8
# closed form only when peripheral rates differ by more than this × the matrix's largest rate
COINCIDENT_RTOL = 1e-6
# residual (× the largest rate) and loss of orthogonality accepted from the closed form
CERTIFICATE_RTOL = 1e-12
CACHE_MAX_PATIENTS = 64
CACHE_SIZE = 256

FloatArray = NDArray[np.float64]
# real for every model here; complex only if LAPACK's eig finds complex modes
ModalArray = NDArray[np.inexact[Any]]
# λ (N, K), V (N, n, K) and V⁻¹ (N, K, n)
Eigen = tuple[ModalArray, ModalArray, ModalArray]
_CACHE: dict[bytes, Eigen | None] = {}


def arrow_parts(a: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray] | None:
    """(diagonal d, couplings b, scales) of mammillary matrices (N, n, n), else None."""
    if a.shape[1] < 2:
        return None
    off = a[0].copy()
    np.fill_diagonal(off, 0.0)
    if np.any((off != 0) != (off.T != 0)) or np.any(off[1:, 1:] != 0):
        return None
    if np.any(a[:, 0, 1:] <= 0) or np.any(a[:, 1:, 0] <= 0):
        return None
    scale = np.ones(a.shape[:2])
    scale[:, 1:] = np.sqrt(a[:, 0, 1:] / a[:, 1:, 0])
    d = np.diagonal(a, axis1=1, axis2=2).copy()
    b = np.sqrt(a[:, 0, 1:] * a[:, 1:, 0])
    return d, b, scale


def _arrow_det(d: FloatArray, b: FloatArray, lam: FloatArray) -> tuple[FloatArray, FloatArray]:
    """det(S − λI) and its derivative for arrow matrices, in product form (accurate near roots).

    det = Π_j (d_j − λ) · [(d_0 − λ) − Σ_j b_j² / (d_j − λ)], evaluated with 1-D arrays per
    root and peripheral (n ≤ 3), which is much faster than reductions over tiny axes.
    """
    f, df = np.empty_like(lam), np.empty_like(lam)
    for r in range(lam.shape[1]):
        x = lam[:, r]
        prod, dlog = np.ones_like(x), np.zeros_like(x)
        sec, dsec = d[:, 0] - x, np.full_like(x, -1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            for j in range(1, d.shape[1]):
                per = d[:, j] - x
                prod = prod * per
                dlog = dlog - 1.0 / per
                q = b[:, j - 1] ** 2 / per
                sec = sec - q
                dsec = dsec - q / per
            f[:, r] = prod * sec
            df[:, r] = prod * dlog * sec + prod * dsec
    return f, df


def arrow_eigenvalues(d: FloatArray, b: FloatArray) -> FloatArray:
    """Ascending eigenvalues (N, n) of arrow matrices with n = 2 or 3, in closed form."""
    if d.shape[1] == 2:
        mean, half = 0.5 * (d[:, 0] + d[:, 1]), np.hypot(0.5 * (d[:, 0] - d[:, 1]), b[:, 0])
        big = np.where(mean < 0, mean - half, mean + half)  # larger magnitude, no cancellation
        other = (d[:, 0] * d[:, 1] - b[:, 0] ** 2) / big
        lam = np.sort(np.stack([big, other], axis=1), axis=1)
    else:
        q = d.sum(axis=1) / 3.0
        s = d - q[:, None]
        p = np.sqrt((np.sum(s * s, axis=1) + 2.0 * np.sum(b * b, axis=1)) / 6.0)
        det = s[:, 0] * s[:, 1] * s[:, 2] - b[:, 0] ** 2 * s[:, 2] - b[:, 1] ** 2 * s[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.clip(np.where(p > 0, det / (2.0 * p**3), 0.0), -1.0, 1.0)
        phi = np.arccos(r) / 3.0
        hi = q + 2.0 * p * np.cos(phi)
        lo = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
        lam = np.stack([lo, 3.0 * q - hi - lo, hi], axis=1)
    for _ in range(2):
        f, df = _arrow_det(d, b, lam)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = f / df
        lam = np.where(np.isfinite(step), lam - step, lam)
    return lam


def _certified(
    d: FloatArray, b: FloatArray, scale: FloatArray, lam: FloatArray, u: FloatArray
) -> bool:
    """Whether closed-form pairs pass the certificate of the module docstring.

    Checks E = U Λ Uᵀ − S entry by entry, weighted by the diagonal scaling (so V Λ V⁻¹ = A
    holds to the tolerance too), and G = UᵀU − I (so V⁻¹ V = I). With 1-D arrays per entry,
    like :func:`_arrow_det`: batched matmuls of 3 × 3 matrices cost more than the closed form.
    """
    n, tol = d.shape[1], CERTIFICATE_RTOL * np.max(np.abs(d), axis=1)
    ut = np.ascontiguousarray(np.transpose(u, (1, 2, 0)))  # (n, K, N): 1-D rows per entry
    lt = np.ascontiguousarray(lam.T)
    ok = np.ones(d.shape[0], dtype=bool)
    for i in range(n):
        for j in range(i, n):
            e = -d[:, i] if i == j else (-b[:, j - 1] if i == 0 else np.zeros_like(lt[0]))
            g = np.full_like(lt[0], -1.0 if i == j else 0.0)
            for k in range(n):
                e = e + ut[i, k] * lt[k] * ut[j, k]
                g = g + ut[k, i] * ut[k, j]
            ratio = scale[:, j] / scale[:, i]
            ok &= (np.abs(e) * np.maximum(ratio, 1.0 / ratio) <= tol) & (
                np.abs(g) <= CERTIFICATE_RTOL
            )
    return bool(np.all(ok))


def arrow_eigen(a: FloatArray) -> Eigen | None:
    """Closed-form (λ, V, V⁻¹) of mammillary matrices; None when not applicable or not safe."""
    parts = arrow_parts(a)
    if parts is None:
        return None
    d, b, scale = parts
    n = d.shape[1]
    if n > 3:
        sym = a * scale[:, :, None] / scale[:, None, :]
        lam, u = np.linalg.eigh(0.5 * (sym + np.swapaxes(sym, 1, 2)))
        return lam, u / scale[:, :, None], np.swapaxes(u, 1, 2) * scale[:, None, :]
    size = np.max(np.abs(d), axis=1)
    if n == 3 and np.any(np.abs(d[:, 1] - d[:, 2]) <= COINCIDENT_RTOL * size):
        return None  # (near-)equal peripheral rates: leave it to LAPACK
    lam = arrow_eigenvalues(d, b)
    gap = lam[:, None, :] - d[:, 1:, None]  # (N, m, K)
    if not np.all(np.isfinite(lam)) or np.any(np.abs(gap) <= 1e-9 * size[:, None, None]):
        return None  # an eigenvalue on a pole: the vectors below are undefined
    u = np.ones((d.shape[0], n, n))
    u[:, 1:, :] = b[:, :, None] / gap
    u /= np.sqrt(np.sum(u * u, axis=1))[:, None, :]
    if not _certified(d, b, scale, lam, u):
        return None
    return lam, u / scale[:, :, None], np.swapaxes(u, 1, 2) * scale[:, None, :]


def lapack_eigen(a: FloatArray) -> Eigen | None:
    """``eigh`` on the symmetrised mammillary matrix, or ``eig`` with a conditioning check."""
    parts = arrow_parts(a)
    if parts is not None:
        scale = parts[2]
        sym = a * scale[:, :, None] / scale[:, None, :]
        lam, u = np.linalg.eigh(0.5 * (sym + np.swapaxes(sym, 1, 2)))
        return lam, u / scale[:, :, None], np.swapaxes(u, 1, 2) * scale[:, None, :]
    lam, v = np.linalg.eig(a)
    try:
        w = np.linalg.inv(v)
    except np.linalg.LinAlgError:
        return None
    cond = np.abs(v).sum(axis=1).max(axis=1) * np.abs(w).sum(axis=1).max(axis=1)
    if not np.all(np.isfinite(cond)) or cond.max() > CONDITION_LIMIT:
        return None
    if np.iscomplexobj(lam) and np.max(np.abs(lam.imag)) <= 1e-14 * np.max(np.abs(lam.real)):
        lam, v, w = lam.real, v.real, w.real
    if not np.iscomplexobj(lam):
        order = np.argsort(lam, axis=1)
        lam = np.take_along_axis(lam, order, axis=1)
        v = np.take_along_axis(v, order[:, None, :], axis=2)
        w = np.take_along_axis(w, order[:, :, None], axis=1)
    return lam, v, w


def decompose(a: FloatArray) -> Eigen | None:
    """λ (N, K), V (N, n, K) and V⁻¹ (N, K, n); None when not safely diagonalisable."""
    return arrow_eigen(a) or lapack_eigen(a)


def cached_decompose(a: FloatArray) -> Eigen | None:
    """:func:`decompose`, memoised for small batches (the typical patient of a model)."""
    if a.shape[0] > CACHE_MAX_PATIENTS:
        return decompose(a)
    key = a.shape[1].to_bytes(2, "little") + a.tobytes()
    if key in _CACHE:
        return _CACHE[key]
    result = decompose(a)
    if result is not None:
        for arr in result:
            arr.flags.writeable = False
    if len(_CACHE) >= CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = result
    return result

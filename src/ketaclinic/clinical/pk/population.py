"""Virtual populations: inter-individual variability from the published omegas, vectorised."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from ketaclinic.clinical.pk.engine import simulate_system
from ketaclinic.clinical.pk.model import FloatArray, Params, PkModel
from ketaclinic.clinical.pk.regimen import Covariates, Regimen
from ketaclinic.clinical.pk.simulate import (
    NG_PER_ML_PER_MG_PER_L,
    individual_system,
    prepare,
    regimen_pulses,
    validity_warnings,
)
from ketaclinic.clinical.rules import ClinicalInputError

PERCENTILES = (5.0, 50.0, 95.0)
MAX_PATIENTS = 1_000_000


@dataclass(frozen=True)
class PopulationSimulation:
    """Concentrations (ng/mL) of N virtual patients: analyte -> (N, m); percentiles (5/50/95)."""

    model_id: str
    times_min: FloatArray
    concentration_ng_per_ml: Mapping[str, FloatArray]
    sampling_site: str
    warnings: tuple[str, ...]
    variability: str

    def percentiles(self, q: Iterable[float] = PERCENTILES) -> dict[str, dict[str, FloatArray]]:
        """For each analyte, {"p5": ..., "p50": ..., "p95": ...} over patients at every time."""
        q = tuple(q)
        out = {}
        for analyte, conc in self.concentration_ng_per_ml.items():
            values = np.percentile(conc, q, axis=0)
            out[analyte] = {f"p{p:g}": values[i] for i, p in enumerate(q)}
        return out


Variability = float | Mapping[str, float] | None


def _validate_population(n: int, variability: Variability) -> None:
    if not isinstance(n, (int, np.integer)) or n < 1 or n > MAX_PATIENTS:
        raise ClinicalInputError(
            f"population size must be an integer from 1 to {MAX_PATIENTS}, got {n}"
        )
    if variability is None:
        return
    cvs = variability.values() if isinstance(variability, Mapping) else [variability]
    for cv in cvs:
        if not isinstance(cv, (int, float)) or not np.isfinite(cv) or cv < 0:
            raise ClinicalInputError(
                f"variability must be a coefficient of variation >= 0, got {cv}"
            )


def omega_matrix(
    model: PkModel, variability: Variability = None
) -> tuple[list[str], list[str], FloatArray]:
    """Parameter names, their scales ('log'/'logit') and the covariance matrix of the etas.

    ``variability=None`` uses the published omegas (and covariances); a float CV applies
    ln(1 + CV²) to every variable parameter independently; a mapping gives a CV per parameter.
    """
    if variability is None:
        names = [o.parameter for o in model.omegas]
        scales = [o.scale for o in model.omegas]
        cov = np.diag([float(o.variance.value) for o in model.omegas])
        for a, b, c in model.covariances:
            i, j = names.index(a), names.index(b)
            cov[i, j] = cov[j, i] = float(c.value)
        return names, scales, cov
    cvs = (
        dict(variability)
        if isinstance(variability, Mapping)
        else dict.fromkeys(model.variable_parameters, variability)
    )
    unknown = set(cvs) - set(model.parameters)
    if unknown:
        raise ClinicalInputError(f"model {model.model_id} has no parameter {sorted(unknown)[0]!r}")
    names = list(cvs)
    return names, ["log"] * len(names), np.diag([np.log1p(float(cvs[k]) ** 2) for k in names])


def sample_parameters(
    model: PkModel, n: int, seed: int | None = None, variability: Variability = None
) -> Params:
    """Typical parameters with log-normal (or logit-normal) inter-individual variability."""
    _validate_population(n, variability)
    params = model.typical_params(n)
    names, scales, cov = omega_matrix(model, variability)
    if not names or not np.any(cov):
        return params
    # the draws of rng.multivariate_normal(0, cov, n, method="cholesky"), without its matrix
    # product when cov is diagonal (the usual case): a BLAS call over 100,000 rows wakes
    # threads that then spin on a shared machine
    eta = np.random.default_rng(seed).standard_normal((n, len(names)))
    if np.count_nonzero(cov - np.diag(np.diagonal(cov))):
        eta = eta @ np.linalg.cholesky(cov).T
    else:
        eta *= np.sqrt(np.diagonal(cov))
    for i, (name, scale) in enumerate(zip(names, scales, strict=True)):
        if scale == "logit":
            x = np.clip(params[name], 1e-12, 1 - 1e-12)
            params[name] = 1.0 / (1.0 + np.exp(-(np.log(x / (1 - x)) + eta[:, i])))
        else:
            params[name] = params[name] * np.exp(eta[:, i])
    return params


def describe_variability(model: PkModel, variability: Variability) -> str:
    if variability is None:
        return "published omegas" if model.omegas else "none published (all patients identical)"
    return f"user-set CV {variability}" if not isinstance(variability, Mapping) else "user-set CVs"


def simulate_population(
    model_id: str,
    covariates: Covariates,
    regimen: Regimen,
    times_min: Iterable[float],
    n: int,
    seed: int | None = None,
    variability: Variability = None,
) -> PopulationSimulation:
    """N virtual patients sharing the covariates, with IIV; all patients solved in one batch."""
    model, times = prepare(model_id, covariates, regimen, times_min)
    system = individual_system(model, covariates, sample_parameters(model, n, seed, variability))
    conc, _ = simulate_system(
        system, regimen_pulses(system, regimen), times, scale=NG_PER_ML_PER_MG_PER_L
    )
    warnings = validity_warnings(model, covariates, regimen)
    if variability is None and not model.omegas:
        warnings += (
            f"model {model.model_id} publishes no inter-individual variability; "
            "all virtual patients are identical",
        )
    return PopulationSimulation(
        model_id=model.model_id,
        times_min=times,
        concentration_ng_per_ml={a: conc[:, j] for j, a in enumerate(system.analytes)},
        sampling_site=str(model.sampling_site.value),
        warnings=warnings,
        variability=describe_variability(model, variability),
    )

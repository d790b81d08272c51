"""The shape of a PK model: cited parameters, a linear system dx/dt = A x + inputs, outputs.

A :class:`PkModel` holds only data and two small functions: ``covariates`` turns sampled
parameters into the patient's parameters as published, and ``build`` turns them into a
:class:`LinearSystem` (state matrix, output matrix) plus a ``dose`` function that maps one
administration to input :class:`Pulse` objects. All arrays carry a leading patient axis N, so one
model serves one patient (N = 1) and a virtual population alike.

States are amounts in mg (metabolites in parent-mass equivalents); time is minutes; outputs are
mg/L (= µg/mL). Rate constants are converted from the published units explicitly here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ketaclinic.clinical.rules import Cited, Grade

Params = dict[str, np.ndarray]

_PER_MIN = {"1/min": 1.0, "1/h": 1.0 / 60.0, "L/min": 1.0, "L/h": 1.0 / 60.0}
_MIN = {"min": 1.0, "h": 60.0}


def per_min(value: np.ndarray, unit: str) -> np.ndarray:
    """Convert a rate constant (1/h, 1/min) or clearance (L/h, L/min) to per-minute units."""
    return np.asarray(value, dtype=float) * _PER_MIN[unit]


def minutes(value: np.ndarray, unit: str) -> np.ndarray:
    """Convert a duration (h, min) to minutes."""
    return np.asarray(value, dtype=float) * _MIN[unit]


@dataclass(frozen=True)
class Pulse:
    """Input of ``amounts_mg`` (N, n_states) spread evenly over duration_min (0 = instantaneous)."""

    start_min: float
    duration_min: float
    amounts_mg: np.ndarray


@dataclass(frozen=True)
class LinearSystem:
    """dx/dt = A x + u(t) for N patients; concentration (mg/L) = C x per analyte."""

    state_names: tuple[str, ...]
    analytes: tuple[str, ...]
    a_per_min: np.ndarray  # (N, n, n)
    c_per_l: np.ndarray  # (N, n_analytes, n)
    dose: Callable[[str, float, float, int], list[Pulse]] = field(compare=False)
    eliminated_analyte_clearance_l_per_min: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_patients(self) -> int:
        return int(self.a_per_min.shape[0])


@dataclass(frozen=True)
class ValidityRange:
    """Covariate range of the studied population; a warning outside it."""

    covariate: str
    low: float
    high: float
    unit: str
    source: str
    grade: Grade


@dataclass(frozen=True)
class Omega:
    """Inter-individual variance of one parameter on its transform scale ('log' or 'logit')."""

    parameter: str
    variance: Cited
    scale: str = "log"


@dataclass(frozen=True)
class PkModel:
    """A published linear PK model as cited data plus its structure."""

    model_id: str
    title: str
    reference: str
    drug: str
    analytes: tuple[str, ...]
    routes: tuple[str, ...]
    sampling_site: Cited
    parameters: Mapping[str, Cited]
    omegas: tuple[Omega, ...]
    covariances: tuple[tuple[str, str, Cited], ...]
    validity: tuple[ValidityRange, ...]
    covariate_note: str
    molar_mass_g_per_mol: Cited
    covariates: Callable = field(compare=False, repr=False)
    build: Callable = field(compare=False, repr=False)
    variable_parameters: tuple[str, ...] = ()
    caveats: tuple[str, ...] = ()

    def typical_params(self, n: int = 1) -> Params:
        """Typical parameter values (in their cited units) repeated for n patients."""
        return {name: np.full(n, float(c.value)) for name, c in self.parameters.items()}


class Compartments:
    """Assemble a compartmental state matrix from named flows, vectorised over patients."""

    def __init__(self, names: tuple[str, ...], n: int) -> None:
        self.names = names
        self.index = {name: i for i, name in enumerate(names)}
        self.a = np.zeros((n, len(names), len(names)))

    def flow(
        self, src: str, dst: str | None, k: np.ndarray, fraction: np.ndarray | float = 1.0
    ) -> None:
        """Move amount from src at rate k (1/min); ``fraction`` of it reaches dst (rest is lost)."""
        i = self.index[src]
        self.a[:, i, i] -= k
        if dst is not None:
            self.a[:, self.index[dst], i] += k * fraction

    def exchange(self, a: str, b: str, q: np.ndarray, va: np.ndarray, vb: np.ndarray) -> None:
        """Two-way exchange by an intercompartmental clearance q (L/min) between volumes va, vb."""
        self.flow(a, b, q / va)
        self.flow(b, a, q / vb)

    def outputs(
        self, analytes: tuple[str, ...], central: Mapping[str, tuple[str, np.ndarray]]
    ) -> np.ndarray:
        """Output matrix: concentration of each analyte = amount in its central state / volume."""
        c = np.zeros((self.a.shape[0], len(analytes), len(self.names)))
        for j, analyte in enumerate(analytes):
            state, volume_l = central[analyte]
            c[:, j, self.index[state]] = 1.0 / volume_l
        return c

    def amounts(self, n: int, **mg: np.ndarray | float) -> np.ndarray:
        """An (N, n_states) amount array with the given mg in the named states."""
        out = np.zeros((n, len(self.names)))
        for name, value in mg.items():
            out[:, self.index[name]] = value
        return out


def cited(value: float, unit: str, source: str, grade: str = "S", note: str = "") -> Cited:
    """Shorthand for a cited parameter."""
    return Cited(value=value, unit=unit, source=source, grade=Grade(grade), note=note)


def omega_from_cv(cv: float) -> float:
    """Log-normal variance for a coefficient of variation: omega² = ln(1 + CV²)."""
    return float(np.log1p(cv * cv))

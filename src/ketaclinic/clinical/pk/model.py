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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ketaclinic.clinical.rules import Cited, Grade

if TYPE_CHECKING:
    from ketaclinic.clinical.pk.regimen import Covariates

FloatArray = NDArray[np.float64]
Params = dict[str, FloatArray]

_PER_MIN = {"1/min": 1.0, "1/h": 1.0 / 60.0, "L/min": 1.0, "L/h": 1.0 / 60.0}
_MIN = {"min": 1.0, "h": 60.0}


def per_min(value: ArrayLike, unit: str) -> FloatArray:
    """Convert a rate constant (1/h, 1/min) or clearance (L/h, L/min) to per-minute units."""
    return np.asarray(value, dtype=float) * _PER_MIN[unit]


def minutes(value: ArrayLike, unit: str) -> FloatArray:
    """Convert a duration (h, min) to minutes."""
    return np.asarray(value, dtype=float) * _MIN[unit]


@dataclass(frozen=True)
class Pulse:
    """Input of ``amounts_mg`` (N, n_states) spread evenly over duration_min (0 = instantaneous)."""

    start_min: float
    duration_min: float
    amounts_mg: FloatArray


class DoseFunction(Protocol):
    """Maps one administration by a route to the input pulses of a built system."""

    def __call__(
        self,
        route: str,
        dose_mg: float,
        start_min: float,
        duration_min: float = 0.0,
        device_index: int = 0,
    ) -> list[Pulse]: ...


@dataclass(frozen=True)
class LinearSystem:
    """dx/dt = A x + u(t) for N patients; concentration (mg/L) = C x per analyte."""

    state_names: tuple[str, ...]
    analytes: tuple[str, ...]
    a_per_min: FloatArray  # (N, n, n)
    c_per_l: FloatArray  # (N, n_analytes, n)
    dose: DoseFunction = field(compare=False)
    eliminated_analyte_clearance_l_per_min: Mapping[str, FloatArray] = field(default_factory=dict)

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
    covariates: Callable[[Params, Covariates], Params] = field(compare=False, repr=False)
    build: Callable[[Params], LinearSystem] = field(compare=False, repr=False)
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
        self.a: FloatArray = np.zeros((n, len(names), len(names)))

    def flow(
        self, src: str, dst: str | None, k: FloatArray, fraction: FloatArray | float = 1.0
    ) -> None:
        """Move amount from src at rate k (1/min); ``fraction`` of it reaches dst (rest is lost)."""
        i = self.index[src]
        self.a[:, i, i] -= k
        if dst is not None:
            self.a[:, self.index[dst], i] += k * fraction

    def exchange(self, a: str, b: str, q: FloatArray, va: FloatArray, vb: FloatArray) -> None:
        """Two-way exchange by an intercompartmental clearance q (L/min) between volumes va, vb."""
        self.flow(a, b, q / va)
        self.flow(b, a, q / vb)

    def outputs(
        self, analytes: tuple[str, ...], central: Mapping[str, tuple[str, FloatArray]]
    ) -> FloatArray:
        """Output matrix: concentration of each analyte = amount in its central state / volume."""
        c = np.zeros((self.a.shape[0], len(analytes), len(self.names)))
        for j, analyte in enumerate(analytes):
            state, volume_l = central[analyte]
            c[:, j, self.index[state]] = 1.0 / volume_l
        return c

    def amounts(self, n: int, **mg: FloatArray | float) -> FloatArray:
        """An (N, n_states) amount array with the given mg in the named states."""
        out = np.zeros((n, len(self.names)))
        for name, value in mg.items():
            out[:, self.index[name]] = value
        return out


# one extravascular route of a model: (dose_mg, start_min, device_index) -> input pulses
RouteDose = Callable[[float, float, int], list[Pulse]]


def dose_function(
    comp: Compartments, n: int, routes: Mapping[str, RouteDose] | None = None
) -> DoseFunction:
    """IV bolus or infusion (the whole dose into "central") plus the model's own routes."""
    own = dict(routes or {})

    def dose(
        route: str,
        dose_mg: float,
        start_min: float,
        duration_min: float = 0.0,
        device_index: int = 0,
    ) -> list[Pulse]:
        if route in own:
            return own[route](dose_mg, start_min, device_index)
        duration = duration_min if route == "iv-infusion" else 0.0
        return [Pulse(start_min, duration, comp.amounts(n, central=dose_mg))]

    return dose


def cited(value: float | str, unit: str, source: str, grade: str = "S", note: str = "") -> Cited:
    """Shorthand for a cited parameter (or a cited fact such as the sampling site)."""
    return Cited(value=value, unit=unit, source=source, grade=Grade(grade), note=note)


class CitedFrom:
    """``cited`` with one source: the parameter table of one publication."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __call__(self, value: float, unit: str, note: str = "", grade: str = "S") -> Cited:
        return cited(value, unit, self.source, grade, note)


def age_weight_validity(
    age_years: tuple[float, float],
    weight_kg: tuple[float, float],
    source: str,
    grade: Grade,
    weight_source: str | None = None,
) -> tuple[ValidityRange, ValidityRange]:
    """The studied age and weight ranges (every model here has exactly these two)."""
    return (
        ValidityRange("age_years", *age_years, "years", source, grade),
        ValidityRange("weight_kg", *weight_kg, "kg", weight_source or source, grade),
    )


def scale_by_weight(
    p: Params,
    covariates: Covariates,
    linear: Iterable[str] = (),
    three_quarter: Iterable[str] = (),
) -> Params:
    """Allometric covariates: ``linear`` parameters × WT/70, ``three_quarter`` × (WT/70)^0.75."""
    out = dict(p)
    w = covariates.weight_kg / 70.0
    for name in linear:
        out[name] = p[name] * w
    for name in three_quarter:
        out[name] = p[name] * w**0.75
    return out


def omega_from_cv(cv: float) -> float:
    """Log-normal variance for a coefficient of variation: omega² = ln(1 + CV²)."""
    return float(np.log1p(cv * cv))

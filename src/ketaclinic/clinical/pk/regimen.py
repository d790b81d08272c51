"""Patients and regimens for the PK simulator: frozen inputs, validated with one-line reasons.

Times are minutes after time zero; doses are mg. The CLI syntax is parsed here so that the web
and the command line read regimens the same way: ``35mg/40min@0`` (an infusion of 35 mg over
40 min starting at minute 0), ``56mg@0`` (a dose starting at minute 0) and ``A:B:S`` (a minute
grid from A to B inclusive in steps of S).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ketaclinic.clinical.rules import ClinicalInputError
from ketaclinic.clinical.units import check_height_cm

NASAL_DEVICE_MG = 28.0
NASAL_DEVICE_INTERVAL_MIN = 5.0
POPULATIONS = ("general", "asian", "japanese")


@dataclass(frozen=True)
class Covariates:
    """What the models may use about a patient (population: general, asian or japanese)."""

    weight_kg: float = 70.0
    age_years: float = 40.0
    sex: str = "male"
    height_cm: float = 170.0
    population: str = "general"

    def __post_init__(self) -> None:
        _require_finite_positive("weight_kg", self.weight_kg)
        _require_finite_positive("height_cm", self.height_cm)
        check_height_cm(self.height_cm)
        if not math.isfinite(self.age_years) or self.age_years < 0:
            raise ClinicalInputError(
                f"age_years must be a finite number >= 0, got {self.age_years}"
            )
        if self.sex not in ("male", "female"):
            raise ClinicalInputError(f"sex must be 'male' or 'female', got {self.sex!r}")
        if self.population not in POPULATIONS:
            raise ClinicalInputError(
                f"population must be one of {', '.join(POPULATIONS)}, got {self.population!r}"
            )


@dataclass(frozen=True)
class Infusion:
    """A zero-order IV infusion: dose_mg spread evenly over duration_min from start_min."""

    dose_mg: float
    duration_min: float
    start_min: float = 0.0

    def __post_init__(self) -> None:
        _require_dose(self.dose_mg)
        _require_finite_positive("infusion duration_min", self.duration_min)
        _require_start(self.start_min)

    @property
    def end_min(self) -> float:
        return self.start_min + self.duration_min


@dataclass(frozen=True)
class _Dose:
    """dose_mg given at start_min, both validated."""

    dose_mg: float
    start_min: float = 0.0

    def __post_init__(self) -> None:
        _require_dose(self.dose_mg)
        _require_start(self.start_min)


@dataclass(frozen=True)
class Bolus(_Dose):
    """An IV bolus of dose_mg at start_min."""


@dataclass(frozen=True)
class NasalDose(_Dose):
    """An intranasal administration of 28 mg devices, 5 minutes apart, from start_min."""

    def __post_init__(self) -> None:
        super().__post_init__()
        n = self.dose_mg / NASAL_DEVICE_MG
        if abs(n - round(n)) > 1e-9:
            raise ClinicalInputError(
                f"nasal dose must be a multiple of {NASAL_DEVICE_MG:g} mg devices, "
                f"got {self.dose_mg:g} mg"
            )

    @property
    def device_count(self) -> int:
        return int(round(self.dose_mg / NASAL_DEVICE_MG))

    def device_times_min(self) -> list[float]:
        return [self.start_min + i * NASAL_DEVICE_INTERVAL_MIN for i in range(self.device_count)]


ORAL_DRUGS = ("racemic", "esketamine")


@dataclass(frozen=True)
class OralDose(_Dose):
    """An oral dose (solution, tablet or thin film, as the model defines it) at start_min.

    ``drug`` is what was given: racemic ketamine (the clinic's oral and sublingual route, the
    default) or esketamine. A racemic dose run through an S-ketamine model carries a warning.
    """

    drug: str = "racemic"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.drug not in ORAL_DRUGS:
            raise ClinicalInputError(
                f"oral drug must be one of {', '.join(ORAL_DRUGS)}, got {self.drug!r}"
            )


@dataclass(frozen=True)
class Regimen:
    """Everything given: IV infusions (never overlapping), IV boluses, nasal and oral doses."""

    infusions: tuple[Infusion, ...] = ()
    boluses: tuple[Bolus, ...] = ()
    nasal: tuple[NasalDose, ...] = ()
    oral: tuple[OralDose, ...] = ()
    routes: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        for name in ("infusions", "boluses", "nasal", "oral"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _refuse_overlaps(self.infusions)
        routes = []
        if self.infusions:
            routes.append("iv-infusion")
        if self.boluses:
            routes.append("iv-bolus")
        if self.nasal:
            routes.append("nasal")
        if self.oral:
            routes.append("oral")
        object.__setattr__(self, "routes", tuple(routes))

    @property
    def total_dose_mg(self) -> float:
        doses = [
            d.dose_mg
            for group in (self.infusions, self.boluses, self.nasal, self.oral)
            for d in group
        ]
        return float(sum(doses))

    def scaled(self, factor: float) -> Regimen:
        """The same regimen with every dose multiplied by factor (used by linearity checks)."""
        return Regimen(
            infusions=tuple(
                Infusion(i.dose_mg * factor, i.duration_min, i.start_min) for i in self.infusions
            ),
            boluses=tuple(Bolus(b.dose_mg * factor, b.start_min) for b in self.boluses),
            nasal=tuple(NasalDose(n.dose_mg * factor, n.start_min) for n in self.nasal),
            oral=tuple(OralDose(o.dose_mg * factor, o.start_min, o.drug) for o in self.oral),
        )


def _require_finite_positive(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ClinicalInputError(f"{name} must be a finite number > 0, got {value}")


def _require_dose(dose_mg: float) -> None:
    if not isinstance(dose_mg, (int, float)) or not math.isfinite(dose_mg):
        raise ClinicalInputError(f"dose_mg must be a finite number, got {dose_mg}")
    if dose_mg < 0:
        raise ClinicalInputError(f"dose_mg must not be negative, got {dose_mg:g}")


def _require_start(start_min: float) -> None:
    if not isinstance(start_min, (int, float)) or not math.isfinite(start_min):
        raise ClinicalInputError(f"start_min must be a finite number, got {start_min}")


def _refuse_overlaps(infusions: Sequence[Infusion]) -> None:
    ordered = sorted(infusions, key=lambda i: i.start_min)
    for first, second in zip(ordered, ordered[1:], strict=False):
        if second.start_min < first.end_min:
            raise ClinicalInputError(
                f"infusions overlap: one runs {first.start_min:g}-{first.end_min:g} min and "
                f"another starts at {second.start_min:g} min"
            )


def validate_times(times_min: Iterable[float]) -> NDArray[np.float64]:
    """Return the requested output times as a float array, refusing NaN, empty or unsorted input."""
    t = np.asarray(
        list(times_min) if not isinstance(times_min, np.ndarray) else times_min, dtype=float
    )
    if t.ndim != 1 or t.size == 0:
        raise ClinicalInputError("times_min must be a non-empty list of minutes")
    if not np.all(np.isfinite(t)):
        raise ClinicalInputError("times_min must not contain NaN or infinite values")
    if t.size > 1 and bool((t[1:] < t[:-1]).any()):
        raise ClinicalInputError("times_min must be sorted ascending")
    return t


_AMOUNT = r"(?P<dose>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*mg"
_START = r"@\s*(?P<start>-?[0-9]*\.?[0-9]+)"
_INFUSION_RE = re.compile(
    rf"^\s*{_AMOUNT}\s*/\s*(?P<dur>[0-9]*\.?[0-9]+)\s*min\s*(?:{_START})?\s*$"
)
_DOSE_RE = re.compile(rf"^\s*{_AMOUNT}\s*(?:{_START})?\s*$")


def parse_infusion(text: str) -> Infusion:
    """Parse ``35mg/40min@0`` into an :class:`Infusion` (``@start`` defaults to 0)."""
    match = _INFUSION_RE.match(text)
    if not match:
        raise ClinicalInputError(f"infusion must look like 35mg/40min@0, got {text!r}")
    start = float(match["start"]) if match["start"] is not None else 0.0
    return Infusion(float(match["dose"]), float(match["dur"]), start)


def _parse_dose(text: str, kind: str) -> tuple[float, float]:
    match = _DOSE_RE.match(text)
    if not match:
        raise ClinicalInputError(f"{kind} dose must look like 56mg@0, got {text!r}")
    start = float(match["start"]) if match["start"] is not None else 0.0
    return float(match["dose"]), start


def parse_bolus(text: str) -> Bolus:
    """Parse ``20mg@0`` into an IV :class:`Bolus`."""
    return Bolus(*_parse_dose(text, "bolus"))


def parse_nasal(text: str) -> NasalDose:
    """Parse ``56mg@0`` into a :class:`NasalDose` (two 28 mg devices, 5 min apart)."""
    return NasalDose(*_parse_dose(text, "nasal"))


def parse_oral(text: str, drug: str = "racemic") -> OralDose:
    """Parse ``50mg@0`` into an :class:`OralDose` of ``drug`` (racemic or esketamine)."""
    return OralDose(*_parse_dose(text, "oral"), drug=drug)


def parse_regimen_args(
    infusions: Sequence[str] = (),
    boluses: Sequence[str] = (),
    nasal: Sequence[str] = (),
    oral: Sequence[str] = (),
    oral_drug: str = "racemic",
) -> Regimen:
    """Build a :class:`Regimen` from CLI strings (each list may be empty)."""
    return Regimen(
        infusions=tuple(parse_infusion(s) for s in infusions),
        boluses=tuple(parse_bolus(s) for s in boluses),
        nasal=tuple(parse_nasal(s) for s in nasal),
        oral=tuple(parse_oral(s, oral_drug) for s in oral),
    )


def parse_times(text: str) -> NDArray[np.float64]:
    """Parse ``10,20,40`` or a grid ``A:B:S`` (A to B inclusive, step S minutes)."""
    text = text.strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            start, stop, step = parts
            if not (step > 0 and stop >= start):
                raise ClinicalInputError(f"time grid A:B:S needs S > 0 and B >= A, got {text!r}")
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            if count > 5_000_000:
                raise ClinicalInputError(f"time grid {text!r} has too many points ({count})")
            return validate_times(start + step * np.arange(count))
        return validate_times([float(p) for p in text.split(",") if p.strip()])
    except ValueError as exc:
        if isinstance(exc, ClinicalInputError):
            raise
        raise ClinicalInputError(
            f"times must look like 10,20,40 or 0:1440:1, got {text!r}"
        ) from None

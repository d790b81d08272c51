"""Simulate a regimen for one patient: concentrations per analyte at the requested times."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ketaclinic.clinical.pk.engine import simulate_system
from ketaclinic.clinical.pk.model import FloatArray, LinearSystem, Params, PkModel, Pulse
from ketaclinic.clinical.pk.regimen import Covariates, Regimen, validate_times
from ketaclinic.clinical.pk.registry import get_model
from ketaclinic.clinical.rules import ClinicalInputError

NG_PER_ML_PER_MG_PER_L = 1000.0


@dataclass(frozen=True)
class Simulation:
    """Predicted concentrations (ng/mL) per analyte at times_min, with the model's caveats."""

    model_id: str
    times_min: FloatArray
    concentration_ng_per_ml: Mapping[str, FloatArray]
    sampling_site: str
    warnings: tuple[str, ...]
    method: str
    molar_mass_g_per_mol: float

    def concentration_umol_per_l(self) -> dict[str, FloatArray]:
        """µmol/L via the parent molar mass (metabolites are carried in parent-mass equivalents)."""
        return {a: c / self.molar_mass_g_per_mol for a, c in self.concentration_ng_per_ml.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "times_min": self.times_min.tolist(),
            "concentration_ng_per_ml": {
                a: c.tolist() for a, c in self.concentration_ng_per_ml.items()
            },
            "sampling_site": self.sampling_site,
            "warnings": list(self.warnings),
        }


def check_route_support(model: PkModel, regimen: Regimen) -> None:
    """Refuse a regimen that uses a route the model does not describe."""
    for route in regimen.routes:
        if route not in model.routes:
            raise ClinicalInputError(
                f"model {model.model_id} does not support route {route}; "
                f"it supports {', '.join(model.routes)}"
            )


S_KETAMINE_DRUGS = ("S-ketamine", "esketamine")


def regimen_warnings(model: PkModel, regimen: Regimen | None) -> tuple[str, ...]:
    """A racemic oral dose run through an S-ketamine model: say what the prediction means."""
    if regimen is None or model.drug not in S_KETAMINE_DRUGS:
        return ()
    racemic = [o for o in regimen.oral if o.drug == "racemic"]
    if not racemic:
        return ()
    return (
        f"racemic oral ketamine run through {model.model_id}, an {model.drug} model: the whole "
        "racemic dose is treated as S-ketamine (a racemic dose holds about half as much), so "
        "S-ketamine is over-predicted about twofold and R-ketamine is not modelled; use a "
        "racemic model where one supports the route (approximation, see pk.md)",
    )


def validity_warnings(
    model: PkModel, covariates: Covariates, regimen: Regimen | None = None
) -> tuple[str, ...]:
    """One warning per covariate outside the studied range, and for a racemic oral dose run
    through an S-ketamine model."""
    out = list(regimen_warnings(model, regimen))
    for r in model.validity:
        value = getattr(covariates, r.covariate)
        if not r.low <= value <= r.high:
            out.append(
                f"{r.covariate} {value:g} {r.unit} is outside the range "
                f"{r.low:g}-{r.high:g} {r.unit} of model {model.model_id} "
                f"({r.source}; grade {r.grade.value}); extrapolating"
            )
    if (
        model.drug != "racemic ketamine"
        and covariates.sex == "female"
        and model.model_id == "fanta2015"
    ):
        out.append("fanta2015 was estimated in men only; no sex effect is applied")
    return tuple(out)


def regimen_pulses(system: LinearSystem, regimen: Regimen) -> list[Pulse]:
    """Every administration in the regimen as input pulses of this system."""
    pulses: list[Pulse] = []
    for inf in regimen.infusions:
        pulses += system.dose("iv-infusion", inf.dose_mg, inf.start_min, inf.duration_min)
    for bolus in regimen.boluses:
        pulses += system.dose("iv-bolus", bolus.dose_mg, bolus.start_min)
    for nasal in regimen.nasal:
        for i, t in enumerate(nasal.device_times_min()):
            pulses += system.dose("nasal", 28.0, t, device_index=i)
    for oral in regimen.oral:
        pulses += system.dose("oral", oral.dose_mg, oral.start_min)
    return pulses


def individual_system(model: PkModel, covariates: Covariates, params: Params) -> LinearSystem:
    """Apply covariates as published and build the patient's linear system."""
    return model.build(model.covariates(params, covariates))


def prepare(
    model_id: str, covariates: Covariates, regimen: Regimen, times_min: Iterable[float]
) -> tuple[PkModel, FloatArray]:
    """Validate inputs shared by single-patient and population simulation."""
    model = get_model(model_id)
    if not isinstance(covariates, Covariates):
        raise ClinicalInputError("covariates must be a Covariates value")
    if not isinstance(regimen, Regimen):
        raise ClinicalInputError("regimen must be a Regimen value")
    check_route_support(model, regimen)
    return model, validate_times(times_min)


def simulate_regimen(
    model_id: str,
    covariates: Covariates,
    regimen: Regimen,
    times_min: Iterable[float],
    method: str = "auto",
) -> Simulation:
    """Typical-patient concentrations of every analyte at the requested times (exact solution).

    Examples
    --------
    >>> from ketaclinic.clinical.pk import Covariates, Regimen, Infusion, simulate_regimen
    >>> regimen = Regimen(infusions=(Infusion(35, 40, 0),))
    >>> sim = simulate_regimen("kamp2020", Covariates(weight_kg=70), regimen, [40])
    >>> round(float(sim.concentration_ng_per_ml["ketamine"][0]))
    253
    """
    model, times = prepare(model_id, covariates, regimen, times_min)
    system = individual_system(model, covariates, model.typical_params(1))
    conc, used = simulate_system(
        system, regimen_pulses(system, regimen), times, method, NG_PER_ML_PER_MG_PER_L
    )
    return Simulation(
        model_id=model.model_id,
        times_min=times,
        concentration_ng_per_ml={a: conc[0, j] for j, a in enumerate(system.analytes)},
        sampling_site=str(model.sampling_site.value),
        warnings=validity_warnings(model, covariates, regimen),
        method=used,
        molar_mass_g_per_mol=float(model.molar_mass_g_per_mol.value),
    )

"""Dose calculation: IV racemic ketamine, esketamine nasal spray, IM / oral / sublingual ketamine.

Calculations never gate a dose; :mod:`ketaclinic.clinical.dose_checks` does. Every number used
here comes from the rule set, and every result records the rule set id@version.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ketaclinic.clinical.inputs import require_positive
from ketaclinic.clinical.rules import Cited, ClinicalInputError
from ketaclinic.clinical.rulesets import Phase, RuleSet
from ketaclinic.clinical.units import check_height_cm

WEIGHT_BASES = ("actual", "ideal", "adjusted")
CM_PER_INCH = 2.54
ESKETAMINE_PHASES = ("induction", "maintenance", "continuation", "suicidal-ideation")
OTHER_ROUTES = ("im", "oral", "sublingual")


@dataclass(frozen=True)
class DoseWeight:
    """The weight a mg/kg dose is multiplied by, with the evidence for the chosen basis."""

    weight_kg: float
    basis: str
    dose_weight_kg: float
    ideal_weight_kg: float | None
    evidence: str
    source: str

    def mg_per_kg_actual(self, dose_mg: float) -> float:
        """The dose per kg of *actual* weight: shown beside an ideal/adjusted-weight dose."""
        return round(dose_mg / self.weight_kg, 3)


@dataclass(frozen=True)
class IvDose:
    dose_mg: float
    mg_per_kg: float
    dose_weight: DoseWeight
    infusion_min: float
    concentration_mg_per_ml: float
    volume_ml: float
    rate_mg_per_h: float
    rate_ml_per_h: float
    rate_mg_per_kg_per_h: float
    rule_set: str


@dataclass(frozen=True)
class EsketamineDose:
    dose_mg: float  # an int for the label's whole-mg doses
    devices: int | None
    device_times_min: tuple[int, ...]
    phase: str
    population: str
    session_number: int
    allowed_doses_mg: tuple[int, ...]
    frequency: str
    source: str
    rule_set: str


@dataclass(frozen=True)
class RouteDose:
    route: str
    dose_mg: float
    mg_per_kg: float
    dose_weight: DoseWeight
    bioavailability: Cited
    systemic_mg: float  # dose_mg x bioavailability: rough IV-equivalent exposure, not a target
    rule_set: str


def calculate_ideal_body_weight_kg(height_cm: float, sex: str, ruleset: RuleSet) -> float:
    """Devine ideal body weight: base (male 50, female 45.5 kg) + 2.3 kg per inch over 60 in.

    Examples
    --------
    >>> from ketaclinic.clinical.rulesets import load_bundled_ruleset
    >>> round(calculate_ideal_body_weight_kg(177.8, "male", load_bundled_ruleset("ketamine-iv")), 1)
    73.0
    """
    height_cm = check_height_cm(require_positive("height_cm", height_cm))
    if sex not in ("male", "female"):
        raise ClinicalInputError(f"ideal body weight needs sex male or female, got {sex!r}")
    base = ruleset.param(f"ibw-devine-{sex}-base-kg").value
    per_inch = ruleset.param("ibw-devine-kg-per-inch").value
    return base + per_inch * (height_cm / CM_PER_INCH - 60.0)


def calculate_dose_weight(
    weight_kg: float,
    ruleset: RuleSet,
    basis: str | None = None,
    height_cm: float | None = None,
    sex: str | None = None,
) -> DoseWeight:
    """Return the dose weight for ``basis`` (default: the rule set's ``dose-weight-basis``).

    Ideal: Devine IBW (needs height and sex); adjusted: IBW + factor x (ABW - IBW). When the
    actual weight is below the ideal weight, the actual weight is used.
    """
    weight_kg = require_positive("weight_kg", weight_kg)
    rule = ruleset.param("dose-weight-basis")
    basis = basis or rule.value
    if basis not in WEIGHT_BASES:
        raise ClinicalInputError(
            f"weight basis must be one of {', '.join(WEIGHT_BASES)}, got {basis!r}"
        )
    evidence = rule.cited.note
    if basis == "actual":
        return DoseWeight(weight_kg, basis, weight_kg, None, evidence, rule.source)
    if height_cm is None or sex is None:
        raise ClinicalInputError(f"{basis} body weight needs height_cm and sex")
    ibw = calculate_ideal_body_weight_kg(height_cm, sex, ruleset)
    if weight_kg <= ibw:
        dose_weight = weight_kg
    elif basis == "ideal":
        dose_weight = ibw
    else:
        factor = ruleset.param("adjusted-weight-factor").value
        dose_weight = ibw + factor * (weight_kg - ibw)
    source = f"{rule.source}; {ruleset.param('ibw-devine-kg-per-inch').source}"
    return DoseWeight(weight_kg, basis, dose_weight, ibw, evidence, source)


def calculate_iv_dose(
    weight_kg: float,
    mg_per_kg: float,
    infusion_min: float,
    concentration_mg_per_ml: float,
    ruleset: RuleSet,
    basis: str | None = None,
    height_cm: float | None = None,
    sex: str | None = None,
) -> IvDose:
    """IV racemic ketamine: dose, volume and pump rate.

    Examples
    --------
    >>> from ketaclinic.clinical.rulesets import load_bundled_ruleset
    >>> d = calculate_iv_dose(82, 0.5, 40, 10, load_bundled_ruleset("ketamine-iv"))
    >>> (d.dose_mg, d.rate_mg_per_h, d.rate_ml_per_h)
    (41.0, 61.5, 6.15)
    """
    mg_per_kg = require_positive("mg_per_kg", mg_per_kg)
    infusion_min = require_positive("infusion_min", infusion_min)
    concentration = require_positive("concentration_mg_per_ml", concentration_mg_per_ml)
    weight = calculate_dose_weight(weight_kg, ruleset, basis, height_cm, sex)
    dose_mg = round(mg_per_kg * weight.dose_weight_kg, 2)
    rate_mg_per_h = round(dose_mg * 60.0 / infusion_min, 2)
    return IvDose(
        dose_mg=dose_mg,
        mg_per_kg=mg_per_kg,
        dose_weight=weight,
        infusion_min=infusion_min,
        concentration_mg_per_ml=concentration,
        volume_ml=round(dose_mg / concentration, 2),
        rate_mg_per_h=rate_mg_per_h,
        rate_ml_per_h=round(rate_mg_per_h / concentration, 2),
        rate_mg_per_kg_per_h=round(mg_per_kg * 60.0 / infusion_min, 4),
        rule_set=ruleset.ref,
    )


def titrate_mg_per_kg(previous_mg_per_kg: float, ruleset: RuleSet, steps: int = 1) -> float:
    """Next mg/kg dose, ``steps`` titration steps from the previous one (negative: down)."""
    previous = require_positive("previous_mg_per_kg", previous_mg_per_kg)
    step = ruleset.param("titration-step-mg-per-kg").value
    result = round(previous + steps * step, 4)
    if result <= 0:
        raise ClinicalInputError(f"titrating {steps} step(s) from {previous:g} mg/kg reaches zero")
    return result


def select_phase(ruleset: RuleSet, phase: str, age_years: float) -> Phase:
    """The label phase entry for ``phase`` and the patient's population (EU: 65 and over)."""
    if phase not in ESKETAMINE_PHASES:
        raise ClinicalInputError(
            f"phase must be one of {', '.join(ESKETAMINE_PHASES)}, got {phase!r}"
        )
    older = age_years >= ruleset.param("older-adult-age-years").value
    wanted = ("65-plus" if older else "under-65", "all")
    for population in wanted:
        for entry in ruleset.phase_schedule:
            if entry.id == phase and entry.population == population:
                return entry
    raise ClinicalInputError(f"rule set {ruleset.ref} has no {phase} phase")


def calculate_esketamine_dose(
    ruleset: RuleSet,
    phase: str,
    session_number: int,
    age_years: float,
    requested_dose_mg: float | None = None,
    previous_dose_mg: float | None = None,
) -> EsketamineDose:
    """Esketamine dose by label phase and population, with devices 5 minutes apart.

    Session 1 of a phase with a fixed first dose (induction 56 mg; EU 65+ 28 mg; suicidal
    ideation 84 mg) uses it unless a dose is requested; later sessions default to the phase's
    default dose, or, where the phase continues the previous dose (EU 65+ maintenance and
    continuation: the dose reached at the end of induction), to the previous dose when it is one
    the phase allows. A requested dose is returned as asked: the dose checks judge it.
    """
    if (
        isinstance(session_number, bool)
        or not isinstance(session_number, int)
        or session_number < 1
    ):
        raise ClinicalInputError(
            f"session_number must be a whole number >= 1, got {session_number!r}"
        )
    age_years = require_positive("age_years", age_years)
    entry = select_phase(ruleset, phase, age_years)
    if requested_dose_mg is not None:
        dose = require_positive("dose_mg", requested_dose_mg)
    elif session_number == 1 and entry.first_session_dose_mg:
        dose = entry.first_session_dose_mg
    elif entry.continues_previous and previous_dose_mg in entry.allowed_doses_mg:
        dose = int(previous_dose_mg)
    else:
        dose = entry.default_dose_mg
    device_mg = ruleset.require_limit("intranasal", "device-mg").value
    interval = ruleset.require_limit("intranasal", "device-interval-min").value
    devices = int(dose // device_mg) if float(dose) % device_mg == 0 else None
    times = tuple(int(i * interval) for i in range(devices or 0))
    return EsketamineDose(
        dose_mg=int(dose) if float(dose).is_integer() else dose,
        devices=devices,
        device_times_min=times,
        phase=phase,
        population=entry.population,
        session_number=session_number,
        allowed_doses_mg=entry.allowed_doses_mg,
        frequency=entry.frequency,
        source=entry.source,
        rule_set=ruleset.ref,
    )


def calculate_route_dose(
    route: str,
    weight_kg: float,
    mg_per_kg: float,
    ruleset: RuleSet,
    basis: str | None = None,
    height_cm: float | None = None,
    sex: str | None = None,
) -> RouteDose:
    """IM, oral or sublingual racemic ketamine, with the route's cited bioavailability."""
    if route not in OTHER_ROUTES or route not in ruleset.bioavailability:
        raise ClinicalInputError(f"route must be one of {', '.join(OTHER_ROUTES)} in {ruleset.ref}")
    mg_per_kg = require_positive("mg_per_kg", mg_per_kg)
    weight = calculate_dose_weight(weight_kg, ruleset, basis, height_cm, sex)
    dose_mg = round(mg_per_kg * weight.dose_weight_kg, 2)
    f = ruleset.bioavailability[route].cited
    if not math.isfinite(f.value) or f.value <= 0:  # pragma: no cover - validated rule set
        raise ClinicalInputError(f"bioavailability for {route} must be positive")
    return RouteDose(route, dose_mg, mg_per_kg, weight, f, round(dose_mg * f.value, 2), ruleset.ref)

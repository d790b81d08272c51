"""Pharmacokinetics of ketamine, esketamine and metabolites: exact solutions of published models.

PK curves explain exposure; they never compute or gate a dose.
"""

from ketaclinic.clinical.pk.model import PkModel
from ketaclinic.clinical.pk.population import (
    PopulationSimulation,
    sample_parameters,
    simulate_population,
)
from ketaclinic.clinical.pk.regimen import (
    Bolus,
    Covariates,
    Infusion,
    NasalDose,
    OralDose,
    Regimen,
    parse_regimen_args,
    parse_times,
)
from ketaclinic.clinical.pk.registry import get_model, list_models
from ketaclinic.clinical.pk.simulate import Simulation, simulate_regimen
from ketaclinic.clinical.pk.summary import AnalyteSummary, PopulationSummary, summarize_population

__all__ = [
    "AnalyteSummary",
    "Bolus",
    "Covariates",
    "Infusion",
    "NasalDose",
    "OralDose",
    "PkModel",
    "PopulationSimulation",
    "PopulationSummary",
    "Regimen",
    "Simulation",
    "get_model",
    "list_models",
    "parse_regimen_args",
    "parse_times",
    "sample_parameters",
    "simulate_population",
    "simulate_regimen",
    "summarize_population",
]

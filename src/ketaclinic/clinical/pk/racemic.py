"""Racemic ketamine IV models as coded in opentiva (Domino, Clements250, Hijazi) and Kamp 2020.

All four are linear mammillary models with the central compartment as the sampled one. They
carry no published inter-individual variability; weight is their only covariate.
"""

from __future__ import annotations

import numpy as np

from ketaclinic.clinical.pk.model import (
    Compartments,
    FloatArray,
    LinearSystem,
    Params,
    PkModel,
    ValidityRange,
    age_weight_validity,
    cited,
    dose_function,
    per_min,
    scale_by_weight,
)
from ketaclinic.clinical.pk.regimen import Covariates
from ketaclinic.clinical.rules import Grade

OPENTIVA = "opentiva/ketamine.py (MIT), via shared/clinical/pk.md §2.2"
KAMP = "Kamp et al. 2020 Anesthesiology 133:1192 raw-data model, as coded in opentiva class Klamp"
MW_KETAMINE = cited(237.7, "g/mol", "nlmixr2lib Simons_2022_s_ketamine (ketamine free base)", "S")
STATES3 = ("central", "peripheral2", "peripheral3")


def mammillary(
    v1_l: FloatArray,
    k10: FloatArray,
    k12: FloatArray,
    k21: FloatArray,
    k13: FloatArray | None = None,
    k31: FloatArray | None = None,
    analyte: str = "ketamine",
) -> LinearSystem:
    """A 2- or 3-compartment mammillary system from micro-constants (1/min)."""
    if (k13 is None) != (k31 is None):
        raise ValueError("a third compartment needs both k13 and k31")
    names = STATES3 if k13 is not None else STATES3[:2]
    n = v1_l.shape[0]
    comp = Compartments(names, n)
    comp.flow("central", None, k10)
    comp.flow("central", "peripheral2", k12)
    comp.flow("peripheral2", "central", k21)
    if k13 is not None and k31 is not None:
        comp.flow("central", "peripheral3", k13)
        comp.flow("peripheral3", "central", k31)

    return LinearSystem(
        state_names=names,
        analytes=(analyte,),
        a_per_min=comp.a,
        c_per_l=comp.outputs((analyte,), {analyte: ("central", v1_l)}),
        dose=dose_function(comp, n),
        eliminated_analyte_clearance_l_per_min={analyte: k10 * v1_l},
    )


def _weight_linear(p: Params, cov: Covariates) -> Params:
    out = dict(p)
    out["weight_kg"] = np.full_like(next(iter(p.values())), cov.weight_kg)
    return out


def _build_rate_constant_model(p: Params) -> LinearSystem:
    v1 = p["V1"] * p["weight_kg"]
    k13 = p.get("k13")
    return mammillary(v1, p["k10"], p["k12"], p["k21"], k13, p.get("k31"))


def _rate_constant_model(
    model_id: str,
    title: str,
    reference: str,
    v1: float,
    ks: dict[str, float],
    validity: tuple[ValidityRange, ...],
    caveats: tuple[str, ...] = (),
) -> PkModel:
    params = {"V1": cited(v1, "L/kg", OPENTIVA, "S", "central volume, scales linearly with weight")}
    params.update({name: cited(value, "1/min", OPENTIVA, "S") for name, value in ks.items()})
    return PkModel(
        model_id=model_id,
        title=title,
        reference=reference,
        drug="racemic ketamine",
        analytes=("ketamine",),
        routes=("iv-infusion", "iv-bolus"),
        sampling_site=cited("venous", "site", "not stated in opentiva; assumed", "U"),
        parameters=params,
        omegas=(),
        covariances=(),
        validity=validity,
        covariate_note="V1 scales linearly with weight (L/kg); rate constants fixed. "
        "No IIV published.",
        molar_mass_g_per_mol=MW_KETAMINE,
        covariates=_weight_linear,
        build=_build_rate_constant_model,
        variable_parameters=tuple(params),
        caveats=caveats
        + ("ke0 values in opentiva come from an assumed t_peak of 1 min; not used.",),
    )


def _adult_range(source: str) -> tuple[ValidityRange, ...]:
    return age_weight_validity((18, 65), (40, 120), source, Grade.UNCONFIRMED)


DOMINO = _rate_constant_model(
    "domino",
    "Domino (opentiva), racemic ketamine IV, 3 compartments",
    "PMID 7198883 (probably Domino et al., Anesth Analg 1982; reference unconfirmed, U)",
    0.063,
    {"k10": 0.4381, "k12": 0.5921, "k13": 0.5900, "k21": 0.2470, "k31": 0.0146},
    _adult_range("adult volunteers assumed; study population not retrieved"),
)

CLEMENTS = _rate_constant_model(
    "clements",
    "Clements250 (opentiva), racemic ketamine IV, 2 compartments",
    "Clements & Nimmo, Br J Anaesth 1981 (PMID 7459184); 250 µg/kg bolus in volunteers",
    1.7522,
    {"k10": 0.0109, "k12": 0.0186, "k21": 0.0137},
    _adult_range("adult volunteers (Clements & Nimmo 1981); range not retrieved"),
)

HIJAZI = _rate_constant_model(
    "hijazi",
    "Hijazi (opentiva), racemic ketamine IV, 2 compartments",
    "Hijazi et al., Br J Anaesth 2003 (PMID 12538370)",
    1.08,
    {"k10": 0.0333, "k12": 0.0088, "k21": 0.0030},
    _adult_range("adult ICU study believed; opentiva's age_upper = 18 looks wrong (U)"),
    caveats=("opentiva sets age_upper = 18 for Hijazi; believed to be an adult ICU study (U).",),
)


KAMP_SCALED = ("V1", "V2", "V3", "CL", "Q2", "Q3")


def _kamp_covariates(p: Params, cov: Covariates) -> Params:
    return scale_by_weight(p, cov, linear=KAMP_SCALED)


def _kamp_build(p: Params) -> LinearSystem:
    v1, v2, v3 = p["V1"], p["V2"], p["V3"]
    cl, q2, q3 = (per_min(p[k], "L/h") for k in ("CL", "Q2", "Q3"))
    return mammillary(v1, cl / v1, q2 / v1, q2 / v2, q3 / v1, q3 / v3)


KAMP2020 = PkModel(
    model_id="kamp2020",
    title="Kamp 2020 raw-data model, racemic ketamine IV, 3 compartments (arterial)",
    reference="Kamp J et al. Anesthesiology 2020;133:1192 "
    "(PMID 32997732, doi 10.1097/ALN.0000000000003577)",
    drug="racemic ketamine",
    analytes=("ketamine",),
    routes=("iv-infusion", "iv-bolus"),
    sampling_site=cited(
        "arterial",
        "site",
        "Kamp 2020 abstract: central arterial compartment; "
        "opentiva omits the venous delay compartments",
        "C",
    ),
    parameters={
        "V1": cited(25.0, "L", KAMP, "S", "× WT/70"),
        "V2": cited(56.0, "L", KAMP, "S", "× WT/70"),
        "V3": cited(157.0, "L", KAMP, "S", "× WT/70"),
        "CL": cited(84.0, "L/h", KAMP, "S", "× WT/70 (linear)"),
        "Q2": cited(161.0, "L/h", KAMP, "S", "× WT/70 (linear)"),
        "Q3": cited(79.0, "L/h", KAMP, "S", "× WT/70 (linear)"),
    },
    omegas=(),
    covariances=(),
    validity=age_weight_validity(
        (18, 90),
        (40, 150),
        "meta-analysis of adults and children; adult range assumed for this app",
        Grade.UNCONFIRMED,
        weight_source="not enforced by opentiva; assumed",
    ),
    covariate_note="All volumes and clearances × WT/70 (linear). No other covariate effects found.",
    molar_mass_g_per_mol=MW_KETAMINE,
    covariates=_kamp_covariates,
    build=_kamp_build,
    variable_parameters=KAMP_SCALED,
    caveats=(
        "Values as coded in opentiva (S), not checked against the paper's tables.",
        "Predicts arterial concentrations (venous delay compartments omitted).",
    ),
)

RACEMIC_MODELS = (DOMINO, CLEMENTS, KAMP2020, HIJAZI)

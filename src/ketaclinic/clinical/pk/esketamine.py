"""S-ketamine and esketamine models with metabolites: Fanta/Otto, Perez-Ruixo, Simons.

Metabolite states are carried in parent-mass equivalents, as the sources do; µmol/L outputs
therefore divide every analyte by the parent molar mass.
"""

from __future__ import annotations

import numpy as np

from ketaclinic.clinical.pk.model import (
    CitedFrom,
    Compartments,
    LinearSystem,
    Omega,
    Params,
    PkModel,
    Pulse,
    age_weight_validity,
    cited,
    dose_function,
    minutes,
    omega_from_cv,
    per_min,
    scale_by_weight,
)
from ketaclinic.clinical.pk.racemic import MW_KETAMINE
from ketaclinic.clinical.pk.regimen import Covariates
from ketaclinic.clinical.rules import Grade

# --------------------------------------------------------------------------- Fanta 2015 / Otto 2021
FANTA = "Fanta S et al. Eur J Clin Pharmacol 2015;71:441 (fixed in nlmixr2lib Otto_2021_s_ketamine)"
OTTO = "Otto ME et al. Eur J Clin Pharmacol 2021;77:1181 (nlmixr2lib Otto_2021_s_ketamine)"
FANTA_STATES = ("gut", "central", "peripheral1", "peripheral2", "central_snk", "peripheral_snk")


def _fanta_covariates(p: Params, cov: Covariates) -> Params:
    return scale_by_weight(p, cov, linear=("V1", "V_snk"), three_quarter=("CL", "CL_snk"))


def _fanta_build(p: Params) -> LinearSystem:
    n = p["V1"].shape[0]
    comp = Compartments(FANTA_STATES, n)
    v1, vp1, vp2, vn, vpn = p["V1"], p["Vp1"], p["Vp2"], p["V_snk"], p["Vp_snk"]
    cl, q1, q2, cln, qn = (per_min(p[k], "L/h") for k in ("CL", "Q1", "Q2", "CL_snk", "Q_snk"))
    ka, f_oral = per_min(p["ka_oral"], "1/h"), np.clip(p["F_oral"], 0.0, 1.0)
    comp.flow("central", "central_snk", cl / v1)  # all S-ketamine clearance forms S-norketamine
    comp.exchange("central", "peripheral1", q1, v1, vp1)
    comp.exchange("central", "peripheral2", q2, v1, vp2)
    comp.flow("central_snk", None, cln / vn)
    comp.exchange("central_snk", "peripheral_snk", qn, vn, vpn)
    comp.flow("gut", "central", ka * f_oral)
    comp.flow("gut", "central_snk", ka * (1.0 - f_oral), p["fm_presystemic"])

    def oral(dose_mg: float, start_min: float, device_index: int) -> list[Pulse]:
        return [Pulse(start_min, 0.0, comp.amounts(n, gut=dose_mg))]

    analytes = ("s-ketamine", "s-norketamine")
    return LinearSystem(
        FANTA_STATES,
        analytes,
        comp.a,
        comp.outputs(
            analytes, {"s-ketamine": ("central", v1), "s-norketamine": ("central_snk", vn)}
        ),
        dose_function(comp, n, {"oral": oral}),
        {"s-ketamine": cl, "s-norketamine": cln},
    )


FANTA2015 = PkModel(
    model_id="fanta2015",
    title="Fanta 2015 S-ketamine IV/oral with S-norketamine re-estimated by Otto 2021 (venous)",
    reference=FANTA + "; " + OTTO,
    drug="S-ketamine",
    analytes=("s-ketamine", "s-norketamine"),
    routes=("iv-infusion", "iv-bolus", "oral"),
    sampling_site=cited("venous", "site", "Fanta 2015 and Otto 2021: venous sampling", "S"),
    parameters={
        "V1": cited(133.0, "L", FANTA, "S", "× WT/70"),
        "CL": cited(95.2, "L/h", FANTA, "S", "abstract 95 L/h/70 kg (C); × (WT/70)^0.75"),
        "Vp1": cited(187.0, "L", FANTA, "S", "not weight-scaled in Otto's as-run code"),
        "Q1": cited(23.2, "L/h", FANTA, "S"),
        "Vp2": cited(98.8, "L", FANTA, "S"),
        "Q2": cited(157.0, "L/h", FANTA, "S"),
        "V_snk": cited(98.6, "L", OTTO, "S", "× WT/70; parent-mass equivalents"),
        "CL_snk": cited(57.7, "L/h", OTTO, "S", "× (WT/70)^0.75"),
        "Vp_snk": cited(160.0, "L", OTTO, "S"),
        "Q_snk": cited(42.8, "L/h", OTTO, "S"),
        "F_oral": cited(0.08, "fraction", "Fanta 2015 abstract", "C"),
        "ka_oral": cited(
            1.0,
            "1/h",
            "not retrieved from Fanta 2015; placeholder",
            "U",
            "needs medical-director confirmation",
        ),
        "fm_presystemic": cited(
            1.0,
            "fraction",
            "assumed: first-pass-extracted S-ketamine forms "
            "S-norketamine, as Otto assumes for systemic clearance",
            "U",
        ),
    },
    omegas=(
        Omega("V1", cited(0.084, "variance (log)", OTTO, "S")),
        Omega("CL", cited(0.026, "variance (log)", OTTO, "S")),
        Omega("V_snk", cited(0.040, "variance (log)", OTTO, "S")),
        Omega("CL_snk", cited(0.103, "variance (log)", OTTO, "S")),
        Omega(
            "F_oral",
            cited(
                omega_from_cv(0.11),
                "variance (log)",
                "Fanta 2015 abstract: 11 % IIV",
                "C",
                "scale of the published IIV not stated; log-normal assumed",
            ),
        ),
    ),
    covariances=(
        ("V1", "CL", cited(0.02261, "covariance (log)", OTTO, "S")),
        ("V_snk", "CL_snk", cited(0.04456, "covariance (log)", OTTO, "S")),
    ),
    validity=age_weight_validity(
        (18, 45),
        (50, 100),
        "healthy young volunteers (Fanta, Otto)",
        Grade.UNCONFIRMED,
        weight_source="Otto 2021 volunteers ~68-71 kg mean",
    ),
    covariate_note="V1 and V_snk × WT/70; CL and CL_snk × (WT/70)^0.75; peripheral parameters "
    "unscaled (Otto as-run code, which pk.md summarises as all volumes/clearances). No sex effect.",
    molar_mass_g_per_mol=MW_KETAMINE,
    covariates=_fanta_covariates,
    build=_fanta_build,
    variable_parameters=(
        "V1",
        "CL",
        "Vp1",
        "Q1",
        "Vp2",
        "Q2",
        "V_snk",
        "CL_snk",
        "Vp_snk",
        "Q_snk",
        "ka_oral",
    ),
    caveats=(
        "Oral absorption rate and presystemic S-norketamine fraction are placeholders (U).",
        "Otto's S-norketamine is 2-compartment; Fanta's own norketamine model had 3.",
        "Applying S-ketamine models to racemic ketamine is an approximation.",
    ),
)

# ------------------------------------------------------------------------- Perez-Ruixo 2021
PR = (
    "Perez-Ruixo C et al. Clin Pharmacokinet 2021;60:501, Table 3 "
    "via nlmixr2lib PerezRuixo_2020_esketamine"
)
PR_STATES = (
    "nasal",
    "gut_swallowed",
    "gut_oral",
    "central",
    "peripheral1",
    "peripheral2",
    "liver",
    "central_nor",
    "peripheral_nor",
)


def _pr_covariates(p: Params, cov: Covariates) -> Params:
    out = dict(p)
    asian = cov.population in ("asian", "japanese")
    if asian:
        out["kel"] = p["kel"] * 0.36
        out["CLn"] = p["CLn"] * 0.81
    if cov.population == "japanese":
        out["FRn"] = p["FRn"] * 1.34
    excess_years = max(0.0, cov.age_years - 60.0)
    out["Qh"] = p["Qh"] * (1.0 - 2.19 * excess_years / 151.0)
    if np.any(out["Qh"] <= 0):
        out["Qh"] = np.maximum(out["Qh"], 1e-3)
    return out


def _pr_build(p: Params) -> LinearSystem:
    n = p["Vc"].shape[0]
    comp = Compartments(PR_STATES, n)
    vc, vp1, vp2, vh, vcn, vpn = (p[k] for k in ("Vc", "Vp1", "Vp2", "Vh", "Vcn", "Vpn"))
    q1, q2, qh, cln, q3 = (per_min(p[k], "L/h") for k in ("Q1", "Q2", "Qh", "CLn", "Q3"))
    comp.flow("nasal", "central", per_min(p["ka_n"], "1/h"))
    comp.flow("gut_swallowed", "liver", per_min(p["ka_sw"], "1/h"))
    comp.flow("gut_oral", "liver", per_min(p["ka_po"], "1/h"))
    comp.exchange("central", "peripheral1", q1, vc, vp1)
    comp.exchange("central", "peripheral2", q2, vc, vp2)
    comp.exchange("central", "liver", qh, vc, vh)
    comp.flow("liver", None, per_min(p["kel"], "1/h"))
    comp.flow("liver", "central_nor", per_min(p["kmet"], "1/h"))
    comp.flow("central_nor", None, cln / vcn)
    comp.exchange("central_nor", "peripheral_nor", q3, vcn, vpn)
    fgut, dsw, dpo = p["Fgut"], float(minutes(p["Dsw"][0], "h")), float(minutes(p["Dpo"][0], "h"))

    def nasal(dose_mg: float, start_min: float, device_index: int) -> list[Pulse]:
        frn = p["FRn"] * (p["later_device_factor"] if device_index > 0 else 1.0)
        frn = np.clip(frn, 0.0, 1.0)
        return [
            Pulse(start_min, 0.0, comp.amounts(n, nasal=frn * dose_mg)),
            Pulse(start_min, dsw, comp.amounts(n, gut_swallowed=(1.0 - frn) * fgut * dose_mg)),
        ]

    def oral(dose_mg: float, start_min: float, device_index: int) -> list[Pulse]:
        return [Pulse(start_min, dpo, comp.amounts(n, gut_oral=fgut * dose_mg))]

    analytes = ("esketamine", "noresketamine")
    return LinearSystem(
        PR_STATES,
        analytes,
        comp.a,
        comp.outputs(
            analytes, {"esketamine": ("central", vc), "noresketamine": ("central_nor", vcn)}
        ),
        dose_function(comp, n, {"nasal": nasal, "oral": oral}),
        {"noresketamine": cln},
    )


_pr = CitedFrom(PR)

PEREZ_RUIXO2021 = PkModel(
    model_id="perez-ruixo2021",
    title="Perez-Ruixo 2021 intranasal esketamine + noresketamine (venous)",
    reference="Perez-Ruixo C et al. Clin Pharmacokinet 2021;60(4):501-516, "
    "doi 10.1007/s40262-020-00953-4",
    drug="esketamine",
    analytes=("esketamine", "noresketamine"),
    routes=("nasal", "oral", "iv-infusion", "iv-bolus"),
    sampling_site=cited("venous", "site", "phase I-III venous plasma samples", "S"),
    parameters={
        "FRn": _pr(0.54, "fraction", "first 28 mg device; IIV additive on logit"),
        "later_device_factor": _pr(
            0.62, "fraction", "devices after the first in one administration"
        ),
        "ka_n": _pr(2.93, "1/h", "table prints L/h (typo)"),
        "Dsw": _pr(0.53, "h", "zero-order swallowed input"),
        "ka_sw": _pr(1.45, "1/h"),
        "Dpo": _pr(0.32, "h", "zero-order oral-solution input"),
        "ka_po": _pr(0.97, "1/h"),
        "Fgut": _pr(0.64, "fraction"),
        "Vc": _pr(192.0, "L"),
        "Vp1": _pr(143.0, "L"),
        "Vp2": _pr(417.0, "L"),
        "Q1": _pr(84.3, "L/h"),
        "Q2": _pr(37.6, "L/h"),
        "Qh": _pr(151.0, "L/h", "falls 2.19 L/h per year of age above 60"),
        "Vh": _pr(101.0, "L"),
        "kel": _pr(1.11, "1/h", "Asian × 0.36"),
        "kmet": _pr(2.77, "1/h"),
        "Vcn": _pr(70.0, "L", "apparent Vcn/F used literally (nlmixr2lib); see caveats"),
        "CLn": _pr(38.0, "L/h", "apparent CLn/F; Asian × 0.81; abstract 38 L/h (C)"),
        "Vpn": _pr(115.0, "L", "apparent"),
        "Q3": _pr(26.1, "L/h", "apparent"),
    },
    omegas=(
        Omega("FRn", _pr(0.501, "variance (logit)", "70.8 read as SD on logit scale"), "logit"),
        Omega("ka_n", _pr(omega_from_cv(0.615), "variance (log)")),
        Omega("ka_sw", _pr(omega_from_cv(1.32), "variance (log)")),
        Omega("ka_po", _pr(omega_from_cv(1.32), "variance (log)")),
        Omega("Vc", _pr(omega_from_cv(0.275), "variance (log)")),
        Omega("Vp1", _pr(omega_from_cv(0.493), "variance (log)")),
        Omega("Qh", _pr(omega_from_cv(0.232), "variance (log)")),
        Omega("Vh", _pr(omega_from_cv(0.346), "variance (log)")),
        Omega("kel", _pr(omega_from_cv(1.20), "variance (log)")),
        Omega(
            "kmet",
            _pr(omega_from_cv(0.30), "variance (log)", "not reported; nlmixr2lib placeholder", "U"),
        ),
        Omega("Vcn", _pr(omega_from_cv(0.316), "variance (log)")),
        Omega("CLn", _pr(omega_from_cv(0.254), "variance (log)")),
    ),
    covariances=(),
    validity=age_weight_validity((18, 86), (39, 170), PR + " Table 2", Grade.SECONDARY),
    covariate_note="Asian: kel × 0.36, CLn/F × 0.81; Japanese (also Asian): FRn × 1.34; "
    "age > 60: Qh − 2.19 L/h per year. Weight and sex had no effect.",
    molar_mass_g_per_mol=MW_KETAMINE,
    covariates=_pr_covariates,
    build=_pr_build,
    variable_parameters=(
        "ka_n",
        "ka_sw",
        "ka_po",
        "Vc",
        "Vp1",
        "Vp2",
        "Q1",
        "Q2",
        "Qh",
        "Vh",
        "kel",
        "kmet",
        "Vcn",
        "CLn",
        "Vpn",
        "Q3",
    ),
    caveats=(
        "Printed ODEs contain typos; absorption coded as nlmixr2lib does (nasal FRn into the nasal "
        "depot, (1-FRn)·Fgut zero-order over Dsw into the swallowed depot, then liver).",
        "Noresketamine apparent volume Vcn/F = 70 L is used literally, as nlmixr2lib does; this "
        "over-predicts the published noresketamine AUC0-24 by about 1.4-1.6 (nlmixr2lib errata).",
        "FRn is clipped to 1 when the Japanese factor and IIV push it above 1.",
    ),
)

# ------------------------------------------------------------------------------ Simons 2022
SIM = "Simons P et al. Front Pain Res 2022;3:946486, Table 4 via nlmixr2lib Simons_2022_s_ketamine"
SIM_STATES = (
    "mucosal",
    "gut",
    "gut_transit",
    "central",
    "peripheral1",
    "peripheral2",
    "transit1_nk",
    "transit2_nk",
    "central_nk",
    "peripheral_nk",
    "transit1_hnk",
    "transit2_hnk",
    "central_hnk",
    "peripheral_hnk",
)


def _simons_covariates(p: Params, cov: Covariates) -> Params:
    return scale_by_weight(
        p,
        cov,
        linear=("VK1", "VK2", "VK3", "VN2", "VH1", "VH2"),
        three_quarter=("CLK1", "CLK2", "CLK3", "CLN1", "CLN2", "CLH1", "CLH2"),
    )


def _simons_build(p: Params) -> LinearSystem:
    n = p["VK1"].shape[0]
    comp = Compartments(SIM_STATES, n)
    vk1 = p["VK1"]  # VN1 = VK1
    comp.flow("mucosal", "central", p["KA1"])
    comp.flow("gut", "gut_transit", p["KA2"])
    comp.flow("gut_transit", "transit1_nk", 1.0 / p["MTT_gut"])
    comp.flow("central", "transit1_nk", p["CLK1"] / vk1)
    comp.exchange("central", "peripheral1", p["CLK2"], vk1, p["VK2"])
    comp.exchange("central", "peripheral2", p["CLK3"], vk1, p["VK3"])
    k_nk = 2.0 / p["MTT_K_NK"]
    comp.flow("transit1_nk", "transit2_nk", k_nk)
    comp.flow("transit2_nk", "central_nk", k_nk, p["fm_nk"])
    comp.flow("central_nk", "transit1_hnk", p["CLN1"] / vk1)
    comp.exchange("central_nk", "peripheral_nk", p["CLN2"], vk1, p["VN2"])
    k_hnk = 2.0 / p["MTT_NK_HNK"]
    comp.flow("transit1_hnk", "transit2_hnk", k_hnk)
    comp.flow("transit2_hnk", "central_hnk", k_hnk, p["fm_hnk"])
    comp.flow("central_hnk", None, p["CLH1"] / p["VH1"])
    comp.exchange("central_hnk", "peripheral_hnk", p["CLH2"], p["VH1"], p["VH2"])
    d1, d2 = float(p["D1"][0]), float(p["D2"][0])

    def oral(dose_mg: float, start_min: float, device_index: int) -> list[Pulse]:
        return [
            Pulse(start_min, d1, comp.amounts(n, mucosal=p["F1"] * dose_mg)),
            Pulse(start_min, d2, comp.amounts(n, gut=p["F2"] * dose_mg)),
        ]

    analytes = ("s-ketamine", "s-norketamine", "s-hydroxynorketamine")
    return LinearSystem(
        SIM_STATES,
        analytes,
        comp.a,
        comp.outputs(
            analytes,
            {
                "s-ketamine": ("central", vk1),
                "s-norketamine": ("central_nk", vk1),
                "s-hydroxynorketamine": ("central_hnk", p["VH1"]),
            },
        ),
        dose_function(comp, n, {"oral": oral}),
        {},
    )


_sim = CitedFrom(SIM)

SIMONS2022 = PkModel(
    model_id="simons2022",
    title="Simons 2022 oral thin-film S-ketamine with S-norketamine and S-HNK (arterial)",
    reference="Simons P et al. Front Pain Res 2022;3:946486, doi 10.3389/fpain.2022.946486",
    drug="S-ketamine",
    analytes=("s-ketamine", "s-norketamine", "s-hydroxynorketamine"),
    routes=("oral", "iv-infusion", "iv-bolus"),
    sampling_site=cited("arterial", "site", "Simons 2022: arterial plasma", "S"),
    parameters={
        "F1": _sim(0.263, "fraction", "oral-mucosal bioavailability"),
        "D1": _sim(13.1, "min", "zero-order mucosal input"),
        "KA1": _sim(0.04, "1/min"),
        "F2": _sim(1.16, "fraction", "swallowed fraction straight into hepatic metabolism"),
        "D2": _sim(29.9, "min"),
        "KA2": _sim(0.049, "1/min"),
        "MTT_gut": _sim(10.7, "min", "one gut-to-liver delay compartment"),
        "VK1": _sim(11.6, "L", "× WT/70; VN1 = VK1"),
        "VK2": _sim(39.0, "L", "× WT/70"),
        "VK3": _sim(174.0, "L", "× WT/70"),
        "CLK1": _sim(1.48, "L/min", "× (WT/70)^0.75 (exponent not printed)"),
        "CLK2": _sim(2.43, "L/min"),
        "CLK3": _sim(1.21, "L/min"),
        "MTT_K_NK": _sim(20.1, "min", "two-compartment delay chain"),
        "fm_nk": _sim(0.8, "fraction", "fixed"),
        "VN2": _sim(221.0, "L"),
        "CLN1": _sim(1.00, "L/min"),
        "CLN2": _sim(2.63, "L/min"),
        "MTT_NK_HNK": _sim(1.12, "min", "two-compartment delay chain"),
        "fm_hnk": _sim(0.7, "fraction", "fixed"),
        "VH1": _sim(4.4, "L"),
        "VH2": _sim(87.5, "L"),
        "CLH1": _sim(0.933, "L/min"),
        "CLH2": _sim(1.70, "L/min"),
    },
    omegas=(
        Omega("VK1", _sim(0.057, "variance (log)")),
        Omega("CLK1", _sim(0.029, "variance (log)")),
        Omega("CLK3", _sim(0.026, "variance (log)")),
        Omega("CLN1", _sim(0.050, "variance (log)")),
        Omega("MTT_K_NK", _sim(0.021, "variance (log)")),
        Omega("VH1", _sim(1.22, "variance (log)")),
        Omega("CLH1", _sim(0.103, "variance (log)")),
        Omega("CLH2", _sim(0.287, "variance (log)")),
    ),
    covariances=(),
    validity=age_weight_validity(
        (19, 32), (53, 93), "Simons 2022 Table 1 via nlmixr2lib", Grade.SECONDARY
    ),
    covariate_note="Volumes × WT/70 and clearances × (WT/70)^0.75 (exponents not printed; S).",
    molar_mass_g_per_mol=MW_KETAMINE,
    covariates=_simons_covariates,
    build=_simons_build,
    variable_parameters=(
        "KA1",
        "KA2",
        "MTT_gut",
        "VK1",
        "VK2",
        "VK3",
        "CLK1",
        "CLK2",
        "CLK3",
        "MTT_K_NK",
        "VN2",
        "CLN1",
        "CLN2",
        "MTT_NK_HNK",
        "VH1",
        "VH2",
        "CLH1",
        "CLH2",
    ),
    caveats=(
        "Inter-occasion variability is not simulated.",
        "Transit chains have repeated rates, so this model is solved by the matrix "
        "exponential instead of eigenvalues.",
    ),
)

S_MODELS = (FANTA2015, PEREZ_RUIXO2021, SIMONS2022)

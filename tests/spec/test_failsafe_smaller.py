"""Issue 13, smaller items: height plausibility, mg/kg of actual weight, racemic oral dose through
an S-ketamine model, EU >= 65 maintenance continues the induction dose, esketamine benzodiazepine
message (the last one is pinned in test_dosing_eligibility.py)."""

import json

import pytest

from ketaclinic.cli import main
from ketaclinic.clinical.dosing import (
    calculate_dose_weight,
    calculate_esketamine_dose,
    calculate_ideal_body_weight_kg,
    calculate_iv_dose,
    calculate_route_dose,
)
from ketaclinic.clinical.pk import Covariates, Infusion, Regimen, simulate_regimen
from ketaclinic.clinical.pk.population import simulate_population
from ketaclinic.clinical.pk.regimen import OralDose
from ketaclinic.clinical.rules import ClinicalInputError
from ketaclinic.clinical.rulesets import load_bundled_ruleset

IV = load_bundled_ruleset("ketamine-iv")
EU = load_bundled_ruleset("esketamine-eu")
US = load_bundled_ruleset("esketamine-us")
BAD_HEIGHTS = [1780, 5.9, 1.78, 99.9, 250.1, 17800]


# ------------------------------------------------------------------ height

@pytest.mark.parametrize("height", BAD_HEIGHTS)
def test_an_implausible_height_is_refused_by_the_ideal_weight(height):
    with pytest.raises(ClinicalInputError, match="plausible adult range"):
        calculate_ideal_body_weight_kg(height, "male", IV)


@pytest.mark.parametrize("height", BAD_HEIGHTS)
@pytest.mark.parametrize("basis", ["ideal", "adjusted"])
def test_an_implausible_height_is_refused_by_every_dose_calculation(height, basis):
    with pytest.raises(ClinicalInputError, match="centimetres"):
        calculate_dose_weight(120, IV, basis, height, "female")
    with pytest.raises(ClinicalInputError):
        calculate_iv_dose(120, 0.5, 40, 1, IV, basis, height, "female")
    with pytest.raises(ClinicalInputError):
        calculate_route_dose("oral", 120, 0.5, IV, basis, height, "female")


@pytest.mark.parametrize("height", BAD_HEIGHTS)
def test_an_implausible_height_is_refused_by_the_pk_covariates(height):
    with pytest.raises(ClinicalInputError, match="plausible adult range"):
        Covariates(height_cm=height)


@pytest.mark.parametrize("height", [100, 178, 250])
def test_plausible_heights_pass_everywhere(height):
    assert Covariates(height_cm=height).height_cm == height
    assert calculate_ideal_body_weight_kg(height, "male", IV) > 0


def test_the_message_names_the_likely_unit_slip():
    with pytest.raises(ClinicalInputError, match="millimetres"):
        Covariates(height_cm=1780)
    with pytest.raises(ClinicalInputError, match="metres or feet"):
        Covariates(height_cm=5.9)


@pytest.mark.parametrize("height", ["1780", "5.9"])
def test_the_dose_and_pk_commands_exit_2_on_an_implausible_height(capsys, height):
    code = main(["dose", "ketamine-iv", "--weight-kg", "120", "--mg-per-kg", "0.5", "--minutes",
                 "40", "--concentration-mg-per-ml", "1", "--weight-basis", "ideal",
                 "--height-cm", height, "--sex", "male", "--json"])
    assert code == 2
    assert "plausible adult range" in json.loads(capsys.readouterr().out)["error"]["message"]
    code = main(["pk", "simulate", "--model", "kamp2020", "--infusion", "35mg/40min@0",
                 "--times", "40", "--height-cm", height])
    assert code == 2
    assert "plausible adult range" in capsys.readouterr().err


# ------------------------------------------------------------------ mg/kg of actual weight

@pytest.mark.parametrize(("basis", "expected"), [("actual", 0.5), ("ideal", 0.275),
                                                 ("adjusted", 0.365)])
def test_mg_per_kg_of_actual_weight_is_computed_beside_the_dosing_weight(basis, expected):
    dose = calculate_iv_dose(120, 0.5, 40, 1, IV, basis, 170, "male")
    assert dose.dose_weight.mg_per_kg_actual(dose.dose_mg) == pytest.approx(expected, abs=0.001)


def test_the_dose_command_shows_mg_per_kg_of_actual_weight(capsys):
    args = ["dose", "ketamine-iv", "--weight-kg", "120", "--mg-per-kg", "0.5", "--minutes", "40",
            "--concentration-mg-per-ml", "1", "--weight-basis", "ideal", "--height-cm", "170",
            "--sex", "male"]
    assert main(args + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["weight_basis"] == "ideal" and data["mg_per_kg_actual"] == pytest.approx(0.275,
                                                                                       abs=0.001)
    main(args)
    assert "of actual weight" in capsys.readouterr().out


# ------------------------------------------------------------------ PK: racemic oral, S-model

@pytest.mark.parametrize("model", ["fanta2015", "simons2022", "perez-ruixo2021"])
def test_a_racemic_oral_dose_through_an_s_ketamine_model_carries_a_warning(model):
    sim = simulate_regimen(model, Covariates(), Regimen(oral=(OralDose(50, 0),)), [60])
    assert any("racemic oral ketamine" in w for w in sim.warnings)
    pop = simulate_population(model, Covariates(), Regimen(oral=(OralDose(50, 0),)), [60], n=5,
                              seed=1)
    assert any("racemic oral ketamine" in w for w in pop.warnings)


@pytest.mark.parametrize("model", ["fanta2015", "perez-ruixo2021"])
def test_an_esketamine_oral_dose_or_no_oral_dose_carries_no_such_warning(model):
    sim = simulate_regimen(model, Covariates(), Regimen(oral=(OralDose(28, 0, "esketamine"),)),
                           [60])
    assert not any("racemic oral" in w for w in sim.warnings)
    sim = simulate_regimen("fanta2015", Covariates(), Regimen(infusions=(Infusion(20, 40),)),
                           [60])
    assert not any("racemic oral" in w for w in sim.warnings)


def test_an_unknown_oral_drug_is_refused():
    with pytest.raises(ClinicalInputError, match="oral drug"):
        OralDose(50, 0, "arketamine")


def test_the_pk_command_warns_on_racemic_oral_and_takes_an_esketamine_flag(capsys):
    base = ["pk", "simulate", "--model", "fanta2015", "--oral", "50mg@0", "--times", "60",
            "--json"]
    assert main(base) == 0
    assert any("racemic" in w for w in json.loads(capsys.readouterr().out)["warnings"])
    assert main(base + ["--oral-drug", "esketamine"]) == 0
    assert not any("racemic" in w for w in json.loads(capsys.readouterr().out)["warnings"])


# ------------------------------------------------------------------ EU >= 65 maintenance

@pytest.mark.parametrize("phase", ["maintenance", "continuation"])
@pytest.mark.parametrize("previous", [28, 56, 84])
def test_eu_65_plus_maintenance_continues_the_induction_dose(phase, previous):
    dose = calculate_esketamine_dose(EU, phase, 1, 70, previous_dose_mg=previous)
    assert dose.dose_mg == previous and dose.population == "65-plus"
    assert "SmPC" in dose.source and "end of induction" in dose.frequency


def test_eu_65_plus_maintenance_without_a_known_previous_dose_defaults_to_28():
    assert calculate_esketamine_dose(EU, "maintenance", 1, 70).dose_mg == 28
    assert calculate_esketamine_dose(EU, "maintenance", 1, 70, previous_dose_mg=70).dose_mg == 28


@pytest.mark.parametrize(("rs", "age"), [(EU, 40), (US, 70)])
def test_other_populations_keep_their_phase_default(rs, age):
    assert calculate_esketamine_dose(rs, "maintenance", 1, age, previous_dose_mg=84).dose_mg == 56


def test_the_esketamine_command_continues_the_previous_dose_and_cites_the_smpc(capsys):
    args = ["dose", "esketamine", "--phase", "maintenance", "--session-number", "1", "--age",
            "70", "--ruleset", "esketamine-eu", "--previous-dose-mg", "56", "--json"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dose_mg"] == 56 and "SmPC" in data["source"]

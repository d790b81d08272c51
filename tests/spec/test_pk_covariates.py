"""Covariate effects are applied as published."""

import numpy as np
import pytest

from ketaclinic.clinical.pk import (
    Covariates,
    Infusion,
    NasalDose,
    Regimen,
    simulate_regimen,
    summarize_population,
)
from ketaclinic.clinical.pk.registry import get_model
from ketaclinic.clinical.pk.simulate import individual_system

IV = Regimen(infusions=(Infusion(35, 40, 0),))


def params(model_id, cov):
    model = get_model(model_id)
    return model.covariates(model.typical_params(1), cov)


def test_kamp_clearance_and_volumes_scale_linearly_with_weight():
    p70, p140 = (
        params("kamp2020", Covariates(weight_kg=70)),
        params("kamp2020", Covariates(weight_kg=140)),
    )
    for name in ("V1", "V2", "V3", "CL", "Q2", "Q3"):
        assert p140[name][0] == pytest.approx(2 * p70[name][0])
    auc70 = summarize_population("kamp2020", Covariates(weight_kg=70), IV, (0, 1e7)).analytes[
        "ketamine"
    ]
    auc140 = summarize_population("kamp2020", Covariates(weight_kg=140), IV, (0, 1e7)).analytes[
        "ketamine"
    ]
    assert auc140.auc_ng_h_per_ml[0] == pytest.approx(auc70.auc_ng_h_per_ml[0] / 2, rel=1e-9)
    assert auc70.auc_ng_h_per_ml[0] == pytest.approx(35 / 84 * 1000, rel=1e-9)


def test_kamp_micro_constants_match_the_published_table():
    s = individual_system(
        get_model("kamp2020"), Covariates(), get_model("kamp2020").typical_params(1)
    )
    a = s.a_per_min[0]
    assert -a[1, 1] == pytest.approx(0.048, abs=5e-4)  # k21
    assert -a[2, 2] == pytest.approx(0.008, abs=5e-4)  # k31
    assert a[1, 0] == pytest.approx(0.107, abs=5e-4)  # k12


def test_perez_ruixo_asian_multiplies_kel_by_036_and_cln_by_081():
    base, asian = (
        params("perez-ruixo2021", Covariates()),
        params("perez-ruixo2021", Covariates(population="asian")),
    )
    assert asian["kel"][0] == pytest.approx(1.11 * 0.36)
    assert asian["CLn"][0] == pytest.approx(38.0 * 0.81)
    assert base["kel"][0] == pytest.approx(1.11)


def test_perez_ruixo_japanese_raises_frn_by_134_and_counts_as_asian():
    jp = params("perez-ruixo2021", Covariates(population="japanese"))
    assert jp["FRn"][0] == pytest.approx(0.54 * 1.34)
    assert jp["kel"][0] == pytest.approx(1.11 * 0.36)


def test_perez_ruixo_hepatic_flow_falls_219_l_per_h_per_year_above_60():
    assert params("perez-ruixo2021", Covariates(age_years=60))["Qh"][0] == pytest.approx(151.0)
    assert params("perez-ruixo2021", Covariates(age_years=70))["Qh"][0] == pytest.approx(
        151.0 - 21.9
    )
    assert params("perez-ruixo2021", Covariates(age_years=40))["Qh"][0] == pytest.approx(151.0)


def test_perez_ruixo_later_devices_absorb_062_of_the_nasal_fraction():
    model = get_model("perez-ruixo2021")
    s = individual_system(model, Covariates(), model.typical_params(1))
    nasal_index = s.state_names.index("nasal")
    fractions = [
        s.dose("nasal", 28.0, 0.0, device_index=i)[0].amounts_mg[0, nasal_index] / 28
        for i in range(3)
    ]
    assert fractions == pytest.approx([0.54, 0.54 * 0.62, 0.54 * 0.62])
    assert np.mean(fractions[:2]) == pytest.approx(0.4374, abs=1e-3)
    assert np.mean(fractions) == pytest.approx(0.4032, abs=1e-3)


def test_perez_ruixo_nasal_regimen_places_devices_five_minutes_apart():
    assert NasalDose(84, 10).device_times_min() == [10, 15, 20]


def test_fanta_central_volume_scales_linearly_and_clearance_allometrically():
    p = params("fanta2015", Covariates(weight_kg=140))
    assert p["V1"][0] == pytest.approx(266.0)
    assert p["CL"][0] == pytest.approx(95.2 * 2**0.75)
    assert p["Vp1"][0] == pytest.approx(187.0)


def test_outside_the_studied_range_gives_a_warning_not_an_error():
    sim = simulate_regimen(
        "simons2022", Covariates(age_years=70), Regimen(infusions=(Infusion(20, 20, 0),)), [30]
    )
    assert any("age_years" in w for w in sim.warnings)
    assert sim.sampling_site == "arterial"


def test_every_parameter_is_cited_with_unit_source_and_grade():
    from ketaclinic.clinical.pk import list_models

    for model in list_models():
        for name, c in model.parameters.items():
            assert c.unit and c.source and c.grade.value in "CSU", (model.model_id, name)
        assert set(model.analytes) <= {
            "ketamine",
            "norketamine",
            "esketamine",
            "noresketamine",
            "s-ketamine",
            "s-norketamine",
            "s-hydroxynorketamine",
        }
        assert model.sampling_site.value in ("arterial", "venous")

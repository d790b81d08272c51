"""Bad PK input is refused with a one-line reason."""

import math

import pytest

from ketaclinic.clinical.pk import (
    Covariates,
    Infusion,
    NasalDose,
    OralDose,
    Regimen,
    parse_regimen_args,
    parse_times,
    simulate_population,
    simulate_regimen,
)
from ketaclinic.clinical.rules import ClinicalInputError

IV = Regimen(infusions=(Infusion(35, 40, 0),))


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: Infusion(-1, 40, 0), "negative"),
        (lambda: Covariates(weight_kg=0), "weight_kg"),
        (lambda: Covariates(weight_kg=-70), "weight_kg"),
        (lambda: Covariates(weight_kg=math.nan), "weight_kg"),
        (lambda: Infusion(math.nan, 40, 0), "finite"),
        (lambda: simulate_regimen("nope", Covariates(), IV, [1]), "unknown PK model"),
        (
            lambda: simulate_regimen(
                "kamp2020", Covariates(), Regimen(nasal=(NasalDose(56, 0),)), [1]
            ),
            "route nasal",
        ),
        (
            lambda: simulate_regimen(
                "perez-ruixo2021", Covariates(), Regimen(oral=(OralDose(1, 0),)), [2, 1]
            ),
            "sorted",
        ),
        (lambda: simulate_regimen("kamp2020", Covariates(), IV, [1, math.nan]), "NaN"),
        (lambda: Regimen(infusions=(Infusion(35, 40, 0), Infusion(35, 40, 20))), "overlap"),
        (lambda: NasalDose(30, 0), "multiple"),
        (lambda: parse_regimen_args(infusions=["35mg@0"]), "35mg/40min@0"),
        (lambda: parse_times("0:10"), "0:1440:1"),
        (lambda: parse_times("10:0:1"), "B >= A"),
        (lambda: Covariates(sex="x"), "sex"),
        (lambda: simulate_population("kamp2020", Covariates(), IV, [1], n=0), "population size"),
    ],
)
def test_bad_input_is_refused_with_a_one_line_reason(make, fragment):
    with pytest.raises(ClinicalInputError) as err:
        make()
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_cli_syntax_parses_infusions_doses_and_grids():
    r = parse_regimen_args(
        infusions=["35mg/40min@0", "35mg/40min@2880"], nasal=["56mg@0"], oral=["50mg"]
    )
    assert r.infusions[1] == Infusion(35, 40, 2880)
    assert r.nasal[0].device_count == 2 and r.oral[0].start_min == 0
    assert list(parse_times("0:10:5")) == [0, 5, 10]
    assert list(parse_times("10,20,40")) == [10, 20, 40]

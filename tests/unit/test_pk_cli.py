"""The `ketaclinic pk` commands."""

import json

from ketaclinic.cli import main


def test_pk_simulate_json_gives_concentrations_per_analyte(capsys):
    code = main(
        [
            "pk",
            "simulate",
            "--model",
            "kamp2020",
            "--weight-kg",
            "70",
            "--age",
            "40",
            "--sex",
            "male",
            "--height-cm",
            "170",
            "--infusion",
            "35mg/40min@0",
            "--infusion",
            "35mg/40min@2880",
            "--times",
            "10,20,40",
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["model"] == "kamp2020" and out["times_min"] == [10, 20, 40]
    assert len(out["concentration_ng_per_ml"]["ketamine"]) == 3
    assert out["sampling_site"] == "arterial" and "warnings" in out


def test_pk_simulate_nasal_population_adds_percentiles(capsys):
    code = main(
        [
            "pk",
            "simulate",
            "--model",
            "perez-ruixo2021",
            "--nasal",
            "56mg@0",
            "--times",
            "0:120:30",
            "--population",
            "50",
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert set(out["percentiles"]) == {"esketamine", "noresketamine"}
    assert len(out["percentiles"]["esketamine"]["p95"]) == 5


def test_pk_simulate_bad_input_exits_2_with_one_line(capsys):
    code = main(
        ["pk", "simulate", "--model", "kamp2020", "--infusion", "-5mg/40min@0", "--times", "10"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1
    code = main(["pk", "simulate", "--model", "kamp2020", "--nasal", "56mg@0", "--times", "10"])
    assert code == 2 and "does not support route nasal" in capsys.readouterr().err


def test_pk_models_lists_every_model(capsys):
    assert main(["pk", "models", "--json"]) == 0
    ids = {m["model"] for m in json.loads(capsys.readouterr().out)}
    assert ids == {
        "domino",
        "clements",
        "kamp2020",
        "hijazi",
        "fanta2015",
        "perez-ruixo2021",
        "simons2022",
    }


def test_pk_simulate_human_output_shows_the_caution(capsys):
    assert (
        main(["pk", "simulate", "--model", "simons2022", "--oral", "50mg@0", "--times", "30,60"])
        == 0
    )
    assert "never sets a dose" in capsys.readouterr().out

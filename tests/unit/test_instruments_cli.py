"""`ketaclinic score` and `ketaclinic instruments …` through ketaclinic.cli.main."""

from __future__ import annotations

import json

import pytest

from ketaclinic.cli import main
from ketaclinic.clinical.instruments import load_bundled

CONTRACT_KEYS = ["instrument", "total", "severity", "alerts", "complete", "prorated"]


def run_json(capsys, *args):
    code = main(["score", *args, "--json"])
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out)


def test_score_json_prints_the_contract_keys_first(capsys):
    data = run_json(capsys, "phq9", "--answers", "1,2,1,0,3,1,1,2,0")
    assert list(data)[:6] == CONTRACT_KEYS
    assert (data["total"], data["severity"], data["complete"], data["prorated"]) == (
        11,
        "moderate",
        True,
        False,
    )
    assert data["alerts"] == []


def test_an_empty_position_is_a_missing_answer_and_prorated(capsys):
    data = run_json(capsys, "phq9", "--answers", "1,2,,0,3,1,1,2,1")
    assert (data["total"], data["prorated"], data["complete"]) == (12, True, False)
    assert data["alerts"][0]["rule"] == "phq9.item9"


def test_not_scorable_prints_null_total(capsys):
    data = run_json(capsys, "phq9", "--answers", ",,,0,3,1,1,2,1")
    assert data["total"] is None and data["severity"] is None


def test_cssrs_answers_are_y_n_and_na(capsys):
    data = run_json(capsys, "cssrs-screener", "--answers", "y,y,n,y,n,n,na")
    assert data["severity"] == "high" and data["total"] is None
    assert data["alerts"][0]["priority"] == "urgent"


def test_negative_rass_level_is_accepted(capsys):
    assert run_json(capsys, "rass", "--answers", "-3")["total"] == -3


def test_hamd_alternative_band_set(capsys):
    data = run_json(
        capsys,
        "hamd17",
        "--answers",
        "2,2,0,1,1,1,2,2,2,2,1,1,0,0,0,na,0",
        "--band-set",
        "zimmerman2013",
    )
    assert (data["total"], data["severity"]) == (17, "moderate")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["phq9", "--answers", "1,2,x,0,3,1,1,2,1"], "PHQ-9 item 3: 'x' is not a number"),
        (["phq9", "--answers", "1,2,1.5,0,3,1,1,2,1"], "decimal"),
        (["madrs", "--answers", "7,0,0,0,0,0,0,0,0,0"], "MADRS item 1: 7 is out of range 0 to 6"),
        (["bdi2", "--answers", "1"], "unknown instrument 'bdi2'"),
        (["gad7", "--answers", "1,1"], "expected 7 answers, got 2"),
    ],
)
def test_invalid_input_exits_2_with_a_one_line_reason(capsys, args, message):
    assert main(["score", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_human_output_shows_total_and_alerts(capsys):
    assert main(["score", "madrs", "--answers", "3,3,3,3,3,3,3,3,3,5"]) == 0
    out = capsys.readouterr().out
    assert "total 32" in out and "ALERT" in out


def test_instruments_list_json_names_all_eleven(capsys):
    assert main(["instruments", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == [
        "phq9",
        "gad7",
        "qids-sr16",
        "hamd17",
        "madrs",
        "cadss",
        "cadss6",
        "bprs4",
        "moaas",
        "rass",
        "cssrs-screener",
    ]


def test_instruments_show(capsys):
    assert main(["instruments", "show", "madrs"]) == 0
    assert "score-only" in capsys.readouterr().out
    assert main(["instruments", "show", "gad7", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["codes"]["total"] == "70274-6"


def test_instruments_validate_accepts_a_good_file_and_refuses_a_bad_one(capsys, tmp_path):
    good = tmp_path / "madrs.json"
    raw = dict(load_bundled("madrs").raw)
    good.write_text(json.dumps(raw), encoding="utf-8")
    assert main(["instruments", "validate", str(good)]) == 0
    assert "valid: madrs@1.1.0" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**raw, "version": "x"}), encoding="utf-8")
    assert main(["instruments", "validate", str(bad)]) == 2
    assert "version: must look like 1.0.0" in capsys.readouterr().err
    assert main(["instruments", "validate", str(tmp_path / "missing.json")]) == 2
    # `instruments load` stores into the database: tests/integration/test_mbc_cli.py


def test_score_with_a_clinic_supplied_definition_file(capsys, tmp_path):
    path = tmp_path / "madrs.json"
    path.write_text(json.dumps({**load_bundled("madrs").raw, "version": "2.0.0"}), encoding="utf-8")
    data = run_json(capsys, "madrs", "--answers", "1,1,1,1,1,1,1,1,1,1", "--definition", str(path))
    assert data["total"] == 10 and data["rule_version"] == "madrs@2.0.0"

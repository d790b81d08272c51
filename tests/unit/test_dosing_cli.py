"""CLI: dose, screen and rulesets commands; exit codes 0/2/3 and JSON shapes."""

import json

import pytest

from ketaclinic.cli import main

IV = [
    "dose",
    "ketamine-iv",
    "--weight-kg",
    "82",
    "--mg-per-kg",
    "0.5",
    "--minutes",
    "40",
    "--concentration-mg-per-ml",
    "10",
]
CHECK_KEYS = {"rule", "level", "message", "source"}


def _run(capsys, args):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_iv_dose_json_has_the_documented_shape(capsys):
    code, out, _ = _run(capsys, IV + ["--json"])
    data = json.loads(out)
    assert code == 0
    assert (data["dose_mg"], data["rate_mg_per_h"], data["rate_ml_per_h"]) == (41.0, 61.5, 6.15)
    assert all(
        set(c) == CHECK_KEYS and c["level"] in ("ok", "soft", "hard") for c in data["checks"]
    )


def test_iv_dose_human_output(capsys):
    code, out, _ = _run(capsys, IV)
    assert code == 0 and "41 mg" in out and "6.15 mL/h" in out


def test_hard_limit_exits_3(capsys):
    args = IV[:5] + ["1.5"] + IV[6:] + ["--json"]
    code, out, _ = _run(capsys, args)
    assert code == 3 and any(c["level"] == "hard" for c in json.loads(out)["checks"])


def test_ten_fold_previous_dose_exits_3(capsys):
    code, _, _ = _run(capsys, IV + ["--previous-dose-mg", "4.1", "--json"])
    assert code == 3


def test_soft_limit_exits_0_with_a_soft_check(capsys):
    code, out, _ = _run(capsys, IV[:5] + ["0.8"] + IV[6:7] + ["60"] + IV[8:] + ["--json"])
    checks = json.loads(out)["checks"]
    assert code == 0 and any(c["level"] == "soft" for c in checks)


@pytest.mark.parametrize(
    ("flag", "bad"),
    [
        ("--weight-kg", "0"),
        ("--weight-kg", "-82"),
        ("--weight-kg", "nan"),
        ("--weight-kg", "82kg"),
        ("--weight-kg", "inf"),
        ("--mg-per-kg", "0"),
        ("--minutes", "forty"),
        ("--concentration-mg-per-ml", "10mg/ml"),
    ],
)
def test_invalid_input_exits_2_with_one_line(capsys, flag, bad):
    args = list(IV)
    args[args.index(flag) + 1] = bad
    code, out, err = _run(capsys, args)
    assert (
        code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    )


def test_missing_option_exits_2_with_one_line(capsys):
    code, _, err = _run(capsys, ["dose", "ketamine-iv", "--weight-kg", "82"])
    assert code == 2 and err.count("\n") == 1


def test_esketamine_json_shape(capsys):
    code, out, _ = _run(
        capsys,
        [
            "dose",
            "esketamine",
            "--phase",
            "induction",
            "--session-number",
            "1",
            "--age",
            "40",
            "--json",
        ],
    )
    data = json.loads(out)
    assert code == 0 and (data["dose_mg"], data["devices"]) == (56, 2)
    assert all(set(c) == CHECK_KEYS for c in data["checks"])


def test_esketamine_eu_older_adult_starts_at_28_mg(capsys):
    code, out, _ = _run(
        capsys,
        [
            "dose",
            "esketamine",
            "--phase",
            "induction",
            "--session-number",
            "1",
            "--age",
            "70",
            "--ruleset",
            "esketamine-eu",
            "--json",
        ],
    )
    assert code == 0 and json.loads(out)["dose_mg"] == 28


def test_esketamine_above_84_mg_exits_3(capsys):
    code, _, _ = _run(
        capsys,
        [
            "dose",
            "esketamine",
            "--phase",
            "induction",
            "--session-number",
            "2",
            "--age",
            "40",
            "--dose-mg",
            "112",
            "--json",
        ],
    )
    assert code == 3


def test_esketamine_unknown_phase_exits_2(capsys):
    code, _, err = _run(
        capsys, ["dose", "esketamine", "--phase", "booster", "--session-number", "1", "--age", "40"]
    )
    assert code == 2 and "phase" in err


def test_other_route_notes_bioavailability(capsys):
    code, out, _ = _run(
        capsys,
        [
            "dose",
            "ketamine",
            "--route",
            "sublingual",
            "--weight-kg",
            "70",
            "--mg-per-kg",
            "1",
            "--json",
        ],
    )
    assert code == 0 and json.loads(out)["bioavailability"] == 0.3


@pytest.mark.parametrize("treatment", ["ketamine-iv", "esketamine"])
def test_screen_json_shape(capsys, treatment):
    code, out, _ = _run(
        capsys,
        [
            "screen",
            "--file",
            "docs/examples/screen-patient.json",
            "--treatment",
            treatment,
            "--screened-on",
            "2026-01-05",
            "--json",
        ],
    )
    data = json.loads(out)
    assert code == 0 and data["decision"] in ("eligible", "review", "ineligible")
    assert {"decision", "findings", "rule_set", "maudsley_score"} <= set(data)
    assert data["maudsley_score"] == 8 and data["expires_on"] == "2026-04-05"
    assert all({"rule", "level", "message", "source"} <= set(f) for f in data["findings"])


def test_screen_bad_file_exits_2(capsys, tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text('{"age_years": "forty"}')
    code, _, err = _run(capsys, ["screen", "--file", str(bad), "--treatment", "esketamine"])
    assert code == 2 and err.count("\n") == 1


def test_screen_missing_file_exits_2(capsys, tmp_path):
    code, _, _ = _run(
        capsys, ["screen", "--file", str(tmp_path / "none.json"), "--treatment", "esketamine"]
    )
    assert code == 2


def test_rulesets_list_show_unconfirmed(capsys):
    code, out, _ = _run(capsys, ["rulesets", "list", "--json"])
    assert code == 0 and {r["id"] for r in json.loads(out)} == {
        "esketamine-us",
        "esketamine-eu",
        "ketamine-iv",
    }
    code, out, _ = _run(capsys, ["rulesets", "show", "esketamine-eu"])
    assert code == 0 and json.loads(out)["jurisdiction"] == "EU"
    code, out, _ = _run(capsys, ["rulesets", "unconfirmed", "ketamine-iv", "--json"])
    assert code == 0 and any(
        u["path"] == "parameters.screening-validity-days" for u in json.loads(out)
    )


def test_rulesets_copy_then_validate(capsys, tmp_path):
    code, out, _ = _run(
        capsys, ["rulesets", "copy", "ketamine-iv", "--new-id", "clinic-iv", "--new-version", "2"]
    )
    path = tmp_path / "clinic-iv.json"
    path.write_text(out)
    code, out, _ = _run(capsys, ["rulesets", "validate", str(path)])
    assert code == 0 and "clinic-iv@2" in out
    code, out, _ = _run(capsys, IV + ["--ruleset", str(path), "--json"])
    assert code == 0 and json.loads(out)["rule_set"] == "clinic-iv@2"


def test_rulesets_validate_reports_path_and_reason(capsys, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"schema": "ketaclinic.ruleset/1"}')
    code, _, err = _run(capsys, ["rulesets", "validate", str(path)])
    assert code == 2 and "$.id: is required" in err and err.count("\n") == 1


def _iv_at(conc, *extra):
    args = [a if a != "10" else conc for a in IV] + list(extra) + ["--json"]
    return args


def test_iv_at_0_01_mg_per_ml_is_a_pump_library_hard_stop_exit_3(capsys):
    code, out, _ = _run(capsys, _iv_at("0.01"))
    data = json.loads(out)
    assert code == 3 and data["rate_ml_per_h"] == 6150
    hard = {c["rule"] for c in data["checks"] if c["level"] == "hard"}
    assert {"concentration-library", "rate-ml-per-h"} <= hard


def test_the_undiluted_100_mg_per_ml_vial_iv_exits_3(capsys):
    code, out, _ = _run(capsys, _iv_at("100"))
    assert code == 3 and any(c["rule"] == "concentration" and c["level"] == "hard"
                             for c in json.loads(out)["checks"])


def test_the_programmed_rate_is_checked_when_given(capsys):
    code, out, _ = _run(capsys, _iv_at("10", "--rate-ml-per-h", "600"))
    assert code == 3 and any(c["rule"] == "programmed-rate" for c in json.loads(out)["checks"])
    code, _, _ = _run(capsys, _iv_at("10", "--rate-ml-per-h", "6.15"))
    assert code == 0

"""`ketaclinic chair` commands."""

import json

from ketaclinic.cli import main


def test_chair_plan_prints_json_sessions(capsys):
    assert main(["chair", "plan", "iv_ketamine_induction", "2026-01-05", "--json"]) == 0
    sessions = json.loads(capsys.readouterr().out)
    assert len(sessions) == 6 and sessions[0]["date"] == "2026-01-05"


def test_chair_plan_accepts_frequency_and_weekdays(capsys):
    args = ["chair", "plan", "iv_ketamine_induction", "2026-01-05", "--frequency",
            "induction=3x_weekly", "--weekdays", "0,2,4", "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)[-1]["date"] == "2026-01-16"


def test_chair_plan_with_a_bad_template_exits_2_with_one_line(capsys):
    assert main(["chair", "plan", "nope", "2026-01-05"]) == 2
    err = capsys.readouterr().err
    assert "unknown course template" in err and "Traceback" not in err


def test_chair_plan_with_a_bad_date_exits_2(capsys):
    assert main(["chair", "plan", "esketamine_trd", "tomorrow"]) == 2
    assert "not a date" in capsys.readouterr().err


def test_chair_templates_lists_the_bundled_templates(capsys):
    assert main(["chair", "templates"]) == 0
    assert "esketamine_trd" in capsys.readouterr().out


def test_chair_loss_deadlines_skip_the_weekend(capsys):
    assert main(["chair", "loss-deadlines", "2026-01-09", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["written_notice_by"] == "2026-01-12" and out["form_106_by"] == "2026-02-23"

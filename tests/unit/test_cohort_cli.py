"""`ketaclinic outcomes` commands."""

from __future__ import annotations

import json

from ketaclinic.cli import main


def test_ci_command_prints_the_wilson_interval(capsys):
    assert main(["outcomes", "ci", "8", "10", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert round(d["lo"], 3) == 0.490 and round(d["hi"], 3) == 0.943


def test_invalid_counts_exit_2_with_one_line(capsys):
    assert main(["outcomes", "ci", "11", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_rate_command(capsys):
    assert main(["outcomes", "rate", "3", "100"]) == 0
    assert "3.00 per 100 sessions (0.62–8.77)" in capsys.readouterr().out


def test_km_command_reads_csv(tmp_path, capsys):
    p = tmp_path / "relapse.csv"
    p.write_text("duration,event\n10,1\n18,1\n18,0\n25,1\n30,0\n40,1\n60,0\n90,0\n")
    assert main(["outcomes", "km", str(p), "--at", "0", "--at", "30"]) == 0
    out = capsys.readouterr().out
    assert "median=40" in out and "at risk at 30: 4" in out
    assert main(["outcomes", "km", str(tmp_path / "missing.csv")]) == 2

"""Docs that cannot rot: the CLI reference and the settings table are generated and checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ketaclinic.cli.reference import render_reference, render_settings
from ketaclinic.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_cli_reference_in_docs_is_current():
    assert (ROOT / "docs" / "cli.md").read_text() == render_reference(), (
        "docs/cli.md is stale: run `make docs`")


def test_the_cli_reference_does_not_depend_on_which_command_module_was_imported_first():
    # Each command module attaches its group on import; a test or plugin importing one early
    # used to move that group up in `ketaclinic --help` (and fail the test above by turns).
    script = ("import ketaclinic.cli.webhooks, ketaclinic.cli.chair, ketaclinic.cli.pk\n"
              "from ketaclinic.cli.reference import render_reference\n"
              "import sys; sys.stdout.write(render_reference())")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert out == (ROOT / "docs" / "cli.md").read_text()


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- settings:start -->")[1].split("<!-- settings:end -->")[0]
    assert block.strip() == render_settings().strip(), "README settings table is stale"
    for name in Settings.model_fields:
        assert f"KETACLINIC_{name.upper()}" in block


def test_the_readme_shows_the_two_commands_and_the_disclaimer():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "not medical advice" in readme

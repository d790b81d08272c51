"""Scripting the CLI (docs/cli.md): every registered command is walked. Each command that prints
data takes --json and prints one JSON document; each file argument takes `-` (stdin/stdout);
`--version` works; errors under --json are `{"error": {...}}` with the documented exit code.

One seeded database per backend is shared by the module (commands run in-process via ``main``).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest
import typer
from kcoutcomes import build_hand_cohort
from kctest import TEST_SECRET, USERS, make_settings, wipe

from ketaclinic.bootstrap import build_services
from ketaclinic.cli import _register, app, main
from ketaclinic.cli.output import EXIT_CODES
from ketaclinic.cli.reference import _walk
from ketaclinic.clinical.instruments import load_bundled
from ketaclinic.clinical.rulesets import load_bundled_ruleset
from ketaclinic.services.audit.trail import SYSTEM

ROOT = Path(__file__).parents[2]
ROSTER = "mrn,family,given,birth_date,sex\nS-1,Scriptson,Ann,1970-01-02,female\n"

# Commands that print no data document: the server, and the generated Markdown references.
NO_JSON = {"serve", "docs cli", "docs settings"}


@dataclass
class Clinic:
    env: dict[str, str]
    dir: Path

    def file(self, name: str, text: str) -> str:
        path = self.dir / name
        path.write_text(text, encoding="utf-8")
        return str(path)


@pytest.fixture(scope="module")
def clinic(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    wipe(database_url)
    svc = build_services(make_settings(database_url))
    try:
        for u, n, r, p in USERS.values():
            svc.auth.create_user(SYSTEM, u, n, r, p)
        with svc.db.transaction() as s:
            build_hand_cohort(s)
    finally:
        svc.close()
    folder = tmp_path_factory.mktemp("cli-scripting")
    data = folder / "data"
    data.mkdir(mode=0o700)
    yield Clinic({"KETACLINIC_ENV": "test", "KETACLINIC_DATABASE_URL": database_url,
                  "KETACLINIC_SECRET_KEY": TEST_SECRET, "KETACLINIC_DATA_DIR": str(data)},
                 folder)


def definition(version_: str) -> str:
    raw = json.loads(json.dumps(load_bundled("qids-sr16").raw))
    raw["version"] = version_
    for item in raw["items"]:
        item["text"] = f"Clinic wording of item {item['number']}"
    raw["licence"]["supplied_by"] = "Test clinic licence"
    return json.dumps(raw)


RULESET = json.dumps(load_bundled_ruleset("ketamine-iv").to_dict())
PATIENT = (ROOT / "docs" / "examples" / "screen-patient.json").read_text(encoding="utf-8")
BUNDLE = (ROOT / "tests" / "data" / "fhir_import_bundle.json").read_text(encoding="utf-8")
KM = "duration,event\n1,1\n2,0\n3,1\n5,1\n"
DOSE = ["--weight-kg", "80", "--mg-per-kg", "0.5", "--minutes", "40",
        "--concentration-mg-per-ml", "10"]

Args = Callable[[Clinic], list[str]]


def _service_account(c: Clinic) -> str:
    """A new service account of its own for the case that needs one: no case relies on
    another case having run first (each runs alone, in any order)."""
    name = f"feed-{uuid.uuid4().hex[:8]}"
    with open(os.devnull, "w", encoding="utf-8") as fh, _stdout_to(fh):
        assert main(["service-account", "create", name, "--role", "nurse", "--full-name", "F",
                     "--json"], environ=c.env) == 0
    return name


def _issued_prefix(c: Clinic) -> str:
    account = _service_account(c)
    out = str(c.dir / "token.json")
    with open(out, "w", encoding="utf-8") as fh, _stdout_to(fh):
        assert main(["tokens", "issue", account, "--scope", "patient.read", "--days", "7",
                     "--label", "to revoke", "--json"], environ=c.env) == 0
    return str(json.loads(Path(out).read_text(encoding="utf-8"))["prefix"])


def _webhook_id(c: Clinic) -> str:
    out = str(c.dir / "webhook.json")
    with open(out, "w", encoding="utf-8") as fh, _stdout_to(fh):
        assert main(["webhooks", "add", "https://hooks.invalid/h", "--event", "rems.deadline",
                     "--json"], environ=c.env) == 0
    return str(json.loads(Path(out).read_text(encoding="utf-8"))["id"])


def _stdout_to(fh):  # type: ignore[no-untyped-def]
    from contextlib import redirect_stdout

    return redirect_stdout(fh)


def _backup(c: Clinic) -> str:
    out = str(c.dir / "walk.jsonl")
    assert main(["backup", "--out", out, "--format", "jsonl"], environ=c.env) == 0
    return out


# command -> (arguments given a clinic, exit codes it may end with). Each runs with --json.
JSON_CASES: dict[str, tuple[Args, set[int]]] = {
    "audit checkpoint": (lambda c: [], {0}),
    "audit verify": (lambda c: [], {0}),
    "backup": (lambda c: ["--out", str(c.dir / "b.jsonl"), "--format", "jsonl"], {0}),
    "chair loss-deadlines": (lambda c: ["2026-11-02"], {0}),
    "chair plan": (lambda c: ["iv_ketamine_induction", "2026-11-02"], {0}),
    "chair templates": (lambda c: [], {0}),
    "demo": (lambda c: ["--if-empty"], {0}),
    "doctor": (lambda c: [], {0, 1}),
    "dose esketamine": (lambda c: ["--phase", "induction", "--session-number", "1",
                                   "--age", "40"], {0}),
    "dose ketamine": (lambda c: ["--route", "im", "--weight-kg", "80", "--mg-per-kg", "0.5"],
                      {0}),
    "dose ketamine-iv": (lambda c: DOSE, {0}),
    "export deidentified": (lambda c: ["--out", str(c.dir / "d.zip")], {0}),
    "export expire": (lambda c: [], {0}),
    "export fhir": (lambda c: ["--out", str(c.dir / "fhir"), "--format", "ndjson"], {0}),
    "import fhir": (lambda c: [c.file("b.json", BUNDLE), "--as", "prescriber", "--dry-run"],
                    {0}),
    "import roster": (lambda c: [c.file("r.csv", ROSTER), "--as", "admin", "--dry-run"], {0}),
    "init": (lambda c: [], {0}),
    "instruments list": (lambda c: [], {0}),
    "instruments load": (lambda c: [c.file("q.json", definition("9.0.1"))], {0}),
    "instruments show": (lambda c: ["phq9"], {0}),
    "instruments validate": (lambda c: [c.file("q.json", definition("9.0.1"))], {0}),
    "migrate": (lambda c: [], {0}),
    "outbox send": (lambda c: [], {0}),
    "outcomes ci": (lambda c: ["3", "10"], {0}),
    "outcomes km": (lambda c: [c.file("km.csv", KM), "--at", "2"], {0}),
    "outcomes rate": (lambda c: ["2", "50"], {0}),
    "outcomes rebuild-summary": (lambda c: [], {0}),
    "pk models": (lambda c: [], {0}),
    "pk simulate": (lambda c: ["--model", "domino", "--infusion", "35mg/40min@0",
                               "--times", "10,20"], {0}),
    "restore": (lambda c: [_backup(c), "--force"], {0}),
    "rulesets copy": (lambda c: ["ketamine-iv", "--new-id", "x", "--new-version", "1"], {0}),
    "rulesets list": (lambda c: [], {0}),
    "rulesets show": (lambda c: ["ketamine-iv"], {0}),
    "rulesets unconfirmed": (lambda c: ["ketamine-iv"], {0}),
    "rulesets validate": (lambda c: [c.file("rs.json", RULESET)], {0}),
    "service-account create": (lambda c: ["feed", "--role", "nurse", "--full-name", "Feed"],
                               {0}),
    "tokens issue": (lambda c: [_service_account(c), "--scope", "patient.read", "--days", "7",
                                "--label", "walk"], {0}),
    "tokens list": (lambda c: [], {0}),
    "tokens revoke": (lambda c: [_issued_prefix(c)], {0}),
    "score": (lambda c: ["phq9", "--answers", "1,1,1,1,1,1,1,1,0"], {0}),
    "screen": (lambda c: ["--file", c.file("p.json", PATIENT), "--treatment", "ketamine-iv",
                          "--screened-on", "2026-11-02"], {0}),
    "webhooks add": (lambda c: ["https://hooks.invalid/walk", "--event", "alert.urgent"], {0}),
    "webhooks list": (lambda c: [], {0}),
    "webhooks remove": (lambda c: [_webhook_id(c)], {0}),
    # hooks.invalid never resolves: the test event is not delivered (refused, exit 1)
    "webhooks test": (lambda c: [_webhook_id(c)], {1}),
    "user create": (lambda c: ["scripted", "--role", "nurse", "--full-name", "Sam Script",
                               "--password", "scripted-password-1"], {0}),
    "user encrypt-secrets": (lambda c: [], {0}),
    "user list": (lambda c: [], {0}),
    "user medical-director": (lambda c: ["prescriber"], {0}),
    "user reset-2fa": (lambda c: ["nurse"], {1}),  # refused: no two-factor set up (Conflict)
    "user reset-password": (lambda c: ["analyst"], {0}),
}


def commands() -> dict[str, typer.main.click.Command]:  # type: ignore[name-defined]
    _register()
    root = typer.main.get_command(app)
    return {" ".join(path): cmd for path, cmd in _walk(root, [])
            if path and not getattr(cmd, "commands", None)}


def run(clinic: Clinic, capsysbinary: pytest.CaptureFixture[bytes], args: list[str],
        stdin: bytes = b"", env: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    capsysbinary.readouterr()  # what preparing the arguments printed
    old = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        code = main(args, environ=env or clinic.env)
    finally:
        sys.stdin = old
    captured = capsysbinary.readouterr()
    return code, captured.out, captured.err.decode("utf-8", "replace")


def test_every_registered_command_is_walked() -> None:
    registered = set(commands())
    assert registered == set(JSON_CASES) | NO_JSON, (
        "a command was added or removed: give it --json (and a case here) or list it in NO_JSON")
    for name, cmd in commands().items():
        has_json = any("--json" in getattr(p, "opts", ()) for p in cmd.params)
        assert has_json == (name not in NO_JSON), name


@pytest.mark.parametrize("name", sorted(JSON_CASES))
def test_each_data_command_prints_one_json_document(clinic, capsysbinary, name):
    make_args, codes = JSON_CASES[name]
    env = {**clinic.env, "KETACLINIC_ENV": "dev"} if name == "demo" else None
    code, out, err = run(clinic, capsysbinary, [*name.split(), *make_args(clinic), "--json"],
                         env=env)
    assert code in codes, (name, code, err[-400:])
    text = out.decode("utf-8")
    assert "\x1b[" not in text, f"{name}: ANSI escapes under --json"
    assert len(text.strip().splitlines()) == 1, f"{name}: not one JSON document: {text[:300]}"
    doc = json.loads(text)
    assert isinstance(doc, dict | list), name
    if code:
        assert doc["error"]["exit_code"] == code, name


def _file_params(cmd) -> list[str]:  # type: ignore[no-untyped-def]
    words = ("file", "folder", "csv", "json", "checkpoint")
    return [p.name for p in cmd.params
            if any(w in (getattr(p, "help", None) or "").lower() for w in words)
            and "--json" not in getattr(p, "opts", ()) and p.name != "fmt"]


STDIO_SAYS = re.compile(r"(or - |- for std|- writes|- reads|, or -$|or - \()")

# (command, parameter) -> (arguments given a clinic, stdin bytes, check of stdout bytes)
STDIO_CASES: dict[tuple[str, str], tuple[Args, Callable[[Clinic], bytes],
                                        Callable[[bytes], object]]] = {
    ("audit checkpoint", "out"): (lambda c: ["--out", "-"], lambda c: b"",
                                  lambda out: json.loads(out)),
    ("audit verify", "checkpoint"): (lambda c: ["--checkpoint", "-"], lambda c: _checkpoint(c),
                                     lambda out: b"intact" in out),
    ("backup", "out"): (lambda c: ["--out", "-", "--format", "jsonl"], lambda c: b"",
                        lambda out: [json.loads(line) for line in out.splitlines()]),
    ("export deidentified", "out"): (lambda c: ["--out", "-"], lambda c: b"",
                                     lambda out: zipfile.ZipFile(io.BytesIO(out)).namelist()),
    ("export fhir", "out"): (lambda c: ["--out", "-", "--format", "ndjson"], lambda c: b"",
                             lambda out: [json.loads(line)["resourceType"]
                                          for line in out.splitlines()]),
    ("import fhir", "file"): (lambda c: ["-", "--as", "prescriber", "--dry-run"],
                              lambda c: BUNDLE.encode(), lambda out: out),
    ("import roster", "file"): (lambda c: ["-", "--as", "admin", "--dry-run"],
                                lambda c: ROSTER.encode(), lambda out: out),
    ("instruments load", "path"): (lambda c: ["-"], lambda c: definition("9.0.2").encode(),
                                   lambda out: out),
    ("instruments validate", "path"): (lambda c: ["-"], lambda c: definition("9.0.3").encode(),
                                       lambda out: out),
    ("outcomes km", "csv_path"): (lambda c: ["-"], lambda c: KM.encode(), lambda out: out),
    ("restore", "source"): (lambda c: ["-", "--force"],
                            lambda c: Path(_backup(c)).read_bytes(), lambda out: out),
    ("restore", "checkpoint"): (lambda c: [_backup(c), "--force", "--checkpoint", "-"],
                                lambda c: _checkpoint(c), lambda out: out),
    ("rulesets copy", "ruleset"): (lambda c: ["-", "--new-id", "y", "--new-version", "2"],
                                   lambda c: RULESET.encode(), lambda out: json.loads(out)),
    ("rulesets show", "ruleset"): (lambda c: ["-"], lambda c: RULESET.encode(),
                                   lambda out: json.loads(out)),
    ("rulesets unconfirmed", "ruleset"): (lambda c: ["-"], lambda c: RULESET.encode(),
                                          lambda out: out),
    ("rulesets validate", "file"): (lambda c: ["-"], lambda c: RULESET.encode(),
                                    lambda out: out),
    ("score", "definition_file"): (lambda c: ["qids-sr16", "--answers", ",".join(["1"] * 16),
                                              "--definition", "-"],
                                   lambda c: definition("9.0.4").encode(), lambda out: out),
    ("dose ketamine-iv", "ruleset"): (lambda c: [*DOSE, "--ruleset", "-"],
                                      lambda c: RULESET.encode(), lambda out: out),
    ("screen", "file"): (lambda c: ["--file", "-", "--treatment", "esketamine"],
                         lambda c: PATIENT.encode(), lambda out: out),
    ("screen", "ruleset"): (lambda c: ["--file", c.file("p.json", PATIENT), "--treatment",
                                       "ketamine-iv", "--ruleset", "-"],
                            lambda c: RULESET.encode(), lambda out: out),
}


def _checkpoint(c: Clinic) -> bytes:
    path = c.dir / "cp.json"
    assert main(["audit", "checkpoint", "--out", str(path)], environ=c.env) == 0
    return path.read_bytes()


def test_every_file_parameter_says_it_takes_a_dash_and_is_walked() -> None:
    found = {(name, p) for name, cmd in commands().items() for p in _file_params(cmd)}
    assert found == set(STDIO_CASES), found ^ set(STDIO_CASES)
    for name, cmd in commands().items():
        for p in cmd.params:
            if p.name in _file_params(cmd):
                assert STDIO_SAYS.search(p.help or ""), (name, p.name, p.help)


@pytest.mark.parametrize("key", sorted(STDIO_CASES), ids=lambda k: f"{k[0]}:{k[1]}")
def test_each_file_parameter_takes_a_dash(clinic, capsysbinary, key):
    make_args, stdin, check = STDIO_CASES[key]
    name = key[0]
    feed = stdin(clinic)
    code, out, err = run(clinic, capsysbinary, [*name.split(), *make_args(clinic)], stdin=feed)
    assert code == 0, (key, err[-400:])
    assert check(out), key


def test_version_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"ketaclinic {version('ketaclinic')}"


@pytest.mark.parametrize("args, code, kind", [
    (["dose", "ketamine-iv", "--weight-kg", "82kg"], 2, "invalid_input"),
    (["dose", "ketamine-iv", "--mg-per-kg", "1.5", "--weight-kg", "82", "--minutes", "40",
      "--concentration-mg-per-ml", "10"], 3, "hard_stop"),
    (["no-such-command"], 2, "usage"),
    (["chair", "plan", "iv_ketamine_induction"], 2, "usage"),
    (["user", "medical-director", "nobody-here"], 4, "not_found"),
    (["user", "reset-2fa", "nobody-here"], 4, "not_found"),
    (["import", "roster", "-", "--as", "nurse"], 1, "permission_denied"),
    (["instruments", "validate", "/nonexistent/definition.json"], 2, "invalid_input"),
    (["audit", "verify", "--checkpoint", "/nonexistent/cp.json"], 1, "check_failed"),
])
def test_errors_under_json_are_one_object_with_the_documented_exit_code(
        clinic, capsysbinary, args, code, kind):
    got, out, err = run(clinic, capsysbinary, [*args, "--json"], stdin=ROSTER.encode())
    doc = json.loads(out)
    assert got == code == doc["error"]["exit_code"], (doc, err)
    assert doc["error"]["code"] == kind and doc["error"]["message"]
    assert code in EXIT_CODES
    assert "Traceback" not in err
    # without --json: one line on stderr, nothing on stdout beyond a result, no traceback
    got, out, err = run(clinic, capsysbinary, args, stdin=ROSTER.encode())
    assert got == code
    assert err.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in err


def test_a_refused_import_names_no_patient_data_in_its_error(clinic, capsysbinary):
    roster = "mrn,family,given,birth_date,sex\nS-9,Secretname,Ann,not-a-date,female\n"
    code, out, err = run(clinic, capsysbinary, ["import", "roster", "-", "--as", "admin",
                                                "--json"], stdin=roster.encode())
    assert code == 2
    doc = json.loads(out)
    assert doc["error"]["details"][0]["field"] == "birth_date"
    assert "Secretname" not in out.decode() + err

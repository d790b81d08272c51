"""`ketaclinic export fhir --format collection|transaction|ndjson` against a database."""

from __future__ import annotations

import json

from kcoutcomes import build_hand_cohort
from kctest import TEST_SECRET
from sqlalchemy import func, select

from ketaclinic.cli import main
from ketaclinic.renderers.fhir_codes import validate_bundle
from ketaclinic.store.tables import AuditEvent


def _env(services):
    return {"KETACLINIC_ENV": "test", "KETACLINIC_DATABASE_URL":
            services.db.engine.url.render_as_string(hide_password=False),
            "KETACLINIC_SECRET_KEY": TEST_SECRET}


def test_ndjson_writes_one_file_per_resource_type_and_stdout_gets_the_same_lines(
        services, tmp_path, capsys):
    with services.db.transaction() as s:
        build_hand_cohort(s)
    out = tmp_path / "bulk"
    assert main(["export", "fhir", "--format", "ndjson", "--out", str(out)],
                environ=_env(services)) == 0
    files = {f.stem: f.read_text().splitlines() for f in out.glob("*.ndjson")}
    assert {"Patient", "Condition", "Encounter", "MedicationAdministration",
            "Observation"} <= set(files)
    for rtype, lines in files.items():
        assert all(json.loads(line)["resourceType"] == rtype for line in lines)
    assert len(files["Patient"]) == 4
    capsys.readouterr()
    assert main(["export", "fhir", "--format", "ndjson", "--out", "-"],
                environ=_env(services)) == 0
    captured = capsys.readouterr()
    streamed = captured.out.splitlines()
    assert sorted(streamed) == sorted(line for lines in files.values() for line in lines)
    assert "resource(s) as NDJSON to stdout" in captured.err
    with services.db.transaction() as s:
        assert s.execute(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "export.fhir_bulk")).scalar_one() == 2


def test_transaction_bundles_per_patient_and_bad_options_exit_2_writing_nothing(
        services, tmp_path, capsys):
    with services.db.transaction() as s:
        build_hand_cohort(s)
    out = tmp_path / "tx"
    assert main(["export", "fhir", "--format", "transaction", "--out", str(out)],
                environ=_env(services)) == 0
    bundles = [json.loads(f.read_text()) for f in sorted(out.glob("patient-*.json"))]
    assert len(bundles) == 4
    for b in bundles:
        assert b["type"] == "transaction" and validate_bundle(b) == []
        assert all(e["request"]["method"] == "PUT" for e in b["entry"])
    for args in (["--format", "xml", "--out", str(tmp_path / "x")],
                 ["--format", "collection", "--out", "-"]):
        assert main(["export", "fhir", *args], environ=_env(services)) == 2
    assert not (tmp_path / "x").exists()
    err = capsys.readouterr().err
    assert "--format must be one of" in err and "needs --format ndjson" in err

"""`ketaclinic export fhir` and `export deidentified` against a database."""

from __future__ import annotations

import json

from kcoutcomes import build_hand_cohort
from kctest import TEST_SECRET, counting_statements
from sqlalchemy import select

from ketaclinic.cli import main
from ketaclinic.renderers.fhir_codes import validate_bundle
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.store.tables import AuditEvent


def _env(services):
    return {"KETACLINIC_ENV": "test", "KETACLINIC_DATABASE_URL":
            services.db.engine.url.render_as_string(hide_password=False),
            "KETACLINIC_SECRET_KEY": TEST_SECRET}


def test_export_fhir_writes_one_valid_bundle_per_patient(services, tmp_path, capsys):
    with services.db.transaction() as s:
        ids = build_hand_cohort(s)
    out = tmp_path / "fhir"
    assert main(["export", "fhir", "--out", str(out)], environ=_env(services)) == 0
    files = sorted(out.glob("patient-*.json"))
    assert len(files) == 4
    for f in files:
        assert validate_bundle(json.loads(f.read_text())) == []
    assert "wrote 4 bundle(s)" in capsys.readouterr().out
    one = tmp_path / "one"
    assert main(["export", "fhir", "--out", str(one), "--patient", str(ids["B"])],
                environ=_env(services)) == 0
    assert [f.name for f in one.iterdir()] == [f"patient-{ids['B']}.json"]
    assert main(["export", "fhir", "--out", str(one), "--patient", "999999"],
                environ=_env(services)) == 4  # not found
    assert "no such patient" in capsys.readouterr().err
    with services.db.transaction() as s:
        actions = list(s.execute(select(AuditEvent.action).where(
            AuditEvent.action == "export.fhir_bulk")).scalars())
    assert len(actions) == 2


def test_bulk_fhir_loading_is_not_n_plus_one(services):
    def statements(copies):
        for i in range(copies):
            with services.db.transaction() as s:
                build_hand_cohort(s, family_prefix=f"Bulk{i}x")
        with counting_statements(services.db.engine) as sent:
            count, bundles = services.outcomes.fhir_bundles(SYSTEM)
            assert len(list(bundles)) == count
        return sent.n

    assert statements(1) == statements(5)


def test_export_deidentified_writes_a_zip(services, tmp_path):
    with services.db.transaction() as s:
        build_hand_cohort(s)
    out = tmp_path / "research.zip"
    assert main(["export", "deidentified", "--out", str(out), "--format", "parquet"],
                environ=_env(services)) == 0
    assert out.read_bytes()[:2] == b"PK"
    assert main(["export", "deidentified", "--out", str(out), "--format", "xls"],
                environ=_env(services)) == 2

"""A second, independent validator: Medplum's (from tests/fhir, `make fhir-deps`) over the
exported NDJSON and a transaction Bundle of the demo clinic; 0 errors. Under CI=true a missing
node fails the run (the skip becomes a failure), as it should."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ketaclinic.demo.clinic import seed_demo
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.interop.fhir_bulk import NdjsonWriter, bundle

# Starts Node and Medplum's validator; the FHIR export tests check the bundles in-process.
pytestmark = pytest.mark.slow

FHIR_DIR = Path(__file__).parents[1] / "fhir"
NODE = shutil.which("node")


def _medplum(*paths: Path) -> dict:
    if NODE is None:
        pytest.skip("node is not installed: Medplum's validator cannot run")
    if not (FHIR_DIR / "node_modules" / "@medplum" / "core").is_dir():
        pytest.skip("Medplum's validator is not installed: run `make fhir-deps`")
    out = subprocess.run([NODE, str(FHIR_DIR / "validate.mjs"), *map(str, paths)],
                         capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_medplum_finds_no_error_in_the_exported_ndjson_and_transaction_bundle(services,
                                                                               tmp_path):
    seed_demo(services, patients=8)
    _withdraw_some_rows(services)
    resources = services.outcomes.fhir_resources(SYSTEM)
    statuses = {(r["resourceType"], r.get("clinicalStatus", {}).get("coding", [{}])[0].get(
        "code"), r.get("verificationStatus", {}).get("coding", [{}])[0].get("code"))
        for r in resources if r["resourceType"] in ("Condition", "AllergyIntolerance")}
    assert {("Condition", "resolved", "confirmed"), ("Condition", None, "entered-in-error"),
            ("AllergyIntolerance", "inactive", "refuted"),
            ("AllergyIntolerance", None, "entered-in-error")} <= statuses
    stops = {(r["status"], r.get("statusReason", [{}])[0].get("text"))
             for r in resources if r["resourceType"] == "MedicationStatement"}
    assert {("stopped", "rash"), ("entered-in-error", "entered in error")} <= stops
    writer = NdjsonWriter(folder=tmp_path / "ndjson")
    for r in resources:
        writer.write(r)
    writer.close()
    (tmp_path / "tx.json").write_text(json.dumps(
        bundle(resources[:400], "transaction", "https://clinic.example.org/fhir")))
    result = _medplum(tmp_path / "ndjson", tmp_path / "tx.json")
    assert result["checked"] == len(resources) + 1
    assert result["errors"] == [] and result["error_count"] == 0


def _withdraw_some_rows(services) -> None:  # type: ignore[no-untyped-def]
    """A resolved diagnosis, one entered in error, a refuted allergy and one entered in error,
    a medicine stopped for an adverse effect and one entered in error: the statuses those
    export with are validated too."""
    from ketaclinic.schemas import (
        AllergyCreate,
        AllergyDeactivate,
        DiagnosisCreate,
        DiagnosisDeactivate,
        MedicationCreate,
        MedicationStop,
    )

    pid = services.patients.search(SYSTEM, query="", limit=1).items[0].id
    for code in ("F41.1", "F20.0"):
        services.patients.add_diagnosis(SYSTEM, pid, DiagnosisCreate(code=code, display=code))
    for substance in ("latex", "penicillin"):
        services.patients.add_allergy(SYSTEM, pid, AllergyCreate(substance=substance))
    detail = services.patients.get(SYSTEM, pid)
    for row, reason in zip(detail.diagnoses[-2:], ("resolved", "entered-in-error"), strict=True):
        services.patients.deactivate_diagnosis(SYSTEM, pid, row["id"],
                                               DiagnosisDeactivate(reason=reason))
    for row, reason in zip(detail.allergies[-2:], ("refuted", "entered-in-error"), strict=True):
        services.patients.deactivate_allergy(SYSTEM, pid, row["id"],
                                             AllergyDeactivate(reason=reason))
    for name in ("sertraline", "lorazepam"):
        services.patients.add_medication(SYSTEM, pid, MedicationCreate(name=name))
    meds = services.patients.get(SYSTEM, pid).medications[-2:]
    for row, stop in zip(meds, (MedicationStop(reason="adverse-effect", note="rash"),
                                MedicationStop(reason="entered-in-error")), strict=True):
        services.patients.stop_medication(SYSTEM, pid, row["id"], stop)


def test_medplum_reports_a_broken_resource_so_the_check_above_can_fail(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "Observation.ndjson").write_text(json.dumps(
        {"resourceType": "Observation", "id": "x", "code": {"text": "no status"},
         "effectiveDateTime": "2026-13-01"}) + "\n")
    result = _medplum(tmp_path / "bad")
    assert result["error_count"] == 1
    assert any("status" in i for i in result["errors"][0]["issues"])

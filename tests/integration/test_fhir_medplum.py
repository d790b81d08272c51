"""A second, independent validator: Medplum's (from tests/fhir, `make fhir-deps`) over the
exported NDJSON and a transaction Bundle of the demo clinic; 0 errors. Under CI=true a missing
node fails the run (the skip becomes a failure), as it should."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ketaclinic.services.audit import SYSTEM
from ketaclinic.services.demo import seed_demo
from ketaclinic.services.fhir_bulk import NdjsonWriter, bundle

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
    resources = services.outcomes.fhir_resources(SYSTEM)
    writer = NdjsonWriter(folder=tmp_path / "ndjson")
    for r in resources:
        writer.write(r)
    writer.close()
    (tmp_path / "tx.json").write_text(json.dumps(
        bundle(resources[:400], "transaction", "https://clinic.example.org/fhir")))
    result = _medplum(tmp_path / "ndjson", tmp_path / "tx.json")
    assert result["checked"] == len(resources) + 1
    assert result["errors"] == [] and result["error_count"] == 0


def test_medplum_reports_a_broken_resource_so_the_check_above_can_fail(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "Observation.ndjson").write_text(json.dumps(
        {"resourceType": "Observation", "id": "x", "code": {"text": "no status"},
         "effectiveDateTime": "2026-13-01"}) + "\n")
    result = _medplum(tmp_path / "bad")
    assert result["error_count"] == 1
    assert any("status" in i for i in result["errors"][0]["issues"])

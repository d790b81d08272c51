"""Every CSV the application writes, fed a hostile patient: no cell can start a formula.

CSV producers (services.csv_safe is the only writer): the de-identified research export,
served by the web page (/exports/deidentified), the API (/api/exports/deidentified) and the
CLI (`ketaclinic export deidentified`). Each zip holds one CSV per table plus the data
dictionary; every cell of every CSV is checked.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile

from kctest import TEST_SECRET

from ketaclinic.cli import main
from ketaclinic.schemas import DiagnosisCreate, PatientCreate
from ketaclinic.services.audit.trail import SYSTEM

HOSTILE_CODE = "=cmd|'/C calc'!A0"
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _hostile_patient(services) -> int:  # type: ignore[no-untyped-def]
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn="CSV-1", family_name="=HYPERLINK(\"http://evil\",\"x\")", given_name="@SUM(A1)",
        birth_date=dt.date(1980, 5, 1), sex="female", notes="+1+cmd|' /C calc'!A0"))
    services.patients.add_diagnosis(SYSTEM, p.id, DiagnosisCreate(
        code=HOSTILE_CODE, display="-2+3 hostile display"))
    return p.id


def _cells(zip_bytes: bytes) -> list[str]:
    cells: list[str] = []
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as z:
        names = [n for n in z.namelist() if n.endswith(".csv")]
        assert "diagnoses.csv" in names and "data_dictionary.csv" in names
        for name in names:
            for row in csv.reader(io.StringIO(z.read(name).decode("utf-8"))):
                cells += row
    return cells


def _assert_safe(zip_bytes: bytes) -> None:
    cells = _cells(zip_bytes)
    dangerous = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")
                 and not NUMBER.fullmatch(c)]
    assert dangerous == []
    assert "'" + HOSTILE_CODE in cells  # the coded category survives, neutralised


def test_the_web_download_of_the_research_export_neutralises_formulas(services, login):
    _hostile_patient(services)
    c, _ = login("admin")
    r = c.get("/exports/deidentified?format=csv")
    assert r.status_code == 200, r.text
    _assert_safe(r.content)


def test_the_api_research_export_neutralises_formulas(services, login):
    _hostile_patient(services)
    c, _ = login("admin")
    r = c.get("/api/exports/deidentified?format=csv")
    assert r.status_code == 200, r.text
    _assert_safe(r.content)


def test_the_cli_research_export_neutralises_formulas(services, tmp_path):
    _hostile_patient(services)
    out = tmp_path / "deid.zip"
    env = {"KETACLINIC_ENV": "test", "KETACLINIC_SECRET_KEY": TEST_SECRET,
           "KETACLINIC_DATABASE_URL": services.db.engine.url.render_as_string(
               hide_password=False)}
    assert main(["export", "deidentified", "--out", str(out)], environ=env) == 0
    _assert_safe(out.read_bytes())

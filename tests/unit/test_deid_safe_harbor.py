"""De-identified export: no identifier survives, dates shift consistently, 90+ grouping, Parquet."""

from __future__ import annotations

import csv
from datetime import date, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from ketaclinic.renderers.deid import (
    SHIFT_MAX_DAYS,
    date_shift_days,
    deidentify,
    research_id,
    write_deid_export,
)

SECRET = b"synthetic-test-secret-0123456789"
AS_OF = date(2025, 6, 1)

PATIENTS = [
    {"patient_id": "p-001", "mrn": "MRN-77812", "first_name": "Ardith", "last_name": "Quennell",
     "email": "ardith.q@example.org", "phone": "+1 555 0100 123", "address": "12 Larch Way",
     "zip": "90210", "birth_date": "1971-03-14", "sex": "female", "age": 54,
     "notes": "Lives with sister Morwenna; prefers afternoon slots"},
    {"patient_id": "p-002", "mrn": "MRN-90023", "first_name": "Bertil", "last_name": "Oxley",
     "email": "b.oxley@example.net", "phone": "555-0199", "address": "4 Quay St",
     "zip": "10001", "birth_date": "1931-12-01", "sex": "male", "age": 93,
     "notes": "Hard of hearing"},
]
SESSIONS = [
    {"session_id": 11, "patient_id": "p-001", "course_id": 5, "started_at": "2025-01-06T09:30:00",
     "dose_mg": 35.0, "drug": "ketamine", "route": "iv", "clinician_name": "Dr Pell",
     "comment": "Ardith tolerated well"},
    {"session_id": 12, "patient_id": "p-001", "course_id": 5, "started_at": "2025-01-09T09:30:00",
     "dose_mg": 35.0, "drug": "ketamine", "route": "iv", "clinician_name": "Dr Pell",
     "comment": ""},
    {"session_id": 13, "patient_id": "p-002", "course_id": 6, "started_at": "2025-02-03T14:00:00",
     "dose_mg": 56.0, "drug": "esketamine", "route": "nasal", "clinician_name": "Dr Pell",
     "comment": "call 555-0199 after"},
]
SCORES = [
    {"patient_id": "p-001", "course_id": 5, "instrument": "madrs", "total": 31,
     "taken_on": date(2025, 1, 5), "responded": None},
    {"patient_id": "p-001", "course_id": 5, "instrument": "madrs", "total": 12,
     "taken_on": date(2025, 1, 20), "responded": True},
]


def _export():
    return deidentify(
        {"patients": PATIENTS, "sessions": SESSIONS, "scores": SCORES}, SECRET, AS_OF
    )


def _all_values(result):
    for rows in result.tables.values():
        for r in rows:
            yield from (str(k) for k in r)
            yield from (str(v) for v in r.values())


def test_no_identifier_column_or_value_survives():
    res = _export()
    text = " ".join(_all_values(res))
    identifiers = ["MRN-77812", "MRN-90023", "Ardith", "Quennell", "Bertil", "Oxley",
                   "example.org", "example.net", "555", "Larch", "Quay", "90210", "10001",
                   "Morwenna", "Dr Pell", "p-001", "p-002", "1971-03-14", "1931"]
    for ident in identifiers:
        assert ident not in text, ident
    for forbidden in ("mrn", "first_name", "last_name", "email", "phone", "address", "zip",
                      "notes", "comment", "clinician_name", "patient_id", "birth_date"):
        assert all(forbidden not in r for rows in res.tables.values() for r in rows)
    assert set(res.dropped["patients"]) == {"mrn", "first_name", "last_name", "email", "phone",
                                            "address", "zip", "notes"}


def test_written_files_contain_no_identifiers(tmp_path):
    res = _export()
    paths = write_deid_export(res, tmp_path)
    blob = " ".join(p.read_bytes().decode("utf-8", "ignore") for p in paths)
    for ident in ["MRN-77812", "Ardith", "Quennell", "Oxley", "555-0199", "90210", "p-001"]:
        assert ident not in blob


def test_dates_shift_by_one_consistent_offset_per_patient():
    res = _export()
    s1 = date_shift_days(SECRET, "p-001")
    assert 1 <= abs(s1) <= SHIFT_MAX_DAYS
    sess = res.tables["sessions"]
    assert sess[0]["started_at"] == datetime(2025, 1, 6, 9, 30) + timedelta(days=s1)
    # intervals within a patient are preserved, across tables too
    assert sess[1]["started_at"] - sess[0]["started_at"] == timedelta(days=3)
    scores = res.tables["scores"]
    assert scores[0]["taken_on"] == date(2025, 1, 5) + timedelta(days=s1)
    assert sess[2]["started_at"] == datetime(2025, 2, 3, 14) + timedelta(
        days=date_shift_days(SECRET, "p-002"))
    # a different secret gives different offsets and ids
    other = b"another-secret-value-abcdefghijk"
    assert research_id(other, "p-001") != research_id(SECRET, "p-001")


def test_offsets_are_never_zero_and_spread_over_the_range():
    offsets = [date_shift_days(SECRET, f"p{i}") for i in range(2000)]
    assert 0 not in offsets
    assert min(offsets) >= -SHIFT_MAX_DAYS and max(offsets) <= SHIFT_MAX_DAYS
    assert min(offsets) < -150 and max(offsets) > 150


def test_ages_over_89_are_grouped_and_their_birth_year_removed():
    pts = {r["research_id"]: r for r in _export().tables["patients"]}
    young = pts[research_id(SECRET, "p-001")]
    old = pts[research_id(SECRET, "p-002")]
    assert young["birth_year"] == 1971 and young["age"] == "54"
    assert old["birth_year"] is None and old["age"] == "90+"


def test_research_ids_and_pseudonyms_link_rows_across_tables():
    res = _export()
    rid = research_id(SECRET, "p-001")
    assert {r["research_id"] for r in res.tables["sessions"][:2]} == {rid}
    course_ids = {r["course_id"] for r in res.tables["sessions"][:2]}
    assert course_ids == {res.tables["scores"][0]["course_id"]}
    assert str(5) not in course_ids


def test_parquet_round_trips_and_dictionary_describes_every_column(tmp_path):
    res = _export()
    write_deid_export(res, tmp_path)
    for table, rows in res.tables.items():
        back = pq.read_table(tmp_path / f"{table}.parquet").to_pylist()
        assert back == rows
        with (tmp_path / f"{table}.csv").open() as fh:
            header = next(csv.reader(fh))
        described = {i.column for i in res.dictionary if i.table == table}
        assert set(header) == described == set(rows[0])
    md = (tmp_path / "data_dictionary.md").read_text()
    assert "research_id" in md and "90+" in md


def test_strict_year_mode_keeps_only_years():
    res = deidentify({"sessions": SESSIONS}, SECRET, AS_OF, date_mode="year")
    assert {r["started_at_year"] for r in res.tables["sessions"]} == {2025}
    assert "started_at" not in res.tables["sessions"][0]


def test_short_secrets_are_refused():
    with pytest.raises(ValueError):
        deidentify({"patients": PATIENTS}, b"short", AS_OF)

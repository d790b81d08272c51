"""De-identified research export (HIPAA Safe Harbor, 45 CFR 164.514(b)(2)).

Input: plain records, ``{table_name: [row_dict, ...]}``, every row that concerns a patient
carrying ``patient_id``. Output: the same tables with every column classified and transformed,
plus a data dictionary. Writers produce CSV (cells neutralised against formula injection by
:mod:`ketaclinic.renderers.csv_safe`), Parquet (pyarrow) and the dictionary as CSV and
Markdown.

Rules (see docs/outcomes.md for the list of 18 identifiers and what happens to each):

* **Allow-list.** A column survives only if it is classified as a measure (number/bool), a coded
  category (names in :data:`CATEGORICAL_COLUMNS`), a date, an id, an age or a birth date.
  Anything else — names, contact details, MRNs, addresses, zip codes, free text, unknown string
  columns — is dropped and listed in :attr:`DeidResult.dropped`.
* **Research id**: ``patient_id`` → ``research_id`` = "R" + HMAC-SHA256(secret, "rid:" + id),
  first 16 hex digits. Other ``*_id`` columns → HMAC pseudonyms keyed by column name, so a
  ``course_id`` matches across tables.
* **Dates** shift by a per-patient offset in ±[1, 182] days (never 0), derived from
  HMAC-SHA256(secret, "shift:" + patient_id); every date of one patient moves by the same amount,
  so intervals are preserved. Times of day are kept.
* **Birth date** → birth year; removed (None) when the patient is 90 or older at ``as_of``.
* **Ages** over 89 → "90+" (ages are exported as strings to allow that category).

The secret must be kept by the clinic and never shipped with the export. Date shifting and keyed
hashes are widely used but go beyond the literal Safe Harbor text (which removes all date elements
except the year); a clinic can choose ``date_mode="year"`` for strict Safe Harbor.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from ketaclinic.clinical.age import age_on
from ketaclinic.renderers.csv_safe import SafeWriter, write_table

SHIFT_MAX_DAYS = 182
AGE_TOP_CODE = 90  # ages >= 90 are reported as "90+"

DROP_PATTERNS = re.compile(
    r"(name|email|e_mail|phone|mobile|fax|address|street|city|county|zip|postal|postcode|"
    r"mrn|medical_record|ssn|social_security|insurance|member|account|licen[cs]e|certificate|"
    r"vehicle|plate|serial|device|url|web|ip_addr|ipaddr|biometric|finger|photo|image|"
    r"note|comment|text|free|narrative|description|reason_text|signature|dea_number|npi)",
    re.IGNORECASE,
)
CATEGORICAL_COLUMNS = frozenset({
    "instrument", "treatment", "drug", "route", "sex", "gender", "status", "event_type",
    "event", "severity", "timepoint", "code", "code_system", "unit", "phase", "level", "rule",
    "outcome", "age_band", "band", "kind", "category", "role", "diagnosis_code", "icd10",
    "snomed", "reason_code", "setting", "dose_form", "grade", "intent", "jurisdiction",
})
DATE_SUFFIXES = ("_at", "_on", "_date", "_time", "_datetime", "_start", "_end")
DATE_NAMES = frozenset({"date", "datetime", "start", "end", "timestamp"})

KIND_DESCRIPTIONS = {
    "research_id": "Pseudonymous research id: keyed HMAC-SHA256 of the clinic patient id "
                   "(not reversible without the clinic's secret)",
    "pseudonym": "Keyed HMAC pseudonym of an internal record id (consistent across tables)",
    "date": "Date/time shifted by the patient's secret offset (±1–182 days, same for all of "
            "the patient's dates)",
    "year": "Calendar year only (strict Safe Harbor date mode)",
    "birth_year": "Year of birth; empty for patients aged 90 or older",
    "age": "Age in whole years; ages over 89 reported as \"90+\"",
    "measure": "Numeric or yes/no value, unchanged",
    "category": "Coded category, unchanged",
}


@dataclass(frozen=True)
class ColumnInfo:
    table: str
    column: str
    kind: str
    dtype: str
    description: str
    source_column: str


@dataclass
class DeidResult:
    tables: dict[str, list[dict[str, Any]]]
    dictionary: list[ColumnInfo]
    dropped: dict[str, list[str]] = field(default_factory=dict)  # table → dropped columns


def _hmac_hex(secret: bytes, message: str) -> str:
    return hmac.new(secret, message.encode("utf-8"), hashlib.sha256).hexdigest()


def research_id(secret: bytes, patient_id: Any) -> str:
    """Research id for a patient: "R" + 16 hex digits of HMAC-SHA256(secret, "rid:" + id)."""
    return "R" + _hmac_hex(secret, f"rid:{patient_id}")[:16]


def date_shift_days(secret: bytes, patient_id: Any, max_days: int = SHIFT_MAX_DAYS) -> int:
    """Per-patient date offset in ±[1, max_days] days (never 0), from HMAC(secret, id)."""
    h = int(_hmac_hex(secret, f"shift:{patient_id}")[:15], 16)
    magnitude = 1 + h % max_days
    return magnitude if (h >> 40) & 1 else -magnitude


def _classify(column: str, sample: Any, overrides: Mapping[str, str]) -> str:
    if column in overrides:
        return overrides[column]
    c = column.lower()
    if c == "patient_id":
        return "research_id"
    if c in ("birth_date", "dob", "date_of_birth", "birthdate"):
        return "birth_year"
    if DROP_PATTERNS.search(c):
        return "drop"
    if c == "id" or c.endswith("_id"):
        return "pseudonym"
    if c in ("age", "age_years") or c.startswith("age_at"):
        return "age"
    if c in DATE_NAMES or c.endswith(DATE_SUFFIXES):
        return "date"
    if c in CATEGORICAL_COLUMNS:
        return "category"
    if isinstance(sample, (bool, int, float)) or sample is None:
        return "measure"
    return "drop"  # unknown strings may be free text


def _parse_when(value: Any) -> date | datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, (date, datetime)):
        return value
    s = str(value)
    try:
        return datetime.fromisoformat(s) if "T" in s or " " in s else date.fromisoformat(s)
    except ValueError as exc:
        raise ValueError(f"unparseable date in export input: {type(value).__name__}") from exc


def _sample(rows: Sequence[Mapping[str, Any]], column: str) -> Any:
    for r in rows:
        v = r.get(column)
        if v is not None:
            return v
    return None


def deidentify(
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
    secret: bytes,
    as_of: date,
    column_kinds: Mapping[str, str] | None = None,
    date_mode: str = "shift",
    max_shift_days: int = SHIFT_MAX_DAYS,
) -> DeidResult:
    """De-identify plain tables.

    Parameters
    ----------
    tables : mapping of table name to rows (dicts)
    secret : bytes
        Clinic secret salt (≥ 16 bytes); never exported.
    as_of : date
        Reference date for the 90+ rule on birth dates.
    column_kinds : mapping, optional
        Force a column's kind ("drop", "measure", "category", "date", "pseudonym", ...).
    date_mode : "shift" (default) or "year" (strict Safe Harbor: year only).
    """
    if len(secret) < 16:
        raise ValueError("the de-identification secret must be at least 16 bytes")
    if date_mode not in ("shift", "year"):
        raise ValueError("date_mode must be 'shift' or 'year'")
    overrides = dict(column_kinds or {})
    out: dict[str, list[dict[str, Any]]] = {}
    dictionary: list[ColumnInfo] = []
    dropped: dict[str, list[str]] = {}
    for table, rows in tables.items():
        columns: list[str] = []
        for r in rows:
            columns.extend(c for c in r if c not in columns)
        kinds = {c: _classify(c, _sample(rows, c), overrides) for c in columns}
        if date_mode == "year":
            kinds = {c: ("year" if k == "date" else k) for c, k in kinds.items()}
        dropped[table] = [c for c in columns if kinds[c] == "drop"]
        new_rows = [_transform_row(r, kinds, secret, as_of, max_shift_days) for r in rows]
        out[table] = new_rows
        for c in columns:
            k = kinds[c]
            if k == "drop":
                continue
            name = _out_name(c, k)
            dtype = _dtype(new_rows, name)
            dictionary.append(ColumnInfo(table, name, k, dtype, KIND_DESCRIPTIONS[k], c))
    return DeidResult(out, dictionary, dropped)


def _out_name(column: str, kind: str) -> str:
    if kind == "research_id":
        return "research_id"
    if kind == "birth_year":
        return "birth_year"
    if kind == "year":
        return f"{column}_year"
    return column


def _dtype(rows: Sequence[Mapping[str, Any]], column: str) -> str:
    v = _sample(rows, column)
    return {bool: "boolean", int: "integer", float: "number", str: "string",
            datetime: "datetime", date: "date"}.get(type(v), "empty")


def _transform_row(
    row: Mapping[str, Any], kinds: Mapping[str, str], secret: bytes, as_of: date, max_shift: int
) -> dict[str, Any]:
    pid = row.get("patient_id")
    shift = timedelta(days=date_shift_days(secret, pid, max_shift)) if pid is not None else None
    new: dict[str, Any] = {}
    for c, kind in kinds.items():
        v = row.get(c)
        if kind == "drop":
            continue
        if kind == "research_id":
            new["research_id"] = None if v is None else research_id(secret, v)
        elif kind == "pseudonym":
            new[c] = None if v is None else "X" + _hmac_hex(secret, f"id:{c}:{v}")[:16]
        elif kind == "date":
            when = _parse_when(v)
            if when is None:
                new[c] = None
            elif shift is None:
                raise ValueError(f"table row has a date column {c!r} but no patient_id to shift by")
            else:
                new[c] = when + shift
        elif kind == "year":
            when = _parse_when(v)
            new[f"{c}_year"] = None if when is None else when.year
        elif kind == "birth_year":
            born = _parse_when(v)
            if isinstance(born, datetime):
                born = born.date()
            keep = born is not None and age_on(born, as_of) < AGE_TOP_CODE
            new["birth_year"] = born.year if keep and born else None
        elif kind == "age":
            new[c] = None if v is None else ("90+" if float(v) >= AGE_TOP_CODE else str(int(v)))
        else:
            new[c] = v
    return new


def write_deid_export(result: DeidResult, out_dir: Path | str) -> list[Path]:
    """Write ``<table>.csv``, ``<table>.parquet``, ``data_dictionary.csv`` and ``.md``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for table, rows in result.tables.items():
        cols = [i.column for i in result.dictionary if i.table == table]
        csv_path = out / f"{table}.csv"
        with csv_path.open("w", newline="", encoding="utf-8") as fh:
            write_table(fh, cols, rows)
        pq_path = out / f"{table}.parquet"
        pq.write_table(pa.Table.from_pylist([{k: r.get(k) for k in cols} for r in rows]), pq_path)
        written += [csv_path, pq_path]
    dd_csv = out / "data_dictionary.csv"
    with dd_csv.open("w", newline="", encoding="utf-8") as fh:
        w = SafeWriter(fh)
        w.writerow(["table", "column", "kind", "type", "description"])
        for i in result.dictionary:
            w.writerow([i.table, i.column, i.kind, i.dtype, i.description])
    dd_md = out / "data_dictionary.md"
    lines = ["# Data dictionary (de-identified export)", "",
             "HIPAA Safe Harbor de-identification; see docs/outcomes.md.", ""]
    for table in result.tables:
        lines += [f"## {table}", "", "| Column | Kind | Type | Description |", "|---|---|---|---|"]
        lines += [f"| {i.column} | {i.kind} | {i.dtype} | {i.description} |"
                  for i in result.dictionary if i.table == table]
        if result.dropped.get(table):
            lines += ["", f"Dropped columns: {len(result.dropped[table])} (identifiers or free "
                      "text; names not listed)."]
        lines.append("")
    dd_md.write_text("\n".join(lines), encoding="utf-8")
    return written + [dd_csv, dd_md]


"""Read a CSV patient roster into import items (for clinics without FHIR; docs/import.md).

Columns (header row required, names case-insensitive, order free): ``mrn``, ``family``,
``given``, ``birth_date`` (YYYY-MM-DD), ``sex`` (female, male, other, unknown) are required;
``phone``, ``email``, ``weight_kg`` and ``weight_date`` (YYYY-MM-DD; default today) optional.
Kilograms only. A cell that starts like a spreadsheet formula (``= + - @``, tab, CR) or holds a
digit that is not 0-9 is refused, as is a file of more than ``MAX_ENTRIES`` rows. Rows are
numbered as a spreadsheet shows them (the header is row 1).
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from ketaclinic.schemas import WeightCreate
from ketaclinic.services.interop.import_model import (
    MAX_ENTRIES,
    ChildItem,
    EntryError,
    EntryInvalid,
    ImportItem,
    ImportRejected,
    PatientItem,
    build,
    patient_fields,
)

REQUIRED = ("mrn", "family", "given", "birth_date", "sex")
OPTIONAL = ("phone", "email", "weight_kg", "weight_date")
COLUMNS = REQUIRED + OPTIONAL
_FIELD = {"mrn": "mrn", "family_name": "family", "given_name": "given",
          "birth_date": "birth_date", "sex": "sex", "phone": "phone", "email": "email",
          "weight": "weight_kg", "measured_on": "weight_date"}
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_ASCII_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_ASCII_NUMBER = re.compile(r"^[0-9]{1,4}(\.[0-9]{1,3})?$")
_PHONE = re.compile(r"^\+[0-9 ()./-]+$")  # "+44 20 ..." is a number, not a formula
_MAX_CELL = 1000


def parse_roster(text: str) -> list[ImportItem]:
    """The import items of a roster; :class:`ImportRejected` listing every bad row."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ImportRejected([EntryError(1, "row", "header", "the file is empty")]) from None
    except csv.Error as exc:
        raise ImportRejected([EntryError(1, "row", "header", str(exc))]) from None
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    if missing or unknown:
        raise ImportRejected([EntryError(1, "row", "header", (
            f"missing {', '.join(missing)}; " if missing else "") + (
            f"unknown {', '.join(unknown)}; " if unknown else "") + "columns are "
            + ", ".join(COLUMNS))])
    try:
        return _rows(reader, header)
    except csv.Error as exc:
        raise ImportRejected([EntryError(reader.line_num, "row", "", str(exc))]) from None


def _rows(reader: Any, header: list[str]) -> list[ImportItem]:
    items: list[ImportItem] = []
    errors: list[EntryError] = []
    for n, row in enumerate(reader, start=2):
        if n - 1 > MAX_ENTRIES:
            raise ImportRejected([EntryError(n, "row", "", f"more than {MAX_ENTRIES} rows; "
                                             "split the file")])
        if not any(cell.strip() for cell in row):
            continue
        try:
            items.extend(_row(n, dict(zip(header, row, strict=False)), len(row), len(header)))
        except EntryInvalid as exc:
            errors.append(EntryError(n, "row", exc.field, exc.message))
    if errors:
        raise ImportRejected(errors)
    return items


def _row(n: int, cells: dict[str, str], width: int, expected: int) -> list[ImportItem]:
    if width != expected:
        raise EntryInvalid("", f"has {width} cells, the header {expected}")
    for column, value in cells.items():
        if len(value) > _MAX_CELL:
            raise EntryInvalid(column, "is too long")
        if value.startswith(_FORMULA) and not (column == "phone" and _PHONE.match(value)):
            raise EntryInvalid(column, "starts like a spreadsheet formula (= + - @); "
                               "remove the leading character")
    get = {c: cells.get(c, "").strip() for c in COLUMNS}
    birth = get["birth_date"]
    if not _ASCII_DATE.match(birth):
        raise EntryInvalid("birth_date", "must be YYYY-MM-DD with digits 0-9")
    mrn, fields = patient_fields(_FIELD, get["mrn"], family_name=get["family"],
                                 given_name=get["given"], birth_date=birth,
                                 sex=get["sex"].lower(), phone=get["phone"] or None,
                                 email=get["email"] or None)
    key = f"row-{n}"
    items: list[ImportItem] = [PatientItem(n, "row", key, mrn, fields)]
    if get["weight_kg"]:
        if not _ASCII_NUMBER.match(get["weight_kg"]):
            raise EntryInvalid("weight_kg", "must be a number of kilograms with digits 0-9")
        day = get["weight_date"] or None
        if day is not None and not _ASCII_DATE.match(day):
            raise EntryInvalid("weight_date", "must be YYYY-MM-DD with digits 0-9")
        data = build(WeightCreate, _FIELD, weight=f"{get['weight_kg']} kg", measured_on=day)
        items.append(ChildItem(n, "row", key, "weight", data))
    elif get["weight_date"]:
        raise EntryInvalid("weight_date", "given without weight_kg")
    return items

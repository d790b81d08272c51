"""What an import is made of, whatever its format (FHIR Bundle or CSV roster).

The parsers (:mod:`ketaclinic.services.interop.fhir_import_parse`,
:mod:`ketaclinic.services.interop.roster_import`)
turn the input into :class:`ImportItem` s that carry the same request models the pages and the
API use (``PatientFields``, ``WeightCreate`` ...), so the schema validation is the pages' own. The
importer (:mod:`ketaclinic.services.interop.fhir_import`) applies the items through the services.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ketaclinic.services.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)

MAX_ENTRIES = 5000  # entries of one Bundle or rows of one roster: split bigger files


@dataclass(frozen=True)
class EntryError:
    """One bad entry: where (entry index or CSV row), what (resource type), which field."""

    entry: int
    resource_type: str
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"entry": self.entry, "resource_type": self.resource_type, "field": self.field,
                "message": self.message}

    def __str__(self) -> str:
        return f"entry {self.entry} ({self.resource_type}) {self.field}: {self.message}"


class ImportRejected(InvalidInput):
    """The input has bad entries; nothing was written. ``errors`` lists every one found."""

    def __init__(self, errors: list[EntryError]) -> None:
        first = str(errors[0]) if errors else "invalid input"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"nothing was imported: {first}{more}")
        self.errors = errors


class EntryInvalid(Exception):
    """Raised by a parser for one entry; collected into :class:`ImportRejected`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class PatientItem:
    entry: int
    resource_type: str
    key: str  # how other items of the same input name this patient
    mrn: str
    fields: dict[str, Any]  # PatientFields values the input gives (absent ones keep theirs)


@dataclass(frozen=True)
class ChildItem:
    """A weight, diagnosis, medication, allergy or assessment of a patient of the input."""

    entry: int
    resource_type: str
    patient_key: str
    kind: str  # weight | diagnosis | medication | allergy | assessment
    data: BaseModel | None = None
    active: bool = True  # medications: False for a completed or stopped statement
    # diagnoses "resolved", allergies "refuted", medications their stop reason: imported
    # inactive for that reason (None: active, or inactive for a reason nobody gave)
    inactive_reason: str | None = None
    stopped_on: dt.date | None = None  # medications: the day a stopped one was stopped
    note: str = ""  # medications: the stop's note
    review: str = ""  # what a person should check (e.g. a status not given): in the report
    instrument_id: str = ""
    answers: dict[int, int] = field(default_factory=dict)
    administered_at: dt.datetime | None = None

    def data_as(self, model: type[M]) -> M:
        """The parsed data, which for this item's kind is a ``model``."""
        if not isinstance(self.data, model):
            raise TypeError(f"entry {self.entry}: a {self.kind} without its {model.__name__}")
        return self.data


@dataclass(frozen=True)
class SkippedItem:
    entry: int
    resource_type: str
    reason: str


ImportItem = PatientItem | ChildItem | SkippedItem


def build(model: type[M], field_names: dict[str, str], **values: Any) -> M:
    """Validate ``values`` with the pages' request model; the first problem as EntryInvalid,
    named by the input's field (``field_names`` maps the model's field to it)."""
    try:
        return model(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err.get("loc", ("input",))[0])
        raise EntryInvalid(field_names.get(name, name),
                           str(err.get("msg", "invalid")).removeprefix("Value error, ")) from None


def patient_fields(field_names: dict[str, str], mrn: str,
                   **values: Any) -> tuple[str, dict[str, Any]]:
    """The patient's validated fields (only those given) and the MRN, checked as the form does."""
    from ketaclinic.schemas import PatientCreate

    given = {k: v for k, v in values.items() if v is not None}
    probe = {"family_name": "x", "given_name": "x", "birth_date": dt.date(2000, 1, 1),
             "sex": "unknown", **given}
    model = build(PatientCreate, field_names, mrn=mrn, **probe)
    return model.mrn, {k: getattr(model, k) for k in given}

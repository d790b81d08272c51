"""Input and output shapes shared by the web forms and the JSON API.

Named *Create / *Update / *Public.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from ketaclinic.clinical.inputs import DIGITS_ONLY, has_foreign_digits, is_whole_number

Sex = Literal["female", "male", "other", "unknown"]
_MRN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$")
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")
_PHONE_RE = re.compile(r"^[0-9+()./ -]{3,40}$")


def _no_controls(value: str, *, multiline: bool = False) -> str:
    allowed = {"\n", "\r", "\t"} if multiline else set()
    for ch in value:
        if ch not in allowed and unicodedata.category(ch) in {"Cc", "Cs", "Co", "Cn"}:
            raise ValueError("contains control or invalid characters")
    return value.strip()


def _filled(max_length: int) -> StringConstraints:
    """Text that must hold something once trimmed ("   " is as empty as ""), at most
    ``max_length`` characters then."""
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


def _line(value: str) -> str:
    return _no_controls(value)


def _text(value: str) -> str:
    return _no_controls(value, multiline=True)


def _mrn(value: str) -> str:
    value = value.strip().upper()
    if not _MRN_RE.match(value):
        raise ValueError("MRN must be 1–32 letters, digits or '-'")
    return value


def _email(value: str) -> str:
    value = value.strip()
    if value and not _EMAIL_RE.match(value):
        raise ValueError("is not an e-mail address")
    return value


def _phone(value: str) -> str:
    value = value.strip()
    if value and not _PHONE_RE.match(value):
        raise ValueError("may contain only digits, spaces and + ( ) . / -")
    return value


def _birth_date(value: dt.date) -> dt.date:
    if value.year < 1900:
        raise ValueError("is before 1900")
    if value > dt.date.today():
        raise ValueError("is in the future")
    return value


Name = Annotated[str, _filled(100), AfterValidator(_line)]
Line = Annotated[str, Field(max_length=300), AfterValidator(_line)]
Mrn = Annotated[str, Field(min_length=1, max_length=32), AfterValidator(_mrn)]
Email = Annotated[str, Field(max_length=200), AfterValidator(_email)]
Phone = Annotated[str, Field(max_length=40), AfterValidator(_phone)]
Notes = Annotated[str, Field(max_length=5000), AfterValidator(_text)]
BirthDate = Annotated[dt.date, AfterValidator(_birth_date)]


def _as_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:  # stored naive, always UTC (see store.tables.UtcDateTime)
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


# For response models: a stored (naive UTC) time, sent as RFC 3339 with "Z" as the schema says.
UtcTimestamp = Annotated[dt.datetime, AfterValidator(_as_utc)]


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is None else value.astimezone(dt.UTC).replace(tzinfo=None)


# For input models: an instant sent with its offset ("2026-11-02T09:00-05:00" or "...Z"); one
# without an offset is UTC. Services get naive UTC, the storage convention.
Instant = Annotated[dt.datetime, AfterValidator(_naive_utc)]


def _whole(value: object) -> object:
    """A whole number sent as text is read in the digits 0-9 only (``clinical.inputs``): "٣" is
    refused saying why, "1_0" (which Pydantic's int reads as 10) as no integer; a JSON number
    goes on to Pydantic, and true or false is no number at all."""
    if isinstance(value, bool):
        raise ValueError("Input should be a valid integer")
    if not isinstance(value, str):
        return value
    if is_whole_number(value.strip()):
        return int(value.strip())
    if has_foreign_digits(value):
        raise ValueError(f"is not a number: {DIGITS_ONLY}")
    raise ValueError("Input should be a valid integer, unable to parse string as an integer")


# For a score or count that a person may type: an int, or text of the digits 0-9.
Whole = Annotated[int, BeforeValidator(_whole)]
# The version of a record you read (optimistic concurrency): a whole number from 1, typed in
# the digits 0-9 only (Pydantic's int reads "1_0" as 10: someone else's version, not yours).
Version = Annotated[int, BeforeValidator(_whole), Field(ge=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=5000)


class PatientFields(_Strict):
    family_name: Name
    given_name: Name
    birth_date: BirthDate
    sex: Sex
    phone: Phone = ""
    email: Email = ""
    address: Line = ""
    notes: Notes = ""


class PatientCreate(PatientFields):
    mrn: Mrn
    weight: str | None = Field(
        None, max_length=40, description="Current weight with its unit, kilograms only: '82 kg'"
    )


class PatientUpdate(PatientFields):
    mrn: Mrn
    version: Version = Field(description="The version you read; a stale version is refused")


class WeightCreate(_Strict):
    weight: str = Field(min_length=1, max_length=40, description="Kilograms only, e.g. '82 kg'")
    measured_on: dt.date | None = None


class DiagnosisCreate(_Strict):
    system: Literal["icd10", "snomed"] = "icd10"
    code: Annotated[str, _filled(20), AfterValidator(_line)]
    display: Annotated[str, _filled(200), AfterValidator(_line)]
    onset_on: dt.date | None = None


class MedicationCreate(_Strict):
    name: Annotated[str, _filled(120), AfterValidator(_line)]
    drug_class: Annotated[str, Field(max_length=60), AfterValidator(_line)] = ""
    daily_dose_mg: Decimal | None = Field(None, gt=0, le=100000)
    started_on: dt.date | None = None


class AllergyCreate(_Strict):
    substance: Annotated[str, _filled(120), AfterValidator(_line)]
    reaction: Annotated[str, Field(max_length=200), AfterValidator(_line)] = ""


class DiagnosisDeactivate(_Strict):
    """Why a diagnosis no longer stands: it resolved (still part of the history screening
    reads, e.g. a past psychotic episode), or it was recorded in error (counts nowhere)."""

    reason: Literal["resolved", "entered-in-error"] = Field(
        description="resolved: the condition is over; entered-in-error: it was never so")


class AllergyDeactivate(_Strict):
    """Why an allergy no longer stands: entered in error, or refuted (e.g. by a challenge);
    either way screening stops counting it."""

    reason: Literal["entered-in-error", "refuted"] = Field(
        description="entered-in-error: recorded by mistake; refuted: shown not to be so")


MedicationStopReason = Literal["completed", "adverse-effect", "ineffective", "patient-choice",
                               "entered-in-error", "other"]  # MEDICATION_STOP_REASONS' codes


class MedicationStop(_Strict):
    """Stop a medication: the row is kept, marked stopped on a day for a coded reason, and no
    longer counts in screening. The page's Stop form builds this same model. Stopping one that
    is already stopped with other values amends its stop (kept in the history)."""

    stopped_on: dt.date | None = Field(
        None, description="The clinic-local day it was stopped (default: today); not in the "
        "future, not before the day it was started")
    reason: MedicationStopReason = Field(
        description="completed | adverse-effect | ineffective | patient-choice | "
        "entered-in-error | other (other needs a note)")
    note: Annotated[str, Field(max_length=200), AfterValidator(_line)] = Field(
        "", validate_default=True,
        description="Free text, at most 200 characters; required when reason is other")

    @field_validator("note")
    @classmethod
    def _other_needs_a_note(cls, note: str, info: ValidationInfo) -> str:
        if info.data.get("reason") == "other" and not note:
            raise ValueError("say why when the reason is other")
        return note


class UserCreate(_Strict):
    username: str = Field(min_length=2, max_length=63)
    full_name: str = Field(min_length=1, max_length=200)
    role: Literal["admin", "prescriber", "nurse", "analyst"]
    password: str = Field(min_length=12, max_length=128,
                          description="12–128 characters, not a common password")


class LoginRequest(_Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    totp_code: str | None = Field(
        None, pattern=r"^[0-9]{6}$",
        description="The 6-digit authenticator code, for accounts with two-factor login")
    recovery_code: str | None = Field(
        None, min_length=16, max_length=40, pattern=r"^[0-9A-Za-z -]+$",
        description="A one-time recovery code in place of totp_code (lost phone)")


class PasswordChange(_Strict):
    current_password: str = Field(min_length=1, max_length=256,
                                  description="The current (or temporary) password")
    new_password: str = Field(min_length=12, max_length=128,
                              description="12–128 characters, not a common password")


class Reauthentication(_Strict):
    password: str = Field(min_length=1, max_length=256, description="The current password")


class PasswordResetCreate(_Strict):
    temporary_password: str | None = Field(
        None, min_length=12, max_length=128,
        description="The temporary password to set; omit it to have one generated (returned "
        "once)")


"""The inputs of measurement-based care: one model per request, for the JSON body and the form.

``POST /api/patients/{id}/assessments`` takes :class:`AssessmentCreate` as its body; the page
builds the same model with :func:`ketaclinic.http.inputs.model_from_form`, its radio rows
(``item_N``) turned into ``answers`` and the time typed on the clinic's clock into the UTC
instant ``administered_at``. The assessment service takes the model
(:meth:`~ketaclinic.services.mbc.assessments.AssessmentService.create`), so an answer, a
course or a time is judged by the same rules, in the same words, on both paths.

The same holds for a clinical event (:class:`EventCreate`), a self-report link
(:class:`LinkCreate`), an alert's acknowledgement (:class:`AcknowledgeRequest`), the patient's
own submission behind a link (:class:`SelfReportSubmit`, its ``item_N`` fields turned into
``answers``) and a reminder schedule (:class:`ReminderCreate`, a form without a JSON twin).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

from ketaclinic.clinical.outcomes import RelapseEventKind
from ketaclinic.schemas import Instant, _filled
from ketaclinic.services.errors import InvalidInput
from ketaclinic.services.numbers import MAX_ID, is_whole

#: an answer as the scorer takes it: a score, a token ("y", "na"), or None for missing
Answer = int | str | None


def _typed_id(value: Any, info: ValidationInfo) -> Any:
    """A row id typed as text is ASCII digits only ("١٢" is not 12); JSON numbers pass on."""
    if not isinstance(value, str):
        return value
    if not is_whole(value):
        raise ValueError(f"must be a whole number from 1 to {MAX_ID}")
    return int(value)


RowId = Annotated[int, BeforeValidator(_typed_id), Field(ge=1, le=MAX_ID)]


class AssessmentCreate(BaseModel):
    """One rating scale given to a patient, as the clinic entered it."""

    model_config = ConfigDict(extra="forbid")

    instrument: str = Field(min_length=1, max_length=40, description="e.g. phq9, madrs")
    answers: list[Answer] = Field(max_length=60, description="One answer per item in item "
                                  "order; null = missing")
    administered_at: Instant | None = Field(
        None, description="ISO 8601 with an offset; without one, UTC; default now")
    course_id: RowId | None = None
    session_id: RowId | None = None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventCreate(_Strict):
    """A hospitalisation or suicide-related event (relapse evidence), as the clinic entered it."""

    kind: RelapseEventKind
    occurred_on: dt.date
    note: str = Field("", max_length=2000)
    course_id: RowId | None = None


class LinkCreate(_Strict):
    """A one-time self-report link for the patient to fill ``instrument`` in."""

    instrument: str = Field(min_length=1, max_length=40)
    course_id: RowId | None = None
    delivery: Literal["shown", "console", "email", "sms"] = "shown"


class AcknowledgeRequest(_Strict):
    """What was done about a clinical alert (required: an acknowledgement says it)."""

    note: Annotated[str, _filled(2000)]


class SelfReportSubmit(_Strict):
    """The patient's answers behind a self-report link, with the key of the form opened."""

    form_key: str = Field(min_length=1, max_length=100)
    answers: list[Answer] = Field(max_length=60)


#: what a reminder schedule may hold: 1 to MAX_DAYS whole days from 0 to LAST_DAY after a dose
MAX_DAYS, LAST_DAY = 20, 365


def parse_days(text: str) -> list[int]:
    """"1, 3,7" -> [1, 3, 7]: whole days after a dose in ASCII digits ("١" is refused).

    Raises InvalidInput naming ``days``."""
    parts = [part for part in text.replace(" ", "").split(",") if part]
    if not all(is_whole(part) for part in parts):
        raise InvalidInput("days: give whole days after a dose, e.g. 1,3,7")
    days = sorted({int(part) for part in parts})
    if not days or days[-1] > LAST_DAY or len(days) > MAX_DAYS:
        raise InvalidInput(f"days: 1 to {MAX_DAYS} whole days between 0 and {LAST_DAY}, "
                           "e.g. 1,3,7")
    return days


def _days(text: str) -> str:
    try:
        return ",".join(map(str, parse_days(text)))
    except InvalidInput as exc:
        raise ValueError(str(exc).removeprefix("days: ")) from exc


class ReminderCreate(_Strict):
    """Reminders N days after each dose of a course (the patient page's form; it replaces the
    course's schedule). ``days`` is read as "1,3,7" and kept in that plain shape."""

    course_id: RowId
    instrument: str = Field(min_length=1, max_length=40)
    days: Annotated[str, Field(max_length=80), AfterValidator(_days)]
    channel: Literal["console", "email", "sms"] = "console"

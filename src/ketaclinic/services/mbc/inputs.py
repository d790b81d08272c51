"""The assessment input: one model for the JSON body and the patient page's entry form.

``POST /api/patients/{id}/assessments`` takes :class:`AssessmentCreate` as its body; the page
builds the same model with :func:`ketaclinic.http.inputs.model_from_form`, its radio rows
(``item_N``) turned into ``answers`` and the time typed on the clinic's clock into the UTC
instant ``administered_at``. The assessment service takes the model
(:meth:`~ketaclinic.services.mbc.assessments.AssessmentService.create`), so an answer, a
course or a time is judged by the same rules, in the same words, on both paths.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

from ketaclinic.schemas import Instant
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

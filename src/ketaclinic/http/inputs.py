"""One input model per request, whether it arrives as JSON or as a form.

The JSON route takes the model as its body; the form route builds the same model from the form
with :func:`model_from_form`, the one function that turns a form into a model. A form field is
text and an empty one is a field left out (anything else, spaces too, goes to the model as
typed), so the model's own validators (numbers: ASCII digits only, see ``services/numbers.py``
and ``clinical/inputs.py``) decide for both. What only a form has is read here too: times
typed on the clinic's wall clock (:class:`LocalDay`) and checkboxes (ticked or not sent).
Where a form has another shape than the JSON body (items typed one per field, a date and a
time in two fields), the page converts it into the model's field and passes it as ``extra``.
Where a JSON route takes text outside its JSON body (the rule-set co-signature in
``X-Cosign-*`` headers, an imported document as the raw body), it reads that text as the
form's fields with the same function, so the form and the API still share one model.

Validation errors read the same on both paths (:func:`describe_errors`, which the app's 422
handler uses too); the page shows them as it shows any :class:`InvalidInput`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ketaclinic.services.clinic_time import ClinicTime
from ketaclinic.services.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)
#: form fields that are never a model's business, whatever the model declares
SKIP = frozenset({"csrf_token", "idempotency_key"})
#: what a ticked checkbox sends (an unticked one sends nothing)
TICKED = frozenset({"on", "true", "1", "yes"})


def describe_errors(errors: Iterable[Mapping[str, Any]]) -> str:
    """Pydantic errors as one line: ``"field: what is wrong; …"`` (never the value typed)."""
    parts = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "input"
        parts.append(f"{where}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return "; ".join(parts) or "invalid input"


@dataclass(frozen=True)
class LocalDay:
    """The clinic's day and zone in which the times typed on a form are read.

    Times on forms are typed on the clinic's wall clock ("14:05" today, or a full
    "YYYY-MM-DDTHH:MM"); they are read in KETACLINIC_CLINIC_TIMEZONE and the model gets the
    UTC instant they name (see ``services.clinic_time`` for daylight-saving rules), the same
    instant the JSON body gives with its offset.
    """

    day: dt.date
    clinic: ClinicTime

    def time(self, text: str, name: str) -> dt.datetime:
        """"14:05" on this day (or a full "YYYY-MM-DDTHH:MM") on the clinic's clock, as the
        naive UTC instant it names; a time skipped by a daylight-saving change is refused."""
        text = text.strip()
        try:
            if "T" in text or " " in text:
                local = dt.datetime.fromisoformat(text).replace(second=0, microsecond=0)
            else:
                local = dt.datetime.combine(self.day, dt.time.fromisoformat(text))
        except ValueError as exc:
            raise InvalidInput(f"{name}: enter a time like 14:05 (or a date and time like "
                               f"{self.day.isoformat()}T14:05)") from exc
        return self.clinic.from_local(local, name)

    def date_and_time(self, form: Mapping[str, str], date: str = "date",
                      time: str = "time") -> dt.datetime:
        """The instant named by a form's separate ``date`` and ``time`` fields."""
        try:
            day = dt.date.fromisoformat(form.get(date, ""))
        except ValueError as exc:
            raise InvalidInput(f"{date}: enter a date like 2026-11-02") from exc
        return LocalDay(day, self.clinic).time(form.get(time, ""), time)


def model_from_form(model: type[M], form: Mapping[str, str], *,
                    local: LocalDay | None = None, times: Iterable[str] = (),
                    checkboxes: Iterable[str] = (),
                    extra: Mapping[str, Any] | None = None) -> M:
    """``model`` from the form's fields that it declares, and ``extra``.

    An empty field is left out (the model's default, or "Field required"); a field the model
    does not declare (the CSRF token, the button pressed) is not its business. The ``times``
    fields are clinic-local times read by ``local``; each of the ``checkboxes`` is True when
    ticked and False when not sent. ``extra`` (fields converted from another shape) wins over
    the form. Raises InvalidInput (422) with the same words the JSON route answers with.
    """
    times, checkboxes = frozenset(times), frozenset(checkboxes)
    if times and local is None:
        raise ValueError("model_from_form: times need the clinic's LocalDay")
    data: dict[str, Any] = {}
    for name in model.model_fields:
        value = form.get(name)
        if name in SKIP or name in checkboxes or not isinstance(value, str) or value == "":
            continue
        data[name] = local.time(value, name) if name in times and local else value
    data.update({name: form.get(name) in TICKED for name in checkboxes})
    data.update(extra or {})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(describe_errors(exc.errors(include_input=False))) from exc

"""Turning chair-area form posts into validated input models.

Times on these forms are typed on the clinic's wall clock ("14:05" today, or a full
"YYYY-MM-DDTHH:MM"); :class:`LocalDay` reads them in KETACLINIC_CLINIC_TIMEZONE and hands the
services the UTC instants they store (see ``services.clinic_time`` for daylight-saving rules).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ketaclinic.schemas import describe_validation_error
from ketaclinic.services.clinic_time import ClinicTime
from ketaclinic.services.errors import InvalidInput
from ketaclinic.services.numbers import parse_int

M = TypeVar("M", bound=BaseModel)
SKIP = {"csrf_token", "idempotency_key"}


@dataclass(frozen=True)
class LocalDay:
    """The clinic's day and zone in which the times typed on a form are read."""

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
            raise InvalidInput(f"{name}: enter a time like 14:05") from exc
        return self.clinic.from_local(local, name)

    def date_and_time(self, form: dict[str, str]) -> dt.datetime:
        """The instant named by a form's ``date`` and ``time`` fields (a booking's start)."""
        try:
            day = dt.date.fromisoformat(form.get("date", ""))
        except ValueError as exc:
            raise InvalidInput("date: enter a date like 2026-11-02") from exc
        return LocalDay(day, self.clinic).time(form.get("time", ""), "time")


def parse(model: type[M], form: dict[str, str], *, local: LocalDay | None = None,
          times: tuple[str, ...] = (), checkboxes: tuple[str, ...] = (),
          extra: dict[str, Any] | None = None) -> M:
    """Validate a form: empty fields are left out, checkboxes become booleans, the named
    ``times`` fields are clinic-local times read by ``local``."""
    values: dict[str, Any] = {}
    for key, value in form.items():
        if key in SKIP or key not in model.model_fields or value == "":
            continue
        if key in times and local is not None:
            values[key] = local.time(value, key)
        else:
            values[key] = value
    for key in checkboxes:
        values[key] = form.get(key) in ("on", "true", "1", "yes")
    values.update(extra or {})
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc)) from exc


def answers(text: str) -> list[int | None]:
    """"1, 0, 2" -> [1, 0, 2]; an empty item is None (not answered)."""
    out: list[int | None] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            out.append(None)
            continue
        out.append(parse_int(part, "scores", minimum=-1000, maximum=1000, signed=True))
    if not any(a is not None for a in out):
        raise InvalidInput("scores: enter at least one score")
    return out


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def weekday_boxes(form: dict[str, str]) -> dict[str, str]:
    """Weekday check boxes (``weekday_0`` = Monday … ``weekday_6``) as the "0,3" the course
    template reads; a form that still sends ``weekdays`` as text keeps it."""
    ticked = [str(i) for i in range(7) if form.get(f"weekday_{i}") in ("on", "1", "true")]
    if not ticked:
        return form
    return {**{k: v for k, v in form.items() if not k.startswith("weekday_")},
            "weekdays": ",".join(ticked)}

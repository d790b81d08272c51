"""Turning chair-area form posts into validated input models (times typed as HH:MM today)."""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ketaclinic.schemas import describe_validation_error
from ketaclinic.services.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)
SKIP = {"csrf_token", "idempotency_key"}


def time_on(day: dt.date, text: str, name: str) -> dt.datetime:
    """"14:05" on ``day`` (a full "YYYY-MM-DDTHH:MM" is accepted too)."""
    text = text.strip()
    try:
        if "T" in text or " " in text:
            return dt.datetime.fromisoformat(text).replace(second=0, microsecond=0)
        return dt.datetime.combine(day, dt.time.fromisoformat(text))
    except ValueError as exc:
        raise InvalidInput(f"{name}: enter a time like 14:05") from exc


def parse(model: type[M], form: dict[str, str], *, day: dt.date | None = None,
          times: tuple[str, ...] = (), checkboxes: tuple[str, ...] = (),
          extra: dict[str, Any] | None = None) -> M:
    """Validate a form: empty fields are left out, checkboxes become booleans, the named
    ``times`` fields are HH:MM on ``day``."""
    values: dict[str, Any] = {}
    for key, value in form.items():
        if key in SKIP or key not in model.model_fields or value == "":
            continue
        if key in times and day is not None:
            values[key] = time_on(day, value, key)
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
        try:
            out.append(int(part))
        except ValueError as exc:
            raise InvalidInput(f"scores: {part!r} is not a whole number") from exc
    if not any(a is not None for a in out):
        raise InvalidInput("scores: enter at least one score")
    return out

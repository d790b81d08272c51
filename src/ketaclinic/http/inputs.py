"""One input model per request, whether it arrives as JSON or as a form.

The JSON route takes the model as its body; the form route builds the same model from the form
with :func:`model_from_form`. A form field is text and a blank one is a field left out, so the
model's own validators (numbers: ASCII digits only, see ``services/numbers.py`` and
``clinical/inputs.py``) decide for both. Validation errors read the same on both paths
(:func:`describe_errors`, which the app's 422 handler uses too); the page shows them as it
shows any :class:`InvalidInput`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ketaclinic.services.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)


def describe_errors(errors: Iterable[Mapping[str, Any]]) -> str:
    """Pydantic errors as one line: ``"field: what is wrong; …"`` (never the value typed)."""
    parts = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "input"
        parts.append(f"{where}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return "; ".join(parts) or "invalid input"


def model_from_form(model: type[M], form: Mapping[str, str], **extra: Any) -> M:
    """``model`` from the form's fields that it declares (blank ones left out) and ``extra``.

    A field the model does not declare (the CSRF token, the button pressed) is not its
    business. Raises InvalidInput (422) with the same words the JSON route answers with.
    """
    data: dict[str, Any] = {name: form[name] for name in model.model_fields
                            if isinstance(form.get(name), str) and form[name].strip()}
    data.update(extra)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(describe_errors(exc.errors(include_input=False))) from exc

"""The dose input: one model for the JSON body and the dose form, turned into the core's request.

A verbal order (:class:`VerbalOrderInput`) is the same dose with its prescriber and read-back,
one model for ``POST /api/patients/{id}/verbal-orders`` and the dose page's verbal-order form.
So are a screening (:class:`ScreeningRequest`), its sign-off (:class:`SignoffBody`) and a copy
of a rule set (:class:`CopyBody`).

The JSON route takes :class:`DoseInput` as its body, the form route builds it from the form with
:func:`ketaclinic.http.inputs.model_from_form`, and the dosing service turns the validated model
into the clinical core's value (:class:`ketaclinic.clinical.dose_plan.DoseRequest`) with
:func:`to_dose_request` — one step, no second validation. Numbers
arrive as JSON numbers or as typed text; text goes through the same parser as ever (ASCII
digits only, no unit inside: :func:`ketaclinic.clinical.inputs.parse_number`), and a bad value
raises :class:`InvalidInput` with the message the clinic has always seen (it passes through
Pydantic unchanged, so both routes answer 422 with the same words).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from ketaclinic.clinical.dose_plan import DoseRequest, OverrideInput
from ketaclinic.clinical.inputs import parse_number
from ketaclinic.clinical.rules import ClinicalInputError
from ketaclinic.clinical.units import parse_weight_kg
from ketaclinic.services.errors import InvalidInput
from ketaclinic.services.numbers import optional_id

REENTRY_MAX_CHARS = 40

_NUMBER_SCHEMA = WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"},
                                           {"type": "null"}]})


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _parse_number(label: str, value: Any) -> float | None:
    if _blank(value):
        return None
    try:
        return parse_number(label, value)
    except ClinicalInputError as exc:
        raise InvalidInput(str(exc)) from exc


def _number(label: str) -> BeforeValidator:
    return BeforeValidator(lambda value: _parse_number(label, value))


def _session(value: Any) -> int | None:
    number = _parse_number("session number", value)
    if number is not None and (not number.is_integer() or not 1 <= number <= 1000):
        raise InvalidInput("session number must be a whole number from 1")
    return None if number is None else int(number)


def _reentry(value: Any) -> Decimal | None:
    if isinstance(value, Decimal) or _blank(value):
        return value or None
    if not isinstance(value, str):
        raise ValueError("Input should be a valid string")  # read as Pydantic words it
    if len(value) > REENTRY_MAX_CHARS:
        raise ValueError(f"String should have at most {REENTRY_MAX_CHARS} characters")
    try:
        return parse_weight_kg(value)
    except ClinicalInputError as exc:
        raise InvalidInput(f"re-entered weight: {exc}") from exc


def _course(value: Any) -> Any:
    """A typed course id goes through the one whole-number parser; JSON numbers pass on."""
    return optional_id(value, "course") if isinstance(value, str) else value


Number = Annotated[float | None, _NUMBER_SCHEMA]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OverrideEntry(_Input):
    """A coded reason for going past one soft finding."""

    rule: str = Field(max_length=60)
    reason_code: str = Field(max_length=60)
    free_text: str = Field(max_length=1000)


class DoseInput(_Input):
    """A dose to calculate and check (and, when saved, to order), as the clinic typed it."""

    route: Literal["iv", "im", "oral", "sublingual", "intranasal"]
    mg_per_kg: Annotated[Number, _number("mg/kg")] = None
    weight_basis: Literal["actual", "ideal", "adjusted"] | None = None
    height_cm: Annotated[Number, _number("height (cm)")] = None
    infusion_min: Annotated[Number, _number("infusion minutes")] = None
    concentration_mg_per_ml: Annotated[Number, _number("concentration (mg/mL)")] = None
    phase: Literal["induction", "maintenance", "continuation", "suicidal-ideation"] | None = None
    session_number: Annotated[int | None, BeforeValidator(_session), _NUMBER_SCHEMA] = None
    dose_mg: Annotated[Number, _number("dose (mg)")] = None
    course_id: Annotated[int | None, BeforeValidator(_course)] = Field(
        None, ge=1, description="The course this order is for")
    weight_reentry: Annotated[
        Decimal | None, BeforeValidator(_reentry),
        WithJsonSchema({"anyOf": [{"type": "string", "maxLength": REENTRY_MAX_CHARS},
                                  {"type": "null"}]}),
    ] = Field(None, description="Today's weight re-entered, kilograms only: '82 kg'")
    overrides: tuple[OverrideEntry, ...] = Field(default=(), max_length=20)


class VerbalOrderInput(DoseInput):
    """A verbal or telephone order taken at the chair: the dose as the prescriber gave it, who
    gave it and whether it was read back. It is not a place to go past soft findings: its
    ``overrides`` are never taken (the dosing service drops them)."""

    prescriber: str = Field(min_length=1, max_length=64,
                            description="Username of the prescriber who gave the order")
    read_back_confirmed: bool = Field(description="The order was read back and confirmed")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScreeningRequest(_Body):
    """Screen the patient for a treatment (the screening page's button, or the JSON body)."""

    treatment: Literal["ketamine-iv", "esketamine"]


class SignoffBody(_Body):
    """A prescriber's sign-off of a screening that needs review: why."""

    reason: str = Field(min_length=1, max_length=1000)


class CopyBody(_Body):
    """A clinic's copy of a rule set to edit (``new_id`` its id; ``title`` optional)."""

    source_id: str = Field(max_length=60)
    new_id: str = Field(max_length=60)
    title: str = Field("", max_length=200)


def to_dose_request(inp: DoseInput) -> DoseRequest:
    """The core's request for the validated ``inp`` (its fields are already parsed)."""
    return DoseRequest(
        route=inp.route, mg_per_kg=inp.mg_per_kg, weight_basis=inp.weight_basis,
        height_cm=inp.height_cm, infusion_min=inp.infusion_min,
        concentration_mg_per_ml=inp.concentration_mg_per_ml, phase=inp.phase,
        session_number=inp.session_number, dose_mg=inp.dose_mg,
        weight_reentry_kg=inp.weight_reentry,
        overrides=tuple(OverrideInput(o.rule, o.reason_code, o.free_text)
                        for o in inp.overrides),
        course_id=inp.course_id)


def overrides_from_form(form: Any) -> list[dict[str, str]]:
    """``override-<rule>-code`` / ``override-<rule>-text`` pairs from the dose page."""
    out = []
    for key, code in form.items():
        if key.startswith("override-") and key.endswith("-code"):
            rule = key[len("override-"):-len("-code")]
            text = form.get(f"override-{rule}-text", "")
            if code or text.strip():
                out.append({"rule": rule[:60], "reason_code": code[:60],
                            "free_text": text.strip()})
    return out

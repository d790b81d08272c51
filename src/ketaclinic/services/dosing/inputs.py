"""The dose input: one model for the JSON body and the dose form, turned into the core's request.

A verbal order (:class:`VerbalOrderInput`) is the same dose with its prescriber and read-back,
one model for ``POST /api/patients/{id}/verbal-orders`` and the dose page's verbal-order form.
So are a screening (:class:`ScreeningRequest`), its sign-off (:class:`SignoffBody`) and the
rule-set changes: a copy (:class:`CopyBody`), an activation (:class:`ActiveBody`), an import
(:class:`ImportBody`), a values edit (:class:`ValuesBody`), a confirmation
(:class:`ConfirmBody`) and the medical director's co-signature that goes with a change that
loosens a hard limit (:class:`CosignInput`: the forms' ``cosign_*`` fields, the API's
``X-Cosign-*`` headers).

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

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from ketaclinic.clinical.dose_plan import DoseRequest, OverrideInput
from ketaclinic.clinical.inputs import parse_number
from ketaclinic.clinical.rules import ClinicalInputError
from ketaclinic.clinical.units import parse_weight_kg
from ketaclinic.schemas import Whole
from ketaclinic.services.dosing.rulesets import MAX_DOCUMENT_CHARS, Cosign
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


class ActiveBody(_Body):
    """The rule set to make the clinic's set for a treatment (the API's path names it)."""

    ruleset_id: str = Field(max_length=60)


class Activation(ActiveBody):
    """The rule-set page's activation form: :class:`ActiveBody` and the treatment that the JSON
    route has in its path (a hidden field here; the service refuses one it does not know, in
    the same words on both)."""

    treatment: str = ""


def _json_object(value: Any) -> Any:
    """A document given as JSON text (the import form's text area, the API's body), parsed;
    what is not text goes on to the model's own check (an object)."""
    if not isinstance(value, str):
        return value
    if len(value) > MAX_DOCUMENT_CHARS:
        raise ValueError("the rule-set file is too large")
    try:
        doc = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (ValueError, RecursionError):  # an integer of 5000 digits, nesting 10000 deep
        raise ValueError("not valid JSON (a number too long or nesting too deep)") from None
    if not isinstance(doc, dict):
        raise ValueError("must be a JSON object")
    return doc


class ImportBody(_Body):
    """A rule-set document to import: JSON text, parsed here for the form and the API alike
    (the API's body is the document itself; its change note is the default)."""

    document: Annotated[dict[str, Any], BeforeValidator(_json_object)]
    note: str = Field("", max_length=400)


Version = Annotated[Whole | None, Field(
    None, description="The version (sequence number) you read; a stale one is refused")]


class ValuesBody(_Body):
    """New numeric values of a clinic copy, ``{path: value}`` (``parameters.X`` or
    ``dose_limits.ROUTE.X``), why, and the version edited. The values page types one field per
    path; :func:`changes_from_form` gathers the edited ones into ``changes``."""

    changes: dict[str, str | float] = Field(max_length=200)
    note: str = Field(min_length=1, max_length=400)
    version: Version

    def changes_as_text(self) -> dict[str, str]:
        """Each new value as text, for the one number parser of the rule-set service."""
        return {path: str(value) for path, value in self.changes.items()}


class ConfirmBody(_Body):
    """The medical director confirms one rule (``path``) of the version read."""

    path: str = Field(max_length=200)
    version: Version


class CosignInput(_Body):
    """A medical director's co-signature, for a change that loosens a hard limit in effect: the
    rule-set forms' ``cosign_username`` / ``cosign_password`` fields, the API's
    ``X-Cosign-Username`` / ``X-Cosign-Password`` headers. Both left out: none given. A refusal
    never shows what was typed (``describe_errors`` names the field, never its value)."""

    cosign_username: str = Field("", max_length=64)
    cosign_password: str = Field("", max_length=200)

    def cosign(self) -> Cosign:
        return Cosign(self.cosign_username, self.cosign_password)


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


VALUE_FIELD = "value:"


def changes_from_form(form: Mapping[str, str], document: Mapping[str, Any]) -> dict[str, str]:
    """The values page's ``value:<path>`` fields as :class:`ValuesBody`'s ``changes``.

    The page shows every numeric rule of ``document`` (the current version) in a field of its
    own; the edited ones, whose text is not the value shown, are the changes.
    """
    changes = {}
    for key, text in form.items():
        if not key.startswith(VALUE_FIELD):
            continue
        path = key[len(VALUE_FIELD):]
        node: Any = document
        for part in path.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict) and str(node.get("value")) != text.strip():
            changes[path] = text
    return changes

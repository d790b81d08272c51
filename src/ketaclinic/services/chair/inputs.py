"""Inputs of the chair area that have a form and no JSON twin yet, read as models all the same.

A chair's opening hours and whether it is in use (:class:`ChairUpdate`, the chairs page) and
the end of an IV infusion recorded after the dose (:class:`InfusionEnd`, the tablet page) are
built from their forms with :func:`ketaclinic.http.inputs.model_from_form` and taken by the
service, so their refusals are a model's, in the words every other form and JSON body uses.
The older chair inputs (courses, bookings, the session's steps, the ledger) are in
``ketaclinic.schemas_chair``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ketaclinic.schemas import Instant, _Strict
from ketaclinic.schemas_chair import Version


class ChairUpdate(_Strict):
    """A chair's opening hours ("0-4 08:00-18:00; 5 09:00-13:00", 0 = Monday; empty: never
    open) and whether it is in use."""

    opening_hours: Annotated[str, Field(max_length=300)] = ""
    active: bool = False


class InfusionEnd(_Strict):
    """When the IV infusion ended, recorded after the dose, on the session's version read."""

    version: Version
    ended_at: Instant

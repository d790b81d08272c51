"""Every date or time an input model takes is ISO text, never a number of Unix seconds.

Pydantic's own ``date`` and ``datetime`` read 1699920000 (or the text "1699920000") as
2023-11-14: a mistyped birth date or expiry would be stored as some day in 2023. Each input
model (``extra="forbid"``) of ketaclinic is found by walking the package, so a new date field
that forgets ``Day`` / ``Instant`` fails here.
"""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
import pkgutil
import typing

import pytest
from pydantic import BaseModel, ValidationError

import ketaclinic
from ketaclinic.schemas import PatientCreate


def _has_time(t: object) -> bool:
    return t in (dt.date, dt.datetime) or any(_has_time(a) for a in typing.get_args(t))


def _input_date_fields() -> list[tuple[type[BaseModel], str, bool]]:
    found = []
    for info in pkgutil.walk_packages(ketaclinic.__path__, "ketaclinic."):
        # The CLI takes no input models.
        if ".migrations" in info.name or info.name.startswith("ketaclinic.cli"):
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (inspect.isclass(obj) and issubclass(obj, BaseModel)
                    and obj.__module__ == module.__name__
                    and obj.model_config.get("extra") == "forbid"):
                for name, field in obj.model_fields.items():
                    if _has_time(field.annotation):
                        is_list = typing.get_origin(field.annotation) is list
                        found.append((obj, field.alias or name, is_list))
    return found


FIELDS = _input_date_fields()


def test_the_walk_finds_the_input_models_date_fields():
    names = {f"{m.__name__}.{f}" for m, f, _ in FIELDS}
    assert {"PatientCreate.birth_date", "ReceiptCreate.expiry", "VitalsCreate.taken_at",
            "EventCreate.occurred_on", "DoseCreate.device_times"} <= names
    assert len(FIELDS) >= 25


@pytest.mark.parametrize(("model", "field", "is_list"), FIELDS,
                         ids=[f"{m.__name__}.{f}" for m, f, _ in FIELDS])
@pytest.mark.parametrize("value", [1699920000, "1699920000", 1699920000.0, " 20231114 "])
def test_no_date_or_time_field_reads_a_number_as_unix_seconds(model, field, is_list, value):
    with pytest.raises(ValidationError) as caught:
        model.model_validate({field: [value] if is_list else value})
    at_field = [e for e in caught.value.errors() if e["loc"][:1] == (field,)]
    assert at_field, caught.value.errors()
    assert "1699920000" not in at_field[0]["msg"]  # says what to type, not a guessed date


@pytest.mark.parametrize(("value", "ok"), [
    ("1980-05-01", True), (dt.date(1980, 5, 1), True), (" 1980-05-01 ", True),
    ("1980-5-1", False), ("01/05/1980", False), ("١٩٨٠-٠٥-٠١", False),
    ("1980-05-01T00:00:00", False), (dt.datetime(1980, 5, 1), False), (True, False)])
def test_a_birth_date_is_year_month_day_in_the_digits_0_to_9(value, ok):
    data = {"mrn": "D-1", "family_name": "Day", "given_name": "Iso", "sex": "female",
            "birth_date": value}
    if ok:
        assert PatientCreate.model_validate(data).birth_date == dt.date(1980, 5, 1)
    else:
        with pytest.raises(ValidationError, match="year-month-day|valid date"):
            PatientCreate.model_validate(data)

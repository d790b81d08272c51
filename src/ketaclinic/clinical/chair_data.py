"""Loader for the bundled chair-side data files (course templates, session and ledger rules).

This is the one place in the chair modules that reads files: bundled JSON through
:mod:`importlib.resources`. Everything else takes the loaded values as arguments.
"""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any, overload

from ketaclinic.clinical.rules import Cited, ClinicalInputError, Grade


@overload
def cited_from_dict(raw: dict[str, Any]) -> Cited: ...
@overload
def cited_from_dict(raw: None) -> None: ...
def cited_from_dict(raw: dict[str, Any] | None) -> Cited | None:
    """Build a :class:`Cited` from its JSON form ``{value, unit, source, grade, note}``."""
    if raw is None:
        return None
    try:
        return Cited(
            value=raw["value"],
            unit=raw["unit"],
            source=raw["source"],
            grade=Grade(raw.get("grade", "C")),
            note=raw.get("note", ""),
        )
    except (KeyError, ValueError) as exc:
        raise ClinicalInputError(f"malformed cited value {raw!r}: {exc}") from exc


@lru_cache(maxsize=64)
def _read_text(relative_path: str) -> str:
    return files("ketaclinic.clinical").joinpath("data", *relative_path.split("/")).read_text(
        encoding="utf-8"
    )


def load_bundled_json(relative_path: str) -> Any:
    """Load a JSON file bundled under ``clinical/data/`` (e.g. ``chair/session.json``)."""
    try:
        return json.loads(_read_text(relative_path))
    except FileNotFoundError as exc:
        raise ClinicalInputError(f"no bundled data file {relative_path!r}") from exc


def list_bundled(folder: str) -> list[str]:
    """Names of the JSON files bundled in ``data/<folder>`` without the extension, sorted."""
    root = files("ketaclinic.clinical").joinpath("data", folder)
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".json"))


def iter_cited(obj: Any, path: str = "") -> list[tuple[str, Cited]]:
    """Every :class:`Cited` in a rule object (dataclasses, dicts, lists, tuples) with its path."""
    if isinstance(obj, Cited):
        return [(path, obj)]
    if is_dataclass(obj) and not isinstance(obj, type):
        items = [(f.name, getattr(obj, f.name)) for f in fields(obj)]
    elif isinstance(obj, dict):
        items = [(str(k), v) for k, v in obj.items()]
    elif isinstance(obj, list | tuple):
        items = [(str(i), v) for i, v in enumerate(obj)]
    else:
        return []
    out: list[tuple[str, Cited]] = []
    for name, value in items:
        out += iter_cited(value, f"{path}.{name}" if path else name)
    return out


def list_unconfirmed(obj: Any) -> list[tuple[str, Cited]]:
    """The grade-U values of a rule object: defaults awaiting medical-director confirmation."""
    return [(p, c) for p, c in iter_cited(obj) if c.needs_confirmation]

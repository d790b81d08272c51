"""Parse and validate instrument definition files, bundled or clinic-supplied.

Every problem found is collected and reported at once in a :class:`DefinitionError`, with a
path such as ``items[3].max`` so that whoever edits the file can find it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from ketaclinic.clinical.instruments.definitions import (
    _ID_RE,
    _VERSION_RE,
    HANDLINGS,
    LOINC_SYSTEM,
    METHODS,
    OPERATORS,
    PRIORITIES,
    SCHEMA,
    SPECIAL_MEANINGS,
    AlertRule,
    AnswerOption,
    Band,
    BandSet,
    Codes,
    Condition,
    DefinitionError,
    Domain,
    InstrumentDefinition,
    ItemDef,
    Licence,
    RecallWindow,
    ScoringRule,
    Source,
    SpecialAnswer,
    SuicideItem,
    Tier,
    check_loinc,
)
from ketaclinic.clinical.rules import Grade

BUNDLED_IDS = (
    "phq9",
    "gad7",
    "qids-sr16",
    "hamd17",
    "madrs",
    "cadss",
    "cadss6",
    "bprs4",
    "moaas",
    "rass",
    "cssrs-screener",
)


class _Reader:
    """Typed access to a JSON object that records errors instead of raising at once."""

    def __init__(self, errors: list[str]):
        self.errors = errors

    def get(
        self,
        obj: Mapping[str, Any],
        key: str,
        kind: type | tuple,
        path: str,
        default: Any = ...,
    ) -> Any:
        if not isinstance(obj, Mapping):
            self.errors.append(f"{path}: must be an object")
            return None if default is ... else default
        if key not in obj:
            if default is ...:
                self.errors.append(f"{path}.{key}: is required")
                return None
            return default
        value = obj[key]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            self.errors.append(f"{path}.{key}: must be an integer")
            return None if default is ... else default
        if not isinstance(value, kind):
            name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.errors.append(f"{path}.{key}: must be of type {name}")
            return None if default is ... else default
        return value

    def grade(self, obj: Mapping[str, Any], path: str) -> Grade:
        value = self.get(obj, "grade", str, path, "U")
        try:
            return Grade(value)
        except ValueError:
            self.errors.append(f"{path}.grade: must be one of C, S, U")
            return Grade.UNCONFIRMED


def load_definition(json_text: str) -> InstrumentDefinition:
    """Parse and validate one instrument definition (bundled or clinic-supplied).

    Parameters
    ----------
    json_text : str
        The JSON document (schema ``ketaclinic.instrument/1``).

    Returns
    -------
    InstrumentDefinition

    Raises
    ------
    DefinitionError
        With every problem found, each prefixed by its path in the document.
    """
    try:
        data = json.loads(json_text)
    except json.JSONDecodeError as exc:
        raise DefinitionError([f"not valid JSON: {exc.msg} at line {exc.lineno}"]) from None
    return parse_definition(data)


def parse_definition(data: Any) -> InstrumentDefinition:
    """Validate an already-decoded definition; see :func:`load_definition`."""
    errors: list[str] = []
    if not isinstance(data, Mapping):
        raise DefinitionError(["top level must be a JSON object"])
    definition = _parse(data, _Reader(errors))
    if not errors:
        _check_consistency(definition, errors)
    if errors:
        raise DefinitionError(errors)
    return definition


@cache
def load_bundled(instrument_id: str) -> InstrumentDefinition:
    """Load one of the definitions bundled with ketaclinic (see :data:`BUNDLED_IDS`)."""
    if instrument_id not in BUNDLED_IDS:
        from ketaclinic.clinical.rules import ClinicalInputError

        raise ClinicalInputError(
            f"unknown instrument {instrument_id!r}; known: {', '.join(BUNDLED_IDS)}"
        )
    path = resources.files("ketaclinic.clinical") / "data" / "instruments" / f"{instrument_id}.json"
    return load_definition(path.read_text(encoding="utf-8"))


def list_bundled() -> tuple[InstrumentDefinition, ...]:
    """All bundled definitions, in the order of :data:`BUNDLED_IDS`."""
    return tuple(load_bundled(i) for i in BUNDLED_IDS)


# --- parsing --------------------------------------------------------------------------------


def _parse(data: Mapping[str, Any], r: _Reader) -> InstrumentDefinition:
    if data.get("schema") != SCHEMA:
        r.errors.append(f"schema: must be {SCHEMA!r}")
    ident = r.get(data, "id", str, "$") or ""
    if ident and not _ID_RE.match(ident):
        r.errors.append("id: lowercase letters, digits and '-' only")
    version = r.get(data, "version", str, "$") or ""
    if version and not _VERSION_RE.match(version):
        r.errors.append("version: must look like 1.0.0")
    option_sets = _parse_option_sets(r.get(data, "option_sets", dict, "$", {}), r)
    items_raw = r.get(data, "items", list, "$") or []
    items = tuple(
        _parse_item(raw, f"items[{i}]", option_sets, r) for i, raw in enumerate(items_raw)
    )
    total = r.get(data, "total", dict, "$", {})
    bands = r.get(data, "bands", dict, "$", {})
    codes = r.get(data, "codes", dict, "$")
    return InstrumentDefinition(
        id=ident,
        name=r.get(data, "name", str, "$") or "",
        short_name=r.get(data, "short_name", str, "$", ident),
        version=version,
        recall_period=r.get(data, "recall_period", str, "$") or "",
        respondent=r.get(data, "respondent", str, "$", "patient"),
        licence=_parse_licence(r.get(data, "licence", dict, "$") or {}, r),
        items=items,
        scoring=_parse_scoring(r.get(data, "scoring", dict, "$") or {}, r),
        total_min=r.get(total, "min", int, "total", None),
        total_max=r.get(total, "max", int, "total", None),
        band_sets=tuple(
            _parse_band_set(name, raw, r)
            for name, raw in r.get(bands, "sets", dict, "bands", {}).items()
        ),
        default_band_set=r.get(bands, "default", str, "bands", ""),
        alerts=tuple(
            _parse_alert(raw, f"alerts[{i}]", r)
            for i, raw in enumerate(r.get(data, "alerts", list, "$", []))
        ),
        codes=Codes(
            system=r.get(codes or {}, "system", str, "codes") or "",
            panel=r.get(codes or {}, "panel", str, "codes", ""),
            total=r.get(codes or {}, "total", str, "codes", ""),
        ),
        sources=tuple(
            Source(r.get(s, "citation", str, f"sources[{i}]") or "", r.grade(s, f"sources[{i}]"))
            for i, s in enumerate(r.get(data, "sources", list, "$", []))
        ),
        instructions=r.get(data, "instructions", str, "$", ""),
        suicide_item=_parse_suicide_item(r.get(data, "suicide_item", dict, "$", None), r),
        recall_window=_parse_recall_window(r.get(data, "recall_window", dict, "$", None), r),
        raw=dict(data),
    )


def _parse_suicide_item(raw: Mapping[str, Any] | None, r: _Reader) -> SuicideItem | None:
    if raw is None:
        return None
    path = "suicide_item"
    priority = r.get(raw, "priority", str, path, "urgent")
    if priority not in PRIORITIES:
        r.errors.append(f"{path}.priority: must be one of {', '.join(PRIORITIES)}")
    source = r.get(raw, "source", str, path) or ""
    if raw.get("source") is not None and not source.strip():
        r.errors.append(f"{path}.source: must cite where the item is the suicide item")
    return SuicideItem(
        item=r.get(raw, "item", int, path) or 0,
        source=source,
        grade=r.grade(raw, path),
        priority=priority,
        message=r.get(raw, "message", str, path, ""),
        action=r.get(raw, "action", str, path, ""),
    )


def _parse_recall_window(raw: Mapping[str, Any] | None, r: _Reader) -> RecallWindow | None:
    if raw is None:
        return None
    hours = r.get(raw, "hours", int, "recall_window") or 0
    if hours < 0:
        r.errors.append("recall_window.hours: must be 0 or more")
    return RecallWindow(hours, r.get(raw, "source", str, "recall_window") or "",
                        r.grade(raw, "recall_window"))


def _parse_licence(raw: Mapping[str, Any], r: _Reader) -> Licence:
    handling = r.get(raw, "handling", str, "licence") or ""
    if handling and handling not in HANDLINGS:
        r.errors.append(f"licence.handling: must be one of {', '.join(HANDLINGS)}")
    return Licence(
        statement=r.get(raw, "statement", str, "licence") or "",
        handling=handling,
        grade=r.grade(raw, "licence"),
        supplied_by=r.get(raw, "supplied_by", str, "licence", ""),
    )


def _parse_option_sets(raw: Mapping[str, Any], r: _Reader) -> dict[str, tuple[AnswerOption, ...]]:
    sets: dict[str, tuple[AnswerOption, ...]] = {}
    for name, options in raw.items():
        path = f"option_sets.{name}"
        if not isinstance(options, list):
            r.errors.append(f"{path}: must be a list")
            continue
        sets[name] = tuple(_parse_option(o, f"{path}[{i}]", r) for i, o in enumerate(options))
    return sets


def _parse_option(raw: Mapping[str, Any], path: str, r: _Reader) -> AnswerOption:
    tokens = r.get(raw, "tokens", list, path, [])
    return AnswerOption(
        score=r.get(raw, "score", int, path) or 0,
        label=r.get(raw, "label", str, path, ""),
        code=r.get(raw, "code", str, path, ""),
        tokens=tuple(str(t).lower() for t in tokens),
    )


def _parse_item(
    raw: Any, path: str, option_sets: Mapping[str, tuple[AnswerOption, ...]], r: _Reader
) -> ItemDef:
    options_ref = r.get(raw, "options", str, path, "")
    if options_ref and options_ref not in option_sets:
        r.errors.append(f"{path}.options: unknown option set {options_ref!r}")
    asked_if = r.get(raw, "asked_if", dict, path, None)
    special = r.get(raw, "special", list, path, [])
    return ItemDef(
        number=r.get(raw, "number", int, path) or 0,
        label=r.get(raw, "label", str, path) or "",
        min_score=r.get(raw, "min", int, path) or 0,
        max_score=r.get(raw, "max", int, path) or 0,
        text=r.get(raw, "text", str, path, ""),
        options=option_sets.get(options_ref, ()),
        special=tuple(_parse_special(s, f"{path}.special[{i}]", r) for i, s in enumerate(special)),
        scored=r.get(raw, "scored", bool, path, True),
        required=r.get(raw, "required", bool, path, True),
        asked_if=_parse_condition(asked_if, f"{path}.asked_if", r) if asked_if else None,
        code=r.get(raw, "code", str, path, ""),
    )


def _parse_special(raw: Any, path: str, r: _Reader) -> SpecialAnswer:
    meaning = r.get(raw, "meaning", str, path) or ""
    if meaning and meaning not in SPECIAL_MEANINGS:
        r.errors.append(f"{path}.meaning: must be one of {', '.join(SPECIAL_MEANINGS)}")
    token = r.get(raw, "token", str, path) or ""
    return SpecialAnswer(
        token=token.lower(), meaning=meaning, label=r.get(raw, "label", str, path, "")
    )


def _parse_condition(raw: Any, path: str, r: _Reader) -> Condition:
    return Condition(
        item=r.get(raw, "item", int, path) or 0, equals=r.get(raw, "equals", int, path) or 0
    )


def _parse_scoring(raw: Mapping[str, Any], r: _Reader) -> ScoringRule:
    method = r.get(raw, "method", str, "scoring") or ""
    if method and method not in METHODS:
        r.errors.append(f"scoring.method: must be one of {', '.join(METHODS)}")
    missing = r.get(raw, "missing", dict, "scoring", {})
    domains = r.get(raw, "domains", list, "scoring", [])
    tiers = r.get(raw, "tiers", list, "scoring", [])
    return ScoringRule(
        method=method,
        max_missing=r.get(missing, "max_missing", int, "scoring.missing", 0),
        impute=r.get(missing, "impute", str, "scoring.missing", ""),
        rounding=r.get(missing, "rounding", str, "scoring.missing", ""),
        domains=tuple(
            Domain(
                name=r.get(d, "name", str, f"scoring.domains[{i}]") or "",
                items=tuple(r.get(d, "items", list, f"scoring.domains[{i}]") or ()),
                combine=r.get(d, "combine", str, f"scoring.domains[{i}]", "max"),
            )
            for i, d in enumerate(domains)
        ),
        either_or=tuple(tuple(pair) for pair in r.get(raw, "either_or", list, "scoring", [])),
        tiers=tuple(_parse_tier(t, f"scoring.tiers[{i}]", r) for i, t in enumerate(tiers)),
        source=r.get(raw, "source", str, "scoring", ""),
        grade=r.grade(raw, "scoring"),
        note=r.get(raw, "note", str, "scoring", ""),
    )


def _parse_tier(raw: Any, path: str, r: _Reader) -> Tier:
    priority = r.get(raw, "priority", str, path) or ""
    if priority and priority not in PRIORITIES:
        r.errors.append(f"{path}.priority: must be one of {', '.join(PRIORITIES)}")
    return Tier(
        name=r.get(raw, "name", str, path) or "",
        any_of=tuple(
            _parse_condition(c, f"{path}.any_of[{i}]", r)
            for i, c in enumerate(r.get(raw, "any_of", list, path) or [])
        ),
        priority=priority,
        message=r.get(raw, "message", str, path) or "",
        source=r.get(raw, "source", str, path) or "",
        grade=r.grade(raw, path),
    )


def _parse_band_set(name: str, raw: Any, r: _Reader) -> BandSet:
    path = f"bands.sets.{name}"
    bands = r.get(raw, "bands", list, path) or []
    return BandSet(
        name=name,
        bands=tuple(
            Band(
                min_score=r.get(b, "min", int, f"{path}.bands[{i}]") or 0,
                max_score=r.get(b, "max", int, f"{path}.bands[{i}]") or 0,
                label=r.get(b, "label", str, f"{path}.bands[{i}]") or "",
            )
            for i, b in enumerate(bands)
        ),
        source=r.get(raw, "source", str, path) or "",
        grade=r.grade(raw, path),
    )


def _parse_alert(raw: Any, path: str, r: _Reader) -> AlertRule:
    op = r.get(raw, "op", str, path) or ""
    if op and op not in OPERATORS:
        r.errors.append(f"{path}.op: must be one of {', '.join(OPERATORS)}")
    priority = r.get(raw, "priority", str, path) or ""
    if priority and priority not in PRIORITIES:
        r.errors.append(f"{path}.priority: must be one of {', '.join(PRIORITIES)}")
    return AlertRule(
        rule=r.get(raw, "rule", str, path) or "",
        item=r.get(raw, "item", int, path) or 0,
        op=op,
        threshold=r.get(raw, "threshold", int, path) or 0,
        priority=priority,
        message=r.get(raw, "message", str, path) or "",
        source=r.get(raw, "source", str, path) or "",
        grade=r.grade(raw, path),
        action=r.get(raw, "action", str, path, ""),
    )


# --- consistency ----------------------------------------------------------------------------


def _check_consistency(d: InstrumentDefinition, errors: list[str]) -> None:
    numbers = [item.number for item in d.items]
    if not numbers:
        errors.append("items: at least one item is required")
    if numbers != list(range(1, len(numbers) + 1)):
        errors.append("items: numbers must be 1, 2, 3 … in order")
    for item in d.items:
        _check_item(item, numbers, d.codes.system, errors)
    if d.licence.handling != "bundled" and not d.licence.supplied_by:
        for item in d.items:
            if item.text or any(o.label for o in item.options):
                errors.append(
                    f"items[{item.number - 1}]: item text or answer labels of a "
                    f"{d.licence.handling} instrument may only come from a clinic-supplied file "
                    "(set licence.supplied_by)"
                )
                break
    _check_scoring(d, numbers, errors)
    _check_bands(d, errors)
    for i, alert in enumerate(d.alerts):
        if alert.item not in numbers:
            errors.append(f"alerts[{i}].item: no item {alert.item}")
        else:
            item = d.item(alert.item)
            if not item.min_score <= alert.threshold <= item.max_score:
                errors.append(f"alerts[{i}].threshold: outside item {alert.item} range")
    if d.suicide_item is not None and d.suicide_item.item not in numbers:
        errors.append(f"suicide_item.item: no item {d.suicide_item.item}")
    elif d.suicide_item is not None and not d.item(d.suicide_item.item).scored:
        errors.append("suicide_item.item: must be a scored item")
    for key in ("panel", "total"):
        code = getattr(d.codes, key)
        if code and d.codes.system == LOINC_SYSTEM and not check_loinc(code):
            errors.append(f"codes.{key}: {code!r} is not a valid LOINC code (check digit)")
    if not d.sources:
        errors.append("sources: at least one cited source is required")


def _check_item(item: ItemDef, numbers: list[int], system: str, errors: list[str]) -> None:
    path = f"items[{item.number - 1}]"
    if item.min_score > item.max_score:
        errors.append(f"{path}: min is above max")
    if item.options:
        scores = sorted(o.score for o in item.options)
        if scores != list(range(item.min_score, item.max_score + 1)):
            errors.append(f"{path}.options: scores must cover {item.min_score}..{item.max_score}")
    for special in item.special:
        if (
            special.token.lstrip("-").isdigit()
            and item.min_score <= int(special.token) <= item.max_score
        ):
            errors.append(f"{path}.special: token {special.token!r} collides with a score")
    if item.asked_if and item.asked_if.item not in numbers:
        errors.append(f"{path}.asked_if: no item {item.asked_if.item}")
    if item.code and system == LOINC_SYSTEM and not check_loinc(item.code):
        errors.append(f"{path}.code: {item.code!r} is not a valid LOINC code (check digit)")


def _check_scoring(d: InstrumentDefinition, numbers: list[int], errors: list[str]) -> None:
    s = d.scoring
    if s.impute and s.impute != "mean":
        errors.append("scoring.missing.impute: only 'mean' is supported")
    if s.impute and s.rounding != "half-up":
        errors.append("scoring.missing.rounding: must be 'half-up' when imputing")
    if s.method == "domains":
        covered = sorted(n for dom in s.domains for n in dom.items)
        scored = [i.number for i in d.items if i.scored]
        if covered != scored:
            errors.append("scoring.domains: each scored item must be in exactly one domain")
        for i, dom in enumerate(s.domains):
            if dom.combine not in ("max", "sum"):
                errors.append(f"scoring.domains[{i}].combine: must be max or sum")
    if s.method == "single" and len([i for i in d.items if i.scored]) != 1:
        errors.append("scoring.method single: needs exactly one scored item")
    if s.method == "cssrs-triage" and not s.tiers:
        errors.append("scoring.tiers: required for cssrs-triage")
    for group in s.either_or:
        if any(n not in numbers for n in group):
            errors.append(f"scoring.either_or: unknown item in {list(group)}")
    for tier in s.tiers:
        if any(c.item not in numbers for c in tier.any_of):
            errors.append(f"scoring.tiers.{tier.name}: unknown item")


def _check_bands(d: InstrumentDefinition, errors: list[str]) -> None:
    names = [b.name for b in d.band_sets]
    if d.band_sets and d.default_band_set not in names:
        errors.append("bands.default: must name one of the band sets")
    if d.scoring.method == "cssrs-triage":
        return
    if d.band_sets and (d.total_min is None or d.total_max is None):
        errors.append("total: min and max are required when bands are given")
        return
    for band_set in d.band_sets:
        expected = d.total_min
        for band in band_set.bands:
            if band.min_score != expected or band.max_score < band.min_score:
                errors.append(
                    f"bands.sets.{band_set.name}: bands must be contiguous from {d.total_min} "
                    f"to {d.total_max} without gaps or overlaps"
                )
                break
            expected = band.max_score + 1
        else:
            if band_set.bands and expected is not None and expected - 1 != d.total_max:
                errors.append(f"bands.sets.{band_set.name}: last band must end at {d.total_max}")

"""Exact scoring of rating scales from their definitions: totals, bands, missing items, alerts.

Answers come in as plain values, one per item in item order (or a mapping item number → value):

* an ``int`` score, or a string holding a whole number in the digits 0-9 (``"2"``, ``"-3"`` for
  RASS; ``"٣"`` is refused, not read as 3);
* ``None`` or ``""`` for a missing answer;
* an option token defined by the instrument (C-SSRS ``"y"``/``"n"``);
* a special token defined by the instrument (HAM-D item 16 ``"na"`` = not assessed, BPRS ``"0"`` =
  not rated, C-SSRS ``"na"`` = not asked by the skip logic).

Anything else (out of range, decimal, non-numeric, a bool, too many answers) is refused with a
:class:`~ketaclinic.clinical.rules.ClinicalInputError` naming the item and the reason.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ketaclinic.clinical.inputs import DIGITS_ONLY, has_foreign_digits, is_whole_number
from ketaclinic.clinical.instruments.definitions import (
    AlertRule,
    InstrumentDefinition,
    ItemDef,
)
from ketaclinic.clinical.rules import ClinicalInputError, Grade

_DECIMAL_RE = re.compile(r"[+-]?([0-9]+[.,][0-9]*|[.,][0-9]+)")

ANSWERED = "answered"
MISSING = "missing"
NOT_APPLICABLE = "not_applicable"  # QIDS-SR16 unanswered alternative of an either/or pair
_PRIORITY_RANK = {"urgent": 0, "high": 1, "routine": 2}


@dataclass(frozen=True)
class ItemScore:
    number: int
    label: str
    value: int | None
    status: str  # answered | missing | not_assessed | not_rated | not_asked | not_applicable


@dataclass(frozen=True)
class DomainScore:
    name: str
    items: tuple[int, ...]
    score: int | None


@dataclass(frozen=True)
class Alert:
    """A fired alert rule: what fired, on which item and value, and where the rule comes from."""

    rule: str
    priority: str  # urgent | high | routine
    message: str
    source: str
    grade: Grade
    item: int | None = None
    value: int | None = None
    threshold: int | None = None
    action: str = ""  # the action the alert requires (empty: follow the message)

    @property
    def needs_confirmation(self) -> bool:
        return self.grade is Grade.UNCONFIRMED

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "priority": self.priority,
            "message": self.message,
            "item": self.item,
            "value": self.value,
            "threshold": self.threshold,
            "source": self.source,
            "grade": self.grade.value,
            "action": self.action,
        }


@dataclass(frozen=True)
class ScoreResult:
    instrument: str
    rule_version: str
    total: int | None
    severity: str | None
    alerts: tuple[Alert, ...]
    complete: bool
    prorated: bool
    items: tuple[ItemScore, ...]
    domains: tuple[DomainScore, ...] = ()
    band_set: str = ""
    prorated_total_exact: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def scorable(self) -> bool:
        return self.total is not None

    def as_dict(self) -> dict[str, Any]:
        """JSON shape: the six contract keys first, then details."""
        return {
            "instrument": self.instrument,
            "total": self.total,
            "severity": self.severity,
            "alerts": [a.as_dict() for a in self.alerts],
            "complete": self.complete,
            "prorated": self.prorated,
            "rule_version": self.rule_version,
            "band_set": self.band_set or None,
            "prorated_total_exact": self.prorated_total_exact,
            "notes": list(self.notes),
            "items": [dataclasses.asdict(i) for i in self.items],
            "domains": [dataclasses.asdict(d) for d in self.domains],
        }


def parse_answer_text(text: str) -> tuple[str | None, ...]:
    """Split comma-separated answers as typed on the command line; an empty position is missing.

    Examples
    --------
    >>> parse_answer_text("1, 2,,0")
    ('1', '2', None, '0')
    """
    return tuple(part.strip() or None for part in text.split(","))


def score_answers(
    definition: InstrumentDefinition,
    answers: Sequence[Any] | Mapping[int, Any],
    band_set: str | None = None,
) -> ScoreResult:
    """Score one completed (or partly completed) form exactly as the instrument's rule says.

    Parameters
    ----------
    definition : InstrumentDefinition
        A bundled or clinic-supplied definition.
    answers : sequence or mapping
        One answer per item in item order, or a mapping item number → answer (see module doc).
        Trailing items that are not required (PHQ-9 item 10) may be left out of a sequence.
    band_set : str, optional
        Name of the severity band set to use (e.g. ``"zimmerman2013"`` for HAM-D17); default is
        the definition's default band set.

    Returns
    -------
    ScoreResult
        ``total`` is None when the form is not scorable; ``notes`` say why.

    Raises
    ------
    ClinicalInputError
        For an invalid answer, naming the item and the reason.
    """
    chosen = definition.band_set(band_set)
    items = _apply_skip_logic(definition, _normalise_all(definition, answers))
    notes: list[str] = []
    method = definition.scoring.method
    if method == "cssrs-triage":
        return _score_cssrs(definition, items)
    domains: tuple[DomainScore, ...] = ()
    exact: float | None = None
    if method == "domains":
        items, domains, total, complete = _score_domains(definition, items, notes)
        prorated = False
    elif method == "single":
        total, complete, prorated = _score_single(items, notes)
    else:
        total, exact, complete, prorated = _score_sum(definition, items, notes)
    severity = chosen.label_for(total) if (chosen and total is not None) else None
    return ScoreResult(
        instrument=definition.id,
        rule_version=definition.rule_version,
        total=total,
        severity=severity,
        alerts=tuple(_suicide_item_alerts(definition, items))
        + tuple(_fire_alerts(definition.alerts, items)),
        complete=complete,
        prorated=prorated,
        items=tuple(items),
        domains=domains,
        band_set=chosen.name if chosen else "",
        prorated_total_exact=exact,
        notes=tuple(notes),
    )


def replace_alert_threshold(
    definition: InstrumentDefinition, rule: str, threshold: int
) -> InstrumentDefinition:
    """Return a copy of ``definition`` with one alert rule's threshold changed (clinic policy)."""
    if rule not in {a.rule for a in definition.alerts}:
        raise ClinicalInputError(f"{definition.id}: no alert rule {rule!r}")
    alerts = tuple(
        dataclasses.replace(a, threshold=threshold) if a.rule == rule else a
        for a in definition.alerts
    )
    return dataclasses.replace(definition, alerts=alerts)


# --- answer normalisation -------------------------------------------------------------------


def _normalise_all(
    d: InstrumentDefinition, answers: Sequence[Any] | Mapping[int, Any]
) -> list[ItemScore]:
    if isinstance(answers, Mapping):
        unknown = sorted(set(answers) - {i.number for i in d.items}, key=str)
        if unknown:
            raise ClinicalInputError(f"{d.short_name}: no item {unknown[0]}")
        return [_normalise(d, item, answers.get(item.number)) for item in d.items]
    if isinstance(answers, str | bytes):
        raise ClinicalInputError(f"{d.short_name}: answers must be a list, not a string")
    given = list(answers)
    if len(given) > len(d.items):
        raise ClinicalInputError(
            f"{d.short_name}: expected {len(d.items)} answers, got {len(given)}"
        )
    omitted = d.items[len(given) :]
    if any(item.required for item in omitted):
        required = sum(1 for i in d.items if i.required)
        raise ClinicalInputError(
            f"{d.short_name}: expected {required} answers, got {len(given)} "
            "(leave a position empty for a missing answer)"
        )
    given += [None] * len(omitted)
    return [_normalise(d, item, raw) for item, raw in zip(d.items, given, strict=True)]


def _normalise(d: InstrumentDefinition, item: ItemDef, raw: Any) -> ItemScore:
    where = f"{d.short_name} item {item.number}"
    status, value = _classify(item, raw, where)
    if value is not None and not item.min_score <= value <= item.max_score:
        hint = "; use " + " or ".join(repr(s.token) for s in item.special) if item.special else ""
        raise ClinicalInputError(
            f"{where}: {value} is out of range {item.min_score} to {item.max_score}{hint}"
        )
    return ItemScore(item.number, item.label, value if status == ANSWERED else None, status)


def _classify(item: ItemDef, raw: Any, where: str) -> tuple[str, int | None]:
    if raw is None:
        return MISSING, None
    if isinstance(raw, bool):
        raise ClinicalInputError(f"{where}: {raw!r} is not a score")
    if isinstance(raw, int):
        return _special_or_score(item, str(raw), raw)
    if isinstance(raw, float | Decimal):
        raise ClinicalInputError(
            f"{where}: decimal answer {raw} is not allowed (whole numbers only)"
        )
    if not isinstance(raw, str):
        raise ClinicalInputError(f"{where}: {type(raw).__name__} is not an answer")
    text = raw.strip().lower()
    if not text:
        return MISSING, None
    for option in item.options:
        if text in option.tokens:
            return ANSWERED, option.score
    if is_whole_number(text):
        return _special_or_score(item, str(int(text)), int(text))
    for special in item.special:
        if text == special.token:
            return special.meaning, None
    if has_foreign_digits(text):
        raise ClinicalInputError(f"{where}: {raw.strip()!r} is not a number: {DIGITS_ONLY}")
    if _DECIMAL_RE.fullmatch(text):
        raise ClinicalInputError(
            f"{where}: decimal answer {raw.strip()!r} is not allowed (whole numbers only)"
        )
    tokens = [o.tokens[0] for o in sorted(item.options, key=lambda o: -o.score) if o.tokens]
    if tokens:
        accepted = "/".join(tokens + [s.token for s in item.special])
        raise ClinicalInputError(f"{where}: {raw.strip()!r} is not an answer (use {accepted})")
    raise ClinicalInputError(f"{where}: {raw.strip()!r} is not a number")


def _special_or_score(item: ItemDef, token: str, value: int) -> tuple[str, int | None]:
    for special in item.special:
        if token == special.token:
            return special.meaning, None
    return ANSWERED, value


def _apply_skip_logic(d: InstrumentDefinition, items: list[ItemScore]) -> list[ItemScore]:
    by_number = {i.number: i for i in items}
    out = []
    for score, item in zip(items, d.items, strict=True):
        cond = item.asked_if
        if cond is None:
            if score.status == "not_asked":
                raise ClinicalInputError(
                    f"{d.short_name} item {item.number}: every respondent is asked this item"
                )
            out.append(score)
            continue
        gate = by_number[cond.item]
        where = f"{d.short_name} item {item.number}"
        if gate.status != ANSWERED:
            out.append(
                dataclasses.replace(score, status=MISSING) if score.status == "not_asked" else score
            )
        elif gate.value == cond.equals:
            if score.status == "not_asked":
                raise ClinicalInputError(
                    f"{where}: must be asked when item {cond.item} is {_yn(gate.value)}"
                )
            out.append(score)
        else:
            if score.status == ANSWERED:
                raise ClinicalInputError(
                    f"{where}: not asked when item {cond.item} is {_yn(gate.value)} (skip logic)"
                )
            out.append(dataclasses.replace(score, status="not_asked", value=None))
    return out


def _answered_values(items: Iterable[ItemScore]) -> list[int]:
    """The values of the answered items, in order (an answered item always has its value)."""
    values = []
    for i in items:
        if i.status == ANSWERED:
            if i.value is None:
                raise ValueError(f"item {i.number} is answered but has no value")
            values.append(i.value)
    return values


def _yn(value: int | None) -> str:
    return {0: "No", 1: "Yes"}.get(value, str(value)) if value is not None else "missing"


# --- methods --------------------------------------------------------------------------------


def _scored(d: InstrumentDefinition, items: list[ItemScore]) -> list[ItemScore]:
    scored = {i.number for i in d.items if i.scored}
    return [i for i in items if i.number in scored]


def _score_sum(
    d: InstrumentDefinition, items: list[ItemScore], notes: list[str]
) -> tuple[int | None, float | None, bool, bool]:
    scored = [i for i in _scored(d, items) if i.status != "not_assessed"]
    for i in _scored(d, items):
        if i.status == "not_assessed":
            notes.append(f"item {i.number} not assessed: ignored, as the scoring rule allows")
    answered = _answered_values(scored)
    missing = [i.number for i in scored if i.status != ANSWERED]
    rule = d.scoring
    _note_unscored(d, items, sum(answered), notes)
    if not missing:
        return sum(answered), None, True, False
    listed = ", ".join(str(n) for n in missing)
    suicide = d.suicide_item.item if d.suicide_item else None
    if suicide in missing:
        notes.append(
            f"not scorable: item {suicide} (the suicide item) is unanswered; it is never "
            "prorated over: ask the patient in person and record the answer"
        )
        return None, None, False, False
    if len(missing) > rule.max_missing or not answered or not rule.impute:
        allowed = (
            f"at most {rule.max_missing} allowed"
            if rule.max_missing
            else "no missing items allowed"
        )
        notes.append(
            f"not scorable: {len(missing)} item(s) missing or not rated ({listed}); {allowed}"
        )
        return None, None, False, False
    mean = sum(answered) / len(answered)
    exact = sum(answered) + mean * len(missing)
    total = int(Decimal(repr(exact)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    notes.append(
        f"prorated: item(s) {listed} missing, each replaced by the mean of the {len(answered)} "
        f"answered items ({mean:.3f}); total {exact:.2f} rounded half up to {total}"
    )
    return total, round(exact, 4), False, True


def _note_unscored(
    d: InstrumentDefinition, items: list[ItemScore], subtotal: int, notes: list[str]
) -> None:
    for item, score in zip(d.items, items, strict=True):
        if not item.scored and score.status == MISSING and subtotal > 0:
            notes.append(
                f"item {item.number} ({item.label}) is unscored but should be asked "
                "when the total is above 0"
            )


def _score_single(items: list[ItemScore], notes: list[str]) -> tuple[int | None, bool, bool]:
    only = items[0]
    if only.status != ANSWERED:
        notes.append("not scorable: no rating entered")
        return None, False, False
    return only.value, True, False


def _score_domains(
    d: InstrumentDefinition, items: list[ItemScore], notes: list[str]
) -> tuple[list[ItemScore], tuple[DomainScore, ...], int | None, bool]:
    items = _apply_either_or(d, items, notes)
    by_number = {i.number: i for i in items}
    domains = []
    for dom in d.scoring.domains:
        gaps = [n for n in dom.items if by_number[n].status not in (ANSWERED, NOT_APPLICABLE)]
        values = _answered_values(by_number[n] for n in dom.items)
        combined = None
        if gaps:
            notes.append(
                f"domain {dom.name!r} not computable: item(s) {', '.join(map(str, gaps))} "
                "missing (a domain is scored from all its items, never from a fraction)"
            )
        elif values:
            combined = max(values) if dom.combine == "max" else sum(values)
        domains.append(DomainScore(dom.name, dom.items, combined))
    missing = [i.number for i in _scored(d, items) if i.status == MISSING]
    scores = [x.score for x in domains if x.score is not None]
    total = sum(scores) if len(scores) == len(domains) else None
    if total is None:
        notes.append("total not computable: at least one domain is not computable")
    return items, tuple(domains), total, not missing and total is not None


def _apply_either_or(
    d: InstrumentDefinition, items: list[ItemScore], notes: list[str]
) -> list[ItemScore]:
    by_number = {i.number: i for i in items}
    for group in d.scoring.either_or:
        answered = [n for n in group if by_number[n].status == ANSWERED]
        if answered:
            for n in group:
                if by_number[n].status == MISSING:
                    by_number[n] = dataclasses.replace(by_number[n], status=NOT_APPLICABLE)
        if len(answered) > 1:
            notes.append(
                f"items {' and '.join(map(str, group))} are alternatives; both answered, max taken"
            )
    return [by_number[i.number] for i in items]


def _score_cssrs(d: InstrumentDefinition, items: list[ItemScore]) -> ScoreResult:
    by_number = {i.number: i for i in items}
    notes: list[str] = []
    tier = None
    for candidate in d.scoring.tiers:
        if any(by_number[c.item].value == c.equals for c in candidate.any_of):
            tier = candidate
            break
    missing = [i.number for i in items if i.status == MISSING]
    alerts = []
    if tier is not None:
        alerts.append(
            Alert(f"{d.id}.{tier.name}", tier.priority, tier.message, tier.source, tier.grade)
        )
    if missing:
        notes.append(f"incomplete: question(s) {', '.join(map(str, missing))} unanswered")
        # as urgent as the highest tier an unanswered question could reach
        # (removing an answer never lowers urgency)
        reachable = [t.priority for t in d.scoring.tiers
                     if any(c.item in missing for c in t.any_of)] + ["high"]
        alerts.append(
            Alert(
                f"{d.id}.incomplete",
                min(reachable, key=lambda p: _PRIORITY_RANK.get(p, 9)),
                "C-SSRS screener incomplete: unanswered questions could raise the risk tier; "
                "ask them in person",
                d.scoring.source,
                d.scoring.grade,
            )
        )
    severity = tier.name if tier else (None if missing else "none")
    for i in items:
        if i.status == "not_asked":
            notes.append(f"question {i.number} not asked (skip logic)")
    return ScoreResult(
        instrument=d.id,
        rule_version=d.rule_version,
        total=None,
        severity=severity,
        alerts=tuple(alerts),
        complete=not missing,
        prorated=False,
        items=tuple(items),
        band_set="triage",
        notes=tuple(notes),
    )


def _fire_alerts(rules: Sequence[AlertRule], items: list[ItemScore]) -> list[Alert]:
    by_number = {i.number: i for i in items}
    fired = []
    for rule in rules:
        value = by_number[rule.item].value
        if value is None:
            continue
        hit = {
            ">=": value >= rule.threshold,
            "<=": value <= rule.threshold,
            "==": value == rule.threshold,
        }[rule.op]
        if hit:
            fired.append(
                Alert(
                    rule.rule,
                    rule.priority,
                    rule.message,
                    rule.source,
                    rule.grade,
                    item=rule.item,
                    value=value,
                    threshold=rule.threshold,
                    action=rule.action,
                )
            )
    return fired


def _suicide_item_alerts(d: InstrumentDefinition, items: list[ItemScore]) -> list[Alert]:
    """An urgent "ask in person" alert when the instrument's suicide item is unanswered."""
    marked = d.suicide_item
    if marked is None:
        return []
    score = next(i for i in items if i.number == marked.item)
    if score.status == ANSWERED:
        return []
    label = d.item(marked.item).label
    return [
        Alert(
            f"{d.id}.suicide_item_unanswered",
            marked.priority,
            marked.message
            or f"{d.short_name} item {marked.item} ({label}) is unanswered: ask about thoughts "
            "of death, suicide and self-harm in person today",
            marked.source,
            marked.grade,
            item=marked.item,
            value=None,
            threshold=None,
            action=marked.action
            or "Ask the suicide item in person, record the answer, and follow the clinic's "
            "suicide-risk pathway (C-SSRS screener) if it is positive",
        )
    ]

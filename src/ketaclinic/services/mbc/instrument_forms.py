"""Item-by-item entry of an instrument on staff pages: the same radio rows as the patient's
phone form, and the posted ``item_N`` fields turned back into the scorer's answer list."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ketaclinic.clinical.instruments.definitions import InstrumentDefinition
from ketaclinic.clinical.instruments.loading import load_bundled
from ketaclinic.clinical.instruments.scoring import parse_answer_text
from ketaclinic.services.errors import InvalidInput
from ketaclinic.services.mbc.self_report import FormItem
from ketaclinic.services.numbers import is_whole, optional_int

MAX_ITEMS = 60


@dataclass(frozen=True)
class EntryForm:
    instrument: str
    title: str
    items: list[FormItem]


def entry_form(d: InstrumentDefinition) -> EntryForm:
    """Every item with its answer choices (labels where the definition has them); an item
    asked only after another answer is optional here, as on paper."""
    items = [FormItem(i.number, i.text or i.label, i.required and i.asked_if is None,
                      [(o.score, o.label or str(o.score)) for o in i.options]
                      or [(v, str(v)) for v in range(i.min_score, i.max_score + 1)])
             for i in d.items]
    return EntryForm(d.id, d.short_name or d.name, items)


def bundled_entry_form(instrument_id: str) -> EntryForm:
    return entry_form(load_bundled(instrument_id))


def has_items(form: Mapping[str, str]) -> bool:
    return any(k.startswith("item_") for k in form)


def answers_from_items(form: Mapping[str, str], *, required: bool = True) -> list[str | None]:
    """``item_1=2&item_3=0`` -> ["2", None, "0"]: an unanswered item is None (missing, which
    the scorer handles by its own rules). The answers stay as typed: the input model and the
    scorer judge them as they judge the JSON body's ``answers`` (same words on both paths).

    A radio row left unanswered sends nothing, so the form also sends ``items``, the number of
    items it showed: the list runs to it, and an unanswered last item is missing as a null in
    the JSON body is (without it, the scorer would count one answer too few). ``required``:
    refuse a form without any answer (the self-report's service refuses one itself, in its own
    words).
    """
    shown = optional_int(form.get("items"), "items", minimum=1, maximum=MAX_ITEMS) or 0
    numbered: dict[int, str] = {}
    for key, value in form.items():
        if not key.startswith("item_"):
            continue
        if not is_whole(key[5:]):
            raise InvalidInput(f"answers: unknown field {key!r}")
        number = int(key[5:])
        if not 1 <= number <= MAX_ITEMS:
            raise InvalidInput(f"answers: item {number} does not exist")
        if value.strip():
            numbered[number] = value
    if required and not numbered:
        raise InvalidInput("answers: answer at least one item")
    return [numbered.get(n) for n in range(1, max([shown, *numbered]) + 1)]


def answers_from_form(form: Mapping[str, str]) -> list[str | None]:
    """The ``answers`` list of an instrument entered on a page: one ``item_N`` field per item
    (the radio rows), or, from a form without them, ``answers`` typed as "1,2,,0" (an empty
    position is a missing answer)."""
    if has_items(form):
        return answers_from_items(form)
    typed = list(parse_answer_text(form.get("answers", "")))
    if not any(a is not None for a in typed):
        raise InvalidInput("answers: answer at least one item")
    return typed

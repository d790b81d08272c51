"""`ketaclinic score` and `ketaclinic instruments …`: score a form, list and check definitions."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ketaclinic.cli import app, fail
from ketaclinic.cli.output import JSON_HELP, CliError, emit, read_text
from ketaclinic.clinical.instruments import (
    BUNDLED_IDS,
    InstrumentDefinition,
    list_bundled,
    load_bundled,
    load_definition,
    parse_answer_text,
    score_answers,
)
from ketaclinic.clinical.rules import ClinicalInputError

instruments_app = typer.Typer(
    help="Rating-scale definitions: list, show, validate, load.", no_args_is_help=True
)
app.add_typer(instruments_app, name="instruments")


@app.command("score")
def score_command(
    instrument: str = typer.Argument(..., help=f"One of: {' '.join(BUNDLED_IDS)}"),
    answers: str = typer.Option(
        ...,
        "--answers",
        help="Comma-separated item answers in item order; an empty position is missing. "
        "C-SSRS: y/n, 'na' = not asked. HAM-D item 16: 'na' = not assessed. "
        "BPRS: 0 = not rated.",
    ),
    band_set: str | None = typer.Option(
        None, "--band-set", help="Severity band set (e.g. zimmerman2013)"
    ),
    definition_file: Path | None = typer.Option(  # noqa: B008
        None, "--definition",
        help="Score with a clinic-supplied definition file instead (- for stdin)"
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Score one form and print total, severity band and alerts."""
    try:
        definition = _definition(instrument, definition_file)
        result = score_answers(definition, parse_answer_text(answers), band_set=band_set)
    except ClinicalInputError as exc:
        raise fail(str(exc)) from None
    if as_json:
        emit(result.as_dict(), as_json)
        return
    console = Console()
    total = "not scorable" if result.total is None else str(result.total)
    console.print(
        f"[bold]{definition.short_name}[/bold] ({result.rule_version}): total {total}, "
        f"severity {result.severity or '—'}, complete {result.complete}, prorated {result.prorated}"
    )
    for alert in result.alerts:
        console.print(f"[red]ALERT[/red] [{alert.priority}] {alert.message}")
    for note in result.notes:
        console.print(f"  note: {note}")


def _definition(instrument: str, path: Path | None) -> InstrumentDefinition:
    if path is None:
        return load_bundled(instrument)
    definition = _read_definition(path)
    if definition.id != instrument:
        raise ClinicalInputError(f"{path}: defines {definition.id!r}, not {instrument!r}")
    return definition


def _read_definition(path: Path) -> InstrumentDefinition:
    try:
        text = read_text(path)
    except CliError as exc:
        raise ClinicalInputError(exc.message) from None
    return load_definition(text)


@instruments_app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """List the bundled instruments with their licence handling."""
    rows = [
        {
            "id": d.id,
            "name": d.short_name,
            "version": d.version,
            "items": len(d.items),
            "recall": d.recall_period,
            "handling": d.licence.handling,
        }
        for d in list_bundled()
    ]
    if as_json:
        emit(rows, as_json)
        return
    table = Table("id", "name", "version", "items", "recall", "licence handling")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)


@instruments_app.command("show")
def show_command(
    instrument: str = typer.Argument(..., help="Instrument id"),
    as_json: bool = typer.Option(False, "--json", help="Print the definition as one line of "
                                 "JSON (errors too)"),
) -> None:
    """Show one bundled definition: items, scoring, bands, alerts, licence."""
    try:
        definition = load_bundled(instrument)
    except ClinicalInputError as exc:
        raise fail(str(exc)) from None
    if as_json:
        emit(definition.raw, as_json)
        return
    _print_definition(definition)


@instruments_app.command("validate")
def validate_command(
    path: Path = typer.Argument(..., help="Definition JSON file, or - for stdin"),  # noqa: B008
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Validate a (clinic-supplied) definition file and print a summary; exit 2 if invalid."""
    try:
        definition = _read_definition(path)
    except ClinicalInputError as exc:
        raise fail(str(exc)) from None
    emit({"valid": True, "instrument": definition.id, "rule_version": definition.rule_version,
          "items": len(definition.items), "licence": definition.licence.handling}, as_json,
         f"valid: {definition.rule_version} ({len(definition.items)} items, "
         f"licence {definition.licence.handling})")


@instruments_app.command("load")
def load_command(
    path: Path = typer.Argument(..., help="Definition JSON file, or - for stdin"),  # noqa: B008
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Validate and store a clinic-supplied definition; it becomes the active version."""
    from ketaclinic.cli.core import open_services
    from ketaclinic.services.audit import SYSTEM

    text = read_text(path)
    svc = open_services()
    try:
        stored = svc.mbc.instruments.store(SYSTEM, text)
    finally:
        svc.close()
    emit({"instrument": stored.instrument_id, "version": stored.version,
          "sha256": stored.sha256, "active": True}, as_json,
         f"stored: {stored.instrument_id}@{stored.version} (active; sha256 "
         f"{stored.sha256[:12]}); item text from this file is shown on forms, "
         "scoring of bundled instruments is unchanged")


def _print_definition(d: InstrumentDefinition) -> None:
    console = Console()
    console.print(f"[bold]{d.name}[/bold] ({d.short_name}) {d.rule_version}")
    console.print(
        f"recall: {d.recall_period}; respondent: {d.respondent}; scoring: {d.scoring.method}"
    )
    console.print(
        f"licence ({d.licence.handling}, grade {d.licence.grade.value}): {d.licence.statement}"
    )
    table = Table("item", "label", "range", "code")
    for item in d.items:
        table.add_row(
            str(item.number), item.label, f"{item.min_score}..{item.max_score}", item.code
        )
    console.print(table)
    for band_set in d.band_sets:
        bands = ", ".join(f"{b.min_score}-{b.max_score} {b.label}" for b in band_set.bands)
        marker = " (default)" if band_set.name == d.default_band_set else ""
        console.print(f"bands {band_set.name}{marker}: {bands} [{band_set.source}]")
    for alert in d.alerts:
        console.print(
            f"alert {alert.rule}: item {alert.item} {alert.op} {alert.threshold} "
            f"({alert.priority}, grade {alert.grade.value})"
        )
    for tier in d.scoring.tiers:
        items = ", ".join(f"Q{c.item}" for c in tier.any_of)
        console.print(f"tier {tier.name}: any of {items} ({tier.priority})")

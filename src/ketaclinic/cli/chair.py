"""`ketaclinic chair ...`: course plans and controlled-substance deadlines from the command line."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ketaclinic.cli import app, fail
from ketaclinic.cli.output import JsonFlag, emit
from ketaclinic.clinical.courses import list_course_templates, load_course_template, plan_course
from ketaclinic.clinical.ledger_reports import loss_report_deadlines
from ketaclinic.clinical.rules import ClinicalInputError

chair = typer.Typer(help="Treatment courses, the session at the chair, and the CS ledger.",
                    no_args_is_help=True)
app.add_typer(chair, name="chair")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise fail(f"not a date (YYYY-MM-DD): {text!r}") from None


@chair.command("templates")
def templates(as_json: JsonFlag = False) -> None:
    """List the bundled course templates."""
    rows = [(t, load_course_template(t).name) for t in list_course_templates()]
    if as_json:
        emit([{"id": i, "name": n} for i, n in rows], as_json)
        return
    for template_id, name in rows:
        typer.echo(f"{template_id:32} {name}")


def _parse_weekdays(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(p) for p in text.split(","))
    except ValueError:
        raise fail("weekdays are comma-separated numbers, 0 = Monday") from None


def _parse_frequencies(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        phase, sep, freq = item.partition("=")
        if not sep:
            raise fail(f"frequency must be PHASE=FREQUENCY, got {item!r}")
        out[phase] = freq
    return out


@chair.command("plan")
def plan(
    template_id: Annotated[str, typer.Argument(help="Template id (see `chair templates`).")],
    start: Annotated[str, typer.Argument(help="First possible session date, YYYY-MM-DD.")],
    weekdays: Annotated[
        str | None, typer.Option(help="Preferred weekdays, e.g. 0,3 (0 = Monday).")
    ] = None,
    frequency: Annotated[
        list[str] | None, typer.Option(help="PHASE=FREQUENCY, e.g. induction=3x_weekly.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Plan the dated sessions of a course."""
    try:
        sessions = plan_course(load_course_template(template_id), _date(start),
                               _parse_weekdays(weekdays), _parse_frequencies(frequency or []))
    except ClinicalInputError as exc:
        raise fail(str(exc)) from None
    if as_json:
        emit([{"number": s.number, "date": s.on.isoformat(), "phase": s.phase,
               "dose": s.dose_text, "notes": list(s.notes)} for s in sessions], as_json)
        return
    table = Table("#", "date", "phase", "dose", "notes")
    for s in sessions:
        table.add_row(str(s.number), f"{s.on:%a %Y-%m-%d}", s.phase, s.dose_text,
                      "; ".join(s.notes))
    Console().print(table)


@chair.command("loss-deadlines")
def loss_deadlines(
    discovered_on: Annotated[str, typer.Argument(help="Date the theft or loss was discovered.")],
    holiday: Annotated[
        list[str] | None, typer.Option(help="Holiday to skip (repeatable), YYYY-MM-DD.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Deadlines after a theft or significant loss (21 CFR 1301.76(b))."""
    d = loss_report_deadlines(_date(discovered_on), [_date(h) for h in holiday or []])
    result = {"discovered_on": d.discovered_on.isoformat(),
              "written_notice_by": d.written_notice_by.isoformat(),
              "form_106_by": d.form_106_by.isoformat(), "sources": list(d.sources)}
    if as_json:
        emit(result, as_json)
        return
    typer.echo(f"Written notice to DEA by {result['written_notice_by']}")
    typer.echo(f"DEA Form 106 by {result['form_106_by']}")

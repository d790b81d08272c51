"""`ketaclinic import fhir|roster`: bring records in through the same services (docs/import.md)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ketaclinic.cli import app
from ketaclinic.cli.output import JSON_HELP, emit, read_text

import_app = typer.Typer(help="Import records: FHIR R4 Bundles, CSV patient rosters.",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")

_AS = typer.Option("--as", help="Act as this user (admin or prescriber); the import is audited "
                   "under that name")
_DRY = typer.Option("--dry-run", help="Report what would change; write nothing")
_JSON = typer.Option("--json", help=JSON_HELP + " A refused import lists every bad entry "
                     "under error.details.")


def _run(source: str, path: str, username: str, dry_run: bool, as_json: bool) -> None:
    from ketaclinic.cli.core import open_services
    from ketaclinic.services.fhir_import import ImportService
    from ketaclinic.services.import_model import EntryError, ImportRejected

    svc = open_services()
    try:
        importer = ImportService(svc.ctx)
        text = read_text(path, svc.settings.max_body_bytes)
        actor = importer.actor_for(username)
        if source == "fhir":
            try:
                bundle = json.loads(text)
            except ValueError as exc:
                raise ImportRejected([EntryError(-1, "Bundle", "", f"not JSON: {exc}")]) from exc
            report = importer.import_fhir(actor, bundle, dry_run=dry_run)
        else:
            report = importer.import_roster(actor, text, dry_run=dry_run)
    finally:
        svc.close()
    if as_json:
        emit(report.as_dict(), as_json)
        return
    for e in report.entries:
        typer.echo(f"{e['entry']}\t{e['resource_type']}\t{e['action']}\t{e.get('detail', '')}")
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items())) or "nothing"
    typer.echo(("dry run, nothing written: " if dry_run else "imported: ") + counts)


@import_app.command("fhir")
def import_fhir(
    file: Annotated[str, typer.Argument(help="A FHIR R4/R4B Bundle (JSON) or - for stdin")],
    username: Annotated[str, _AS],
    dry_run: Annotated[bool, _DRY] = False,
    as_json: Annotated[bool, _JSON] = False,
) -> None:
    """Import Patients, Conditions, MedicationStatements, AllergyIntolerances, body weights and
    PHQ-9/GAD-7 forms from a Bundle: all or nothing, duplicates matched on the MRN."""
    _run("fhir", file, username, dry_run, as_json)


@import_app.command("roster")
def import_roster(
    file: Annotated[str, typer.Argument(help="A CSV roster (docs/import.md) or - for stdin")],
    username: Annotated[str, _AS],
    dry_run: Annotated[bool, _DRY] = False,
    as_json: Annotated[bool, _JSON] = False,
) -> None:
    """Import patients (and a weight each) from a CSV roster: columns mrn, family, given,
    birth_date, sex, phone, email, weight_kg, weight_date. All or nothing."""
    _run("roster", file, username, dry_run, as_json)

"""`ketaclinic import fhir|roster`: bring records in through the same services (docs/import.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ketaclinic.cli import app, fail

import_app = typer.Typer(help="Import records: FHIR R4 Bundles, CSV patient rosters.",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")

_AS = typer.Option("--as", help="Act as this user (admin or prescriber); the import is audited "
                   "under that name")
_DRY = typer.Option("--dry-run", help="Report what would change; write nothing")
_JSON = typer.Option("--json", help="Print the report (or the errors) as JSON")


def _read(path: str, max_bytes: int) -> str:
    try:
        raw = sys.stdin.buffer.read(max_bytes + 1) if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror}") from exc
    if len(raw) > max_bytes:
        raise fail(f"{path} is larger than {max_bytes} bytes (KETACLINIC_MAX_BODY_BYTES)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise fail(f"{path} is not UTF-8 text") from exc


def _run(source: str, path: str, username: str, dry_run: bool, as_json: bool) -> None:
    from ketaclinic.cli.core import open_services
    from ketaclinic.services.errors import ServiceError
    from ketaclinic.services.interop.fhir_import import ImportService
    from ketaclinic.services.interop.import_model import EntryError, ImportRejected

    svc = open_services()
    try:
        importer = ImportService(svc.ctx)
        text = _read(path, svc.settings.max_body_bytes)
        actor = importer.actor_for(username)
        if source == "fhir":
            try:
                bundle = json.loads(text)
            except ValueError as exc:
                raise ImportRejected([EntryError(-1, "Bundle", "", f"not JSON: {exc}")]) from exc
            report = importer.import_fhir(actor, bundle, dry_run=dry_run)
        else:
            report = importer.import_roster(actor, text, dry_run=dry_run)
    except ImportRejected as exc:
        if as_json:
            typer.echo(json.dumps({"detail": str(exc),
                                   "errors": [e.as_dict() for e in exc.errors]}))
            raise typer.Exit(2) from exc
        for e in exc.errors:
            typer.echo(f"error: {e}", err=True)
        raise fail("nothing was imported") from exc
    except ServiceError as exc:
        if as_json:
            typer.echo(json.dumps({"detail": str(exc), "errors": []}))
            raise typer.Exit(2) from exc
        raise fail(str(exc)) from exc
    finally:
        svc.close()
    if as_json:
        typer.echo(json.dumps(report.as_dict(), default=str))
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

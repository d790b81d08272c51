"""`ketaclinic outcomes ...`: cohort statistics from the command line (no database needed), and
the outcome summary's rebuild (needs the database)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Annotated

import typer

from ketaclinic.cli import app, fail
from ketaclinic.cli.output import JsonFlag, emit, is_stdio, read_text, write_bytes

outcomes = typer.Typer(help="Outcome statistics (Wilson, rates, Kaplan-Meier); outcome summary.",
                       no_args_is_help=True)
app.add_typer(outcomes, name="outcomes")


@outcomes.command("rebuild-summary")
def rebuild_summary_command(as_json: JsonFlag = False) -> None:
    """Recompute the dashboard's outcome summary from all courses (after bulk loads or a change
    of outcome rules; writes keep it up to date otherwise)."""
    import time

    from ketaclinic.cli.core import open_services
    from ketaclinic.services.audit.trail import SYSTEM

    svc = open_services()
    try:
        t = time.perf_counter()
        counts = svc.outcomes.rebuild_summary(SYSTEM)
        seconds = time.perf_counter() - t
    finally:
        svc.close()
    emit({"rows": counts, "seconds": round(seconds, 3)}, as_json,
         f"outcome summary rebuilt in {seconds:.1f} s: "
         + ", ".join(f"{k} {v}" for k, v in counts.items()))


@outcomes.command("ci")
def ci_command(k: int, n: int, as_json: JsonFlag = False) -> None:
    """Proportion k/n with a 95 % Wilson score interval."""
    from ketaclinic.clinical.cohort import proportion_ci

    p = proportion_ci(k, n)  # a ClinicalInputError is exit 2 (cli.output)
    emit(p.as_dict(), as_json, p.label(1))


@outcomes.command("rate")
def rate_command(events: int, sessions: int, as_json: JsonFlag = False) -> None:
    """Events per 100 sessions with an exact Poisson 95 % interval."""
    from ketaclinic.clinical.cohort import rate_per_100_sessions

    r = rate_per_100_sessions(events, sessions)
    if as_json:
        emit(r.as_dict(), as_json)
    elif r.per_100 is None:
        typer.echo(f"{events} events in 0 sessions (–)")
    else:
        typer.echo(f"{r.per_100:.2f} per 100 sessions ({r.lo:.2f}–{r.hi:.2f}), "
                   f"{events} in {sessions}")


@outcomes.command("km")
def km_command(
    csv_path: Annotated[Path, typer.Argument(
        help="CSV with columns duration,event (1/0), or - for stdin")],
    at: Annotated[list[float] | None, typer.Option("--at", help="times for at-risk counts")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Kaplan-Meier median (with CI) and numbers at risk from a CSV of durations and events."""
    from ketaclinic.clinical.km import kaplan_meier
    from ketaclinic.clinical.rules import ClinicalInputError

    try:
        rows = list(csv.DictReader(io.StringIO(read_text(csv_path), newline="")))
        durations = [float(r["duration"]) for r in rows]
        events = [int(r["event"]) for r in rows]
        km = kaplan_meier(durations, events)
    except (OSError, KeyError, ValueError, ClinicalInputError) as exc:
        raise fail(f"cannot read {csv_path.name}: {exc}") from None
    at = at or []
    risk = dict(zip(at, km.at_risk(at), strict=True))
    if as_json:
        d = km.as_dict()
        d["at_risk"] = {str(k): v for k, v in risk.items()}
        emit(d, as_json)
        return

    def f(x: float) -> str:
        return "not reached" if math.isinf(x) else f"{x:g}"

    typer.echo(f"n={km.n} events={km.events} median={f(km.median)} "
               f"(95 % CI {f(km.median_lo)}–{f(km.median_hi)})")
    for t, n_risk in risk.items():
        typer.echo(f"at risk at {t:g}: {n_risk}")


export_app = typer.Typer(help="Export data: FHIR R4 bundles, de-identified research tables.",
                         no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("fhir")
def export_fhir(
    out: Annotated[str, typer.Option(
        "--out", help="Folder to write into (patient-<id>.json bundles, or <Type>.ndjson files); "
        "- writes NDJSON to stdout")],
    fmt: Annotated[str, typer.Option(
        "--format", help="collection or transaction (one Bundle per patient), or ndjson (one "
        "file per resource type, FHIR Bulk Data style)")] = "collection",
    patient: Annotated[list[int] | None, typer.Option(
        "--patient", help="Only this patient id (repeatable); default: all patients")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Export the whole record in FHIR R4 (audited as export.fhir_bulk). The summary goes to
    stdout, or to stderr when stdout carries the NDJSON (--out -)."""
    from ketaclinic.cli.core import open_services
    from ketaclinic.services.audit.trail import SYSTEM
    from ketaclinic.services.interop.fhir_bulk import FORMATS

    if fmt not in FORMATS:
        raise fail(f"--format must be one of {', '.join(FORMATS)}")
    if out == "-" and fmt != "ndjson":
        raise fail("--out - (stdout) needs --format ndjson; bundles are written one file per "
                   "patient")
    folder = None if out == "-" else Path(out)
    if folder is not None and folder.exists() and not folder.is_dir():
        raise fail(f"{out} exists and is not a folder")
    svc = open_services()
    try:
        if fmt == "ndjson":
            summary, data = _write_ndjson(svc, SYSTEM, patient or None, folder)
        else:
            assert folder is not None
            summary, data = _write_bundles(svc, SYSTEM, patient or None, folder, fmt)
    except OSError as exc:
        raise fail(f"cannot write to {out}: {exc.strerror}", 1) from exc
    finally:
        svc.close()
    emit({"format": fmt, "out": out, **data}, as_json, summary, err=folder is None)


def _write_ndjson(svc, actor, patients, folder: Path | None):
    import sys

    from ketaclinic.services.interop.fhir_bulk import NdjsonWriter

    resources = svc.outcomes.fhir_resources(actor, patients)
    writer = NdjsonWriter(folder=folder, stream=sys.stdout if folder is None else None)
    try:
        for r in resources:
            writer.write(r)
    finally:
        writer.close()
    counts = ", ".join(f"{k} {v}" for k, v in sorted(writer.counts.items()))
    return (f"wrote {len(resources)} resource(s) as NDJSON to {folder or 'stdout'}: {counts}",
            {"resources": len(resources), "counts": dict(sorted(writer.counts.items()))})


def _write_bundles(svc, actor, patients, folder: Path, kind: str):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    count, bundles = svc.outcomes.fhir_bundles(actor, patients, kind=kind)
    folder.mkdir(parents=True, exist_ok=True)
    with Progress(TextColumn("FHIR bundles"), BarColumn(), MofNCompleteColumn(),
                  console=Console(stderr=True)) as bar:
        task = bar.add_task("export", total=count)
        for pid, bundle in bundles:
            (folder / f"patient-{pid}.json").write_text(json.dumps(bundle, indent=1),
                                                        encoding="utf-8")
            bar.advance(task)
    return f"wrote {count} bundle(s) to {folder}", {"bundles": count}


@export_app.command("expire")
def export_expire(as_json: JsonFlag = False) -> None:
    """Delete the FHIR $export jobs older than KETACLINIC_EXPORT_RETENTION_HOURS (their files
    hold identified data); audited as export.fhir_expire. Run it on a timer (deploy/)."""
    from ketaclinic.cli.core import open_services
    from ketaclinic.services.audit.trail import SYSTEM

    svc = open_services()
    try:
        gone = svc.outcomes.fhir_jobs.expire(SYSTEM)
    finally:
        svc.close()
    emit({"deleted": len(gone), "jobs": gone}, as_json,
         f"deleted {len(gone)} expired $export job(s)")


@export_app.command("deidentified")
def export_deidentified(
    out: Annotated[str, typer.Option("--out", help="Zip file to write, or - for stdout")],
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    as_json: JsonFlag = False,
) -> None:
    """Write the de-identified research export (zip with the data dictionary). The summary
    goes to stdout, or to stderr when stdout carries the zip (--out -)."""
    from ketaclinic.cli.core import open_services
    from ketaclinic.services.audit.trail import SYSTEM

    svc = open_services()
    try:
        _name, data = svc.outcomes.deidentified_export(SYSTEM, fmt)
        write_bytes(out, data)
    finally:
        svc.close()
    emit({"out": out, "format": fmt, "bytes": len(data)}, as_json,
         f"wrote {'stdout' if is_stdio(out) else out} ({len(data)} bytes)", err=is_stdio(out))

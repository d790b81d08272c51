"""FHIR Bulk Data ``$export``-style jobs: kick-off, status, NDJSON files, delete.

A job is a folder under ``<data_dir>/fhir-exports/<job id>/`` holding ``owner.json`` (who asked,
what, when), the ``<Type>.ndjson`` files and, once written, ``manifest.json``. Any app process can
answer a status poll from the folder, so this works behind a load balancer on a shared data
folder. Only a user with the identified-export permission (admin, prescriber) may start a job;
only the user who started it may poll, download or delete it (others get "no such export").
Every step is audited: ``export.fhir_bulk`` (the data leaving), ``export.fhir_file`` (each
download), ``export.fhir_delete``. The files hold identified data: delete them when fetched;
jobs older than KEEP_HOURS are removed when the next one starts.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

from ketaclinic.services.audit import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.errors import InvalidInput, NotFound
from ketaclinic.services.exports import ExportService
from ketaclinic.services.fhir_bulk import NdjsonWriter
from ketaclinic.services.permissions import Perm

KEEP_HOURS = 24
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]{1,40}$")
EXPORTABLE = ("Patient", "Practitioner", "Encounter", "Condition", "AllergyIntolerance",
              "MedicationStatement", "MedicationRequest", "MedicationAdministration",
              "AdverseEvent", "Observation", "QuestionnaireResponse", "CarePlan")


def parse_since(text: str) -> dt.datetime:
    """A FHIR ``instant`` (date, time to the second, and a zone: ``2026-11-02T14:00:00Z``) as
    naive UTC, the storage convention; InvalidInput naming ``_since`` otherwise."""
    problem = ("_since: must be a FHIR instant with seconds and a time zone, e.g. "
               "2026-11-02T14:00:00Z or 2026-11-02T09:00:00-05:00")
    if not INSTANT.match(text):
        raise InvalidInput(problem)
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(problem) from None
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def instant_text(naive_utc: str) -> str:
    """A stored naive UTC time (ISO text) as a FHIR instant (``...Z``)."""
    return dt.datetime.fromisoformat(naive_utc).replace(tzinfo=dt.UTC).isoformat().replace(
        "+00:00", "Z")


class FhirExportJobs:
    def __init__(self, ctx: Context, exports: ExportService) -> None:
        self.ctx, self.exports = ctx, exports

    @property
    def root(self) -> Path:
        return Path(self.ctx.settings.data_dir) / "fhir-exports"

    def _folder(self, actor: Actor, job: str) -> Path:
        if not JOB_ID.match(job):
            raise NotFound("no such export")
        folder = self.root / job
        try:
            owner = json.loads((folder / "owner.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise NotFound("no such export") from exc
        if owner.get("user") != actor.username:
            raise NotFound("no such export")
        return folder

    def start(self, actor: Actor, types: list[str] | None, request_url: str,
              since: str | None = None) -> str:
        """Check the permission, the ``_type`` list and ``_since`` (a FHIR instant: only the
        resources changed since); create the job; its id."""
        self.ctx.require(actor, Perm.IDENTIFIED_EXPORT, "export.fhir_bulk")
        bad = [t for t in types or [] if t not in EXPORTABLE]
        if bad:
            raise InvalidInput(f"_type: not exported: {', '.join(bad)[:200]} (exported: "
                               f"{', '.join(EXPORTABLE)})")
        since_at = parse_since(since) if since is not None else None
        self._expire()
        job = secrets.token_hex(16)
        folder = self.root / job
        folder.mkdir(parents=True, exist_ok=False)
        (folder / "owner.json").write_text(json.dumps({
            "user": actor.username, "types": types or [], "request": request_url,
            "since": since_at.isoformat() if since_at else None,
            "transactionTime": self.ctx.clock().isoformat()}), encoding="utf-8")
        return job

    def _expire(self) -> None:
        """Delete jobs older than KEEP_HOURS (their files hold identified data)."""
        if not self.root.is_dir():
            return
        cutoff = self.ctx.clock() - dt.timedelta(hours=KEEP_HOURS)
        for folder in self.root.iterdir():
            try:
                owner = json.loads((folder / "owner.json").read_text(encoding="utf-8"))
                old = dt.datetime.fromisoformat(owner["transactionTime"]) < cutoff
            except (OSError, ValueError, KeyError, TypeError):
                old = False
            if old and JOB_ID.match(folder.name):
                shutil.rmtree(folder, ignore_errors=True)

    def run(self, actor: Actor, job: str, file_url: str) -> None:
        """Write the NDJSON files and the manifest (``error.json`` if it fails)."""
        folder = self._folder(actor, job)
        owner = json.loads((folder / "owner.json").read_text(encoding="utf-8"))
        wanted = set(owner["types"])
        try:
            since = owner.get("since")
            resources = self.exports.fhir_resources(
                actor, None, detail=f"$export job={job}" + (f"; since={since}" if since else ""),
                since=dt.datetime.fromisoformat(since) if since else None)
            writer = NdjsonWriter(folder=folder)
            try:
                for r in resources:
                    if not wanted or r["resourceType"] in wanted:
                        writer.write(r)
            finally:
                writer.close()
        except Exception as exc:  # noqa: BLE001 - recorded for the status poll, never a trace
            (folder / "error.json").write_text(json.dumps({"error": type(exc).__name__}),
                                               encoding="utf-8")
            return
        manifest = {
            "transactionTime": instant_text(owner["transactionTime"]),
            "request": owner["request"],
            "requiresAccessToken": True, "error": [],
            "output": [{"type": t, "url": f"{file_url.rstrip('/')}/{job}/{t}.ndjson",
                        "count": n} for t, n in sorted(writer.counts.items())],
        }
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")

    def status(self, actor: Actor, job: str) -> dict[str, Any] | None:
        """The manifest when done, None while running; raises when the job failed."""
        folder = self._folder(actor, job)
        if (folder / "error.json").exists():
            raise InvalidInput("the export failed; start a new one")
        path = folder / "manifest.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def file(self, actor: Actor, job: str, name: str) -> Path:
        """The path of one NDJSON file; audited as ``export.fhir_file``."""
        folder = self._folder(actor, job)
        rtype = name.removesuffix(".ndjson")
        if not name.endswith(".ndjson") or not TYPE_NAME.match(rtype):
            raise NotFound("no such file")
        path = folder / f"{rtype}.ndjson"
        if not path.is_file():
            raise NotFound("no such file")
        with self.ctx.db.transaction() as s:
            self.ctx.audit.record(s, actor, "export.fhir_file", at=self.ctx.clock(),
                                  detail=f"job={job}; file={rtype}.ndjson")
        return path

    def delete(self, actor: Actor, job: str) -> None:
        folder = self._folder(actor, job)
        shutil.rmtree(folder)
        with self.ctx.db.transaction() as s:
            self.ctx.audit.record(s, actor, "export.fhir_delete", at=self.ctx.clock(),
                                  detail=f"job={job}")

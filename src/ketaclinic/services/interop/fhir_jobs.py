"""FHIR Bulk Data ``$export``-style jobs: kick-off, status, NDJSON files, delete.

A job is a folder under ``<data_dir>/fhir-exports/<job id>/`` holding ``owner.json`` (who asked,
what, when; no patient data), the ``<Type>.ndjson.enc`` files and, once written,
``manifest.json``. Any app process can answer a status poll from the folder, so this works behind
a load balancer on a shared data folder. Only a user with the identified-export permission
(admin, prescriber) may start a job; only the user who started it may poll, download or delete
it (others get "no such export"). Every step is audited: ``export.fhir_bulk`` (the data
leaving), ``export.fhir_file`` (each download), ``export.fhir_delete``.

The files hold identified data, so they are encrypted at rest: each NDJSON line is sealed with
:class:`~ketaclinic.services.secretbox.SecretBox` (AES-256-GCM, key derived from
KETACLINIC_SECRET_KEY) bound to its job, type and line number (a line moved to another place or
file does not decrypt), and decrypted only while it is sent. A job older than
KETACLINIC_EXPORT_RETENTION_HOURS answers 404 and is deleted by :meth:`FhirExportJobs.expire`
(``ketaclinic export expire``, which the deployment runs on a timer) or, earlier, when any job
is started or touched.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.errors import InvalidInput, NotFound
from ketaclinic.services.interop.exports import ExportService
from ketaclinic.services.interop.fhir_bulk import NdjsonWriter
from ketaclinic.services.secretbox import SecretBox, SecretUnreadable

SEALED = ".enc"
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$",
                     re.ASCII)  # \d is 0-9 only
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
        self.box = SecretBox.for_secrets(ctx.settings.secret_key.get_secret_value())

    @property
    def root(self) -> Path:
        return Path(self.ctx.settings.data_dir) / "fhir-exports"

    def _folder(self, actor: Actor, job: str) -> Path:
        if not JOB_ID.match(job):
            raise NotFound("no such export")
        self._expire()
        folder = self.root / job
        try:
            owner = json.loads((folder / "owner.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise NotFound("no such export") from exc
        if owner.get("user") != actor.username:
            raise NotFound("no such export")
        return folder

    @staticmethod
    def _context(job: str, rtype: str, line: int) -> str:
        """Associated data of one sealed line: its job, file and place in the file."""
        return f"fhir-export|{job}|{rtype}.ndjson|{line}"

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

    def expire(self, actor: Actor) -> list[str]:
        """Delete every job older than the retention setting, whether or not anyone starts or
        reads a job again (``ketaclinic export expire``, run on a timer); the deleted job ids.
        Deleting identified data is audited as ``export.fhir_expire`` when there was some."""
        gone = self._expire()
        if gone:
            with self.ctx.unit_of_work(actor, "export.fhir_expire") as uow:
                uow.audit(detail=f"jobs={len(gone)}: {', '.join(gone)}"[:500])
        return gone

    def _expire(self) -> list[str]:
        """Delete jobs older than the retention setting (their files hold identified data)."""
        if not self.root.is_dir():
            return []
        cutoff = self.ctx.clock() - dt.timedelta(hours=self.ctx.settings.export_retention_hours)
        gone = []
        for folder in sorted(self.root.iterdir()):
            try:
                owner = json.loads((folder / "owner.json").read_text(encoding="utf-8"))
                old = dt.datetime.fromisoformat(owner["transactionTime"]) < cutoff
            except (OSError, ValueError, KeyError, TypeError):
                old = False
            if old and JOB_ID.match(folder.name):
                shutil.rmtree(folder, ignore_errors=True)
                gone.append(folder.name)
        return gone

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
            writer = NdjsonWriter(folder=folder, suffix=SEALED, seal=lambda rt, n, line: (
                self.box.encrypt(line, self._context(job, rt, n))))
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

    def file(self, actor: Actor, job: str, name: str) -> Iterator[bytes]:
        """One NDJSON file, decrypted line by line as it is sent; audited as
        ``export.fhir_file``. A file that does not decrypt (another secret key, or altered) is
        refused before anything is sent."""
        folder = self._folder(actor, job)
        rtype = name.removesuffix(".ndjson")
        if not name.endswith(".ndjson") or not TYPE_NAME.match(rtype):
            raise NotFound("no such file")
        path = folder / f"{rtype}.ndjson{SEALED}"
        if not path.is_file():
            raise NotFound("no such file")
        handle = path.open("r", encoding="utf-8")
        first = handle.readline()
        try:
            opened = self.box.decrypt(first.rstrip("\n"), self._context(job, rtype, 0))
        except SecretUnreadable as exc:
            handle.close()
            raise InvalidInput(f"the export file cannot be read ({exc}); start a new "
                               "export") from None
        with self.ctx.unit_of_work(actor, "export.fhir_file") as uow:  # owner-only: _folder
            uow.audit(detail=f"job={job}; file={rtype}.ndjson")
        return self._lines(handle, job, rtype, opened)

    def _lines(self, handle: IO[str], job: str, rtype: str, first: str) -> Iterator[bytes]:
        with handle:
            yield (first + "\n").encode("utf-8")
            for n, sealed in enumerate(handle, start=1):
                plain = self.box.decrypt(sealed.rstrip("\n"), self._context(job, rtype, n))
                yield (plain + "\n").encode("utf-8")

    def delete(self, actor: Actor, job: str) -> None:
        folder = self._folder(actor, job)
        shutil.rmtree(folder)
        with self.ctx.unit_of_work(actor, "export.fhir_delete") as uow:  # owner-only: _folder
            uow.audit(detail=f"job={job}")

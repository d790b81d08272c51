"""Import patients' records (FHIR Bundle or CSV roster) through the services the pages use.

* **All or nothing.** The whole import runs in ONE database transaction: the patient, weight,
  diagnosis, medication, allergy and assessment services are given a view of the database whose
  ``transaction()`` is that one unit of work, so their validation, amendments and audit rows
  apply unchanged, and the first entry a service refuses rolls everything back.
* **Dry run.** The same work runs and is rolled back; the report says what would change.
* **Duplicates** are matched on the MRN (see :func:`fhir_import_parse._mrn`): an existing
  patient is amended (old values kept in the history), never overwritten; a weight, diagnosis,
  medication, allergy or form the patient already has is reported ``unchanged``.
* The attempt is audited (``import.fhir`` / ``import.roster``: ok, dry_run or rejected) with
  counts only, never patient data. Importing needs ``Perm.IMPORT`` (admin, prescriber).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.schemas import (
    AllergyCreate,
    AllergyDeactivate,
    DiagnosisCreate,
    DiagnosisDeactivate,
    MedicationCreate,
    PatientUpdate,
    WeightCreate,
)
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.errors import NotFound, ServiceError
from ketaclinic.services.interop.import_model import (
    ChildItem,
    EntryError,
    ImportItem,
    ImportRejected,
    PatientItem,
    SkippedItem,
)
from ketaclinic.services.mbc.assessments import AssessmentService
from ketaclinic.services.mbc.instruments import InstrumentCatalogue
from ketaclinic.services.registry.medication_vocab import normalised
from ketaclinic.services.registry.patients import EDITABLE, PatientService
from ketaclinic.services.unit_of_work import UnitOfWork
from ketaclinic.store.db import Database
from ketaclinic.store.tables import (
    Patient,
    PatientAllergy,
    PatientDiagnosis,
    PatientMedication,
    PatientWeight,
    User,
)
from ketaclinic.store.tables_treatment import Assessment


@dataclass
class ImportReport:
    source: str
    dry_run: bool
    entries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(e["action"] for e in self.entries))

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "dry_run": self.dry_run, "counts": self.counts,
                "entries": self.entries}


class _OneTransaction(Database):
    """A Database whose ``transaction()`` is the import's single unit of work (engines and
    session factory are the wrapped database's own)."""

    def __init__(self, db: Database, session: Session) -> None:
        self.engine, self.read_engine = db.engine, db.read_engine
        self._sessions, self._session = db.session_factory, session

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        yield self._session


class ImportService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def actor_for(self, username: str) -> Actor:
        """The active user ``username`` as an actor (the CLI's ``--as``)."""
        with self.ctx.db.transaction() as s:
            user = s.execute(select(User).where(User.username == username)).scalar_one_or_none()
        if user is None or not user.active:
            raise NotFound(f"no active user {username!r}")
        return Actor(user_id=user.id, username=user.username, role=user.role)

    def import_fhir(self, actor: Actor, bundle: Any, *, dry_run: bool = False) -> ImportReport:
        """Import a FHIR Bundle (a parsed JSON object)."""
        from ketaclinic.services.interop.fhir_import_parse import DEFAULT_MRN_SYSTEM, parse_bundle

        system = getattr(self.ctx.settings, "fhir_mrn_system", None) or DEFAULT_MRN_SYSTEM
        return self._parse_and_run(actor, "fhir", lambda: parse_bundle(
            bundle, mrn_system=system), dry_run)

    def import_roster(self, actor: Actor, text: str, *, dry_run: bool = False) -> ImportReport:
        """Import a CSV roster (see :mod:`ketaclinic.services.interop.roster_import`)."""
        from ketaclinic.services.interop.roster_import import parse_roster

        return self._parse_and_run(actor, "roster", lambda: parse_roster(text), dry_run)

    def _parse_and_run(self, actor: Actor, source: str, parse: Any,
                       dry_run: bool) -> ImportReport:
        work = self.ctx.unit_of_work(actor, f"import.{source}", perm=Perm.IMPORT)
        try:
            items = parse()
        except ImportRejected as exc:
            work.record_failure("rejected", detail=_safe_detail(exc))
            raise
        return self._run(work, items, source=source, dry_run=dry_run)

    def run(self, actor: Actor, items: list[ImportItem], *, source: str,
            dry_run: bool = False) -> ImportReport:
        """Apply the items in one transaction (rolled back for a dry run)."""
        work = self.ctx.unit_of_work(actor, f"import.{source}", perm=Perm.IMPORT)
        return self._run(work, items, source=source, dry_run=dry_run)

    def _run(self, work: UnitOfWork, items: list[ImportItem], *, source: str,
             dry_run: bool) -> ImportReport:
        report = ImportReport(source, dry_run)
        try:
            with work as uow:
                applier = _Applier(self._shared(uow.session), uow.actor, uow.session)
                for item in items:
                    report.entries.append(applier.apply(item))
                detail = ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items()))
                if dry_run:
                    raise _DryRun  # the unit rolls back everything it applied
                uow.audit(detail=f"{len(items)} entries: {detail}"[:500])
        except _DryRun:
            work.record_failure("dry_run", detail=f"{len(items)} entries: {detail}"[:500])
        except ServiceError as exc:
            work.record_failure("rejected", detail=_safe_detail(exc))
            raise
        return report

    def _shared(self, session: Session) -> Context:
        return Context(settings=self.ctx.settings, db=_OneTransaction(self.ctx.db, session),
                       audit=self.ctx.audit, clock=self.ctx.clock)


class _DryRun(Exception):  # noqa: N818 - not an error: the signal that undoes a dry run
    """Raised inside a dry run's unit of work so that the unit rolls back."""


def _safe_detail(exc: ServiceError) -> str:
    """Where the import failed, without the message (it may quote patient data)."""
    if isinstance(exc, ImportRejected):
        return "; ".join(f"entry {e.entry} {e.resource_type} {e.field}"
                         for e in exc.errors[:10])[:500]
    return type(exc).__name__


class _Applier:
    """Applies items one by one through the services, in the shared transaction."""

    def __init__(self, ctx: Context, actor: Actor, session: Session) -> None:
        self.ctx, self.actor, self.s = ctx, actor, session
        self.patients = PatientService(ctx)
        self.assessments = AssessmentService(ctx, InstrumentCatalogue(ctx))
        self.ids: dict[str, int] = {}

    def apply(self, item: ImportItem) -> dict[str, Any]:
        out: dict[str, Any] = {"entry": item.entry, "resource_type": item.resource_type}
        if isinstance(item, SkippedItem):
            return {**out, "action": "skipped", "detail": item.reason}
        try:
            if isinstance(item, PatientItem):
                action, pid, detail = self._patient(item)
            else:
                parent = self.ids.get(item.patient_key)
                if parent is None:
                    raise ImportRejected([EntryError(item.entry, item.resource_type, "subject",
                                                     "its patient was not imported")])
                pid = parent
                action, detail = self._child(item, pid)
        except ImportRejected:
            raise
        except ServiceError as exc:
            raise ImportRejected([EntryError(item.entry, item.resource_type,
                                             _field_of(str(exc)), str(exc))]) from exc
        review = getattr(item, "review", "")
        if review:  # a status the import could not take as given: a person checks it
            return {**out, "action": action, "patient_id": pid,
                    "detail": f"{detail}; review: {review}", "review": review}
        return {**out, "action": action, "patient_id": pid, "detail": detail}

    # --- patients ------------------------------------------------------------------------
    def _patient(self, item: PatientItem) -> tuple[str, int, str]:
        from ketaclinic.schemas import PatientCreate

        existing = self.s.execute(select(Patient).where(Patient.mrn == item.mrn)
                                  ).scalar_one_or_none()
        if existing is None:
            summary, _ = self.patients.create(self.actor, PatientCreate(mrn=item.mrn,
                                                                        **item.fields))
            self.ids[item.key] = summary.id
            return "created", summary.id, ""
        self.ids[item.key] = existing.id
        current = {name: getattr(existing, name) for name in EDITABLE}
        wanted = {**current, **item.fields, "mrn": item.mrn}
        changed = [n for n in EDITABLE if wanted[n] != current[n]]
        if not changed:
            return "unchanged", existing.id, "matched on MRN"
        self.patients.update(self.actor, existing.id,
                             PatientUpdate(**wanted, version=existing.version))
        return "amended", existing.id, "matched on MRN; amended: " + ", ".join(changed)

    # --- children ------------------------------------------------------------------------
    def _child(self, item: ChildItem, pid: int) -> tuple[str, str]:
        handler = getattr(self, f"_{item.kind}")
        return handler(item, pid)

    def _has(self, model: Any, pid: int, *conditions: Any) -> bool:
        return self.s.execute(select(model.id).where(model.patient_id == pid, *conditions)
                              .limit(1)).first() is not None

    def _weight(self, item: ChildItem, pid: int) -> tuple[str, str]:
        from ketaclinic.services.registry.patients import _weight as parse_kg

        data = item.data_as(WeightCreate)
        kg = parse_kg(data.weight)
        day = data.measured_on
        if day is not None and self._has(PatientWeight, pid, PatientWeight.measured_on == day,
                                         PatientWeight.weight_kg == kg):
            return "unchanged", f"{kg} kg"
        stored = self.patients.add_weight(self.actor, pid, data)
        return "created", f"{stored} kg"

    def _diagnosis(self, item: ChildItem, pid: int) -> tuple[str, str]:
        d = item.data_as(DiagnosisCreate)
        label = f"{d.system} {d.code}"
        existing = self.s.execute(select(PatientDiagnosis).where(
            PatientDiagnosis.patient_id == pid, PatientDiagnosis.system == d.system,
            PatientDiagnosis.code == d.code).order_by(PatientDiagnosis.id)).scalars().first()
        if existing is not None:
            return "unchanged", label + _differs(existing, item)
        self.patients.add_diagnosis(self.actor, pid, d)
        if item.inactive_reason:
            self.patients.deactivate_diagnosis(self.actor, pid, self._newest(PatientDiagnosis, pid),
                                               DiagnosisDeactivate.model_validate(
                                                   {"reason": item.inactive_reason}))
            label += f", {item.inactive_reason}"
        return "created", label

    def _newest(self, model: Any, pid: int) -> int:
        """The id of the row just added for the patient (the services return none)."""
        newest: int = self.s.execute(select(model.id).where(model.patient_id == pid)
                                     .order_by(model.id.desc()).limit(1)).scalar_one()
        return newest

    def _medication(self, item: ChildItem, pid: int) -> tuple[str, str]:
        data = item.data_as(MedicationCreate)
        stored, found = normalised(data)
        label = stored.name + ("" if found.recognised else " (unrecognised: screening reviews)")
        if self._has(PatientMedication, pid, PatientMedication.name == stored.name,
                     PatientMedication.active == item.active):
            return "unchanged", label
        self.patients.add_medication(self.actor, pid, data)
        if not item.active:
            self.patients.record_medication_stop(
                self.actor, pid, self._newest(PatientMedication, pid), item.stopped_on,
                item.inactive_reason, item.note)
            label += f", stopped ({item.inactive_reason or 'reason not recorded'})"
        return "created", label

    def _allergy(self, item: ChildItem, pid: int) -> tuple[str, str]:
        d = item.data_as(AllergyCreate)
        existing = self.s.execute(select(PatientAllergy).where(
            PatientAllergy.patient_id == pid, PatientAllergy.substance == d.substance)
            .order_by(PatientAllergy.id)).scalars().first()
        if existing is not None:
            return "unchanged", d.substance + _differs(existing, item)
        self.patients.add_allergy(self.actor, pid, d)
        label = d.substance
        if item.inactive_reason:
            self.patients.deactivate_allergy(self.actor, pid, self._newest(PatientAllergy, pid),
                                             AllergyDeactivate.model_validate(
                                                 {"reason": item.inactive_reason}))
            label += f", {item.inactive_reason}"
        return "created", label

    def _assessment(self, item: ChildItem, pid: int) -> tuple[str, str]:
        when, naive = item.administered_at, None
        if when is not None:
            naive = when.astimezone(dt.UTC).replace(tzinfo=None)
            if self._has(Assessment, pid, Assessment.instrument_id == item.instrument_id,
                         Assessment.administered_at == naive):
                return "unchanged", item.instrument_id
        # One answer per item in order (None: not answered), as the clinic's forms store them.
        answers = [item.answers.get(n) for n in range(1, max(item.answers) + 1)]
        record, _ = self.assessments.record(self.actor, pid, item.instrument_id, answers,
                                            administered_at=naive)
        alerts = f"; {len(record.alerts)} alert(s) raised" if record.alerts else ""
        return "created", f"{item.instrument_id} total {record.total}{alerts}"


def _differs(row: Any, item: ChildItem) -> str:
    """An existing row is never overwritten: when the import's status differs, say so."""
    here = "active" if row.active else (row.inactive_reason or "inactive")
    there = item.inactive_reason or "active"
    return "" if here == there else f" (recorded here as {here}, the import says {there}: " \
        "not changed)"


def _field_of(message: str) -> str:
    head = message.split(":", 1)[0]
    return head if head and " " not in head and len(head) < 40 else ""

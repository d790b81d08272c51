"""The patient registry: create, search, view and amend, with history and audit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from ketaclinic.clinical.age import age_on
from ketaclinic.clinical.medications import MEDICATION_STOP_REASONS
from ketaclinic.clinical.rules import ClinicalInputError
from ketaclinic.clinical.units import parse_weight_kg
from ketaclinic.schemas import (
    AllergyCreate,
    AllergyDeactivate,
    DiagnosisCreate,
    DiagnosisDeactivate,
    MedicationCreate,
    MedicationStop,
    PatientCreate,
    PatientUpdate,
    WeightCreate,
)
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.errors import Conflict, InvalidInput, NotFound
from ketaclinic.services.idempotency import IdempotentRequest
from ketaclinic.services.paging import Paged, page_rows
from ketaclinic.services.registry.banner import PatientBanner, PatientBannerService
from ketaclinic.services.registry.medication_vocab import (
    MedicationLookup,
    is_recognised,
    normalised,
)
from ketaclinic.services.unit_of_work import UnitOfWork
from ketaclinic.store.tables import (
    Patient,
    PatientAllergy,
    PatientAmendment,
    PatientDiagnosis,
    PatientMedication,
    PatientWeight,
)

EDITABLE = ("mrn", "family_name", "given_name", "birth_date", "sex", "phone", "email",
            "address", "notes")
# A patient's list entry that is deactivated, never deleted.
_Deactivatable = TypeVar("_Deactivatable", PatientDiagnosis, PatientAllergy)


@dataclass(frozen=True)
class PatientSummary:
    id: int
    mrn: str
    family_name: str
    given_name: str
    birth_date: dt.date
    sex: str

    @property
    def display_name(self) -> str:
        return f"{self.family_name}, {self.given_name}"


@dataclass(frozen=True)
class PatientDetail(PatientSummary):
    phone: str
    email: str
    address: str
    notes: str
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    weights: list[dict] = field(default_factory=list)
    diagnoses: list[dict] = field(default_factory=list)
    medications: list[dict] = field(default_factory=list)
    allergies: list[dict] = field(default_factory=list)

    @property
    def latest_weight(self) -> dict | None:
        return self.weights[0] if self.weights else None

    def age_on(self, day: dt.date) -> int:
        return age_on(self.birth_date, day)


@dataclass(frozen=True)
class SearchPage:
    items: list[PatientSummary]
    total: int
    limit: int
    offset: int


class PossibleDuplicate(Conflict):
    """Same name and birth date as registered patients; nothing was saved."""

    def __init__(self, matches: list[PatientSummary]) -> None:
        super().__init__(f"{len(matches)} patient(s) with this name and date of birth are "
                         "already registered; check them, or confirm a different person")
        self.matches = matches


def _summary(p: Patient) -> PatientSummary:
    return PatientSummary(p.id, p.mrn, p.family_name, p.given_name, p.birth_date, p.sex)


def _search_name(given: str, family: str) -> str:
    return f"{given} {family}".lower()[:210]


def _as_text(value: object) -> str:
    return "" if value is None else value.isoformat() if isinstance(value, dt.date) else str(value)


def _weight(text: str) -> Decimal:
    try:
        return parse_weight_kg(text)
    except ClinicalInputError as exc:
        raise InvalidInput(f"weight: {exc}") from exc


class PatientService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # --- create ------------------------------------------------------------------------
    def create(
        self, actor: Actor, data: PatientCreate, idempotency_key: str | None = None, *,
        refuse_duplicates: bool = False,
    ) -> tuple[PatientSummary, bool]:
        """Register a patient. Returns (patient, created); the same user repeating a key with
        the same request gets the first patient back (services.idempotency).
        ``refuse_duplicates``: a patient with the same name and birth date raises
        :class:`PossibleDuplicate` (the form asks the user to confirm a different person)."""
        work = self.ctx.unit_of_work(actor, "patient.create", perm=Perm.PATIENT_WRITE)
        weight = _weight(data.weight) if data.weight else None
        req = IdempotentRequest.of(actor, "patient.create", idempotency_key, data)
        now = work.now

        def create(uow: UnitOfWork) -> tuple[PatientSummary, int]:
            s = uow.session
            if s.execute(select(Patient.id).where(Patient.mrn == data.mrn)).first():
                raise Conflict(f"MRN {data.mrn} is already registered")
            if refuse_duplicates:
                same = s.execute(select(Patient).where(
                    Patient.search_name == _search_name(data.given_name, data.family_name),
                    Patient.birth_date == data.birth_date).order_by(Patient.id).limit(10)
                ).scalars().all()
                if same:
                    raise PossibleDuplicate([_summary(p) for p in same])
            patient = Patient(
                **data.model_dump(exclude={"weight"}),
                search_name=_search_name(data.given_name, data.family_name),
                created_at=now, updated_at=now, created_by=actor.user_id,
            )
            s.add(patient)
            s.flush()
            if weight is not None:
                s.add(PatientWeight(patient_id=patient.id,
                                    measured_on=uow.today, weight_kg=weight,
                                    recorded_by=actor.user_id, recorded_at=now))
            uow.audit(patient_id=patient.id)
            return _summary(patient), patient.id

        def replay(uow: UnitOfWork, patient_id: int) -> tuple[PatientSummary, int]:
            patient = uow.session.get(Patient, patient_id)
            if patient is None:
                raise NotFound("the patient this request created no longer exists")
            return _summary(patient), patient_id

        return work.idempotency.run(req, create=create, replay=replay,
                                    conflict="this MRN or request was registered concurrently")

    # --- read --------------------------------------------------------------------------
    def search(
        self, actor: Actor, query: str = "", birth_date: dt.date | None = None,
        mrn: str = "", limit: int = 50, offset: int = 0,
    ) -> SearchPage:
        work = self.ctx.unit_of_work(actor, "patient.search", perm=Perm.PATIENT_READ)
        if len(query) > 200 or len(mrn) > 32:
            raise InvalidInput("search text is too long")
        stmt = select(Patient)
        for token in query.lower().split()[:6]:
            escaped = token.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(or_(Patient.search_name.like(f"%{escaped}%", escape="\\"),
                                  Patient.mrn == token.upper()))
        if birth_date is not None:
            stmt = stmt.where(Patient.birth_date == birth_date)
        if mrn.strip():
            stmt = stmt.where(Patient.mrn == mrn.strip().upper())
        with work as uow:
            page = page_rows(uow.session, stmt.order_by(Patient.family_name, Patient.given_name,
                                                        Patient.id), limit, offset)
            uow.audit_list([p.id for p in page], detail=f"{page.total} matches")
            return SearchPage([_summary(p) for p in page], page.total, page.limit or limit,
                              page.offset)

    def get(self, actor: Actor, patient_id: int, *, action: str = "patient.view") -> PatientDetail:
        with self.ctx.unit_of_work(actor, action, perm=Perm.PATIENT_READ,
                                   patient_id=patient_id) as uow:
            detail = self._detail(uow.session, uow.patients.get(patient_id))
            uow.audit(patient_id=patient_id)
            return detail

    def banner(self, actor: Actor, patient_id: int) -> PatientBanner:
        """Who a page is about: the banner's facts in one audited read."""
        return PatientBannerService(self.ctx).banner(actor, patient_id)

    def _detail(self, s: Session, p: Patient) -> PatientDetail:
        def rows(model, order):
            return s.execute(select(model).where(model.patient_id == p.id).order_by(*order)
                             ).scalars().all()

        weights = [{"measured_on": w.measured_on, "weight_kg": w.weight_kg}
                   for w in rows(PatientWeight, (PatientWeight.measured_on.desc(),
                                                 PatientWeight.id.desc()))]
        diagnoses = [{"id": d.id, "system": d.system, "code": d.code, "display": d.display,
                      "onset_on": d.onset_on, "active": d.active,
                      "inactive_reason": d.inactive_reason}
                     for d in rows(PatientDiagnosis, (PatientDiagnosis.id,))]
        meds = [{"id": m.id, "name": m.name, "drug_class": m.drug_class,
                 "daily_dose_mg": m.daily_dose_mg, "started_on": m.started_on, "active": m.active,
                 "recognised": is_recognised(m.name), "stopped_on": m.stopped_on,
                 "stop_reason": m.stop_reason, "stop_note": m.stop_note}
                for m in rows(PatientMedication, (PatientMedication.id,))]
        allergies = [{"id": a.id, "substance": a.substance, "reaction": a.reaction,
                      "active": a.active, "inactive_reason": a.inactive_reason}
                     for a in rows(PatientAllergy, (PatientAllergy.id,))]
        return PatientDetail(
            p.id, p.mrn, p.family_name, p.given_name, p.birth_date, p.sex, p.phone, p.email,
            p.address, p.notes, p.version, p.created_at, p.updated_at,
            weights, diagnoses, meds, allergies,
        )

    def history(self, actor: Actor, patient_id: int, limit: int | None = None,
                offset: int = 0) -> Paged[dict]:
        """Amendments of the record, newest first (``limit``/``offset``: one page of them)."""
        with self.ctx.unit_of_work(actor, "patient.history", perm=Perm.PATIENT_READ,
                                   patient_id=patient_id) as uow:
            uow.patients.get(patient_id)
            page = page_rows(uow.session, select(PatientAmendment).where(
                PatientAmendment.patient_id == patient_id).order_by(PatientAmendment.id.desc()),
                limit, offset)
            uow.audit(patient_id=patient_id)
            return page.map(lambda r: {
                "field": r.field, "old_value": r.old_value, "new_value": r.new_value,
                "changed_by": r.changed_by, "changed_at": r.changed_at, "version": r.version})

    # --- amend -------------------------------------------------------------------------
    def update(self, actor: Actor, patient_id: int, data: PatientUpdate) -> PatientDetail:
        """Amend the record; the old values are kept. A stale version raises Conflict."""
        work = self.ctx.unit_of_work(actor, "patient.update", perm=Perm.PATIENT_WRITE,
                                     patient_id=patient_id)
        now = work.now
        try:
            with work as uow:
                s = uow.session
                patient = uow.patients.get(patient_id)
                if patient.version != data.version:
                    raise Conflict(
                        f"this record changed since you opened it (you edited version "
                        f"{data.version}, it is now version {patient.version}); reload and "
                        "apply your changes again"
                    )
                if data.mrn != patient.mrn and s.execute(
                        select(Patient.id).where(Patient.mrn == data.mrn)).first():
                    raise Conflict(f"MRN {data.mrn} is already registered")
                changes = self._apply(patient, data)
                if changes:
                    patient.updated_at = now
                    patient.search_name = _search_name(patient.given_name, patient.family_name)
                    s.flush()  # bumps the version; a concurrent writer gets StaleDataError
                    for name, old, new in changes:
                        s.add(PatientAmendment(patient_id=patient.id, field=name, old_value=old,
                                               new_value=new, changed_by=actor.user_id,
                                               changed_at=now, version=patient.version))
                    uow.audit(patient_id=patient.id,
                              detail="fields: " + ", ".join(c[0] for c in changes))
                return self._detail(s, patient)
        except StaleDataError as exc:
            raise Conflict("this record was changed by someone else at the same moment; "
                           "reload and apply your changes again") from exc

    def _apply(self, patient: Patient, data: PatientUpdate) -> list[tuple[str, str, str]]:
        changes = []
        for name in EDITABLE:
            old, new = getattr(patient, name), getattr(data, name)
            if old != new:
                changes.append((name, _as_text(old), _as_text(new)))
                setattr(patient, name, new)
        return changes

    def _add_child(self, actor: Actor, patient_id: int, action: str, row: object,
                   amendment: str) -> None:
        with self.ctx.unit_of_work(actor, action, perm=Perm.PATIENT_WRITE,
                                   patient_id=patient_id) as uow:
            patient = uow.patients.get(patient_id)
            uow.session.add(row)
            uow.session.add(PatientAmendment(
                patient_id=patient.id, field=action.split(".")[1], old_value="",
                new_value=amendment, changed_by=actor.user_id, changed_at=uow.now,
                version=patient.version))
            uow.audit(patient_id=patient.id)

    def add_weight(self, actor: Actor, patient_id: int, data: WeightCreate) -> Decimal:
        weight = _weight(data.weight)
        now = self.ctx.clock()
        today = self.ctx.clinic_time.local_date(now)
        day = data.measured_on or today
        if day > today:
            raise InvalidInput("measured_on: is in the future")
        self._add_child(actor, patient_id, "patient.weight",
                        PatientWeight(patient_id=patient_id, measured_on=day, weight_kg=weight,
                                      recorded_by=actor.user_id, recorded_at=now),
                        f"{weight} kg on {day.isoformat()}")
        return weight

    def add_diagnosis(self, actor: Actor, patient_id: int, data: DiagnosisCreate) -> None:
        self._add_child(actor, patient_id, "patient.diagnosis",
                        PatientDiagnosis(patient_id=patient_id, **data.model_dump(),
                                         recorded_at=self.ctx.clock()),
                        f"{data.system} {data.code} {data.display}")

    def add_medication(self, actor: Actor, patient_id: int,
                       data: MedicationCreate) -> MedicationLookup:
        """Store the medicine as its vocabulary ingredient; say whether it was recognised."""
        data, found = normalised(data)
        self._add_child(actor, patient_id, "patient.medication",
                        PatientMedication(patient_id=patient_id, **data.model_dump(),
                                          recorded_at=self.ctx.clock()),
                        f"{data.name} {data.daily_dose_mg or ''} mg/day".strip())
        return found

    def add_allergy(self, actor: Actor, patient_id: int, data: AllergyCreate) -> None:
        self._add_child(actor, patient_id, "patient.allergy",
                        PatientAllergy(patient_id=patient_id, **data.model_dump(),
                                       recorded_at=self.ctx.clock()),
                        f"{data.substance} {data.reaction}".strip())

    def stop_medication(self, actor: Actor, patient_id: int, medication_id: int,
                        data: MedicationStop) -> str:
        """Stop a medication on a clinic-local day (default today) for a coded reason; the row
        stays (history, FHIR). Stopping one already stopped with other values amends its stop
        (a day left out keeps the one it has). Returns "stopped", "amended" or "unchanged" (a
        repeated request changes nothing)."""
        return self._stop_medication(
            actor, patient_id, medication_id,
            lambda med, today: data.stopped_on or (today if med.active else med.stopped_on),
            data.reason, data.note)

    def record_medication_stop(self, actor: Actor, patient_id: int, medication_id: int,
                               stopped_on: dt.date | None, reason: str | None,
                               note: str = "") -> str:
        """:meth:`stop_medication` for a stop known only as far as it goes (an import): a day
        or a reason that is None is stored as not recorded, never as one nobody gave."""
        return self._stop_medication(actor, patient_id, medication_id,
                                     lambda _med, _today: stopped_on, reason, note)

    def _stop_medication(self, actor: Actor, patient_id: int, medication_id: int,
                         day_of: Callable[[PatientMedication, dt.date], dt.date | None],
                         reason: str | None, note: str) -> str:
        with self.ctx.unit_of_work(actor, "patient.medication", perm=Perm.PATIENT_WRITE,
                                   patient_id=patient_id) as uow:
            s, now = uow.session, uow.now
            med = s.get(PatientMedication, medication_id)
            if med is None or med.patient_id != patient_id:
                raise NotFound("no such medication for this patient")
            today = self.ctx.clinic_time.local_date(now)
            day = day_of(med, today)
            _check_stop_day(day, med.started_on, today)
            new = (day, reason, note or None)
            old = None if med.active else (med.stopped_on, med.stop_reason, med.stop_note)
            if old == new:
                return "unchanged"
            patient = uow.patients.get(patient_id)
            s.add(PatientAmendment(
                patient_id=patient_id, field="medication",
                old_value=f"{med.name} active" if old is None else _stop_text(med.name, *old),
                new_value=_stop_text(med.name, *new), changed_by=actor.user_id,
                changed_at=now, version=patient.version))
            med.active = False
            med.stopped_on, med.stop_reason, med.stop_note = new
            med.updated_at = now  # a client's next FHIR $export?_since= gets the change
            outcome = "stopped" if old is None else "amended"
            uow.audit(patient_id=patient_id, detail=f"{outcome} ({reason or 'no reason'})")
            return outcome

    def deactivate_diagnosis(self, actor: Actor, patient_id: int, diagnosis_id: int,
                             data: DiagnosisDeactivate) -> bool:
        """Mark a diagnosis resolved or entered in error; the row stays (history, FHIR).
        False when it already was, for this reason (a repeated request changes nothing)."""
        return self._deactivate(actor, patient_id, "patient.diagnosis", PatientDiagnosis,
                                diagnosis_id, data.reason,
                                lambda d: f"{d.system} {d.code} {d.display}")

    def deactivate_allergy(self, actor: Actor, patient_id: int, allergy_id: int,
                           data: AllergyDeactivate) -> bool:
        """Mark an allergy entered in error or refuted; the row stays (history, FHIR).
        False when it already was, for this reason (a repeated request changes nothing)."""
        return self._deactivate(actor, patient_id, "patient.allergy", PatientAllergy,
                                allergy_id, data.reason, lambda a: a.substance)

    def _deactivate(self, actor: Actor, patient_id: int, action: str,
                    model: type[_Deactivatable], row_id: int,
                    reason: str, label: Callable[[_Deactivatable], str]) -> bool:
        what = action.split(".")[1]
        with self.ctx.unit_of_work(actor, action, perm=Perm.PATIENT_WRITE,
                                   patient_id=patient_id) as uow:
            s, now = uow.session, uow.now
            row = s.get(model, row_id)
            if row is None or row.patient_id != patient_id:
                raise NotFound(f"no such {what} for this patient")
            if not row.active and row.inactive_reason == reason:
                return False
            patient = uow.patients.get(patient_id)
            old = "active" if row.active else f"inactive ({row.inactive_reason or 'no reason'})"
            s.add(PatientAmendment(patient_id=patient_id, field=what,
                                   old_value=f"{label(row)} {old}",
                                   new_value=f"{label(row)} inactive ({reason})",
                                   changed_by=actor.user_id, changed_at=now,
                                   version=patient.version))
            row.active = False
            row.inactive_reason = reason
            row.updated_at = now  # a client's next FHIR $export?_since= gets the change
            uow.audit(patient_id=patient_id, detail=reason)
            return True


def _check_stop_day(day: dt.date | None, started_on: dt.date | None, today: dt.date) -> None:
    if day is None:
        return
    if day > today:
        raise InvalidInput("stopped_on: is in the future")
    if started_on is not None and day < started_on:
        raise InvalidInput("stopped_on: is before the day the medication was started")


def _stop_text(name: str, day: dt.date | None, reason: str | None, note: str | None) -> str:
    """How the history shows a stop; what nobody recorded says so."""
    when = day.isoformat() if day else "date not recorded"
    why = MEDICATION_STOP_REASONS.get(reason or "", "reason not recorded")
    return f"{name} stopped {when}, {why}" + (f": {note}" if note else "")

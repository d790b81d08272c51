"""Eligibility screening and dose safety for one patient: facts, screenings, dose orders.

Every result records the rule set ``id@version`` that produced it. A dose is saved only when the
clinical core's fail-closed checker (:func:`check_dose_safely`) finds nothing hard and every soft
finding carries a coded reason plus free text; no role can pass a hard finding. Reads are
audited like writes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from ketaclinic.clinical.dose_checks import (
    DoseCheckResult,
    Override,
    check_dose,
    check_dose_safely,
    missing_overrides,
    override_records,
)
from ketaclinic.clinical.dose_plan import DosePlan, DoseRequest, WeightFacts
from ketaclinic.clinical.eligibility import screen_patient
from ketaclinic.clinical.treatment_chain import check_signoff
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.dosing.facts import (
    load_facts,
    patient_facts,
    screening_input,
    validate_facts,
)
from ketaclinic.services.dosing.inputs import DoseInput, VerbalOrderInput, to_dose_request
from ketaclinic.services.dosing.plan import order_columns, plan_dose
from ketaclinic.services.dosing.rulesets import RuleSetService
from ketaclinic.services.dosing.treatment_chain import (
    refuse_on_hard,
    screening_finding,
    screening_state,
)
from ketaclinic.services.errors import Conflict, InvalidInput, NotFound
from ketaclinic.services.idempotency import IdempotentRequest
from ketaclinic.services.paging import Paged, page_rows
from ketaclinic.services.unit_of_work import UnitOfWork
from ketaclinic.store.tables import Patient, PatientAmendment, PatientWeight
from ketaclinic.store.tables_dosing import DoseOrder as DoseOrderRow
from ketaclinic.store.tables_dosing import (
    DoseOverride,
    PatientClinicalFacts,
    Screening,
    ScreeningSignoff,
)
from ketaclinic.store.tables_treatment import Course

Checker = Callable[..., DoseCheckResult]


class DoseBlocked(InvalidInput):
    """The dose cannot be saved: a hard finding, or soft findings without a reason."""

    def __init__(self, message: str, plan: DosePlan, missing: tuple[str, ...]) -> None:
        super().__init__(message)
        self.plan = plan
        self.missing = missing


@dataclass(frozen=True)
class ScreeningRecord:
    id: int
    treatment: str
    rule_set: str
    decision: str
    maudsley_score: int | None
    adequate_failed_trials: int
    findings: list[dict[str, Any]]
    screened_on: dt.date
    expires_on: dt.date
    screened_by: int | None
    created_at: dt.datetime

    def expired(self, today: dt.date) -> bool:
        return today > self.expires_on

    def as_dict(self, today: dt.date) -> dict[str, Any]:
        return {"id": self.id, "treatment": self.treatment, "rule_set": self.rule_set,
                "decision": self.decision, "maudsley_score": self.maudsley_score,
                "adequate_failed_trials": self.adequate_failed_trials,
                "findings": self.findings, "screened_on": self.screened_on.isoformat(),
                "expires_on": self.expires_on.isoformat(), "expired": self.expired(today),
                "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class DoseRecord:
    id: int
    treatment: str
    route: str
    rule_set: str
    dose_mg: float
    mg_per_kg: float | None
    weight_kg: float | None
    infusion_min: float | None
    rate_ml_per_h: float | None
    phase: str
    session_number: int | None
    devices: int | None
    checks: list[dict[str, Any]]
    overrides: list[dict[str, Any]] = field(default_factory=list)
    ordered_by: int | None = None
    created_at: dt.datetime | None = None
    concentration_mg_per_ml: float | None = None
    course_id: int | None = None
    status: str = "signed"  # signed | verbal (awaiting countersignature) | countersigned
    verbal_prescriber_id: int | None = None
    countersigned_at: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, dt.datetime) else v)
                for k, v in self.__dict__.items()}


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


def _screening(row: Screening) -> ScreeningRecord:
    return ScreeningRecord(row.id, row.treatment, row.ruleset_ref, row.decision,
                           row.maudsley_score, row.adequate_failed_trials,
                           json.loads(row.findings_json), row.screened_on, row.expires_on,
                           row.screened_by, row.created_at)


class DosingService:
    """Screening and dose orders; ``checker`` is the dose checker (replaceable in tests)."""

    def __init__(self, ctx: Context, checker: Checker = check_dose) -> None:
        self.ctx = ctx
        self.rulesets = RuleSetService(ctx)
        self.checker = checker

    # --- clinical facts -----------------------------------------------------------------
    def get_facts(self, actor: Actor, patient_id: int) -> tuple[dict[str, Any], int | None]:
        with self.ctx.unit_of_work(actor, "facts.view", perm=Perm.PATIENT_READ,
                                   patient_id=patient_id) as uow:
            s = uow.session
            uow.patients.get(patient_id)
            facts = load_facts(s, patient_id)
            uow.audit(patient_id=patient_id)
            return facts

    def save_facts(self, actor: Actor, patient_id: int, facts: dict[str, Any],
                   version: int | None) -> int:
        """Store the patient's clinical facts; the old document is kept as an amendment."""
        work = self.ctx.unit_of_work(actor, "facts.update", perm=Perm.PATIENT_WRITE,
                                     patient_id=patient_id)
        doc = validate_facts(facts)
        now = work.now
        try:
            with work as uow:
                s = uow.session
                patient = uow.patients.get(patient_id)
                row = s.execute(select(PatientClinicalFacts).where(
                    PatientClinicalFacts.patient_id == patient_id)).scalar_one_or_none()
                new_text = json.dumps(doc, sort_keys=True)
                if row is None:
                    if version not in (None, 0):
                        raise Conflict("these facts changed since you opened them; reload")
                    row = PatientClinicalFacts(patient_id=patient_id, facts_json=new_text,
                                               updated_by=actor.user_id, updated_at=now)
                    s.add(row)
                    old_text = ""
                else:
                    if version is not None and version != row.version:
                        raise Conflict(f"these facts changed since you opened them (you edited "
                                       f"version {version}, it is now {row.version}); reload "
                                       "and apply your changes again")
                    old_text = row.facts_json
                    if old_text == new_text:
                        return row.version
                    row.facts_json, row.updated_by, row.updated_at = new_text, actor.user_id, now
                s.flush()
                s.add(PatientAmendment(patient_id=patient_id, field="clinical_facts",
                                       old_value=old_text, new_value=new_text,
                                       changed_by=actor.user_id, changed_at=now,
                                       version=patient.version))
                uow.audit(patient_id=patient_id)
                return row.version
        except (StaleDataError, IntegrityError) as exc:
            raise Conflict("these facts were changed by someone else at the same moment; "
                           "reload and apply your changes again") from exc

    # --- screening ----------------------------------------------------------------------
    def screen(self, actor: Actor, patient_id: int, treatment: str) -> ScreeningRecord:
        """Run and store a screening with the clinic's active rule set for ``treatment``."""
        work = self.ctx.unit_of_work(actor, "screening.create", perm=Perm.PRESCRIBE,
                                     patient_id=patient_id)
        now = work.now
        with work as uow:
            s = uow.session
            patient = uow.patients.get(patient_id)
            rs = self.rulesets.active_in(s, treatment)
            today = self.ctx.clinic_time.local_date(now)
            doc = screening_input(s, patient, today)
            result = screen_patient(patient_facts(doc), treatment, rs, today)
            row = Screening(
                patient_id=patient_id, treatment=treatment, ruleset_ref=result.rule_set,
                decision=result.decision,
                maudsley_score=result.maudsley.total if result.maudsley else None,
                adequate_failed_trials=result.adequate_failed_trials,
                findings_json=json.dumps([f.as_dict() for f in result.findings], default=str),
                inputs_json=json.dumps(doc, default=str), screened_on=result.screened_on,
                expires_on=result.expires_on, screened_by=actor.user_id, created_at=now)
            s.add(row)
            s.flush()
            uow.audit(patient_id=patient_id,
                      detail=f"{treatment} {result.decision} ({result.rule_set})")
            return _screening(row)

    def sign_off(self, actor: Actor, patient_id: int, screening_id: int,
                 reason: str) -> ScreeningRecord:
        """A prescriber's recorded sign-off of a screening that needs review (or that new
        contraindications or medicines re-opened); the core decides whether it may be signed."""
        work = self.ctx.unit_of_work(actor, "screening.signoff", perm=Perm.PRESCRIBE,
                                     patient_id=patient_id)
        now = work.now
        with work as uow:
            s = uow.session
            patient = uow.patients.get(patient_id)
            row = s.get(Screening, screening_id)
            if row is None or row.patient_id != patient_id:
                raise NotFound("no such screening for this patient")
            state = screening_state(s, patient_id, row.treatment)
            if state is None or state.screening_id != row.id:
                raise InvalidInput("only the latest screening can be signed off (nothing was "
                                   "saved)")
            today = self.ctx.clinic_time.local_date(now)
            current = screening_input(s, patient, today)
            refuse_on_hard([check_signoff(state, current, today, reason,
                                          self.rulesets.active_in(s, row.treatment))])
            s.add(ScreeningSignoff(screening_id=row.id, patient_id=patient_id,
                                   reason=reason.strip()[:1000],
                                   inputs_json=json.dumps(current, default=str),
                                   signed_by=actor.user_id, signed_at=now))
            uow.audit(patient_id=patient_id,
                      detail=f"screening {row.id} {row.treatment} {row.decision}")
            return _screening(row)

    def list_screenings(self, actor: Actor, patient_id: int, limit: int = 50,
                        offset: int = 0) -> Paged[ScreeningRecord]:
        with self.ctx.unit_of_work(actor, "screening.list", perm=Perm.PATIENT_READ,
                                   patient_id=patient_id) as uow:
            s = uow.session
            uow.patients.get(patient_id)
            page = page_rows(s, select(Screening).where(Screening.patient_id == patient_id)
                             .order_by(Screening.created_at.desc(), Screening.id.desc()),
                             limit, offset)
            uow.audit(patient_id=patient_id)
            return page.map(_screening)

    # --- doses --------------------------------------------------------------------------
    def _weights(self, s: Session, patient_id: int) -> WeightFacts:
        rows = s.execute(select(PatientWeight).where(PatientWeight.patient_id == patient_id)
                         .order_by(PatientWeight.measured_on.desc(), PatientWeight.id.desc())
                         .limit(2)).scalars().all()
        last_order = s.execute(select(DoseOrderRow.weight_kg).where(
            DoseOrderRow.patient_id == patient_id, DoseOrderRow.weight_kg.is_not(None))
            .order_by(DoseOrderRow.created_at.desc(), DoseOrderRow.id.desc()).limit(1)
        ).scalar_one_or_none()
        return WeightFacts(
            latest_kg=_f(rows[0].weight_kg) if rows else None,
            latest_on=rows[0].measured_on if rows else None,
            earlier_kg=_f(rows[1].weight_kg) if len(rows) > 1 else None,
            last_dose_weight_kg=_f(last_order),
        )

    def _previous(self, s: Session, patient_id: int, route: str) -> DoseOrderRow | None:
        return s.execute(select(DoseOrderRow).where(
            DoseOrderRow.patient_id == patient_id, DoseOrderRow.route == route)
            .order_by(DoseOrderRow.created_at.desc(), DoseOrderRow.id.desc()).limit(1)
        ).scalar_one_or_none()

    def _latest_screening(self, s: Session, patient_id: int, treatment: str) -> Screening | None:
        return s.execute(select(Screening).where(
            Screening.patient_id == patient_id, Screening.treatment == treatment)
            .order_by(Screening.created_at.desc(), Screening.id.desc()).limit(1)
        ).scalar_one_or_none()

    def _plan(self, s: Session, patient: Patient, req: DoseRequest) -> DosePlan:
        today = self.ctx.today()
        rs = self.rulesets.active_in(s, req.treatment)
        prev = self._previous(s, patient.id, req.route)
        self._check_course(s, patient, req)
        screening = screening_finding(s, patient, req.treatment, today)
        return plan_dose(
            req, rs, today=today, birth_date=patient.birth_date, sex=patient.sex,
            weights=self._weights(s, patient.id),
            previous_dose_mg=_f(prev.dose_mg) if prev else None,
            previous_mg_per_kg=_f(prev.mg_per_kg) if prev else None,
            screening=screening,
            check=lambda order, ruleset: check_dose_safely(order, ruleset, self.checker),
        )

    @staticmethod
    def _check_course(s: Session, patient: Patient, req: DoseRequest) -> None:
        """An order names the course it is for (closed loop): one of this patient's courses."""
        if req.course_id is None:
            return
        course = s.get(Course, req.course_id)
        if course is None or course.patient_id != patient.id:
            raise InvalidInput("course: no such course for this patient")

    def check(self, actor: Actor, patient_id: int, inp: DoseInput) -> DosePlan:
        """Calculate and check a dose without saving it."""
        req = to_dose_request(inp)
        with self.ctx.unit_of_work(actor, "dose.check", perm=Perm.PRESCRIBE,
                                   patient_id=patient_id) as uow:
            s = uow.session
            plan = self._plan(s, uow.patients.get(patient_id), req)
            uow.audit(patient_id=patient_id,
                      detail=f"{req.route}: {plan.status} ({plan.result.rule_set})")
            return plan

    def save(self, actor: Actor, patient_id: int, inp: DoseInput,
             idempotency_key: str | None = None) -> tuple[DoseRecord, bool]:
        """Save a dose order; :class:`DoseBlocked` (422) when a finding stops it. The same
        user repeating a key with the same request gets the first order back."""
        req = to_dose_request(inp)
        work = self.ctx.unit_of_work(actor, "dose.create", perm=Perm.PRESCRIBE,
                                     patient_id=patient_id)
        req_key = IdempotentRequest.of(actor, "dose.create", idempotency_key, patient_id, req)
        now = work.now

        def create(uow: UnitOfWork) -> tuple[DoseRecord, int]:
            s = uow.session
            patient = uow.patients.get(patient_id)
            plan = self._plan(s, patient, req)
            overrides = [Override(o.rule, o.reason_code, o.free_text, actor.username,
                                  now.isoformat()) for o in req.overrides]
            missing = missing_overrides(plan.result, overrides)
            if plan.result.blocked or missing:
                raise DoseBlocked(_blocked_message(plan.result, missing), plan, missing)
            record = self._insert(s, actor, patient, plan, overrides, now)
            return record, record.id

        def replay(uow: UnitOfWork, order_id: int) -> tuple[DoseRecord, int]:
            order = uow.session.get(DoseOrderRow, order_id)
            if order is None:
                raise NotFound("the dose order this request saved no longer exists")
            return self._record(uow.session, order), order.patient_id

        try:
            return work.idempotency.run(req_key, create=create, replay=replay,
                                        conflict="this dose was saved concurrently; reload")
        except DoseBlocked as exc:
            work.record_failure("blocked", patient_id=patient_id, detail=str(exc)[:500])
            raise

    def _insert(self, s: Session, actor: Actor, patient: Patient, plan: DosePlan,
                overrides: list[Override], now: dt.datetime) -> DoseRecord:
        if plan.record_weight_kg is not None:
            today = self.ctx.clinic_time.local_date(now)
            s.add(PatientWeight(patient_id=patient.id, measured_on=today,
                                weight_kg=plan.record_weight_kg, recorded_by=actor.user_id,
                                recorded_at=now))
            s.add(PatientAmendment(patient_id=patient.id, field="weight", old_value="",
                                   new_value=f"{plan.record_weight_kg} kg on "
                                   f"{today.isoformat()} (re-entered for a dose)",
                                   changed_by=actor.user_id, changed_at=now,
                                   version=patient.version))
            self.ctx.audit.record(s, actor, "patient.weight", at=now, patient_id=patient.id)
        row = DoseOrderRow(patient_id=patient.id, **order_columns(plan),
                           course_id=plan.request.course_id, status="signed",
                           checks_json=json.dumps([f.as_dict() for f in plan.result.checks],
                                                  default=str),
                           ordered_by=actor.user_id, created_at=now)
        s.add(row)
        s.flush()
        for rec in override_records(plan.result, overrides):
            s.add(DoseOverride(dose_order_id=row.id, rule=rec["rule"][:60],
                               reason_code=rec["reason_code"][:60],
                               free_text=str(rec["free_text"])[:1000],
                               value="" if rec["value"] is None else str(rec["value"])[:60],
                               limit_value="" if rec["limit"] is None else str(rec["limit"])[:60],
                               message=rec["message"][:500], ruleset_ref=rec["rule_set"],
                               user_id=actor.user_id, username=actor.username[:64], at=now))
        s.flush()
        self.ctx.audit.record(s, actor, "dose.create", at=now, patient_id=patient.id,
                              detail=f"{plan.request.route} {plan.result.rule_set}; "
                              f"{len(plan.result.soft_findings)} override(s)")
        return self._record(s, row)

    def _record(self, s: Session, row: DoseOrderRow) -> DoseRecord:
        overrides = [
            {"rule": o.rule, "reason_code": o.reason_code, "free_text": o.free_text,
             "value": o.value, "limit": o.limit_value, "user": o.username,
             "at": o.at.isoformat(), "rule_set": o.ruleset_ref}
            for o in s.execute(select(DoseOverride).where(DoseOverride.dose_order_id == row.id)
                               .order_by(DoseOverride.id)).scalars()]
        return DoseRecord(row.id, row.treatment, row.route, row.ruleset_ref, float(row.dose_mg),
                          _f(row.mg_per_kg), _f(row.weight_kg), _f(row.infusion_min),
                          _f(row.rate_ml_per_h), row.phase, row.session_number, row.devices,
                          json.loads(row.checks_json), overrides, row.ordered_by, row.created_at,
                          _f(row.concentration_mg_per_ml), row.course_id, row.status,
                          row.verbal_prescriber_id, row.countersigned_at)

    def take_verbal_order(self, actor: Actor, patient_id: int,
                          data: VerbalOrderInput) -> DoseRecord:
        """A verbal or telephone order taken at the chair (see :mod:`verbal_orders`); soft
        findings cannot be overridden on one, so ``data.overrides`` is not taken."""
        from ketaclinic.services.dosing.verbal_orders import take_verbal_order

        request = to_dose_request(data.model_copy(update={"overrides": ()}))
        return take_verbal_order(self, actor, patient_id, request, data.prescriber,
                                 data.read_back_confirmed)

    def countersign(self, actor: Actor, patient_id: int, order_id: int) -> DoseRecord:
        """The prescriber who gave a verbal order countersigns it."""
        from ketaclinic.services.dosing.verbal_orders import countersign

        return countersign(self, actor, patient_id, order_id)

    def list_doses(self, actor: Actor, patient_id: int, limit: int = 50,
                   offset: int = 0) -> Paged[DoseRecord]:
        with self.ctx.unit_of_work(actor, "dose.list", perm=Perm.PATIENT_READ,
                                   patient_id=patient_id) as uow:
            s = uow.session
            uow.patients.get(patient_id)
            page = page_rows(s, select(DoseOrderRow).where(DoseOrderRow.patient_id == patient_id)
                             .order_by(DoseOrderRow.created_at.desc(), DoseOrderRow.id.desc()),
                             limit, offset)
            uow.audit(patient_id=patient_id)
            return page.map(lambda r: self._record(s, r))

    # --- patient page panel -------------------------------------------------------------
    def panel(self, actor: Actor, patient_id: int) -> dict[str, Any]:
        """Latest screening per treatment (with expiry) and recent dose orders."""
        work = self.ctx.unit_of_work(actor, "dosing.panel", perm=Perm.PATIENT_READ,
                                     patient_id=patient_id)
        today = work.today
        with work as uow:
            s = uow.session
            uow.patients.get(patient_id)
            latest = {}
            for treatment in ("ketamine-iv", "esketamine"):
                row = self._latest_screening(s, patient_id, treatment)
                if row is not None:
                    latest[treatment] = _screening(row)
            rows = s.execute(select(DoseOrderRow).where(DoseOrderRow.patient_id == patient_id)
                             .order_by(DoseOrderRow.created_at.desc(), DoseOrderRow.id.desc())
                             .limit(5)).scalars().all()
            uow.audit(patient_id=patient_id)
            return {"screenings": latest, "doses": [self._record(s, r) for r in rows],
                    "today": today}


def _blocked_message(result: DoseCheckResult, missing: tuple[str, ...]) -> str:
    hard = [f.rule for f in result.checks if f.level.value == "hard"]
    if hard:
        return ("dose not saved: hard limit(s) cannot be overridden by any role: "
                + ", ".join(hard))
    return ("dose not saved: give a reason code and free text for each soft finding: "
            + ", ".join(missing))

"""The session at the chair: check-in, pre-dose BP gate, dose, timed vitals and ratings, alerts
and adverse events; discharge and leaving against advice live in ``chair.discharge`` (this
service offers them too). Every step is audited; session-level steps carry the session's
version (a stale one is a 409, never a merge); vitals, ratings and adverse events carry an
idempotency key.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.clinical.age import age_on
from ketaclinic.clinical.courses import load_course_template
from ketaclinic.clinical.dose_checks import blocking_findings, can_save, check_dose_safely
from ketaclinic.clinical.instruments import load_bundled, score_answers
from ketaclinic.clinical.monitoring import VitalSigns, check_predose_bp, check_vitals
from ketaclinic.clinical.rules import ClinicalInputError, Finding, Level
from ketaclinic.clinical.session import (
    AdverseEvent,
    PreCheckInput,
    check_adverse_event,
    check_esketamine_devices,
    check_pre_treatment,
)
from ketaclinic.clinical.treatment_chain import (
    SCREENING_TREATMENT,
    GivenDose,
    check_administration,
    check_event_time,
    check_not_future,
    check_ready_to_dose,
)
from ketaclinic.schemas_chair import (
    AdverseEventCreate,
    AlertAction,
    DischargeCreate,
    DoseCreate,
    LeftAgainstAdviceCreate,
    PrecheckCreate,
    PredoseVitals,
    RatingCreate,
    VitalsCreate,
)
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.chair.alert_links import (
    close_worklist_twins,
    raise_rating_alerts,
    rating_alerts,
)
from ketaclinic.services.chair.common import (
    VITAL_FIELDS,
    audit_session,
    changing_session,
    clinical,
    findings_json,
    load_session,
    require_status,
    session_rules,
    session_unit,
    touch,
)
from ketaclinic.services.chair.discharge import (  # DischargeRefused: still importable here
    DischargeRefused as DischargeRefused,
)
from ketaclinic.services.chair.discharge import SessionDischarge
from ketaclinic.services.chair.inputs import InfusionEnd
from ketaclinic.services.chair.ledger import LedgerService, drug_matches
from ketaclinic.services.context import Context
from ketaclinic.services.dosing.rulesets import RuleSetService
from ketaclinic.services.dosing.treatment_chain import (
    administered_order,
    chain_rules,
    order_facts,
    refuse_on_hard,
    screening_finding,
    session_facts,
    timeline,
)
from ketaclinic.services.errors import Conflict, InvalidInput, NotFound
from ketaclinic.services.idempotency import IdempotentRequest
from ketaclinic.services.unit_of_work import PatientRepository, UnitOfWork
from ketaclinic.store.tables_chair import (
    AdverseEventRow,
    DoseRecord,
    LedgerEntry,
    SessionAlert,
    SessionPrecheck,
    VitalSignRow,
)
from ketaclinic.store.tables_treatment import Assessment, Course, TreatmentSession

ACTIVE = ("checked-in", "monitoring")
# the label of each rating in the session's assessment schedule: a scale's schedule is filled
# only by its own ratings (a RASS rating never fills the MOAA/S schedule)
RATING_LABEL = {"moaas": "MOAA/S", "rass": "RASS", "cadss": "CADSS", "cadss6": "CADSS"}


def jurisdiction_of(s: Session, row: TreatmentSession) -> str:
    if row.treatment != "esketamine" or row.course_id is None:
        return "US"
    course = s.get(Course, row.course_id)
    try:
        return load_course_template(course.template_id).jurisdiction if course else "US"
    except ClinicalInputError:
        return "US"


def start_of(row: TreatmentSession) -> dt.datetime | None:
    return row.first_device_at if row.treatment == "esketamine" else row.dose_started_at


class SessionService:
    def __init__(self, ctx: Context, ledger: LedgerService) -> None:
        self.ctx = ctx
        self.ledger = ledger
        self.rulesets = RuleSetService(ctx)
        self._end = SessionDischarge(ctx)

    # --- the end of the session (services.chair.discharge) -------------------------------
    def discharge(self, actor: Actor, session_id: int, data: DischargeCreate) -> list[Finding]:
        """:meth:`SessionDischarge.discharge`: discharge when the core's checklist passes."""
        return self._end.discharge(actor, session_id, data)

    def leave_against_advice(self, actor: Actor, session_id: int,
                             data: LeftAgainstAdviceCreate) -> list[Finding]:
        """:meth:`SessionDischarge.leave_against_advice`: record a patient who leaves."""
        return self._end.leave_against_advice(actor, session_id, data)

    # --- check-in -----------------------------------------------------------------------
    def check_in(self, actor: Actor, session_id: int, data: PrecheckCreate) -> list[Finding]:
        """Record the pre-checks. HARD findings keep the patient from dosing; SOFT ones need
        an override reason. Returns the findings (OK ones included)."""
        work, _ = session_unit(self.ctx, actor, session_id, "session.checkin")
        now = work.now
        with changing_session(work, session_id, data.version) as row:
            s = work.session
            require_status(row, ("planned", "booked", "checked-in"), "check-in")
            inp = self._precheck_input(s, row, data, now)
            findings = clinical(lambda: check_pre_treatment(inp, session_rules()))
            levels = {f.level for f in findings}
            outcome = ("hard" if Level.HARD in levels else
                       ("overridden" if data.override_reason else "soft")
                       if Level.SOFT in levels else "ok")
            s.add(SessionPrecheck(session_id=row.id, answers_json=data.model_dump_json(),
                                  findings_json=findings_json(findings), outcome=outcome,
                                  override_reason=data.override_reason,
                                  recorded_by=actor.user_id, recorded_at=now))
            touch(work, row, "checked-in" if outcome in ("ok", "overridden") else None)
            audit_session(work, "session.checkin", row, f"pre-checks {outcome}")
            return findings

    def _precheck_input(self, s: Session, row: TreatmentSession, data: PrecheckCreate,
                        now: dt.datetime) -> PreCheckInput:
        latest_weight = PatientRepository(s).latest_weight(row.patient_id)
        planned = max(now, row.scheduled_start or now)
        return PreCheckInput(
            treatment=row.treatment, planned_dose_at=planned,
            dose_day=self.ctx.clinic_time.local_date(planned),
            consent_on_file=data.consent_on_file,
            rems_enrolled=data.rems_enrolled if row.treatment == "esketamine" else None,
            last_food_at=data.last_food_at, last_liquid_at=data.last_liquid_at,
            nasal_steroid_or_decongestant_at=data.nasal_steroid_or_decongestant_at,
            uses_nasal_steroid_or_decongestant=data.uses_nasal_steroid_or_decongestant,
            ride_home_arranged=data.ride_home_arranged,
            pregnancy_test_relevant=data.pregnancy_test_relevant,
            pregnancy_test_negative_on=data.pregnancy_test_negative_on,
            screening=screening_finding(s, PatientRepository(s).get(row.patient_id),
                                        SCREENING_TREATMENT[row.treatment],
                                        self.ctx.clinic_time.local_date(now)),
            weight_measured_on=latest_weight[1] if latest_weight else None,
        )

    # --- pre-dose BP gate ---------------------------------------------------------------
    def predose(self, actor: Actor, session_id: int, data: PredoseVitals) -> Finding:
        """Pre-dose vitals and the BP gate: warn needs a reason to proceed (or stop), stop
        needs the reason/plan; nothing is saved without one."""
        work, _ = session_unit(self.ctx, actor, session_id, "session.predose")
        now = work.now
        with changing_session(work, session_id, data.version) as row:
            s = work.session
            require_status(row, ("checked-in",), "pre-dose vitals")
            patient = work.patients.get(row.patient_id)
            finding = clinical(lambda: check_predose_bp(
                data.sbp_mmhg, data.dbp_mmhg, row.treatment, jurisdiction_of(s, row),
                age_on(patient.birth_date, work.today), session_rules()))
            refuse_on_hard(check_not_future("pre-dose vital signs", data.taken_at or now, now,
                                            chain_rules()))
            gate, reason = self._gate(finding, data)
            clinical(lambda: check_vitals(self._reading(data, now), row.treatment,
                                          session_rules()))
            s.add(self._vitals_row(row, data, now, actor, kind="predose", gate=gate,
                                   gate_reason=reason))
            touch(work, row)
            audit_session(work, "session.predose", row, f"BP gate {gate}")
            return finding

    @staticmethod
    def _gate(finding: Finding, data: PredoseVitals) -> tuple[str, str]:
        if finding.level is Level.HARD:
            if not data.stop_reason:
                raise InvalidInput(finding.message + " — record the reason/plan for stopping "
                                   "(nothing was saved)")
            return "stop", data.stop_reason
        if finding.level is Level.SOFT:
            if data.stop_reason:
                return "stop", data.stop_reason
            if not data.proceed_reason:
                raise InvalidInput(finding.message + " — give a reason to proceed, or a reason "
                                   "to stop (nothing was saved)")
            return "warn", data.proceed_reason
        return "ok", ""

    @staticmethod
    def _reading(data: VitalsCreate, now: dt.datetime) -> VitalSigns:
        return VitalSigns(data.taken_at or now, *(None if getattr(data, f) is None
                                                  else float(getattr(data, f))
                                                  for f in VITAL_FIELDS))

    @staticmethod
    def _vitals_row(row: TreatmentSession, data: VitalsCreate, now: dt.datetime, actor: Actor,
                    **extra: object) -> VitalSignRow:
        return VitalSignRow(session_id=row.id, taken_at=data.taken_at or now,
                            **{f: getattr(data, f) for f in VITAL_FIELDS},
                            entered_by=actor.user_id, created_at=now, **extra)

    # --- dose ---------------------------------------------------------------------------
    def record_dose(self, actor: Actor, session_id: int, data: DoseCreate) -> list[Finding]:
        """Record the dose given, tied to the signed order of this patient and course; the
        core's gates decide (the screening still stands, order, events in order, dose check
        on the values given) and the
        ledger gets exactly one administration row in the same transaction."""
        work, patient_id = session_unit(self.ctx, actor, session_id, "session.dose")
        try:
            with changing_session(work, session_id, data.version) as row:
                require_status(row, ("checked-in",), "recording the dose")
                return self._record_dose(work, row, data)
        except InvalidInput as exc:
            work.record_failure("refused", patient_id=patient_id,
                                detail=f"session {session_id}: {str(exc)[:200]}")
            raise

    def _record_dose(self, uow: UnitOfWork, row: TreatmentSession,
                     data: DoseCreate) -> list[Finding]:
        s, actor, now = uow.session, uow.actor, uow.now
        first_device = min(data.device_times) if data.device_times else None
        started = first_device or data.started_at
        rules = chain_rules()
        # the screening still stands at the moment of the dose (a fact withdrawn or recorded
        # since the check-in re-opens it, exactly as at the check-in)
        refuse_on_hard([screening_finding(s, uow.patients.get(row.patient_id),
                                          SCREENING_TREATMENT[row.treatment],
                                          self.ctx.clinic_time.local_date(now))])
        refuse_on_hard(check_ready_to_dose(timeline(s, row), started, data.ended_at, now,
                                           rules, data.device_times))
        given = GivenDose(data.dose_mg, data.rate_ml_per_h, data.concentration_mg_per_ml,
                          data.order_confirmed)
        order = order_facts(s, data.dose_order_id)
        refuse_on_hard(check_administration(order, session_facts(row), given, now, rules))
        findings = self._dose_findings(row, data)
        findings += self._administered_check(uow, row, data, given)
        s.add(DoseRecord(session_id=row.id, dose_order_id=data.dose_order_id,
                         dose_mg=data.dose_mg, route=self._route(row), lot=data.lot,
                         started_at=started, ended_at=data.ended_at,
                         device_times_json=json.dumps([t.isoformat() for t in sorted(
                             data.device_times)]), override_reason=data.override_reason,
                         concentration_mg_per_ml=data.concentration_mg_per_ml,
                         rate_ml_per_h=data.rate_ml_per_h,
                         recorded_by=actor.user_id, recorded_at=now))
        row.dose_order_id, row.dose_mg, row.route = (data.dose_order_id, data.dose_mg,
                                                     self._route(row))
        row.lot_numbers, row.dose_started_at, row.dose_ended_at = (
            data.lot, started, data.ended_at)
        row.first_device_at = first_device
        self._administer(uow, row, data, started)
        touch(uow, row, "monitoring")
        audit_session(uow, "session.dose", row,
                    f"order {data.dose_order_id}: {data.dose_mg} mg lot {data.lot}")
        return findings

    def _administered_check(self, uow: UnitOfWork, row: TreatmentSession, data: DoseCreate,
                            given: GivenDose) -> list[Finding]:
        """The dose check on what was actually given (programmed rate, concentration), with
        the order's recorded overrides; a check that raises or finds a hard limit blocks."""
        assert data.dose_order_id is not None
        patient = uow.patients.get(row.patient_id)
        order, overrides = administered_order(
            uow.session, data.dose_order_id, given, age_on(patient.birth_date, uow.today))
        rs = self.rulesets.active_in(uow.session, SCREENING_TREATMENT[row.treatment])
        result = check_dose_safely(order, rs)
        if not can_save(result, overrides):
            refuse_on_hard(blocking_findings(result, overrides))
        return list(result.checks)

    @staticmethod
    def _route(row: TreatmentSession) -> str:
        return "nasal" if row.treatment == "esketamine" else "iv"

    def _dose_findings(self, row: TreatmentSession, data: DoseCreate) -> list[Finding]:
        if row.treatment != "esketamine":
            if data.device_times:
                raise InvalidInput("device times are for esketamine only")
            return []
        if data.dose_mg != data.dose_mg.to_integral_value():
            raise InvalidInput("esketamine dose must be whole milligrams (28 mg per device)")
        findings = clinical(lambda: check_esketamine_devices(int(data.dose_mg),
                                                             data.device_times))
        hard = [f for f in findings if f.level is Level.HARD]
        if hard:
            raise InvalidInput("; ".join(f.message for f in hard))
        soft = [f for f in findings if f.level is Level.SOFT]
        if soft and not data.override_reason:
            raise InvalidInput("; ".join(f.message for f in soft) + " — give an override "
                               "reason (nothing was saved)")
        return findings


    def _administer(self, uow: UnitOfWork, row: TreatmentSession, data: DoseCreate,
                    at: dt.datetime) -> None:
        drug = uow.session.execute(select(LedgerEntry.drug).where(
            LedgerEntry.lot == data.lot, LedgerEntry.kind == "receipt").limit(1)
        ).scalar_one_or_none()
        if drug is None:
            raise InvalidInput(f"lot {data.lot!r} is not on the controlled-substance ledger")
        if not drug_matches(drug, row.treatment):
            raise InvalidInput(f"lot {data.lot} is {drug}, not for a {row.treatment} session")
        self.ledger.append(uow, LedgerEntry(
            kind="administration", lot=data.lot, at=at, amount_mg=data.dose_mg,
            session_id=row.id, patient_id=row.patient_id))

    def end_infusion(self, actor: Actor, session_id: int, data: InfusionEnd) -> None:
        """Record when an IV infusion ended, after its dose was recorded without an end."""
        ended_at = data.ended_at
        work, _ = session_unit(self.ctx, actor, session_id, "session.infusion_end")
        with changing_session(work, session_id, data.version) as row:
            require_status(row, ("monitoring",), "ending the infusion")
            if row.treatment == "esketamine" or row.dose_started_at is None:
                raise InvalidInput("only an IV infusion has an end time")
            if row.dose_ended_at is not None:
                raise InvalidInput("the infusion end is already recorded")
            if ended_at < row.dose_started_at:
                raise InvalidInput("the infusion cannot end before it started")
            row.dose_ended_at = ended_at
            touch(work, row)
            audit_session(work, "session.infusion_end", row)

    # --- timed vitals and alerts --------------------------------------------------------
    def record_vitals(self, actor: Actor, session_id: int, data: VitalsCreate,
                      idempotency_key: str | None = None) -> tuple[int, list[Finding], bool]:
        """Record a vitals set; returns (vitals id, alert findings, created). The same user
        repeating a key with the same request gets the first recording back."""
        work, _ = session_unit(self.ctx, actor, session_id, "session.vitals")
        req = IdempotentRequest.of(actor, "session.vitals", idempotency_key, session_id, data)
        if all(getattr(data, f) is None for f in VITAL_FIELDS):
            raise InvalidInput("enter at least one vital sign")
        now = work.now

        def create(uow: UnitOfWork) -> tuple[tuple[int, list[Finding]], int]:
            s = uow.session
            row = load_session(s, session_id)
            require_status(row, ACTIVE, "recording vital signs")
            reading = self._reading(data, now)
            refuse_on_hard(check_event_time("vital signs", reading.taken_at, timeline(s, row),
                                            now, chain_rules()))
            alerts = clinical(lambda: check_vitals(reading, row.treatment, session_rules()))
            vitals = self._vitals_row(row, data, now, actor, kind="timed")
            s.add(vitals)
            s.flush()
            for a in alerts:
                s.add(SessionAlert(session_id=row.id, vitals_id=vitals.id, rule=a.rule,
                                   message=a.message,
                                   suggested_action=str(a.values.get("action", "")),
                                   created_at=now))
            audit_session(uow, "session.vitals", row, f"{len(alerts)} alerts")
            return (vitals.id, alerts), vitals.id

        (vitals_id, alerts), created = work.idempotency.run(
            req, create=create, replay=self._replay_vitals,
            conflict="these vital signs were recorded concurrently")
        return vitals_id, alerts, created

    @staticmethod
    def _replay_vitals(uow: UnitOfWork, vitals_id: int
                       ) -> tuple[tuple[int, list[Finding]], int | None]:
        s = uow.session
        v = s.get(VitalSignRow, vitals_id)
        if v is None:
            raise NotFound("the vital signs this request recorded no longer exist")
        alerts = s.execute(select(SessionAlert).where(SessionAlert.vitals_id == v.id)).scalars()
        return (v.id, [Finding(a.rule, Level.SOFT, a.message, "", {"action": a.suggested_action})
                       for a in alerts]), load_session(s, v.session_id).patient_id

    def record_alert_action(self, actor: Actor, session_id: int, alert_id: int,
                            data: AlertAction) -> None:
        work, _ = session_unit(self.ctx, actor, session_id, "session.alert_action")
        now = work.now
        with work:
            s = work.session
            row = load_session(s, session_id)
            alert = s.get(SessionAlert, alert_id, with_for_update=True)
            if alert is None or alert.session_id != session_id:
                raise NotFound("no such alert for this session")
            if alert.action_taken:
                raise Conflict("the action for this alert is already recorded")
            alert.action_taken, alert.action_by, alert.action_at = (
                data.action_taken, actor.user_id, now)
            close_worklist_twins(s, alert, data.action_taken, actor.user_id, now)
            audit_session(work, "session.alert_action", row, f"alert {alert_id}")

    # --- ratings and adverse events -----------------------------------------------------
    def record_rating(self, actor: Actor, session_id: int, data: RatingCreate,
                      idempotency_key: str | None = None) -> dict:
        """Score and store an in-session rating (MOAA/S, RASS, CADSS) in ``assessments``.

        Every alert the rating fires (deep sedation: MOAA/S ≤ 2, RASS ≤ −4) becomes a session
        alert that must be actioned before discharge and an item on the Alerts worklist."""
        work, _ = session_unit(self.ctx, actor, session_id, "session.rating")
        req = IdempotentRequest.of(actor, "session.rating", idempotency_key, session_id, data)
        now = work.now
        definition = load_bundled(data.instrument)
        if all(a is None for a in data.answers):
            raise InvalidInput("answers: enter the rating (an empty rating is not recorded)")
        result = clinical(lambda: score_answers(definition, list(data.answers)))
        answer = {"instrument": data.instrument, "total": result.total,
                  "severity": result.severity}

        def create(uow: UnitOfWork) -> tuple[dict, int]:
            s = uow.session
            row = load_session(s, session_id)
            require_status(row, ACTIVE, "a rating")
            refuse_on_hard(check_event_time("the rating", data.administered_at or now,
                                            timeline(s, row), now, chain_rules()))
            rating = Assessment(
                patient_id=row.patient_id, course_id=row.course_id, session_id=row.id,
                instrument_id=data.instrument, instrument_version=result.rule_version,
                administered_at=data.administered_at or now, source="clinic",
                total=None if result.total is None else Decimal(result.total),
                severity=result.severity or "", complete=result.complete,
                prorated=result.prorated, answers_json=json.dumps(list(data.answers)),
                result_json=json.dumps(result.as_dict(), default=str),
                entered_by=actor.user_id, created_at=now)
            s.add(rating)
            s.flush()
            raised = raise_rating_alerts(s, rating, result, now)
            audit_session(uow, "session.rating", row, data.instrument + (
                f"; {len(raised)} alert(s) raised" if raised else ""))
            return answer | {"alerts": _alert_dicts(raised)}, rating.id

        def replay(uow: UnitOfWork, rating_id: int) -> tuple[dict, int | None]:
            s = uow.session
            rating = s.get(Assessment, rating_id)
            if rating is None:
                raise NotFound("the rating this request recorded no longer exists")
            return answer | {"replayed": True,
                             "alerts": _alert_dicts(rating_alerts(s, rating))}, rating.patient_id

        return work.idempotency.run(req, create=create, replay=replay,
                                    conflict="this rating was recorded concurrently")[0]

    def record_adverse_event(self, actor: Actor, session_id: int, data: AdverseEventCreate,
                             idempotency_key: str | None = None) -> list[Finding]:
        work, _ = session_unit(self.ctx, actor, session_id, "session.adverse_event")
        req = IdempotentRequest.of(actor, "session.ae", idempotency_key, session_id, data)
        now = work.now
        event = AdverseEvent(data.code, data.severity, data.onset_at or now, data.action_taken,
                             data.description)
        findings = clinical(lambda: check_adverse_event(event, session_rules()))
        hard = [f for f in findings if f.level is Level.HARD]
        if hard:
            raise InvalidInput("; ".join(f.message for f in hard))

        def create(uow: UnitOfWork) -> tuple[list[Finding], int]:
            s = uow.session
            row = load_session(s, session_id)
            require_status(row, ACTIVE, "an adverse event")
            ae = AdverseEventRow(session_id=row.id, code=data.code, severity=data.severity,
                                 onset_at=event.onset_at, action_taken=data.action_taken,
                                 description=data.description, recorded_by=actor.user_id,
                                 created_at=now)
            s.add(ae)
            s.flush()
            audit_session(uow, "session.adverse_event", row, f"{data.code} {data.severity}")
            return findings, ae.id

        def replay(uow: UnitOfWork, ae_id: int) -> tuple[list[Finding], int | None]:
            ae = uow.session.get(AdverseEventRow, ae_id)
            return findings, load_session(uow.session, ae.session_id).patient_id if ae else None

        return work.idempotency.run(req, create=create, replay=replay,
                                    conflict="this adverse event was recorded concurrently")[0]


def _alert_dicts(alerts: list[SessionAlert]) -> list[dict]:
    return [{"id": a.id, "rule": a.rule, "message": a.message, "action": a.suggested_action}
            for a in alerts]

"""Tables of the session at the chair and the controlled-substance ledger.

Courses, chairs and treatment sessions are the shared tables in ``tables_treatment``; these tables
hang off them. Vital signs, ratings, alerts, adverse events and ledger entries are appended,
never edited in place: an alert's action is filled once, a ledger correction is a new entry.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ketaclinic.store.tables import Base, UtcDateTime


class ChairAmendment(Base):
    """The history of a course or session: every change with its old and new value and reason."""

    __tablename__ = "chair_amendments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity: Mapped[str] = mapped_column(String(20))  # course | session
    entity_id: Mapped[int] = mapped_column(Integer)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    field: Mapped[str] = mapped_column(String(40))
    old_value: Mapped[str] = mapped_column(Text, default="")
    new_value: Mapped[str] = mapped_column(Text, default="")
    reason_code: Mapped[str] = mapped_column(String(40), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    changed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    changed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_chair_amendments_entity", "entity", "entity_id"),)


class SessionPrecheck(Base):
    """One check-in: what the nurse confirmed and the findings (a re-check adds a row)."""

    __tablename__ = "chair_prechecks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("treatment_sessions.id"), index=True)
    answers_json: Mapped[str] = mapped_column(Text, default="{}")
    findings_json: Mapped[str] = mapped_column(Text, default="[]")
    outcome: Mapped[str] = mapped_column(String(10))  # ok | soft | hard
    override_reason: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class VitalSignRow(Base):
    """One set of vital signs at the chair (pre-dose, timed or before discharge)."""

    __tablename__ = "chair_vitals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("treatment_sessions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12), default="timed")  # predose | timed
    taken_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    sbp_mmhg: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dbp_mmhg: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hr_bpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    spo2_pct: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rr_per_min: Mapped[int | None] = mapped_column(Integer, nullable=True)
    gate: Mapped[str] = mapped_column(String(12), default="")  # predose: ok | warn | stop
    gate_reason: Mapped[str] = mapped_column(Text, default="")
    # Unused since 0008 (keys live in idempotency_keys, per user); kept for old rows.
    idempotency_key: Mapped[str | None] = mapped_column(String(100), nullable=True, unique=True)
    entered_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class SessionAlert(Base):
    """A threshold alert from a vitals reading; open until the action taken is recorded."""

    __tablename__ = "chair_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("treatment_sessions.id"), index=True)
    vitals_id: Mapped[int | None] = mapped_column(ForeignKey("chair_vitals.id"), nullable=True)
    rule: Mapped[str] = mapped_column(String(60))
    message: Mapped[str] = mapped_column(Text)
    suggested_action: Mapped[str] = mapped_column(Text, default="")
    action_taken: Mapped[str] = mapped_column(Text, default="")
    action_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    action_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class AdverseEventRow(Base):
    __tablename__ = "chair_adverse_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("treatment_sessions.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(20))
    onset_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    action_taken: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class DoseRecord(Base):
    """The dose given at a session (esketamine: device times); the session row mirrors it."""

    __tablename__ = "chair_doses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("treatment_sessions.id"), index=True)
    dose_order_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dose_mg: Mapped[Decimal] = mapped_column(Numeric(10, 3))
    route: Mapped[str] = mapped_column(String(20))
    lot: Mapped[str] = mapped_column(String(60))
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    device_times_json: Mapped[str] = mapped_column(Text, default="[]")
    override_reason: Mapped[str] = mapped_column(Text, default="")
    # IV: what was programmed on the pump (the dose check runs on these)
    concentration_mg_per_ml: Mapped[Decimal | None] = mapped_column(Numeric(8, 3),
                                                                     nullable=True)
    rate_ml_per_h: Mapped[Decimal | None] = mapped_column(Numeric(10, 3), nullable=True)
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class DischargeRecord(Base):
    __tablename__ = "chair_discharges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("treatment_sessions.id"), unique=True)
    discharged_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    ready_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    checklist_json: Mapped[str] = mapped_column(Text, default="{}")
    findings_json: Mapped[str] = mapped_column(Text, default="[]")
    override_reason: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    # discharged | left-against-advice (then: recorded_by is who, discharged_at is when the
    # patient left, statement is what the patient was told and said)
    outcome: Mapped[str] = mapped_column(String(24), default="discharged",
                                         server_default="discharged")
    statement: Mapped[str] = mapped_column(Text, default="", server_default="")


class RemsFormRow(Base):
    """A Spravato REMS Patient Monitoring Form to submit within 7 days of the session."""

    __tablename__ = "chair_rems_forms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("treatment_sessions.id"), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    treatment_date: Mapped[dt.date] = mapped_column(Date)
    due_on: Mapped[dt.date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(12), default="due")  # due | submitted
    details_json: Mapped[str] = mapped_column(Text, default="{}")
    submitted_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    submitted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    confirmation: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class LedgerEntry(Base):
    """One controlled-substance ledger entry. Append-only: no code path updates or deletes it.

    kind: receipt | administration | waste | transfer | loss | count | correction.
    """

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    lot: Mapped[str] = mapped_column(String(60), index=True)
    drug: Mapped[str] = mapped_column(String(120), default="")
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    amount_mg: Mapped[Decimal] = mapped_column(Numeric(14, 3))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    witness_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("treatment_sessions.id"),
                                                   nullable=True, index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), nullable=True)
    supplier_name: Mapped[str] = mapped_column(String(200), default="")
    supplier_address: Mapped[str] = mapped_column(String(300), default="")
    supplier_dea_number: Mapped[str] = mapped_column(String(20), default="")
    expiry: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    containers: Mapped[int | None] = mapped_column(Integer, nullable=True)
    volume_ml_per_container: Mapped[Decimal | None] = mapped_column(Numeric(10, 3),
                                                                     nullable=True)
    concentration_mg_per_ml: Mapped[Decimal | None] = mapped_column(Numeric(10, 3),
                                                                     nullable=True)
    counterparty: Mapped[str] = mapped_column(String(300), default="")  # transfer recipient
    subkind: Mapped[str] = mapped_column(String(20), default="")  # loss kind | count kind
    method: Mapped[str] = mapped_column(String(12), default="")  # count: exact | estimated
    discovered_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    refers_to_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"),
                                                     nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

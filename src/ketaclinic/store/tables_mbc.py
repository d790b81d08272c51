"""Measurement-based care tables: clinic instrument definitions, alerts, self-report links,
reminder schedules and the message outbox.

Assessments and clinical events themselves live in the shared ``tables_treatment`` module.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ketaclinic.store.tables import Base, UtcDateTime


class ClinicInstrument(Base):
    """A clinic-supplied (e.g. licensed) instrument definition; versioned, one active per id."""

    __tablename__ = "clinic_instruments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instrument_id: Mapped[str] = mapped_column(String(40))
    version: Mapped[str] = mapped_column(String(40))
    definition_json: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    loaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    loaded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("instrument_id", "version", name="uq_clinic_instruments_id_version"),
    )


class ClinicalAlert(Base):
    """An alert raised by scoring (e.g. PHQ-9 item 9 ≥ 1); open until acknowledged with a note."""

    __tablename__ = "clinical_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id"), index=True)
    instrument_id: Mapped[str] = mapped_column(String(40))
    rule: Mapped[str] = mapped_column(String(80))
    priority: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(String(500))
    item: Mapped[int | None] = mapped_column(Integer, nullable=True)
    value: Mapped[int | None] = mapped_column(Integer, nullable=True)
    threshold: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source: Mapped[str] = mapped_column(String(500), default="")
    raised_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    ack_note: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_clinical_alerts_open", "acknowledged_at", "raised_at"),)


class SelfReportLink(Base):
    """A one-time link to a self-report form; only the SHA-256 of its token is stored."""

    __tablename__ = "self_report_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    course_id: Mapped[int | None] = mapped_column(ForeignKey("courses.id"), nullable=True)
    instrument_id: Mapped[str] = mapped_column(String(40))
    delivery: Mapped[str] = mapped_column(String(20), default="shown")  # shown | outbox
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    assessment_id: Mapped[int | None] = mapped_column(ForeignKey("assessments.id"),
                                                      nullable=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)


class SelfReportAttempt(Base):
    """One request to a self-report URL, counted per client address for rate limiting."""

    __tablename__ = "self_report_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    ok: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_self_report_attempts_client_at", "client", "at"),)


class ReminderSchedule(Base):
    """Send a self-report link N days after each dose of a course (e.g. days 1, 3 and 7)."""

    __tablename__ = "reminder_schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), index=True)
    instrument_id: Mapped[str] = mapped_column(String(40))
    days_after_dose: Mapped[str] = mapped_column(String(100))  # "1,3,7"
    channel: Mapped[str] = mapped_column(String(20), default="console")  # console|email|sms
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class WebhookEndpoint(Base):
    """A receiver of signed event notifications (services/interop/webhooks.py); the signing
    secret is stored encrypted (services/secretbox.py) and shown once, when the endpoint is
    added."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    events: Mapped[str] = mapped_column(String(200))  # "alert.urgent,rems.deadline"
    description: Mapped[str] = mapped_column(String(200), default="")
    secret: Mapped[str] = mapped_column(String(300))  # secretbox v1 value
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    removed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class OutboxMessage(Base):
    """A message waiting to be delivered; the link token is minted only at delivery.

    Webhook deliveries (channel ``webhook``) name their endpoint and carry the JSON body fixed
    when the event was queued (no patient data: ids only), so every retry sends the same event.
    A test ping has no patient.
    """

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True,
                                                   nullable=True)
    # self-report-link | reminder | alert.urgent | rems.deadline | webhook.test
    kind: Mapped[str] = mapped_column(String(30))
    channel: Mapped[str] = mapped_column(String(20))  # console | email | sms | webhook
    endpoint_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_endpoints.id"),
                                                    nullable=True)
    payload: Mapped[str] = mapped_column(Text, default="")
    link_id: Mapped[int | None] = mapped_column(ForeignKey("self_report_links.id"),
                                                nullable=True)
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("reminder_schedules.id"),
                                                    nullable=True)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("treatment_sessions.id"),
                                                   nullable=True)
    day_offset: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dedupe_key: Mapped[str] = mapped_column(String(100), unique=True)
    due_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_outbox_messages_status_due", "status", "due_at"),)

"""SQLAlchemy 2 tables. The schema is created only by the Alembic migrations in ``migrations/``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)

# Times are stored as naive UTC on every backend so that the audit hash is backend-independent.
UtcDateTime = DateTime(timezone=False)

class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Two-factor keys are stored encrypted (services/secretbox.py: "v1.<key id>.<sealed>").
    totp_secret: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Two-factor: the secret shown at enrolment until a code confirms it, and the last accepted
    # 30-second time step (a code is accepted once: replaying it, or an older one, is refused).
    totp_pending_secret: Mapped[str | None] = mapped_column(String(255), nullable=True)
    totp_last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    # Set by an administrator's password reset: the next login may only change the password,
    # and the temporary password stops working at password_expires_at.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False,
                                                       server_default=false())
    password_expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # A second person with this flag must confirm loosening or removing a hard limit of a rule
    # set that is in effect; set by an administrator.
    medical_director: Mapped[bool] = mapped_column(Boolean, default=False,
                                                   server_default=false())
    # The lock-screen PIN (hashed like a password; None: unlock with the password only).
    pin_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # "person" logs in with a password; "service" (a machine integration) never logs in and
    # authenticates only with API tokens (services/accounts/api_tokens.py).
    kind: Mapped[str] = mapped_column(String(16), default="person", server_default="person")

class RecoveryCode(Base):
    """A one-time two-factor recovery code: only a salted HMAC-SHA256 of it is stored."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    salt: Mapped[str] = mapped_column(String(32))
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)

class AuthSession(Base):
    """A server-side login session; the cookie holds a random token whose SHA-256 is the id."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # Idle past the timeout: locked (no data) until the user re-authenticates with a PIN or
    # the password; too many failed unlocks end the session.
    locked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    unlock_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    user: Mapped[User] = relationship(lazy="joined")

class ApiToken(Base):
    """A bearer token of a service account: only the SHA-256 of the secret is stored, with a
    short public prefix that identifies it (in lists and the audit trail)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[str] = mapped_column(String(500))  # space-separated permission names
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)

    user: Mapped[User] = relationship(lazy="joined", foreign_keys=[user_id])

class LoginAttempt(Base):
    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    client: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    success: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        Index("ix_login_attempts_username_at", "username", "at"),
        Index("ix_login_attempts_client_at", "client", "at"),
    )

class AuditEvent(Base):
    """One hash-chained audit row. Never updated or deleted by the application."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Which chain (stripe) the row extends; its tip is audit_head.id == chain.
    chain: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    occurred_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    patient_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(500), default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))

class AuditHead(Base):
    """One chain's tip (id = chain number), updated in the same transaction as each append
    to that chain (detects tail deletion). Every chain 1..CHAINS has one (services.audit)."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_event_id: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer)

class IdempotencyKey(Base):
    """A client-chosen key that makes a resubmitted create or form record once: one per
    (operation, user, key), with the hash of the request it answered
    (services.idempotency)."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int] = mapped_column(Integer)
    resource_id: Mapped[int] = mapped_column(Integer)
    request_hash: Mapped[str] = mapped_column(String(64), default="", server_default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    __table_args__ = (UniqueConstraint("scope", "user_id", "key",
                                       name="uq_idempotency_keys_scope_user_key"),)

class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mrn: Mapped[str] = mapped_column(String(32), unique=True)
    family_name: Mapped[str] = mapped_column(String(100))
    given_name: Mapped[str] = mapped_column(String(100))
    search_name: Mapped[str] = mapped_column(String(210), index=True)
    birth_date: Mapped[dt.date] = mapped_column(Date, index=True)
    sex: Mapped[str] = mapped_column(String(10))
    phone: Mapped[str] = mapped_column(String(40), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)

    __mapper_args__ = {"version_id_col": version}

class PatientWeight(Base):
    __tablename__ = "patient_weights"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    measured_on: Mapped[dt.date] = mapped_column(Date)
    weight_kg: Mapped[Decimal] = mapped_column(Numeric(6, 2))
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

class PatientDiagnosis(Base):
    __tablename__ = "patient_diagnoses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    system: Mapped[str] = mapped_column(String(20))
    code: Mapped[str] = mapped_column(String(20))
    display: Mapped[str] = mapped_column(String(200))
    onset_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    # when the row last changed after it was recorded (e.g. stopped); FHIR _since reads it
    updated_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # why an inactive row is inactive: "resolved" | "entered-in-error" (NULL: active, or
    # inactive for a reason nobody recorded)
    inactive_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)

class PatientMedication(Base):
    __tablename__ = "patient_medications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    drug_class: Mapped[str] = mapped_column(String(60), default="")
    daily_dose_mg: Mapped[Decimal | None] = mapped_column(Numeric(10, 3), nullable=True)
    started_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    # when the row last changed after it was recorded (e.g. stopped); FHIR _since reads it
    updated_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # a stopped row: the clinic-local day it was stopped, why (schemas.MEDICATION_STOP_REASONS)
    # and a note; NULL on an active row, or on a stopped one where nobody recorded it
    stopped_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    stop_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)
    stop_note: Mapped[str | None] = mapped_column(String(200), nullable=True)

class PatientAllergy(Base):
    __tablename__ = "patient_allergies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    substance: Mapped[str] = mapped_column(String(120))
    reaction: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    # when the row last changed after it was recorded (e.g. stopped); FHIR _since reads it
    updated_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # why an inactive row is inactive: "entered-in-error" | "refuted" (NULL: active, or
    # inactive for a reason nobody recorded)
    inactive_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)

class PatientAmendment(Base):
    """The history of a patient record: every changed field with its old and new value."""

    __tablename__ = "patient_amendments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    field: Mapped[str] = mapped_column(String(40))
    old_value: Mapped[str] = mapped_column(Text)
    new_value: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    changed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    version: Mapped[int] = mapped_column(Integer)


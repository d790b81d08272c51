"""Eligibility screening and dose safety: rule-set copies, patient clinical facts, screenings,
dose orders and soft-limit overrides.

Rule-set copies are append-only: every edit is a new row (``seq`` + 1) and old versions stay.
Screenings, dose orders and overrides are never updated; each records the rule set
``id@version`` that produced it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from ketaclinic.store.tables import Base, UtcDateTime


class RuleSetVersion(Base):
    """One version of a clinic's copy of a rule set (the validated JSON document)."""

    __tablename__ = "ruleset_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ruleset_id: Mapped[str] = mapped_column(String(60))
    seq: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(40))
    treatment: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(200))
    based_on: Mapped[str] = mapped_column(String(110), default="")
    change_note: Mapped[str] = mapped_column(String(500), default="")
    document: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("ruleset_id", "seq", name="uq_ruleset_versions_ruleset_id_seq"),
    )


class RuleConfirmation(Base):
    """A medical director's confirmation of one grade-U rule in one rule-set version."""

    __tablename__ = "rule_confirmations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ruleset_id: Mapped[str] = mapped_column(String(60), index=True)
    version: Mapped[str] = mapped_column(String(40))
    path: Mapped[str] = mapped_column(String(200))
    confirmed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    confirmed_by_name: Mapped[str] = mapped_column(String(200))
    confirmed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class RuleSetApproval(Base):
    """A medical director's co-signature on a change that loosens or removes a hard limit of a
    rule set in effect: a new version of the active set, or activating another set."""

    __tablename__ = "ruleset_approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ruleset_id: Mapped[str] = mapped_column(String(60), index=True)
    version: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(20))  # version | activate
    loosened_json: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    approved_by_name: Mapped[str] = mapped_column(String(200))
    approved_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class ActiveRuleSet(Base):
    """The clinic's rule set for one treatment (latest version of ``ruleset_id`` is used)."""

    __tablename__ = "active_rulesets"

    treatment: Mapped[str] = mapped_column(String(20), primary_key=True)
    ruleset_id: Mapped[str] = mapped_column(String(60))
    set_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    set_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class PatientClinicalFacts(Base):
    """What screening needs beyond the registry (trials, conditions, history), as JSON."""

    __tablename__ = "patient_clinical_facts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)
    facts_json: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    __mapper_args__ = {"version_id_col": version}


class Screening(Base):
    """One eligibility screening result, with the inputs it saw and its expiry."""

    __tablename__ = "screenings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    treatment: Mapped[str] = mapped_column(String(20))
    ruleset_ref: Mapped[str] = mapped_column(String(110))
    decision: Mapped[str] = mapped_column(String(20))
    maudsley_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    adequate_failed_trials: Mapped[int] = mapped_column(Integer, default=0)
    findings_json: Mapped[str] = mapped_column(Text)
    inputs_json: Mapped[str] = mapped_column(Text)
    screened_on: Mapped[dt.date] = mapped_column(Date)
    expires_on: Mapped[dt.date] = mapped_column(Date)
    screened_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_screenings_patient_created", "patient_id", "created_at"),)


class DoseOrder(Base):
    """A saved dose order: the calculated dose, the checks it passed and the rule set used."""

    __tablename__ = "dose_orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    treatment: Mapped[str] = mapped_column(String(20))
    route: Mapped[str] = mapped_column(String(20))
    ruleset_ref: Mapped[str] = mapped_column(String(110))
    dose_mg: Mapped[Decimal] = mapped_column(Numeric(10, 3))
    mg_per_kg: Mapped[Decimal | None] = mapped_column(Numeric(8, 4), nullable=True)
    weight_kg: Mapped[Decimal | None] = mapped_column(Numeric(6, 2), nullable=True)
    weight_basis: Mapped[str] = mapped_column(String(20), default="")
    dose_weight_kg: Mapped[Decimal | None] = mapped_column(Numeric(6, 2), nullable=True)
    infusion_min: Mapped[Decimal | None] = mapped_column(Numeric(8, 2), nullable=True)
    concentration_mg_per_ml: Mapped[Decimal | None] = mapped_column(Numeric(8, 3), nullable=True)
    rate_mg_per_h: Mapped[Decimal | None] = mapped_column(Numeric(10, 3), nullable=True)
    rate_ml_per_h: Mapped[Decimal | None] = mapped_column(Numeric(10, 3), nullable=True)
    phase: Mapped[str] = mapped_column(String(40), default="")
    session_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    devices: Mapped[int | None] = mapped_column(Integer, nullable=True)
    previous_dose_mg: Mapped[Decimal | None] = mapped_column(Numeric(10, 3), nullable=True)
    screening_id: Mapped[int | None] = mapped_column(ForeignKey("screenings.id"), nullable=True)
    checks_json: Mapped[str] = mapped_column(Text)
    inputs_json: Mapped[str] = mapped_column(Text, default="{}")
    ordered_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    # The closed loop: the course the order is for, and how it was signed. A
    # prescriber's own order is "signed"; a verbal/telephone order taken by a nurse is
    # "verbal" (prescriber named, read back) until that prescriber countersigns it.
    course_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="signed", server_default="signed")
    verbal_prescriber_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    read_back_confirmed: Mapped[bool] = mapped_column(Boolean, default=False,
                                                      server_default=false())
    countersigned_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    countersigned_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (Index("ix_dose_orders_patient_created", "patient_id", "created_at"),)


class ScreeningSignoff(Base):
    """A prescriber's sign-off of a screening that needs review (or was re-opened by new
    facts): who, when, why, and the facts it saw. Appended, never edited."""

    __tablename__ = "screening_signoffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    screening_id: Mapped[int] = mapped_column(ForeignKey("screenings.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    reason: Mapped[str] = mapped_column(Text)
    inputs_json: Mapped[str] = mapped_column(Text)
    signed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    signed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class DoseOverride(Base):
    """A prescriber's reason for passing one soft finding: who, when, value and limit."""

    __tablename__ = "dose_overrides"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dose_order_id: Mapped[int] = mapped_column(ForeignKey("dose_orders.id"), index=True)
    rule: Mapped[str] = mapped_column(String(60))
    reason_code: Mapped[str] = mapped_column(String(60))
    free_text: Mapped[str] = mapped_column(String(1000))
    value: Mapped[str] = mapped_column(String(60), default="")
    limit_value: Mapped[str] = mapped_column(String(60), default="")
    message: Mapped[str] = mapped_column(String(500), default="")
    ruleset_ref: Mapped[str] = mapped_column(String(110))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    username: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

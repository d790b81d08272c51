"""Roles and what each may do. Analysts see de-identified data only, never a named patient."""

from __future__ import annotations

from enum import StrEnum

from ketaclinic.services.audit import Actor
from ketaclinic.services.errors import PermissionDenied


class Role(StrEnum):
    ADMIN = "admin"
    PRESCRIBER = "prescriber"
    NURSE = "nurse"
    ANALYST = "analyst"


class Perm(StrEnum):
    PATIENT_READ = "patient.read"
    PATIENT_WRITE = "patient.write"
    CLINICAL_WRITE = "clinical.write"  # sessions, vitals, assessments
    PRESCRIBE = "prescribe"  # doses, courses, screening decisions
    USER_MANAGE = "user.manage"
    AUDIT_READ = "audit.read"
    RULES_MANAGE = "rules.manage"
    DASHBOARD = "dashboard.read"
    DEID_EXPORT = "export.deidentified"
    IDENTIFIED_EXPORT = "export.identified"
    LEDGER_WRITE = "ledger.write"  # controlled-substance receipts, counts, waste
    LEDGER_READ = "ledger.read"
    IMPORT = "import"  # bulk import of records (FHIR Bundle, CSV roster): admin, prescriber
    INTEGRATIONS_MANAGE = "integrations.manage"  # webhook endpoints: admin


_CLINICAL = {Perm.PATIENT_READ, Perm.PATIENT_WRITE, Perm.CLINICAL_WRITE, Perm.LEDGER_WRITE,
             Perm.LEDGER_READ}

ROLE_PERMISSIONS: dict[Role, frozenset[Perm]] = {
    Role.ADMIN: frozenset(
        _CLINICAL
        | {
            Perm.USER_MANAGE,
            Perm.AUDIT_READ,
            Perm.RULES_MANAGE,
            Perm.DASHBOARD,
            Perm.DEID_EXPORT,
            Perm.IDENTIFIED_EXPORT,
            Perm.IMPORT,
            Perm.INTEGRATIONS_MANAGE,
        }
    ),
    Role.PRESCRIBER: frozenset(
        _CLINICAL | {Perm.PRESCRIBE, Perm.DASHBOARD, Perm.DEID_EXPORT, Perm.IDENTIFIED_EXPORT,
                     Perm.IMPORT}
    ),
    Role.NURSE: frozenset(_CLINICAL),
    Role.ANALYST: frozenset({Perm.DASHBOARD, Perm.DEID_EXPORT}),
}


def allowed(actor: Actor, perm: Perm) -> bool:
    try:
        role = Role(actor.role)
    except ValueError:
        return False
    return perm in ROLE_PERMISSIONS[role]


def require(actor: Actor, perm: Perm) -> None:
    """Raise PermissionDenied (the caller audits it) unless the actor's role grants ``perm``."""
    if not allowed(actor, perm):
        raise PermissionDenied(f"your role ({actor.role}) may not do this ({perm.value})")

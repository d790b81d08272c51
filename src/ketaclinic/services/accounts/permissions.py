"""Roles and what each may do. Analysts see de-identified data only, never a named patient."""

from __future__ import annotations

from enum import StrEnum

from ketaclinic.services.actor import Actor
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
    """The role grants ``perm`` and, for an API token, so do the token's scopes."""
    try:
        role = Role(actor.role)
    except ValueError:
        return False
    return perm in ROLE_PERMISSIONS[role] and (actor.scopes is None or perm.value in actor.scopes)


def denial(actor: Actor, perm: Perm) -> str:
    """Why ``actor`` may not do ``perm``: the role, or the API token's missing scope."""
    if actor.scopes is not None and perm.value not in actor.scopes:
        try:
            role_grants = perm in ROLE_PERMISSIONS[Role(actor.role)]
        except ValueError:
            role_grants = False
        if role_grants:
            return f"this API token lacks the scope {perm.value}"
    return f"your role ({actor.role}) may not do this ({perm.value})"


# API token scopes are the permission names: a token narrows its account's role, never widens it.
SCOPES: tuple[str, ...] = tuple(p.value for p in Perm)


def require(actor: Actor, perm: Perm) -> None:
    """Raise PermissionDenied (the caller audits it) unless the actor may do ``perm``."""
    if not allowed(actor, perm):
        raise PermissionDenied(denial(actor, perm))

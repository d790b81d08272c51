"""Inputs of accounts: one model per request for the JSON body and the page's form.

``PUT /api/me/lock-pin`` takes :class:`LockPinSet` as its body; *My account* builds the same
model with :func:`ketaclinic.http.inputs.model_from_form`. The PIN's own rules (6–8 digits, not
one repeated digit nor a run, not the password) and the password check are the lock-screen
service's (:meth:`~ketaclinic.services.accounts.lock_screen.LockScreenService.set_pin`), so
both paths refuse the same PIN in the same words.

``POST /api/service-accounts`` and ``POST /api/service-accounts/{id}/tokens`` take
:class:`ServiceAccountCreate` and :class:`TokenCreate` as their bodies; the API-tokens page
builds the same models (its scope boxes, one repeated field, become ``scopes``). The users
page's two flags (:class:`UserActive`, :class:`MedicalDirectorFlag`) have no JSON twin and are
models all the same. The older account inputs (a user, a password change or reset) are in
``ketaclinic.schemas``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ketaclinic.schemas import Whole
from ketaclinic.services.accounts.permissions import SCOPES


class LockPinSet(BaseModel):
    """Set (or replace) your lock-screen PIN; your current password confirms it is you."""

    model_config = ConfigDict(extra="forbid")

    password: str = Field("", max_length=256, description="Your current password")
    pin: str = Field("", max_length=64, description="6 to 8 digits, not one repeated digit "
                     "nor a run like 123456, and not your password")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=5000)


class ServiceAccountCreate(_Strict):
    """A user that never logs in and acts only with API tokens."""

    username: str = Field(min_length=2, max_length=63)
    full_name: str = Field(min_length=1, max_length=200,
                           description="What the integration is, e.g. 'Lab results feed'")
    role: Literal["admin", "prescriber", "nurse", "analyst"] = Field(
        description="The most its tokens may do")


class TokenCreate(_Strict):
    """An API token for a service account: what it may do and for how long."""

    label: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(min_length=1, max_length=len(SCOPES),
                              description="Permission names, e.g. patient.read; each must be "
                              "granted by the account's role (GET /api/tokens/scopes)")
    expires_in_days: Whole = Field(ge=1, le=3650, description="Required; at most "
                                   "KETACLINIC_API_TOKEN_MAX_DAYS")


class UserActive(_Strict):
    """The users page's "deactivate" / "activate" button: the state to set (no JSON twin)."""

    active: bool


class MedicalDirectorFlag(_Strict):
    """The users page's medical-director button: set or clear the flag (no JSON twin)."""

    flag: bool

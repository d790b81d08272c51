"""The lock-screen PIN input: one model for the JSON body and the account page's form.

``PUT /api/me/lock-pin`` takes :class:`LockPinSet` as its body; *My account* builds the same
model with :func:`ketaclinic.http.inputs.model_from_form`. The PIN's own rules (6–8 digits, not
one repeated digit nor a run, not the password) and the password check are the lock-screen
service's (:meth:`~ketaclinic.services.accounts.lock_screen.LockScreenService.set_pin`), so
both paths refuse the same PIN in the same words.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LockPinSet(BaseModel):
    """Set (or replace) your lock-screen PIN; your current password confirms it is you."""

    model_config = ConfigDict(extra="forbid")

    password: str = Field("", max_length=256, description="Your current password")
    pin: str = Field("", max_length=64, description="6 to 8 digits, not one repeated digit "
                     "nor a run like 123456, and not your password")

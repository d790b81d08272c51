"""Idempotency keys: the one implementation of "a resubmitted create records once".

Every create that accepts an ``Idempotency-Key`` (patients, dose orders, assessments, chair
vitals, in-session ratings and adverse events) goes through ``uow.idempotency.run``
(:class:`ketaclinic.services.unit_of_work.IdempotencyWork`); this module holds the keys:

* A key belongs to one **user and operation** (``scope``): another user's identical key is a
  different key, so nobody can obtain (or suppress) someone else's record by guessing a key.
* The key stores a SHA-256 of the **canonical request** (the operation's path parameters and
  its body as sorted JSON). The same key with the same request replays the first result; the
  same key with a **different** request is refused with 422 (:class:`KeyReused`), audited as
  ``rejected``, and nothing is recorded.
* Every replay returns patient data, so it is **audited as a read** (action
  ``<scope>.replay``, outcome ``replayed``) in the transaction that reads it.
* Two identical requests racing each other: the loser's insert fails on the unique
  (scope, user, key) constraint and it replays the winner's result.

Keys recorded before migration 0008 carry no request hash (``""``); they replay only for the
user who made them (the scope was already stored with the user id).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.errors import InvalidInput
from ketaclinic.store.tables import IdempotencyKey

KEY_MAX_LENGTH = 100


class KeyReused(InvalidInput):
    """The key was already used by this user for a different request (422)."""


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    raise TypeError(f"cannot hash a {type(value).__name__} request part")


def request_hash(*parts: Any) -> str:
    """SHA-256 of the canonical JSON of a request's parts (models, dataclasses, dicts)."""
    canonical = json.dumps(list(parts), sort_keys=True, separators=(",", ":"),
                           default=_plain, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IdempotentRequest:
    """One keyed request: the operation, the user, the client's key and the request's hash."""

    scope: str
    user_id: int
    key: str
    body_hash: str

    @classmethod
    def of(cls, actor: Actor, scope: str, key: str | None, *request: Any
           ) -> IdempotentRequest | None:
        """The keyed request, or None when the client sent no key; a bad key is a 422."""
        if key is None or key == "":
            return None
        if not 1 <= len(key) <= KEY_MAX_LENGTH:
            raise InvalidInput(f"Idempotency-Key must be 1–{KEY_MAX_LENGTH} characters")
        return cls(scope, actor.user_id or 0, key, request_hash(*request))


class IdempotencyRepository:
    """The ``idempotency_keys`` rows of one transaction."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def find(self, req: IdempotentRequest) -> int | None:
        """The resource id recorded for this user's key in this scope; :class:`KeyReused` when
        the key was used for a different request."""
        row = self.s.execute(select(IdempotencyKey).where(
            IdempotencyKey.scope == req.scope, IdempotencyKey.user_id == req.user_id,
            IdempotencyKey.key == req.key)).scalar_one_or_none()
        if row is None:
            return None
        if row.request_hash and row.request_hash != req.body_hash:
            raise KeyReused("this Idempotency-Key was already used for a different request; "
                            "send a new key for a new request")
        return row.resource_id

    def remember(self, req: IdempotentRequest, resource_id: int, now: dt.datetime) -> None:
        self.s.add(IdempotencyKey(scope=req.scope, user_id=req.user_id, key=req.key,
                                  request_hash=req.body_hash, resource_id=resource_id,
                                  created_at=now))
        self.s.flush()

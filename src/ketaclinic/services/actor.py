"""Who is acting: the one type the audit trail, the permission table and the context share.

It lives on its own so that none of them has to import another to name an actor (the trail
checks permissions; permissions name actors; the context holds both).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """Who is acting: a logged-in user, a patient via a link, or the system."""

    user_id: int | None
    username: str
    role: str
    # A service account acting with an API token: the token's scopes (permission names; None
    # for a person, whose role alone decides) and its public prefix (recorded on every audit
    # row the token causes; never the secret).
    scopes: frozenset[str] | None = None
    token: str | None = None


SYSTEM = Actor(user_id=None, username="system", role="system")

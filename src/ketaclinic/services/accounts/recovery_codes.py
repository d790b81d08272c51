"""One-time recovery codes for two-factor login, and generated temporary passwords.

A recovery code is 16 symbols of Crockford's base32 (80 random bits) shown as
``abcd-efgh-jkmn-pqrs``; typing is forgiving (case, spaces and dashes are ignored, ``i``/``l``
read as ``1`` and ``o`` as ``0``). Only HMAC-SHA256(per-code random 128-bit salt, code) is
stored (ASVS 2.6.2: a salted approved one-way hash), and a code is marked used the moment it
is accepted (2.6.1).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32: no i, l, o, u
CODES_PER_SET = 10
_GROUPS, _GROUP_LEN = 4, 4
_TYPO = str.maketrans({"i": "1", "l": "1", "o": "0"})


def _random_groups(groups: int = _GROUPS, size: int = _GROUP_LEN) -> str:
    return "-".join("".join(secrets.choice(ALPHABET) for _ in range(size))
                    for _ in range(groups))


def new_codes(n: int = CODES_PER_SET) -> list[str]:
    """``n`` fresh codes for the user to write down."""
    return [_random_groups() for _ in range(n)]


def temporary_password() -> str:
    """A generated temporary password (80 random bits, 19 characters, easy to read aloud)."""
    return _random_groups()


def normalize(code: str | None) -> str | None:
    """The code's 16 symbols, or None when it cannot be a recovery code at all."""
    text = "".join((code or "").lower().split()).replace("-", "").translate(_TYPO)
    if len(text) != _GROUPS * _GROUP_LEN or any(c not in ALPHABET for c in text):
        return None
    return text


def digest(salt_hex: str, normalized: str) -> str:
    return hmac.new(bytes.fromhex(salt_hex), normalized.encode("ascii"),
                    hashlib.sha256).hexdigest()


def seal(code: str) -> tuple[str, str]:
    """(salt, digest) to store for a code."""
    salt = secrets.token_hex(16)
    normalized = normalize(code)
    assert normalized is not None, "new_codes() makes well-formed codes"
    return salt, digest(salt, normalized)


def matches(salt_hex: str, stored_digest: str, normalized: str) -> bool:
    return hmac.compare_digest(digest(salt_hex, normalized), stored_digest)

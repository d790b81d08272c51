"""Secrets at rest (two-factor keys, webhook signing secrets): AES-256-GCM under a key derived
from the instance secret.

A stored value reads ``v1.<key id>.<base64url(nonce | ciphertext | tag)>``:

- ``v1``: HKDF-SHA256 over ``KETACLINIC_SECRET_KEY`` (info names the purpose and the version),
  AES-256-GCM with a random 96-bit nonce;
- ``key id``: 8 hex digits identifying the derived key (a hash of it, not the key), so a value
  written under an older secret is recognised and can be re-encrypted (``ketaclinic user
  encrypt-secrets`` with ``KETACLINIC_PREVIOUS_SECRET_KEY``, :meth:`SecretBox.reseal`);
- the associated data names the column and the row (``users.totp_secret|7``): a value copied to
  another user's row does not decrypt.

Anything that does not decrypt raises :class:`SecretUnreadable`, whose message never contains
the value. A base32 TOTP key cannot contain ``.``, so a legacy plaintext value is recognisable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "v1"
_INFO = b"ketaclinic secrets at rest v1 (AES-256-GCM)"
_SALT = b"ketaclinic"
_NONCE_BYTES = 12


class SecretUnreadable(Exception):
    """A stored secret could not be decrypted (other key, tampered, or not encrypted)."""


def derive_key(instance_secret: str) -> bytes:
    """The 256-bit encryption key for ``instance_secret`` (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(
        instance_secret.encode("utf-8"))


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"ketaclinic key id|" + key).hexdigest()[:8]


def is_encrypted(stored: str | None) -> bool:
    return stored is not None and stored.startswith(VERSION + ".")


def stored_key_id(stored: str) -> str | None:
    parts = stored.split(".")
    return parts[1] if len(parts) == 3 and parts[0] == VERSION else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SecretBox:
    """Encrypts with the current key; decrypts with the current or a previous one."""

    current: bytes
    previous: tuple[bytes, ...] = ()

    @classmethod
    def for_secrets(cls, current: str, *previous: str) -> SecretBox:
        return cls(derive_key(current), tuple(derive_key(p) for p in previous if p))

    @property
    def current_id(self) -> str:
        return key_id(self.current)

    def encrypt(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self.current).encrypt(nonce, plaintext.encode("utf-8"),
                                              context.encode("utf-8"))
        return f"{VERSION}.{self.current_id}.{_b64(nonce + sealed)}"

    def decrypt(self, stored: str, context: str) -> str:
        kid = stored_key_id(stored or "")
        if kid is None:
            raise SecretUnreadable("the stored secret is not encrypted (run `ketaclinic user "
                                   "encrypt-secrets`)")
        key = next((k for k in (self.current, *self.previous) if key_id(k) == kid), None)
        if key is None:
            raise SecretUnreadable(f"the stored secret was encrypted with another key (id {kid}; "
                                   f"this server's key is {self.current_id})")
        try:
            raw = _unb64(stored.split(".")[2])
            plain = AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:],
                                        context.encode("utf-8"))
            return plain.decode("utf-8")
        except (InvalidTag, ValueError, binascii.Error) as exc:
            raise SecretUnreadable("the stored secret failed its integrity check") from exc

    def is_current(self, stored: str) -> bool:
        return stored_key_id(stored) == self.current_id

    def reseal(self, stored: str, context: str) -> tuple[str, str]:
        """``stored`` sealed under the current key, and what that took: ``encrypted`` (it was
        plaintext), ``reencrypted`` (it was sealed under a previous key) or ``current``.
        Raises :class:`SecretUnreadable` when it does not decrypt."""
        if not is_encrypted(stored):
            return self.encrypt(stored, context), "encrypted"
        if self.is_current(stored):
            return stored, "current"
        return self.encrypt(self.decrypt(stored, context), context), "reencrypted"


@dataclass
class EncryptReport:
    """What ``ketaclinic user encrypt-secrets`` did to one kind of secret; ``unreadable``
    names the owners (users, endpoints) of the values that did not decrypt."""

    encrypted: int = 0
    reencrypted: int = 0
    current: int = 0
    unreadable: list[str] = field(default_factory=list)

    def reseal(self, box: SecretBox, stored: str, context: str, owner: str) -> str:
        """:meth:`SecretBox.reseal`, counted; an unreadable value is kept as it was."""
        try:
            value, outcome = box.reseal(stored, context)
        except SecretUnreadable:
            self.unreadable.append(owner)
            return stored
        setattr(self, outcome, getattr(self, outcome) + 1)
        return value

    def describe(self) -> str:
        return (f"{self.encrypted} encrypted, {self.reencrypted} re-encrypted, "
                f"{self.current} already current, {len(self.unreadable)} unreadable")


def totp_context(user_id: int, column: str = "totp_secret") -> str:
    """Associated data binding an encrypted two-factor key to its column and user."""
    return f"users.{column}|{user_id}"

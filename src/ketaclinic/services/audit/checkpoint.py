"""Signed checkpoints of the audit chains' tips, kept OUTSIDE the database.

The chain tips (``audit_head``) live in the same database as the rows, so someone with write
access who deletes the last rows of a chain and rewinds its tip (on SQLite: deletes every row
and resets chain 1) leaves a trail that verifies. A checkpoint records, for every chain, its
row count, the hash of its last row and that row's id at one moment, signed with HMAC-SHA256
under a key derived from the instance secret; it is written to a file the database does not
hold:

* ``<data dir>/audit-checkpoints.jsonl``: one signed checkpoint per line, appended (mode 0600)
  by ``ketaclinic audit checkpoint``, by every ``ketaclinic backup`` (before the snapshot, so the
  backup holds every row the checkpoint names) and by the running app once per
  ``KETACLINIC_AUDIT_CHECKPOINT_MINUTES``;
* ``ketaclinic audit checkpoint --out FILE`` writes one more copy for a cron job to ship off the
  machine; ``ketaclinic backup`` writes ``<backup>.audit-checkpoint.json`` beside the backup.

``ketaclinic audit verify`` compares the chain with the latest checkpoint of the data dir (and
any ``--checkpoint FILE`` given): every chain must still hold at least the checkpoint's count
of rows, and its row at that position must carry the checkpoint's hash. A truncated chain
("holds 0 rows, the checkpoint recorded 812") or a chain rewritten before the checkpoint is
named. A checkpoint that does not verify (edited, or another instance's secret) fails the
verification: it is never silently skipped.

Limit: an attacker who can write both the database and every copy of the checkpoints, and
holds the secret, is not detected; the off-site copy is what makes that hard.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.store.tables import AuditHead

FORMAT = "ketaclinic-audit-checkpoint"
FILE_NAME = "audit-checkpoints.jsonl"
_TS = "%Y-%m-%dT%H:%M:%SZ"


class CheckpointError(Exception):
    """A checkpoint file that cannot be read or whose signature does not verify."""


@dataclass(frozen=True)
class ChainMark:
    chain: int
    count: int
    last_hash: str
    last_event_id: int


@dataclass(frozen=True)
class Checkpoint:
    taken_at: dt.datetime
    marks: tuple[ChainMark, ...]
    source: str = ""  # where it was read from (for messages; not signed)

    @property
    def rows(self) -> int:
        return sum(m.count for m in self.marks)

    def label(self) -> str:
        where = f" ({self.source})" if self.source else ""
        return f"the checkpoint of {self.taken_at.strftime(_TS)}{where}"

    def _payload(self) -> dict[str, object]:
        return {"format": FORMAT, "version": 1, "taken_at": self.taken_at.strftime(_TS),
                "chains": [[m.chain, m.count, m.last_hash, m.last_event_id]
                           for m in self.marks]}


def checkpoint_key(audit_key: bytes) -> bytes:
    """The signing key: derived from the audit chain's key (itself from the instance secret)."""
    return hmac.new(audit_key, b"ketaclinic-audit-checkpoint", hashlib.sha256).digest()


def _sign(key: bytes, payload: dict[str, object]) -> str:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hmac.new(checkpoint_key(key), body.encode(), hashlib.sha256).hexdigest()


def take(session: Session, at: dt.datetime) -> Checkpoint:
    """The committed tips of every non-empty chain, as seen by ``session``."""
    heads = session.execute(select(AuditHead).where(AuditHead.count > 0)
                            .order_by(AuditHead.id)).scalars()
    return Checkpoint(at.replace(tzinfo=None, microsecond=0), tuple(
        ChainMark(h.id, h.count, h.last_hash, h.last_event_id) for h in heads))


def to_line(key: bytes, cp: Checkpoint) -> str:
    payload = cp._payload()
    return json.dumps(payload | {"signature": _sign(key, payload)}, sort_keys=True) + "\n"


def from_line(key: bytes, line: str, source: str = "") -> Checkpoint:
    where = source or "the checkpoint"
    try:
        data = json.loads(line)
        signature = data.pop("signature")
        if data.get("format") != FORMAT or data.get("version") != 1:
            raise CheckpointError(f"{where} is not an audit checkpoint")
        marks = tuple(ChainMark(int(c), int(n), str(h), int(i)) for c, n, h, i in data["chains"])
        taken = dt.datetime.strptime(data["taken_at"], _TS)
    except CheckpointError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{where} cannot be read ({type(exc).__name__})") from exc
    if not hmac.compare_digest(str(signature), _sign(key, data)):
        raise CheckpointError(f"{where} does not verify: it was edited, or it was signed with "
                              "another KETACLINIC_SECRET_KEY")
    return Checkpoint(taken, marks, source)


def _open_private(path: Path, flags: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return os.open(path, flags | os.O_CREAT, 0o600)


def append(path: Path, key: bytes, cp: Checkpoint) -> None:
    """Append one signed line to ``path`` (created 0600), flushed to disk."""
    fd = _open_private(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, to_line(key, cp).encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def write(path: Path, key: bytes, cp: Checkpoint) -> None:
    """Write ``path`` as a file holding this one checkpoint (atomic replace, 0600)."""
    tmp = path.with_name(path.name + ".partial")
    tmp.unlink(missing_ok=True)
    fd = _open_private(tmp, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, to_line(key, cp).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def read_latest(path: Path, key: bytes) -> Checkpoint | None:
    """The last checkpoint in ``path`` (a .jsonl of many or a file of one); None if the file
    does not exist or is empty. A last line that does not verify raises."""
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} cannot be read ({type(exc).__name__})") from exc
    return from_line(key, lines[-1], str(path)) if lines else None

"""`ketaclinic doctor`: one pass over what an operator must get right, each check named.

Reuses the checks the app already enforces (settings validation, the secret's strength, the
durability check, the schema revision, /readyz's write probe, replica read and free-space
rule, the audit chain verification against the latest signed checkpoint) and adds what only
an operator sees (a checkpoint that is too old, a data folder others can read). Unlike startup
it does not stop at the first problem: every check runs and reports ``ok``, ``warn`` or
``fail``. Nothing here reads or prints patient data.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ketaclinic.config import (
    Settings,
    SettingsError,
    describe_settings_error,
    load_settings,
)

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}


def run_doctor(environ: Mapping[str, str], now: dt.datetime | None = None) -> Report:
    """Every check, in order; a check that cannot run (no settings, no database) is a fail."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    try:
        cfg = load_settings(environ)
    except (ValidationError, ValueError) as exc:
        detail = (describe_settings_error(exc) if isinstance(exc, ValidationError)
                  else str(exc).splitlines()[0])
        return Report((Check("settings", FAIL, detail),))
    checks = [check_settings(cfg), check_secret(cfg), check_data_dir(cfg)]
    missing = _missing_sqlite_file(cfg)
    if missing is not None:  # opening it would create it (and its folder): only report
        return Report((*checks, Check("database", FAIL, f"{missing} does not exist "
                                      "(`ketaclinic init` creates it)")))
    engine = _engine(cfg)
    try:
        checks.extend(_database_checks(cfg, engine, now))
    finally:
        engine.dispose()
    return Report(tuple(checks))


def _missing_sqlite_file(cfg: Settings) -> Path | None:
    from sqlalchemy.engine import make_url

    url = make_url(cfg.effective_database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:" \
            or url.database.startswith("file:"):
        return None
    path = Path(url.database)
    return None if path.exists() else path


def _engine(cfg: Settings) -> Engine:
    from ketaclinic.store.db import make_engine

    return make_engine(cfg.effective_database_url, busy_timeout_ms=cfg.sqlite_busy_timeout_ms,
                       pool_size=2)


def _database_checks(cfg: Settings, engine: Engine, now: dt.datetime) -> list[Check]:
    reach = _guard("database", lambda: _check_reachable(engine))
    if reach.status == FAIL:
        return [reach]
    schema = _guard("schema", lambda: check_schema(engine))
    checks = [reach, schema, _guard("durability", lambda: check_durability(cfg, engine)),
              _guard("disk and writes", lambda: check_ready(cfg, engine))]
    if cfg.read_database_url:
        checks.append(_guard("read replica", lambda: check_replica(cfg, engine)))
    if schema.status == FAIL:
        checks.append(Check("audit chain", FAIL, "not checked: the schema is not at head"))
    else:
        checks.append(_guard("audit chain", lambda: check_audit(cfg, engine, now)))
    return checks


def _guard(name: str, check: Callable[[], Check]) -> Check:
    """A check that raises is a fail, named by the error's type (never its message, which
    may carry values from the database)."""
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - reported, never raised to the operator
        return Check(name, FAIL, f"could not be checked ({type(exc).__name__})")


def check_settings(cfg: Settings) -> Check:
    notes = []
    if cfg.env != "production":
        notes.append(f"KETACLINIC_ENV is {cfg.env} (not production)")
    if not cfg.secure_cookies:
        notes.append("KETACLINIC_SECURE_COOKIES is off (set it behind an HTTPS proxy)")
    if cfg.is_sqlite and cfg.workers > 1:
        notes.append("several workers on SQLite share one write lock (PostgreSQL scales)")
    if not notes:
        return Check("settings", OK, "valid; production mode, secure cookies")
    return Check("settings", WARN, "valid; " + "; ".join(notes))


def check_secret(cfg: Settings) -> Check:
    from ketaclinic.config import MIN_SECRET_BITS, estimated_entropy_bits

    bits = estimated_entropy_bits(cfg.secret_key.get_secret_value())
    try:
        cfg.check_startup()
    except SettingsError as exc:
        return Check("secret key", FAIL, str(exc).split(";")[0])
    if bits < MIN_SECRET_BITS:  # only dev gets here: it may start, but it is no secret
        return Check("secret key", WARN, f"about {bits:.0f} bits estimated; fine for a demo "
                     f"(dev), {MIN_SECRET_BITS} needed anywhere else")
    return Check("secret key", OK, f"about {bits:.0f} bits estimated (>= {MIN_SECRET_BITS})")


def check_data_dir(cfg: Settings) -> Check:
    """The data folder (SQLite file, checkpoints, uploads) exists, is ours and not open to
    others: the app creates it 0700 (store.private)."""
    folder = cfg.data_dir
    if not folder.exists():
        return Check("data dir", FAIL, f"{folder} does not exist (`ketaclinic init` creates it)")
    info = folder.stat()
    if not os.access(folder, os.W_OK):
        return Check("data dir", FAIL, f"{folder} is not writable by this user")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return Check("data dir", WARN, f"{folder} is owned by uid {info.st_uid}, not this "
                     f"user ({os.getuid()})")
    open_to = [p for p in _private_paths(cfg) if p.exists() and p.stat().st_mode & 0o077]
    if open_to:
        modes = ", ".join(f"{p} ({stat.filemode(p.stat().st_mode)})" for p in open_to)
        return Check("data dir", FAIL, f"readable or writable by others: {modes} "
                     "(chmod 700 the folder, 600 the files)")
    return Check("data dir", OK, f"{folder} is private to this user")


def _private_paths(cfg: Settings) -> list[Path]:
    from ketaclinic.services.audit.checkpoint import FILE_NAME

    paths = [cfg.data_dir, cfg.data_dir / FILE_NAME]
    if cfg.is_sqlite:
        db = Path(cfg.effective_database_url.removeprefix("sqlite:///"))
        paths += [db, db.with_name(db.name + "-wal")]
    return paths


def _check_reachable(engine: Engine) -> Check:
    from sqlalchemy import text

    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return Check("database", OK, f"{engine.dialect.name} answers")


def check_schema(engine: Engine) -> Check:
    from ketaclinic.store import migrate

    current, head = migrate.current_revision(engine), migrate.head_revision(engine)
    if current == head:
        return Check("schema", OK, f"at head ({head})")
    refused = migrate.refusal(current)
    if refused:
        return Check("schema", FAIL, refused)
    return Check("schema", FAIL, f"at {current or 'no revision'}, head is {head}: run "
                 "`ketaclinic migrate` (after a backup)")


def check_durability(cfg: Settings, engine: Engine) -> Check:
    from ketaclinic.store.db import check_durability as durability_problems

    problems = durability_problems(engine)
    if not problems:
        return Check("durability", OK, "acknowledged writes survive a crash")
    allowed = " (allowed by KETACLINIC_ALLOW_WEAK_DURABILITY)" if cfg.allow_weak_durability \
        else ""
    return Check("durability", FAIL, "; ".join(problems) + allowed)


def check_ready(cfg: Settings, engine: Engine) -> Check:
    """/readyz's rule: the database takes a write (rolled back), the disk has room."""
    import shutil

    from ketaclinic.store.db import Database
    from ketaclinic.store.health import readiness, storage_folder

    folder = storage_folder(cfg.effective_database_url, cfg.data_dir)
    problems = readiness(Database(engine), folder, cfg.min_free_disk_mb)
    if problems:
        return Check("disk and writes", FAIL, "; ".join(problems))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free_mb = shutil.disk_usage(folder).free / (1024 * 1024)
    return Check("disk and writes", OK, f"database takes writes; {free_mb:,.0f} MB free "
                 f"(>= {max(cfg.min_free_disk_mb, 1)} MB)")


def check_replica(cfg: Settings, engine: Engine) -> Check:
    """KETACLINIC_READ_DATABASE_URL, opened as the app opens it (read-only), answers a read
    of the schema revision, which should be the primary's (else it lags or replicates
    another database)."""
    from ketaclinic.store import migrate
    from ketaclinic.store.db import Database, make_read_engine
    from ketaclinic.store.health import read_replica_revision

    replica = make_read_engine(cfg.read_database_url,
                               busy_timeout_ms=cfg.sqlite_busy_timeout_ms, pool_size=1)
    try:
        revision = read_replica_revision(Database(engine, replica))
    finally:
        replica.dispose()
    primary = migrate.current_revision(engine)
    if revision != primary:
        return Check("read replica", WARN, f"reads, but holds schema {revision or 'none'} and "
                     f"the primary {primary}: is it lagging, or a replica of another database?")
    return Check("read replica", OK, f"reads (opened read-only); schema {revision} as the "
                 "primary's")


def check_audit(cfg: Settings, engine: Engine, now: dt.datetime) -> Check:
    """The whole chain verifies against the data dir's latest signed checkpoint, and that
    checkpoint is recent (the app writes one every KETACLINIC_AUDIT_CHECKPOINT_MINUTES)."""
    from ketaclinic.services.audit import checkpoint as acp
    from ketaclinic.services.audit.trail import AuditTrail, audit_key

    trail = AuditTrail(audit_key(cfg))
    try:
        latest = acp.read_latest(cfg.data_dir / acp.FILE_NAME, trail.key)
    except acp.CheckpointError as exc:
        return Check("audit chain", FAIL, str(exc))
    with Session(bind=engine) as s:
        verdict = trail.verify(s, [latest] if latest else [])
    if not verdict.ok:
        return Check("audit chain", FAIL, verdict.describe())
    if latest is None:
        return Check("audit chain", WARN, f"{verdict.checked} rows verify; no checkpoint yet "
                     "(run `ketaclinic audit checkpoint`)")
    age_min = (now - latest.taken_at.replace(tzinfo=None)).total_seconds() / 60
    limit = 2 * cfg.audit_checkpoint_minutes if cfg.audit_checkpoint_minutes else 24 * 60
    age = f"latest checkpoint {age_min:.0f} min old"
    if age_min > limit:
        return Check("audit chain", WARN, f"{verdict.checked} rows verify; {age} (more than "
                     f"{limit} min: is the app or the cron job writing them?)")
    return Check("audit chain", OK, f"{verdict.checked} rows verify; {age}")

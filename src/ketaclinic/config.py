"""One typed settings object, read from the environment once, at the edge.

Every setting is documented in README.md under "Configuration" (a test checks that).
"""

from __future__ import annotations

import ipaddress
import math
import string
import zlib
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "change-me-not-a-secret"


def zone_for(name: str) -> ZoneInfo:
    """The IANA time zone called ``name``, or ValueError with a one-line reason."""
    try:
        if not name or name != name.strip():
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as "
                         "America/New_York, Europe/Berlin or UTC") from None


class SettingsError(RuntimeError):
    """The configuration is unsafe or inconsistent; the message says what to change."""


class Settings(BaseSettings):
    """ketaclinic configuration; each field is set by ``KETACLINIC_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="KETACLINIC_", extra="ignore", frozen=True)

    env: Literal["dev", "test", "production"] = Field(
        "production", description="dev (demo and placeholder secret allowed), test or production"
    )
    data_dir: Path = Field(Path("data"), description="Folder for the SQLite file and uploads")
    database_url: str = Field(
        "",
        description="SQLAlchemy URL; empty means a SQLite file in data_dir. "
        "PostgreSQL: postgresql+psycopg://user@host:5432/dbname",
    )
    read_database_url: str = Field(
        "",
        description="Optional SQLAlchemy URL of a read replica (e.g. a PostgreSQL streaming "
        "standby) for the dashboard's read-only analytic queries; every write, and the audit "
        "row of each dashboard view, stays on database_url. It is opened read-only (SQLite: "
        "mode=ro; PostgreSQL: READ ONLY transactions) and /readyz and `ketaclinic doctor` "
        "read it. Empty: everything on database_url",
    )
    secret_key: SecretStr = Field(
        SecretStr(PLACEHOLDER_SECRET),
        description="Signs the audit chain and tokens; outside dev, a placeholder or a guessable "
        "secret (under about 128 bits estimated) refuses to start",
    )
    host: str = Field("127.0.0.1", description="Address the server listens on")
    port: int = Field(8000, ge=1, le=65535, description="Port the server listens on")
    workers: int = Field(1, ge=1, le=64, description="Server worker processes")
    keep_alive_seconds: int = Field(
        65, ge=1, le=3600, description="Idle seconds before the server closes a kept-alive "
        "connection (longer than clients and proxies keep theirs, so none sends on a closing one)"
    )
    audit_checkpoint_minutes: int = Field(
        60, ge=0, le=24 * 60, description="Minutes between the signed checkpoints of the audit "
        "chain that the running app writes to data_dir (audit-checkpoints.jsonl; also written "
        "by `ketaclinic backup` and `ketaclinic audit checkpoint`); 0 turns the app's off"
    )
    idle_timeout_minutes: int = Field(15, ge=1, le=24 * 60, description="Idle session timeout")
    absolute_timeout_hours: int = Field(12, ge=1, le=72, description="Absolute session lifetime")
    login_max_failures: int = Field(
        5, ge=1, le=100, description="Failed logins of one user from one address before "
        "that pair is throttled (one address: 4 times as many, any users; one user from several "
        "addresses: past 4 times as many, a growing back-off)"
    )
    login_window_minutes: int = Field(
        15, ge=1, le=24 * 60, description="Window in which failed logins are counted"
    )
    secure_cookies: bool = Field(
        False, description="Always mark cookies Secure (set behind an HTTPS proxy)"
    )
    trusted_proxies: str = Field(
        "", description="Comma-separated addresses or networks of reverse proxies whose "
        "X-Forwarded-For / X-Forwarded-Proto headers are believed (e.g. 127.0.0.1 or "
        "10.0.0.0/24); empty (the default) ignores those headers from everyone"
    )
    root_path: str = Field(
        "", pattern=r"^(/?[A-Za-z0-9._~-]+)*/?$", description="Sub-path the app is served "
        "under behind a reverse proxy (e.g. /clinic): links, redirects, static files and cookie "
        "paths get it; requests are accepted with or without it. Empty: served at /"
    )
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token a Prometheus scraper sends to read /metrics "
        "(Authorization: Bearer ...); empty (the default) lets only loopback clients read it"
    )
    access_log: bool = Field(
        False, description="Write one JSON line per request to stderr (time, method, route "
        "template, status, duration, request id; never the path's ids, query strings or bodies)"
    )
    max_body_bytes: int = Field(
        1_000_000, ge=1024, description="Largest request body accepted (413 above)"
    )
    min_free_disk_mb: int = Field(
        100, ge=0, description="Free space (MB) the database's disk must keep for /readyz to "
        "answer ready"
    )
    sqlite_busy_timeout_ms: int = Field(
        30_000, ge=100, description="How long SQLite waits for a write lock"
    )
    allow_weak_durability: bool = Field(
        False, description="Start even if the database's durability settings are weakened"
    )
    require_totp_for: str = Field(
        "admin,prescriber",
        description="Roles that must enrol in two-factor login (TOTP) before anything else; "
        "enforced when env is production (comma-separated; empty turns it off)",
    )
    temporary_password_hours: int = Field(
        72, ge=1, le=24 * 14,
        description="Hours a temporary password set by an administrator's reset stays valid "
        "(the user must replace it at the first login)",
    )
    api_token_max_days: int = Field(
        90, ge=1, le=3650,
        description="Longest lifetime (days) an administrator may give an API token of a "
        "service account (every token must expire)",
    )
    fhir_mrn_system: str = Field(
        "", description="FHIR identifier system (a URI) of this clinic's medical record numbers "
        "in exports, e.g. urn:oid:2.16.840.1.113883.3.1234.1 or https://clinic.example.org/mrn; "
        "empty means https://ketaclinic.org/fhir/sid/mrn"
    )
    export_retention_hours: int = Field(
        24, ge=1, le=24 * 30,
        description="Hours the files of a FHIR $export job are kept (encrypted at rest under a "
        "key derived from secret_key) before they are deleted; an expired job answers 404",
    )
    clinic_name: str = Field("ketaclinic demo clinic", description="Shown in page headers")
    clinic_timezone: str = Field(
        "UTC", description="IANA time zone of the clinic (e.g. America/New_York): pages, forms, "
        "PDFs and 'today'/'this week' use it; stored times and the JSON API stay UTC"
    )
    public_base_url: str = Field(
        "", description="Base URL patients use to reach self-report links (e.g. "
        "https://clinic.example.org); empty means http://HOST:PORT"
    )
    self_report_link_hours: int = Field(
        72, ge=1, le=24 * 30, description="Hours a one-time self-report link stays valid"
    )
    self_report_max_failures: int = Field(
        10, ge=1, le=1000, description="Rejected submissions on one self-report link before it "
        "is locked"
    )
    self_report_ip_limit: int = Field(
        30, ge=1, le=100_000, description="Self-report requests per client address per window "
        "before throttling"
    )
    self_report_ip_window_minutes: int = Field(
        15, ge=1, le=24 * 60, description="Window in which self-report requests are counted"
    )
    reminder_days: str = Field(
        "1,3,7", pattern=r"^[0-9]{1,3}(,[0-9]{1,3}){0,19}$",
        description="Default days after each dose on which a self-report reminder is sent",
    )
    pk_assumed_cv: float = Field(
        0.30, ge=0, le=1.5,
        description="Variability (CV) assumed on every parameter for the predicted-exposure "
        "band when a model publishes none (racemic IV models); 0 shows no band. Project "
        "default (grade U), labelled on the chart",
    )
    smtp_host: str = Field("", description="SMTP server for e-mailed links; empty disables e-mail")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP server port")
    smtp_username: str = Field("", description="SMTP login name (empty: no login)")
    smtp_password: SecretStr | None = Field(None, description="SMTP password")
    smtp_from: str = Field("", description="Sender address of e-mailed links")
    smtp_starttls: bool = Field(True, description="Use STARTTLS with the SMTP server")
    sms_url: str = Field(
        "", description="HTTPS address of the SMS gateway the outbox's sms channel posts to "
        "(JSON {\"from\", \"to\", \"body\"}, see docs/integrations.md); empty disables SMS"
    )
    sms_token: SecretStr | None = Field(
        None, description="Bearer token sent to the SMS gateway (Authorization: Bearer ...)"
    )
    sms_sender: str = Field(
        "", max_length=20, description="Sender id or number the SMS gateway shows (the "
        "message's \"from\"); empty leaves it to the gateway"
    )
    outbound_allow_http: bool = Field(
        False, description="Allow http:// and loopback (127.0.0.1, ::1) addresses for webhook "
        "endpoints and the SMS gateway (tests, a receiver on this host); https only otherwise. "
        "Link-local and cloud metadata addresses are always refused"
    )
    outbound_timeout_seconds: int = Field(
        10, ge=1, le=120, description="Seconds a webhook or SMS request may take (connect, "
        "send, read) before it counts as a failed attempt and is retried"
    )

    @field_validator("clinic_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        zone_for(value)  # ValueError with a one-line reason for an unknown name
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        for item in (v.strip() for v in value.split(",") if v.strip()):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (e.g. 10.0.0.5 "
                                 "or 10.0.0.0/24)") from None
        return value

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [v.strip() for v in self.trusted_proxies.split(",") if v.strip()]

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ketaclinic.sqlite3').as_posix()}"

    @property
    def totp_required_roles(self) -> frozenset[str]:
        """The roles for which enrolment is enforced now (only in production)."""
        if self.env != "production":
            return frozenset()
        return frozenset(r.strip() for r in self.require_totp_for.split(",") if r.strip())

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def check_startup(self) -> None:
        """Refuse unsafe settings: outside dev, a secret that is the placeholder or guessable.

        Tests run with ``env=test`` and a real random secret: a test setting must not be a
        way to start with a weak one.
        """
        secret = self.secret_key.get_secret_value()
        if self.env == "dev":
            return
        bits = estimated_entropy_bits(secret)
        if secret == PLACEHOLDER_SECRET or bits < MIN_SECRET_BITS:
            raise SettingsError(
                f"KETACLINIC_SECRET_KEY is a placeholder or too guessable (about {bits:.0f} "
                f"bits estimated, {MIN_SECRET_BITS} needed); set a random secret (e.g. "
                "`python -c 'import secrets;print(secrets.token_urlsafe(48))'`) "
                "or run with KETACLINIC_ENV=dev for a demo"
            )


MIN_SECRET_BITS = 128


def estimated_entropy_bits(secret: str) -> float:
    """A conservative estimate of the secret's randomness: its length times the Shannon
    entropy of its own character frequencies, each character counted at most at the entropy
    of its alphabet (digits, hex, letters, URL-safe, printable), and at most what compression
    leaves. Repeats and padding score low ("x" * 40 scores 0, "abcd" * 16 about 50); 48 random
    URL-safe bytes score about 300 bits. An estimate: it cannot tell a quoted phrase from a
    random one of the same letters."""
    if not secret:
        return 0.0
    counts = Counter(secret)
    n = len(secret)
    per_char = -sum(c / n * math.log2(c / n) for c in counts.values())
    by_frequency = n * min(per_char, math.log2(_alphabet_size(secret)))
    # Repeated runs ("abcd" * 16) have even character frequencies: count what compression
    # leaves of them (raw deflate, two bytes of framing).
    squeezer = zlib.compressobj(9, zlib.DEFLATED, -15)
    squeezed = squeezer.compress(secret.encode()) + squeezer.flush()
    return min(by_frequency, max(0, len(squeezed) - 2) * 8.0)


def _alphabet_size(secret: str) -> int:
    chars = set(secret)
    if chars <= set(string.digits):
        return 10
    if chars <= set(string.hexdigits.lower()) or chars <= set(string.hexdigits.upper()
                                                                 + string.digits):
        return 16
    if chars <= set(string.ascii_letters + string.digits + "-_"):
        return 64
    return 95 if all(c.isascii() for c in chars) else 1024


def describe_settings_error(exc: ValidationError) -> str:
    """One line per bad setting, named by its variable: "KETACLINIC_PORT: Input should be …"."""
    parts = []
    for err in exc.errors():
        name = "KETACLINIC_" + "_".join(str(p) for p in err.get("loc", ())).upper()
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{name}: {msg}")
    return "; ".join(parts)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from an environment mapping (the process environment by default)."""
    if environ is None:
        return Settings(**overrides)
    values: dict[str, object] = {}
    for name in Settings.model_fields:
        key = f"KETACLINIC_{name.upper()}"
        if key in environ:
            values[name] = environ[key]
    values.update(overrides)
    return Settings.model_validate(values)

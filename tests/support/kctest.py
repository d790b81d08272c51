"""Helpers shared by the test suite (imported as `kctest`).

SQLAlchemy and ketaclinic are imported inside the helpers that use them: tests/conftest.py
imports this module, and so does the xdist controller, which runs no test and should not
spend two CPU-seconds importing the application before it starts the workers.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
import secrets
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

BACKENDS = [b.strip() for b in os.environ.get(
    "KETACLINIC_TEST_DATABASES", "sqlite,postgresql").split(",") if b.strip()]
PG_URL = os.environ.get("KETACLINIC_TEST_POSTGRES_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _test_secret() -> str:
    """A real random secret (env=test refuses a guessable one like production does), the same
    in every xdist worker of one run: a database one worker made (the shared demo) has audit
    hashes and sealed secrets the others can check. Derived from the run's random id (a
    uuid4 xdist gives each worker), or fresh in a run without workers."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:
        return secrets.token_urlsafe(48)
    digest = hashlib.sha512(f"ketaclinic-test-secret:{run}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


TEST_SECRET = _test_secret()
START = dt.datetime(2026, 11, 2, 9, 0, 0)
IN_CI = os.environ.get("CI", "").lower() == "true"

# Hypothesis profiles (loaded by tests/conftest.py). "full", the default and what `make test`
# runs, gives every property the examples its decorator asks for; "fast" (`make test-fast` sets
# HYPOTHESIS_PROFILE=fast) runs the same properties on fewer generated cases.
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "full")
FAST_EXAMPLES = 15


def examples(full: int, fast: int = FAST_EXAMPLES) -> int:
    """``max_examples`` for a property: ``full`` in the full profile, at most ``fast`` in fast.

    An explicit ``max_examples`` overrides any profile, so decorators ask through this.
    """
    return min(full, fast) if HYPOTHESIS_PROFILE == "fast" else full


def register_hypothesis_profiles() -> None:
    from hypothesis import settings

    settings.register_profile("full", settings.get_profile("default"))
    settings.register_profile("fast", max_examples=FAST_EXAMPLES)
    settings.load_profile(HYPOTHESIS_PROFILE)  # an unknown name fails the run


def _pg_admin_engine():  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT",
                           connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not available here"
        engine.dispose()
        pytest.skip(f"PostgreSQL is not reachable at {make_url(PG_URL).render_as_string()} "
                    f"({type(exc).__name__}); set KETACLINIC_TEST_POSTGRES_URL or "
                    "KETACLINIC_TEST_DATABASES=sqlite")
    return engine


def create_pg_database() -> tuple[str, object]:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    admin = _pg_admin_engine()
    name = f"kc_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    return url, (admin, name)


def drop_pg_database(handle: object) -> None:
    from sqlalchemy import text

    admin, name = handle  # type: ignore[misc]
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def fresh_database_url(backend: str, folder: Path) -> tuple[str, object | None]:
    if backend == "sqlite":
        return f"sqlite:///{(folder / f'kc-{uuid.uuid4().hex[:8]}.sqlite3').as_posix()}", None
    if backend == "postgresql":
        return create_pg_database()
    raise ValueError(f"unknown test backend {backend!r}")


def shared_run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """A folder every xdist worker of this run shares (pytest's temporary folder of the run,
    never another run's), or None outside xdist."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return None
    folder = tmp_path_factory.getbasetemp().parent / "shared"
    folder.mkdir(exist_ok=True)
    return folder


@contextmanager
def run_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file at ``path`` (made if missing) for the block: one
    worker at a time."""
    import fcntl

    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


RAM_DISK = Path(os.environ.get("KETACLINIC_TEST_SQLITE_DIR", "/dev/shm"))


@contextmanager
def sqlite_test_folder(fallback: Path) -> Iterator[Path]:
    """Where the shared test SQLite database lives: a RAM-backed folder when the machine has one.

    The database is the same (WAL, synchronous=FULL, the same checks); only the fsync that every
    commit waits for costs nothing there, which on a busy disk made most of a test's time.
    Elsewhere (no /dev/shm, or not writable) it is ``fallback``. Removed at the end.
    """
    if not (RAM_DISK.is_dir() and os.access(RAM_DISK, os.W_OK)):
        yield fallback
        return
    folder = Path(tempfile.mkdtemp(prefix="ketaclinic-test-", dir=RAM_DISK))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def make_settings(url: str, **overrides: object):  # type: ignore[no-untyped-def]
    """Test settings for the database at ``url``. Settings are frozen and read nothing but
    their arguments, so equal arguments give the same object (validating them again cost
    about 1.5 ms, for every test's services)."""
    try:
        key = (url, tuple((k, type(v), v) for k, v in sorted(overrides.items())))
        hash(key)
    except TypeError:  # an unhashable override value: build it every time
        return _make_settings(url, overrides)
    if key not in _SETTINGS:
        _SETTINGS[key] = _make_settings(url, overrides)
    return _SETTINGS[key]


_SETTINGS: dict[tuple[str, tuple[tuple[str, type, object], ...]], object] = {}


def _make_settings(url: str, overrides: dict[str, object]):  # type: ignore[no-untyped-def]
    from ketaclinic.config import load_settings

    values = {"KETACLINIC_ENV": "test", "KETACLINIC_DATABASE_URL": url,
              "KETACLINIC_SECRET_KEY": TEST_SECRET}
    return load_settings(values, **overrides)


USERS = {
    "admin": ("admin", "Ada Admin", "admin", "admin-password-1"),
    "prescriber": ("prescriber", "Dr Pim", "prescriber", "prescriber-password-1"),
    "nurse": ("nurse", "Nina Nurse", "nurse", "nurse-password-1"),
    "analyst": ("analyst", "Ann Analyst", "analyst", "analyst-password-1"),
}


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def page_error(html: str) -> str:
    """The refusal a page shows (its ``.alert.error`` text) as a person reads it; the page
    must show one."""
    texts = set(alert_texts(html))
    assert len(texts) == 1, f"expected one refusal on the page, found {texts}"
    return texts.pop()


# Elements without an end tag (HTML's void elements): never open, so never left open.
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                   "param", "source", "track", "wbr"})


def alert_texts(html: str, classes: frozenset[str] = frozenset({"alert", "error"})) -> list[str]:
    """The text of every element of ``html`` carrying all of ``classes``, in document order,
    as BeautifulSoup's ``select(".alert.error")`` and ``get_text(strip=True)`` read it: each
    string inside the element stripped, the non-empty ones joined.

    A streaming pass of the standard library's HTML tokenizer that builds no tree: building
    BeautifulSoup's tree of a 120 kB tablet page cost about five times the tokenizing, and the
    form tests read a refusal from a hundred such pages."""
    from html.parser import HTMLParser

    found: list[list[str]] = []  # the strings of each matching element, in document order
    # The open elements: (tag, the strings of an element being read, or None).
    stack: list[tuple[str, list[str] | None]] = []

    class _Reader(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in _VOID:
                return
            names = {n for k, v in attrs if k == "class" and v for n in v.split()}
            strings: list[str] | None = None
            if classes <= names:
                strings = []
                found.append(strings)
            stack.append((tag, strings))

        def handle_endtag(self, tag: str) -> None:
            # Like BeautifulSoup: close up to the latest open element of this name; an end
            # tag with none open is ignored.
            for depth in range(len(stack) - 1, -1, -1):
                if stack[depth][0] == tag:
                    del stack[depth:]
                    return

        def handle_data(self, data: str) -> None:
            piece = data.strip()
            if piece:
                for _tag, strings in stack:
                    if strings is not None:
                        strings.append(piece)

    reader = _Reader(convert_charrefs=True)
    reader.feed(html)
    reader.close()  # an element the page never closed ends with it
    return ["".join(strings) for strings in found]


class StatementCount:
    """How many SQL statements ran (``n``); a test may set ``n = 0`` to start again."""

    n = 0


@contextmanager
def counting_statements(engine) -> Iterator[StatementCount]:  # type: ignore[no-untyped-def]
    """Counts the statements ``engine`` sends inside the block: for fixed-cost (no N+1) checks."""
    from sqlalchemy import event

    counter = StatementCount()

    def _count(*_args, **_kwargs) -> None:  # type: ignore[no-untyped-def]
        counter.n += 1

    event.listen(engine, "before_cursor_execute", _count)
    try:
        yield counter
    finally:
        event.remove(engine, "before_cursor_execute", _count)


def listener_counts(db) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Event listeners on a ``Database``'s engine, its pool and its sessions, by event: a test
    that adds one to a database other tests share must remove it before it ends."""
    counts = {}
    session = db.session_factory()
    try:
        for where, dispatch in (("engine", db.engine.dispatch), ("pool", db.engine.pool.dispatch),
                                ("session", session.dispatch)):
            for name in dispatch._event_names:
                counts[f"{where}.{name}"] = len(getattr(dispatch, name))
    finally:
        session.close()
    return counts


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for another database or an in-memory one)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _sqlite_files(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")] + [path]


def save_sqlite_template(url: str, template: Path) -> None:
    """Copy the SQLite database at ``url`` (no connection open on it) to ``template``: its WAL
    is checkpointed into the main file first, so the one file holds every committed row."""
    path = sqlite_file(url)
    assert path is not None, url
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    shutil.copy(path, template)


def restore_sqlite_template(url: str, template: Path) -> None:
    """Put the database at ``url`` back to ``template``, byte for byte: the file, its WAL and
    shared-memory files are removed and the template copied in (with its mode, 0600). A
    connection a test left open keeps the removed file; nothing of it reaches the new one."""
    path = sqlite_file(url)
    assert path is not None, url
    for old in _sqlite_files(path):
        old.unlink(missing_ok=True)
    shutil.copy(template, path)


def wipe(url: str) -> None:
    """Empty every table of a migrated test database and put back the audit chain's heads.

    DELETE, children first, on both databases: on PostgreSQL a TRUNCATE of the 48 tables gives
    each a new file and waits for it on disk (about 1.5 s a test, most of a PostgreSQL test's
    time), where deleting the few rows a test wrote takes milliseconds. Every sequence starts
    at 1 again, as TRUNCATE ... RESTART IDENTITY did.
    """
    from sqlalchemy import text

    from ketaclinic.services.audit.trail import initial_heads
    from ketaclinic.store.db import make_engine
    from ketaclinic.store.models import Base

    engine = make_engine(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        for name in tables:
            conn.execute(text(f"DELETE FROM {name}"))
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT setval(c.oid, 1, false) FROM pg_class c "
                              "WHERE c.relkind = 'S'"))
        conn.execute(text("INSERT INTO audit_head (id, last_event_id, last_hash, count) "
                          "VALUES (:id, :last_event_id, :last_hash, :count)"), initial_heads())
    engine.dispose()

"""Shared fixtures: every integration test runs on SQLite and on PostgreSQL.

Backends come from KETACLINIC_TEST_DATABASES (default "sqlite,postgresql"); PostgreSQL from
KETACLINIC_TEST_POSTGRES_URL (default the local server's `test` database). Each test session
creates its own PostgreSQL database, so runs never share state. With CI=true a skipped test
fails the run: CI must exercise PostgreSQL and the browser for real.

The application is imported inside the fixtures, not here: the xdist controller loads this
file too, runs no test, and starts the workers only once it has.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from kctest import (
    BACKENDS,
    IN_CI,
    USERS,
    drop_pg_database,
    fresh_database_url,
    listener_counts,
    make_settings,
    register_hypothesis_profiles,
    restore_sqlite_template,
    run_lock,
    save_sqlite_template,
    shared_run_folder,
    sqlite_file,
    sqlite_test_folder,
    wipe,
)

if TYPE_CHECKING:
    from ketaclinic.bootstrap import Services
    from ketaclinic.services.clock import SteppingClock
    from ketaclinic.store.db import Database

START = dt.datetime(2026, 11, 2, 9, 0, 0)
register_hypothesis_profiles()  # HYPOTHESIS_PROFILE=fast under `make test-fast`


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped under CI=true, which must run everything: {reason}"


BROWSER_DIR = Path(__file__).parent / "browser"


def _backend_of(item) -> str | None:  # type: ignore[no-untyped-def]
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("backend") if callspec is not None else None


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    """Tests marked postgresql_only are deselected (not skipped) for the SQLite backend.

    Every test under tests/browser/ carries the browser marker, so `-m "not browser"` leaves out
    a new browser test even when its file forgets the marker.
    """
    keep, drop = [], []
    for item in items:
        if BROWSER_DIR in item.path.parents:
            item.add_marker(pytest.mark.browser)
        on_sqlite = _backend_of(item) == "sqlite"
        (drop if on_sqlite and item.get_closest_marker("postgresql_only") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


class _SlowFirst:
    @pytest.hookimpl(trylast=True)  # after pytest has grouped the tests by database
    def pytest_collection_modifyitems(self, items):  # type: ignore[no-untyped-def]
        """Within each database's tests the slow ones go first, so that no worker is left with
        a long test at the end while the other waits: `--dist worksteal` (.ci/run) splits the
        tests in this order and moves those not yet started from the end of one worker's
        share to the other. The databases keep their order (their tests stay together, so a
        worker seldom goes back to a database and sets its session fixtures up again)."""
        rank = {backend: i for i, backend in enumerate(BACKENDS)}
        items.sort(key=lambda item: (rank.get(_backend_of(item), len(rank)),
                                     item.get_closest_marker("slow") is None))


def pytest_configure(config):  # type: ignore[no-untyped-def]
    config.pluginmanager.register(_SlowFirst(), "ketaclinic-slow-first")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ketaclinic.store import migrate
    from ketaclinic.store.db import make_engine

    with sqlite_test_folder(tmp_path_factory.mktemp(backend)) as folder:
        url, handle = fresh_database_url(backend, folder)
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url
        if handle is not None:
            drop_pg_database(handle)


@pytest.fixture
def sqlite_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder for a test's own SQLite files: on the RAM disk where the machine has one (as
    the suite's shared database is, ``kctest.sqlite_test_folder``), else ``tmp_path``."""
    with sqlite_test_folder(tmp_path) as folder:
        yield folder


@pytest.fixture(scope="session", autouse=True)
def _cheaper_password_hashing() -> Iterator[None]:
    """Real argon2id, with test-sized cost parameters (production keeps the library defaults)."""
    from argon2 import PasswordHasher

    from ketaclinic.services.accounts import auth

    original = auth._hasher
    auth._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    auth._hasher = original


@pytest.fixture(autouse=True)
def _own_working_directory(request, tmp_path_factory, monkeypatch):  # type: ignore[no-untyped-def]
    """Settings without KETACLINIC_DATA_DIR use ./data (audit checkpoints are written there):
    every integration test gets its own working directory, so no test reads another
    test's checkpoints and nothing is written into the source tree."""
    if request.node.path.parent.name == "integration":
        monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def clock() -> SteppingClock:
    from ketaclinic.services.clock import SteppingClock

    return SteppingClock(START)


def _create_users(svc: Services) -> dict[str, object]:
    from ketaclinic.services.audit.trail import SYSTEM

    return {key: svc.auth.create_user(SYSTEM, u, n, r, p) for key, (u, n, r, p) in USERS.items()}


_USERS_IN_DATABASE = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def _fresh_database(database_url: str):  # type: ignore[no-untyped-def]
    """fresh(with_users) empties the test database; True when the users are already in it.

    PostgreSQL is wiped (``kctest.wipe`` deletes the rows). SQLite is wiped once per worker and
    copied as a template, then a test gets a copy of that file: about 20 times cheaper than
    deleting from every table. When the test takes ``users`` the template also holds the four staff
    accounts, made through ``auth.create_user`` at ``START`` exactly as the fixture makes them.
    """
    from ketaclinic.bootstrap import build_services
    from ketaclinic.services.clock import SteppingClock

    path = sqlite_file(database_url)
    templates: dict[bool, Path] = {}

    def fresh(with_users: bool) -> bool:
        if path is None:
            wipe(database_url)
            return False
        if with_users not in templates:
            wipe(database_url)
            if with_users:
                svc = build_services(make_settings(database_url), clock=SteppingClock(START))
                try:
                    _create_users(svc)
                finally:
                    svc.close()
            template = path.with_name(f"{path.stem}-template-{'users' if with_users else 'empty'}"
                                      f"{path.suffix}")
            save_sqlite_template(database_url, template)
            templates[with_users] = template
        restore_sqlite_template(database_url, templates[with_users])
        return with_users

    return fresh


@pytest.fixture(scope="session")
def _open_databases():  # type: ignore[no-untyped-def]
    """open(url) -> the worker's one ``Database`` for a test database, opened once.

    Each test's services are built on it (``build_services(..., database=)``) and closing them
    closes its pooled connections only: the engine stays, and with it SQLAlchemy's cache of
    compiled statements, which a new engine per test started empty (compiling the same SQL
    again in every test was about a third of a small test's CPU).
    """
    from ketaclinic.bootstrap import open_database

    opened: dict[str, Database] = {}

    def open_(url: str) -> Database:
        if url not in opened:
            opened[url] = open_database(make_settings(url))
        return opened[url]

    yield open_
    for db in opened.values():
        db.dispose()


def _on_shared_database(url: str, open_databases, clock,  # type: ignore[no-untyped-def]
                        overrides: dict[str, object] | None = None) -> Iterator[Services]:
    from ketaclinic.bootstrap import build_services

    db = open_databases(url)
    svc = build_services(make_settings(url, **(overrides or {})), clock=clock, database=db)
    listeners = listener_counts(db)
    yield svc
    svc.close()
    assert listener_counts(db) == listeners, (
        "the test left an event listener on the database other tests share: remove it "
        "(sqlalchemy.event.remove) before the test ends")


@pytest.fixture
def services(request: pytest.FixtureRequest, database_url: str, clock: SteppingClock,
             _fresh_database, _open_databases) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    """The real services on an empty database (with the staff accounts when the test takes
    ``users``, directly or through ``app``, ``client`` or ``login``)."""
    request.node.stash[_USERS_IN_DATABASE] = _fresh_database("users" in request.fixturenames)
    yield from _on_shared_database(database_url, _open_databases, clock)


@pytest.fixture
def services_for(request: pytest.FixtureRequest, services: Services, database_url: str,
                 clock: SteppingClock, _open_databases):  # type: ignore[no-untyped-def]
    """services_for(**settings) -> the services on this test's database (the one ``services``
    emptied, with the same ``clock``) built with other settings, as ``build_services`` makes
    them, on the worker's one ``Database`` (a new engine per test compiled every statement
    again: about a third of a small test's CPU). Closed, and checked for left listeners, at
    the end. Only for settings of the same database: a replica or another database opens its
    own. A module that overrides ``services`` builds on ``_open_databases(database_url)``."""
    built: list[Iterator[Services]] = []

    def get(**overrides: object) -> Services:
        made = _on_shared_database(database_url, _open_databases, clock, overrides)
        built.append(made)
        return next(made)

    yield get
    for made in reversed(built):
        for _ in made:  # runs the close and the listener check
            pass


DEMO_CLINIC_PATIENTS = 12
DEMO_COHORT_PATIENTS = 40


@pytest.fixture(scope="session")
def _demo_database(backend: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """demo_url(patients) -> the URL of a migrated database holding the seeded demo clinic.

    Seeding the demo is the slowest setup there is; tests that only read it share one database
    per size, seeded once per session (per xdist worker) instead of once per test. On SQLite
    under xdist it is seeded once per run: the first worker to need a size seeds it and leaves
    a copy in the run's shared folder (under a lock), the other copies that file into its own
    folder (the same bytes; the workers share the run's secret key, ``kctest.TEST_SECRET``, so
    the audit chain verifies on either). About 5 CPU-seconds a run (12 and 40 patients).
    """
    made: dict[int, str] = {}
    handles: list[object] = []
    shared = shared_run_folder(tmp_path_factory) if backend == "sqlite" else None
    with sqlite_test_folder(tmp_path_factory.mktemp(f"demo-{backend}")) as folder:

        def demo_url(patients: int) -> str:
            if patients not in made:
                url, handle = fresh_database_url(backend, folder)
                handles.extend([handle] if handle is not None else [])
                if shared is None:
                    _seed_demo(url, patients)
                else:
                    template = shared / f"demo-{patients}.sqlite3"
                    with run_lock(shared / f"demo-{patients}.lock"):
                        if not template.exists():
                            _seed_demo(url, patients)
                            save_sqlite_template(url, template)
                    restore_sqlite_template(url, template)
                made[patients] = url
            return made[patients]

        yield demo_url
        for handle in handles:
            drop_pg_database(handle)


def _seed_demo(url: str, patients: int) -> None:
    """Migrate the database at ``url`` and seed the demo clinic of ``patients`` into it."""
    from sqlalchemy import select

    from ketaclinic.bootstrap import build_services
    from ketaclinic.demo.clinic import seed_demo
    from ketaclinic.schemas import AllergyCreate
    from ketaclinic.services.audit.trail import SYSTEM
    from ketaclinic.services.clock import SteppingClock
    from ketaclinic.store.tables import Patient

    # As the app starts: migrate, then a current outcome summary.
    svc = build_services(make_settings(url), clock=SteppingClock(START), upgrade=True)
    try:
        seed_demo(svc, patients=patients)
        # One allergy, so that every kind of stored row is in the demo.
        with svc.db.transaction() as s:
            pid = s.execute(select(Patient.id).order_by(Patient.id)).scalars().first()
        svc.patients.add_allergy(SYSTEM, pid, AllergyCreate(substance="Penicillin",
                                                            reaction="rash"))
    finally:
        svc.close()


@pytest.fixture
def demo_clinic(_demo_database, _open_databases) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    """Services on the shared demo clinic (12 patients and one allergy), seeded once.

    Only for tests that read: what they write (their audit rows) stays for the next test.
    """
    from ketaclinic.services.clock import SteppingClock

    yield from _on_shared_database(_demo_database(DEMO_CLINIC_PATIENTS), _open_databases,
                                   SteppingClock(START))


@pytest.fixture
def demo_cohort(_demo_database, _open_databases) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    """Services on the shared 40-patient demo cohort (outcomes, relapse), seeded once; read only."""
    from ketaclinic.services.clock import SteppingClock

    yield from _on_shared_database(_demo_database(DEMO_COHORT_PATIENTS), _open_databases,
                                   SteppingClock(START))


@pytest.fixture
def users(request: pytest.FixtureRequest, services: Services) -> dict[str, object]:
    """The four staff accounts of ``USERS`` (``UserInfo`` by role), made at ``START``."""
    from sqlalchemy import select

    from ketaclinic.services.accounts.auth import user_info
    from ketaclinic.store.tables import User

    if not request.node.stash.get(_USERS_IN_DATABASE, False):
        return _create_users(services)
    with services.db.transaction() as s:
        made = {u.username: user_info(u) for u in s.execute(select(User)).scalars()}
    assert len(made) == len(USERS), sorted(made)
    return {key: made[username] for key, (username, *_rest) in USERS.items()}


@pytest.fixture(scope="session")
def _apps() -> dict[object, tuple[object, list[object]]]:
    """One app per settings and worker, rebound to each test's services (see ``app_for``)."""
    return {}


@pytest.fixture
def app_for(_apps):  # type: ignore[no-untyped-def]
    """app_for(services) -> the real app on these services, as ``create_app(services)`` makes
    it. One is built per worker for each settings (FastAPI's analysis of every route and
    Jinja's compiling of each template were most of an app test's setup), then ``rebind``
    gives it the services and new middleware, as ``create_app`` would: nothing of the
    previous test is kept. A test calls it once per settings."""
    from ketaclinic.web.app import create_app, rebind

    def get(svc: Services):  # type: ignore[no-untyped-def]
        built, routes = _apps.get(svc.settings, (None, None))
        # A test that added a route to its app (test_logging's crash route) left an app that
        # is no longer what create_app makes: the next test gets a new one.
        if built is not None and list(built.routes) == routes:  # type: ignore[attr-defined]
            rebind(built, svc)  # type: ignore[arg-type]
        else:
            built = create_app(svc)
            _apps[svc.settings] = (built, list(built.routes))
        return built

    return get


@pytest.fixture
def app(services: Services, users: dict[str, object], app_for):  # type: ignore[no-untyped-def]
    """The real app on this test's services (see ``app_for``)."""
    return app_for(services)


@pytest.fixture
def production_app(services, users, database_url, clock, app_for):  # type: ignore[no-untyped-def]
    """The app as production runs it (env=production: two-factor enrolment required) on the
    test's database; ``services`` and ``users`` are the test's own."""
    from ketaclinic.bootstrap import build_services

    settings = make_settings(database_url).model_copy(update={"env": "production"})
    svc = build_services(settings, clock=clock)
    yield app_for(svc)
    svc.close()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def login(app):  # type: ignore[no-untyped-def]
    """login("nurse") -> (TestClient with a session cookie, csrf token)."""
    from fastapi.testclient import TestClient

    clients = []

    def _login(role: str, base_url: str = "http://testserver"):  # type: ignore[no-untyped-def]
        # Entered, so one event-loop thread serves every request of this client: a client
        # that is not entered starts a new thread and event loop for each request, about
        # half of a small request's CPU.
        c = TestClient(app, raise_server_exceptions=False, base_url=base_url).__enter__()
        clients.append(c)
        username, _n, _r, password = USERS[role]
        r = c.post("/api/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return c, r.json()["csrf_token"]

    yield _login
    for c in clients:
        c.__exit__(None, None, None)

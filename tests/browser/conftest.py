"""Browser tests: a real server process on a fresh database, driven by Debian's Chromium."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from kcbrowser import CHROMIUM, CHROMIUM_ARGS, LIVE_USERS, TABLET
from kctest import TEST_SECRET, drop_pg_database, fresh_database_url

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(env: dict[str, str], *commands: list[str]) -> None:
    """Run ketaclinic commands one after the other in one process, as the server's user would
    in a shell (each new interpreter and import of ketaclinic costs about two CPU seconds);
    the first that fails stops the run with its exit code."""
    code = ("import json, sys\nfrom ketaclinic.cli import main\n"
            "for args in json.loads(sys.argv[1]):\n"
            "    if (exit_code := main(args)) != 0:\n"
            "        sys.exit(exit_code)\n")
    subprocess.run([sys.executable, "-c", code, json.dumps(commands)], env=env, check=True,
                   capture_output=True, timeout=120)


class LiveServer:
    def __init__(self, base_url: str, env: dict[str, str]) -> None:
        self.base_url = base_url
        self.env = env

    def cli(self, *args: str) -> None:
        _cli(self.env, list(args))


@pytest.fixture(scope="session")
def live_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from serve(backend, tmp_path_factory.mktemp(f"live-{backend}"))


@pytest.fixture(scope="session")
def live_server_new_york(backend: str,
                         tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A second server whose clinic is in New York (KETACLINIC_CLINIC_TIMEZONE)."""
    yield from serve(backend, tmp_path_factory.mktemp(f"live-ny-{backend}"),
                     KETACLINIC_CLINIC_TIMEZONE="America/New_York")


@pytest.fixture(scope="session")
def live_server_short_idle(backend: str,
                           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose sessions lock after one idle minute (the lock-screen test)."""
    yield from serve(backend, tmp_path_factory.mktemp(f"live-idle-{backend}"),
                     KETACLINIC_IDLE_TIMEOUT_MINUTES="1")


def _faked_clock() -> dict[str, str]:
    """KETACLINIC_TEST_SERVER_FAKETIME="2026-12-08 00:03" starts the live servers' clock (and
    their set-up commands') at that UTC time through libfaketime (Debian: apt-get install
    faketime), to try a browser test at a time of day; Chromium and the test keep the real one."""
    start = os.environ.get("KETACLINIC_TEST_SERVER_FAKETIME", "")
    if not start:
        return {}
    if not any(Path("/usr/lib").glob("*/faketime/libfaketime.so.1")):
        pytest.skip("KETACLINIC_TEST_SERVER_FAKETIME needs libfaketime (apt-get install faketime)")
    offset = dt.datetime.fromisoformat(start).replace(tzinfo=dt.UTC) - dt.datetime.now(dt.UTC)
    # An offset (not an absolute start), so the set-up commands, the server and its workers
    # share one clock.
    return {"LD_PRELOAD": "/usr/$LIB/faketime/libfaketime.so.1",
            "FAKETIME": f"{round(offset.total_seconds()):+d}"}


def serve(backend: str, folder: Path, **settings: str) -> Iterator[LiveServer]:
    """Initialise a fresh database with the live users and serve it until the generator ends."""
    clock = _faked_clock()
    url, handle = fresh_database_url(backend, folder)
    port = _free_port()
    env = {**os.environ, "KETACLINIC_ENV": "test", "KETACLINIC_DATABASE_URL": url,
           "KETACLINIC_SECRET_KEY": TEST_SECRET, "KETACLINIC_DATA_DIR": str(folder),
           "KETACLINIC_PORT": str(port), **settings, **clock}
    admin = LIVE_USERS["admin"]
    _cli(env, ["init", "--admin-username", admin[0], "--admin-name", admin[1],
               "--admin-password", admin[3]],
         *(["user", "create", username, "--role", role, "--full-name", name,
            "--password", password] for username, name, role, password
           in list(LIVE_USERS.values())[1:]))
    log = open(folder / "server.log", "wb")  # noqa: SIM115 - closed below
    code = "import sys; from ketaclinic.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "serve"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the live server did not start: "
                               + (folder / "server.log").read_text(errors="replace")[-2000:])
        time.sleep(0.2)
    yield LiveServer(base, env)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    if handle is not None:
        drop_pg_database(handle)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium not found at {CHROMIUM} (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (make test installs it)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser, live_server):  # type: ignore[no-untyped-def]
    """new_page(viewport=TABLET) -> a Playwright page in a fresh browser context."""
    contexts = []

    def _make(viewport: dict[str, int] = TABLET):  # type: ignore[no-untyped-def]
        ctx = browser.new_context(viewport=viewport, base_url=live_server.base_url)
        ctx.set_default_timeout(15_000)
        contexts.append(ctx)
        return ctx.new_page()

    yield _make
    for ctx in contexts:
        ctx.close()

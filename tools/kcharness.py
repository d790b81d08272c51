"""Run a real ketaclinic server (``ketaclinic serve``, several workers) on a fresh database.

Shared by tools/crashtest.py and tools/loadtest.py and their short runs in the test suite.
Traffic goes to 127.0.0.1 only. PostgreSQL comes from KETACLINIC_TEST_POSTGRES_URL (default the
local server's ``test`` database): a fresh database is created per instance and dropped after.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("KETACLINIC_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PASSWORDS = {
    "admin": "harness-admin-password",
    "prescriber": "harness-prescriber-password",
    "nurse": "harness-nurse-password",
    "analyst": "harness-analyst-password",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_admin():  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine

    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def create_pg_database() -> tuple[str, str]:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    name = f"kc_harness_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False), name


def drop_pg_database(name: str) -> None:
    from sqlalchemy import text

    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@dataclass
class Instance:
    """A data folder, a database and (while running) a server process group."""

    backend: str
    workers: int = 2
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kc-harness-")))
    port: int = field(default_factory=free_port)
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    url: str = ""
    pg_name: str | None = None
    proc: subprocess.Popen | None = None
    starts: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.url:  # a second app host on another instance's database (scale-out test)
            return
        if self.backend == "sqlite":
            self.url = f"sqlite:///{(self.data_dir / 'ketaclinic.sqlite3').as_posix()}"
        elif self.backend == "postgresql":
            self.url, self.pg_name = create_pg_database()
        else:
            raise ValueError(f"unknown backend {self.backend!r}")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KETACLINIC_")}
        src = str(ROOT / "src")
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
        env.update({
            "KETACLINIC_ENV": "production",
            "KETACLINIC_SECRET_KEY": self.secret,
            "KETACLINIC_DATA_DIR": str(self.data_dir),
            "KETACLINIC_DATABASE_URL": self.url,
            "KETACLINIC_WORKERS": str(self.workers),
            "KETACLINIC_HOST": "127.0.0.1",
            "KETACLINIC_PORT": str(self.port),
            "KETACLINIC_ADMIN_PASSWORD": PASSWORDS["admin"],
            # Scripted clients have no authenticator app; two-factor is tested in-process.
            "KETACLINIC_REQUIRE_TOTP_FOR": "",
        })
        env.update(self.extra_env)
        return env

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-c", "import sys; from ketaclinic.cli import main; "
               "sys.exit(main())", *args]
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=False,
                              timeout=300)
        if check and done.returncode != 0:
            raise RuntimeError(f"ketaclinic {' '.join(args)} failed: {done.stderr[-500:]}")
        return done

    def setup(self) -> None:
        """Migrate, create the admin, start the server once and create one user per role."""
        self.cli("init")
        self.start()
        admin = self.client("admin")
        for role in ("prescriber", "nurse", "analyst"):
            r = admin.post("/api/users", json={"username": role, "full_name": f"Load {role}",
                                               "role": role, "password": PASSWORDS[role]},
                           headers={"X-CSRF-Token": admin.headers["X-CSRF-Token"]})
            if r.status_code not in (201, 409):
                raise RuntimeError(f"could not create {role}: {r.status_code}")
        admin.close()

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def start(self, timeout_s: float = 90.0) -> None:
        cmd = [sys.executable, "-c", "import sys; from ketaclinic.cli import main; "
               "sys.exit(main())", "serve"]
        log = self.log_path.open("a")
        log.write(f"\n--- start {self.starts}\n")
        log.flush()
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log_path.read_text()[-800:]}")
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError("the server did not answer /healthz in time")

    def kill(self) -> None:
        """SIGKILL the whole process group: supervisor and every worker, mid-request."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self._wait_group_gone()
        self.proc = None

    def stop(self) -> None:
        """Graceful stop (SIGTERM to the group), SIGKILL after 20 s."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
            self._wait_group_gone()
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def _wait_group_gone(self) -> None:
        assert self.proc is not None
        for _ in range(200):
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def client(self, role: str, timeout_s: float = 30.0) -> httpx.Client:
        """An HTTP client logged in as ``role``; its X-CSRF-Token header is set."""
        c = httpx.Client(base_url=self.base_url, timeout=timeout_s)
        r = c.post("/api/auth/login", json={"username": role, "password": PASSWORDS[role]})
        if r.status_code != 200:
            c.close()
            raise RuntimeError(f"login as {role} failed: {r.status_code}")
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return c

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        self.stop()
        if self.pg_name:
            drop_pg_database(self.pg_name)
            self.pg_name = None

    def __enter__(self) -> Instance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

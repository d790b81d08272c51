"""A clinic day under load, against the real multi-worker server (asyncio + httpx, headless).

Virtual users, each with its own login session (sessions live in the database, so any worker
serves any request):

- nurses (half): each looks after ``--infusions`` active infusions and posts a reading for
  every one of them every 5 minutes of clinic time (vitals when the API has a vitals endpoint,
  else a weight), amends the patient's notes now and then, and opens the patient page;
- prescribers: open the patient list, search, open patient pages (HTML and JSON) and every
  other patient-level GET the OpenAPI schema lists, plus the dashboard if there is one;
- patients: submit self-reports when the API has such an endpoint (else they are prescribers).

Endpoints are picked from the server's OpenAPI schema at start, so new GET endpoints under
/api/patients/{patient_id} join the prescribers' round without editing this file.
``--speed`` compresses clinic time (default 10: a 5-minute interval becomes 30 s). Users log
in over a ramp (1 s apart by default, at most 300 s; argon2id logins are deliberately
costly); latency targets apply to the steady state after it, errors are counted throughout.

    python tools/loadtest.py --backends sqlite,postgresql --duration 600

Defaults: 50 users on SQLite, 200 on PostgreSQL, 10 minutes each. Writes a Markdown table
to out/load-<backend>.md; exit 1 on a server error, a "database is locked" or a p95 above
300 ms (reads) / 500 ms (writes).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import re
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kcharness import PASSWORDS, ROOT, Instance  # noqa: E402

READ_P95_MS = 300.0
WRITE_P95_MS = 500.0
NON_CLINICAL = ("/api/auth", "/api/users", "/api/audit", "/api/me")
LOCKED = "database is locked"


def _proc_cpu_s(pid: str) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(inst: Instance) -> dict[str, float]:
    """CPU seconds used so far by the server's process group, this load generator and the
    PostgreSQL backends serving the instance's database (Linux /proc; empty elsewhere)."""
    out = {"generator": time.process_time()}
    if not Path("/proc/self/stat").exists() or inst.proc is None:
        return out
    server = postgres = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) == inst.proc.pid:
                server += _proc_cpu_s(pid)
            elif inst.pg_name:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                if cmd.startswith(b"postgres: ") and inst.pg_name.encode() in cmd:
                    postgres += _proc_cpu_s(pid)
        except (OSError, ProcessLookupError, IndexError, ValueError):
            continue
    out["server"] = server
    if inst.pg_name:
        out["postgresql"] = postgres
    return out


@dataclass
class Stats:
    samples: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    client_errors: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    locked: int = 0
    no_answer: int = 0  # timeouts and dropped connections (status 0), also in ``errors``
    error_notes: list[str] = field(default_factory=list)  # unexpected 4xx
    server_notes: list[str] = field(default_factory=list)  # 5xx and no answer
    steady_from: float = 0.0  # latencies before this moment (the login ramp) are not timed
    cpu_share: dict[str, float] = field(default_factory=dict)  # steady state, 1.0 = one core
    ramp_samples: int = 0

    def add(self, kind: str, name: str, ms: float, status: int, body: str = "") -> None:
        key = (kind, name)
        if time.monotonic() >= self.steady_from or kind == "login":
            self.samples[key].append(ms)
        else:
            self.ramp_samples += 1
        if status >= 500 or status == 0:
            self.errors[key] += 1
            self.no_answer += status == 0
            if len(self.server_notes) < 20:
                self.server_notes.append(f"{name}: {status or 'no answer'} {body[:120]}")
        elif status >= 400 and status != 409:
            self.client_errors[key] += 1
            if len(self.error_notes) < 20:
                self.error_notes.append(f"{name}: {status} {body[:120]}")
        if LOCKED in body:
            self.locked += 1


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


@dataclass
class Plan:
    """What the scenario will call, discovered from the OpenAPI schema."""

    patient_gets: list[str]
    reading: str  # POST template for the nurse's 5-minute reading
    self_report: str | None
    dashboard: str | None


def discover(schema: dict) -> Plan:
    gets, posts = [], []
    for path, ops in schema.get("paths", {}).items():
        if path.startswith(NON_CLINICAL):
            continue
        params = set(re.findall(r"{(\w+)}", path))
        if not params <= {"patient_id"}:
            continue
        for method, op in ops.items():
            required_query = [p for p in op.get("parameters", []) if p.get("required")
                              and p.get("in") == "query"]
            if method == "get" and not required_query:
                gets.append(path)
            elif method == "post":
                posts.append(path)
    vitals = [p for p in posts if "vital" in p]
    reports = [p for p in posts if re.search(r"self.?report", p)]
    dashboards = [p for p in gets if "dashboard" in p]
    return Plan(patient_gets=sorted(gets), reading=vitals[0] if vitals else
                "/api/patients/{patient_id}/weights", self_report=reports[0] if reports else None,
                dashboard=dashboards[0] if dashboards else None)


def reading_body(template: str, rng: random.Random) -> dict:
    if template.endswith("/weights"):
        return {"weight": f"{rng.uniform(45, 120):.1f} kg"}
    # A vitals endpoint: the common field names; an unknown shape shows up as 4xx in the table.
    return {"systolic_mmhg": rng.randint(105, 150), "diastolic_mmhg": rng.randint(60, 95),
            "heart_rate_bpm": rng.randint(55, 100), "spo2_percent": rng.randint(94, 100),
            "respiratory_rate_per_min": rng.randint(10, 20)}


class User:
    def __init__(self, base_url: str, stats: Stats, rng: random.Random, timeout: float) -> None:
        self.c = httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self.stats, self.rng = stats, rng

    async def call(self, kind: str, name: str, method: str, url: str,
                   **kw: object) -> httpx.Response | None:
        t0 = time.perf_counter()
        try:
            r = await self.c.request(method, url, **kw)
        except httpx.HTTPError as exc:
            self.stats.add(kind, name, (time.perf_counter() - t0) * 1000, 0, type(exc).__name__)
            return None
        ms = (time.perf_counter() - t0) * 1000
        body = r.text if r.status_code >= 400 else ""
        self.stats.add(kind, name, ms, r.status_code, body)
        return r

    async def login(self, role: str) -> bool:
        r = await self.call("login", "POST /api/auth/login", "POST", "/api/auth/login",
                            json={"username": role, "password": PASSWORDS[role]})
        if r is None or r.status_code != 200:
            return False
        self.c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return True


async def nurse(u: User, plan: Plan, patients: list[int], end: float, interval: float,
                infusions: int) -> None:
    mine = u.rng.sample(patients, min(infusions, len(patients)))
    due = {pid: time.monotonic() + u.rng.uniform(0, interval) for pid in mine}
    while time.monotonic() < end:
        pid = min(due, key=due.__getitem__)
        await asyncio.sleep(max(0.0, min(due[pid], end) - time.monotonic()))
        if time.monotonic() >= end:
            return
        path = plan.reading.replace("{patient_id}", str(pid))
        await u.call("write", f"POST {plan.reading}", "POST", path,
                     json=reading_body(plan.reading, u.rng))
        if u.rng.random() < 0.2:
            r = await u.call("read", "GET /api/patients/{patient_id}", "GET",
                             f"/api/patients/{pid}")
            if r is not None and r.status_code == 200:
                p = r.json()
                body = {k: p[k] for k in ("mrn", "family_name", "given_name", "birth_date",
                                          "sex", "phone", "email", "address")}
                body["notes"] = f"Infusion check {dt.datetime.now():%H:%M}: tolerated well."
                body["version"] = p["version"]
                await u.call("write", "PUT /api/patients/{patient_id}", "PUT",
                             f"/api/patients/{pid}", json=body)
        if u.rng.random() < 0.3:
            await u.call("read", "GET /patients/{id} (page)", "GET", f"/patients/{pid}")
        due[pid] += interval


async def prescriber(u: User, plan: Plan, patients: list[int], end: float) -> None:
    names = ["smith", "lee", "garcia", "a", "jo"]
    while time.monotonic() < end:
        choice = u.rng.random()
        pid = u.rng.choice(patients)
        if choice < 0.2:
            await u.call("read", "GET /patients (page)", "GET", "/patients")
        elif choice < 0.35:
            await u.call("read", "GET /api/patients?q=", "GET", "/api/patients",
                         params={"q": u.rng.choice(names)})
        elif choice < 0.6:
            await u.call("read", "GET /patients/{id} (page)", "GET", f"/patients/{pid}")
        elif plan.dashboard and choice < 0.65:
            await u.call("read", f"GET {plan.dashboard}", "GET", plan.dashboard)
        else:
            tpl = u.rng.choice(plan.patient_gets)
            await u.call("read", f"GET {tpl}", "GET", tpl.replace("{patient_id}", str(pid)))
        await asyncio.sleep(u.rng.uniform(1.0, 4.0))


async def patient_reporter(u: User, plan: Plan, patients: list[int], end: float,
                           interval: float) -> None:
    assert plan.self_report
    while time.monotonic() < end:
        pid = u.rng.choice(patients)
        await u.call("write", f"POST {plan.self_report}", "POST",
                     plan.self_report.replace("{patient_id}", str(pid)),
                     json={"answers": [u.rng.randint(0, 3) for _ in range(9)]})
        await asyncio.sleep(u.rng.uniform(interval / 2, interval))


async def seed_patients(inst: Instance, n: int, rng: random.Random) -> list[int]:
    admin = User(inst.base_url, Stats(), rng, 60)
    await admin.login("admin")
    ids: list[int] = []
    families = ["Smith", "Lee", "Garcia", "Okafor", "Nakamura", "Jones", "Novak", "Rossi"]

    async def one(i: int) -> None:
        r = await admin.c.post("/api/patients", headers={"Idempotency-Key": uuid.uuid4().hex},
                               json={"mrn": f"LD-{i}", "family_name": rng.choice(families),
                                     "given_name": f"Load{i}", "birth_date": "1975-06-15",
                                     "sex": "unknown", "weight": "72 kg"})
        if r.status_code in (200, 201):
            ids.append(r.json()["id"])

    for start in range(0, n, 10):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + 10))))
    await admin.c.aclose()
    return ids


async def run_load(inst: Instance, users: int, duration_s: float, speed: float, infusions: int,
                   seed: int, ramp_s: float | None = None,
                   ramp_per_user_s: float = 1.0) -> tuple[Stats, Plan, float]:
    rng = random.Random(seed)
    schema = httpx.get(inst.base_url + "/api/openapi.json", timeout=30).json()
    plan = discover(schema)
    patients = await seed_patients(inst, max(40, users * 2), rng)
    stats = Stats()
    interval = 300.0 / speed
    ramp = ramp_s if ramp_s is not None else min(300.0, users * ramp_per_user_s)
    n_nurse = max(1, users // 2)
    n_patient = max(1, users // 10) if plan.self_report else 0
    roles = (["nurse"] * n_nurse + ["patient"] * n_patient
             + ["prescriber"] * (users - n_nurse - n_patient))
    started = time.monotonic()
    end = started + ramp + duration_s
    stats.steady_from = started + ramp + min(10.0, duration_s / 4)

    async def life(i: int, role: str) -> None:
        await asyncio.sleep(ramp * i / max(1, users))
        u = User(inst.base_url, stats, random.Random(rng.random()), 30)
        try:
            login_as = "prescriber" if role == "patient" else role
            if not await u.login(login_as):
                return
            if role == "nurse":
                await nurse(u, plan, patients, end, interval, infusions)
            elif role == "patient":
                await patient_reporter(u, plan, patients, end, interval)
            else:
                await prescriber(u, plan, patients, end)
        finally:
            await u.c.aclose()

    async def measure_cpu() -> None:
        await asyncio.sleep(max(0.0, stats.steady_from - time.monotonic()))
        before, t0 = cpu_snapshot(inst), time.monotonic()
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        after, wall = cpu_snapshot(inst), max(1e-6, time.monotonic() - t0)
        stats.cpu_share = {k: (after[k] - before[k]) / wall for k in after if k in before}
        stats.cpu_share["load average"] = os.getloadavg()[0]

    await asyncio.gather(measure_cpu(), *(life(i, r) for i, r in enumerate(roles)))
    return stats, plan, time.monotonic() - started


def summarize(stats: Stats) -> dict[str, float]:
    reads = [v for (k, _n), vs in stats.samples.items() if k == "read" for v in vs]
    writes = [v for (k, _n), vs in stats.samples.items() if k == "write" for v in vs]
    return {"requests": float(sum(len(v) for v in stats.samples.values())),
            "server_errors": float(sum(stats.errors.values())),
            "client_errors": float(sum(stats.client_errors.values())),
            "locked": float(stats.locked),
            "read_p95_ms": pct(reads, 95), "write_p95_ms": pct(writes, 95),
            "reads": float(len(reads)), "writes": float(len(writes))}


def markdown(backend: str, users: int, workers: int, elapsed: float, stats: Stats, plan: Plan,
             log_locked: int) -> str:
    s = summarize(stats)
    ok = (s["server_errors"] == 0 and s["locked"] + log_locked == 0
          and s["read_p95_ms"] <= READ_P95_MS and s["write_p95_ms"] <= WRITE_P95_MS)
    cpu = ", ".join(f"{k} {v:.2f}" for k, v in stats.cpu_share.items()) or "not measured"
    lines = [f"# Load: {backend}, {users} users, {workers} workers, {elapsed:.0f} s", "",
             "| metric | value | target |", "|---|---|---|",
             f"| requests timed (after the login ramp) | {s['requests']:.0f} "
             f"({s['requests'] / max(elapsed, 1):.1f}/s; {stats.ramp_samples} during the ramp) | |",
             f"| server errors: 5xx / no answer (timeout, dropped) | "
             f"{s['server_errors'] - stats.no_answer:.0f} / {stats.no_answer} | 0 / 0 |",
             f"| \"database is locked\" (responses + server log) | "
             f"{s['locked'] + log_locked:.0f} | 0 |",
             f"| unexpected 4xx (409 excluded) | {s['client_errors']:.0f} | |",
             f"| read p95 | {s['read_p95_ms']:.0f} ms | ≤ {READ_P95_MS:.0f} ms |",
             f"| write p95 | {s['write_p95_ms']:.0f} ms | ≤ {WRITE_P95_MS:.0f} ms |",
             f"| CPU in the steady state (1.0 = one core) | {cpu} | |",
             f"| verdict | {'PASS' if ok else 'FAIL'} | |", "",
             f"Reading endpoint: `{plan.reading}`; self-reports: "
             f"`{plan.self_report or 'no endpoint yet'}`; dashboard: "
             f"`{plan.dashboard or 'none in the API'}`.", "",
             "| kind | request | count | 5xx | 4xx | p50 ms | p95 ms | max ms |",
             "|---|---|---|---|---|---|---|---|"]
    for (kind, name), vs in sorted(stats.samples.items()):
        lines.append(f"| {kind} | `{name}` | {len(vs)} | {stats.errors[(kind, name)]} | "
                     f"{stats.client_errors[(kind, name)]} | {pct(vs, 50):.0f} | "
                     f"{pct(vs, 95):.0f} | {max(vs):.0f} |")
    if stats.server_notes:
        lines += ["", "First server errors:", ""] + [f"- {n}" for n in stats.server_notes]
    if stats.error_notes:
        lines += ["", "First unexpected 4xx:", ""] + [f"- {n}" for n in stats.error_notes]
    return "\n".join(lines) + "\n"


def run_backend(backend: str, users: int, duration_s: float, workers: int = 3,
                speed: float = 10.0, infusions: int = 3, seed: int = 1,
                ramp_s: float | None = None, ramp_per_user_s: float = 1.0,
                ) -> tuple[str, Stats, int]:
    with Instance(backend, workers=workers) as inst:
        inst.setup()
        stats, plan, elapsed = asyncio.run(run_load(inst, users, duration_s, speed, infusions,
                                                    seed, ramp_s, ramp_per_user_s))
        log_locked = inst.log_text().count(LOCKED)
        table = markdown(backend, users, workers, elapsed, stats, plan, log_locked)
    return table, stats, log_locked


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="clinic-day load test against the real server")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--sqlite-users", type=int, default=50)
    ap.add_argument("--pg-users", type=int, default=200)
    ap.add_argument("--duration", type=float, default=600.0, help="seconds after ramp-up")
    ap.add_argument("--workers", type=int, default=3, help="server worker processes")
    ap.add_argument("--speed", type=float, default=10.0, help="clinic-time compression")
    ap.add_argument("--infusions", type=int, default=3, help="active infusions per nurse")
    ap.add_argument("--ramp-per-user", type=float, default=1.0,
                    help="seconds between two users' logins (the ramp is at most 300 s)")
    ap.add_argument("--out", type=Path, default=ROOT / "out")
    args = ap.parse_args(argv)
    ok = True
    args.out.mkdir(parents=True, exist_ok=True)
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        users = args.sqlite_users if backend == "sqlite" else args.pg_users
        table, stats, log_locked = run_backend(backend, users, args.duration, args.workers,
                                               args.speed, args.infusions,
                                               ramp_per_user_s=args.ramp_per_user)
        (args.out / f"load-{backend}.md").write_text(table)
        print(table)
        ok = ok and "| verdict | PASS" in table
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

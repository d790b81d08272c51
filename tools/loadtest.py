"""A clinic day under load, against the real multi-worker server (asyncio + httpx, headless).

Virtual users, each with its own login session (sessions live in the database, so any worker
serves any request):

- nurses (half): each looks after ``--infusions`` (3) active infusions — a course per patient
  and its first session checked in through the chair API at start — and posts vital signs for
  every one of them every 5 minutes of clinic time (with an Idempotency-Key, as the tablet
  does); after a reading, now and then the session page (30 %), the patient page (15 %) or a
  note in the patient's record (20 %). Without the chair API: a reading per patient instead;
- prescribers: open the patient list, search, open patient pages, the dashboard page
  (``--dashboard-share``, 5 %) and every patient-level GET the OpenAPI schema lists; a page
  answered 403 is not clicked again by that user;
- patients (a tenth): the front desk gives a PHQ-9 self-report link; the patient opens the
  public form on a phone and submits it. Phones have their own source addresses in
  127.0.0.0/8 (the public endpoints throttle per address, and patients do not share one).

Realism, in clinic time (``--speed`` compresses it, default 10: 5 minutes become 30 s):
vitals every 5 minutes per infusion is the monitoring interval of an IV ketamine session; a
prescriber's 1–4 s between clicks is 10–40 s of clinic time — a doctor working through charts
without pause all day, the heavy end of real use; a patient stream per front desk every
2.5–5 minutes. Not part of a clinic day, so not in the rotation: whole-clinic bulk exports
(an analyst's monthly job; at the prescribers' click rate they were ~12 full exports a minute),
and user, audit and account administration.

Endpoints are picked from the server's OpenAPI schema at start, so new GET endpoints under
/api/patients/{patient_id} join the prescribers' round without editing this file. Users log
in over a ramp (1 s apart by default, at most 300 s; argon2id logins are deliberately costly);
latency targets apply to the steady state after it, errors are counted throughout. The
report gives the CPU used by the server, this generator and PostgreSQL in the steady state:
the generator shares the machine, and a load average far above the core count means the
latencies measured the machine, not the server.

    python tools/loadtest.py --backends sqlite,postgresql --duration 600

Defaults: 50 users on SQLite, 200 on PostgreSQL, 10 minutes each, 3 server workers. Writes a
Markdown table to out/load-<backend>.md; exit 1 on a server error, a "database is locked" or
a p95 above 300 ms (reads) / 500 ms (writes).
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
# Whole-clinic bulk exports (research, registries) are run now and then by an analyst, not
# clicked by prescribers all day: in the round-robin they were ~12 full exports a minute.
NOT_A_CLINIC_DAY = ("/api/exports", "/api/fhir/$export")
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
    self_report: str | None  # the link a patient is given (staff POST)
    dashboard: str | None
    self_report_form: str | None = None  # the public form behind the link (GET and POST)
    course: str | None = None  # POST: a course with planned sessions, for active infusions
    checkin: str | None = None  # POST: the session's pre-checks (status checked-in)
    sessions: str | None = None  # GET: the patient's sessions


SESSION_VITALS = "/api/sessions/{session_id}/vitals"


def discover(schema: dict) -> Plan:
    gets, posts = [], []
    paths = schema.get("paths", {})
    for path, ops in paths.items():
        if path.startswith(NON_CLINICAL + NOT_A_CLINIC_DAY):
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

    def has(path: str, method: str) -> str | None:
        return path if method in paths.get(path, {}) else None

    course = has("/api/patients/{patient_id}/courses", "post")
    checkin = has("/api/sessions/{session_id}/checkin", "post")
    sessions = has("/api/patients/{patient_id}/sessions", "get")
    infusions = bool(course and checkin and sessions and has(SESSION_VITALS, "post"))
    vitals = [p for p in posts if "vital" in p]
    reports = [p for p in posts if re.search(r"self.?report", p)]
    dashboards = [p for p in gets if "dashboard" in p]
    return Plan(patient_gets=sorted(gets),
                reading=SESSION_VITALS if infusions else vitals[0] if vitals
                else "/api/patients/{patient_id}/weights",
                self_report=reports[0] if reports else None,
                dashboard=dashboards[0] if dashboards else None,
                self_report_form=has("/api/self-report/{token}", "post"),
                course=course if infusions else None, checkin=checkin if infusions else None,
                sessions=sessions if infusions else None)


def reading_body(template: str, rng: random.Random) -> dict:
    if template.endswith("/weights"):
        return {"weight": f"{rng.uniform(45, 120):.1f} kg"}
    if template == SESSION_VITALS:
        return {"sbp_mmhg": rng.randint(105, 150), "dbp_mmhg": rng.randint(60, 95),
                "hr_bpm": rng.randint(55, 100), "spo2_pct": rng.randint(94, 100),
                "rr_per_min": rng.randint(10, 20)}
    # Another vitals endpoint: common field names; an unknown shape shows up as 4xx.
    return {"systolic_mmhg": rng.randint(105, 150), "diastolic_mmhg": rng.randint(60, 95),
            "heart_rate_bpm": rng.randint(55, 100), "spo2_percent": rng.randint(94, 100),
            "respiratory_rate_per_min": rng.randint(10, 20)}


@dataclass(frozen=True)
class Infusion:
    """An active infusion: the patient and, when the chair API exists, the checked-in session."""

    patient_id: int
    session_id: int | None = None


# Like a browser, a client keeps idle connections for a while; the server keeps them longer
# (KETACLINIC_KEEP_ALIVE_SECONDS, 65 s), so a request is never sent on a closing socket.
CLIENT_KEEPALIVE_S = 30.0


class User:
    def __init__(self, base_url: str, stats: Stats, rng: random.Random, timeout: float) -> None:
        self.c = httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=httpx.Limits(
            keepalive_expiry=CLIENT_KEEPALIVE_S))
        self.stats, self.rng = stats, rng
        self.forbidden: set[str] = set()  # pages this user's role may not open (403 once)

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
        if r.status_code == 403:
            self.forbidden.add(name)  # a person does not keep clicking what they may not see
        return r

    async def login(self, role: str) -> bool:
        r = await self.call("login", "POST /api/auth/login", "POST", "/api/auth/login",
                            json={"username": role, "password": PASSWORDS[role]})
        if r is None or r.status_code != 200:
            return False
        self.c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return True


async def nurse(u: User, plan: Plan, mine: list[Infusion], end: float,
                interval: float) -> None:
    """Vitals for each of the nurse's infusions every ``interval``; now and then the session
    page (the tablet's screen), the patient page, or a note in the patient's record."""
    due = {inf: time.monotonic() + u.rng.uniform(0, interval) for inf in mine}
    while due and time.monotonic() < end:
        inf = min(due, key=due.__getitem__)
        await asyncio.sleep(max(0.0, min(due[inf], end) - time.monotonic()))
        if time.monotonic() >= end:
            return
        pid = inf.patient_id
        if inf.session_id is not None:
            await u.call("write", f"POST {plan.reading}", "POST",
                         plan.reading.replace("{session_id}", str(inf.session_id)),
                         json=reading_body(plan.reading, u.rng),
                         headers={"Idempotency-Key": uuid.uuid4().hex})
        else:
            await u.call("write", f"POST {plan.reading}", "POST",
                         plan.reading.replace("{patient_id}", str(pid)),
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
        look = u.rng.random()
        if inf.session_id is not None and look < 0.3:
            await u.call("read", "GET /sessions/{id} (page)", "GET",
                         f"/sessions/{inf.session_id}")
        elif look < (0.45 if inf.session_id is not None else 0.3):
            await u.call("read", "GET /patients/{id} (page)", "GET", f"/patients/{pid}")
        due[inf] += interval


async def prescriber(u: User, plan: Plan, patients: list[int], end: float,
                     dashboard_share: float = 0.05) -> None:
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
        elif plan.dashboard and choice < 0.6 + dashboard_share:
            await u.call("read", f"GET {plan.dashboard}", "GET", plan.dashboard)
        else:
            allowed = [t for t in plan.patient_gets if f"GET {t}" not in u.forbidden]
            tpl = u.rng.choice(allowed or plan.patient_gets)
            await u.call("read", f"GET {tpl}", "GET", tpl.replace("{patient_id}", str(pid)))
        await asyncio.sleep(u.rng.uniform(1.0, 4.0))


PHONES_PER_REPORTER = 8


def phone_client(base_url: str, timeout: httpx.Timeout, n: int) -> httpx.AsyncClient:
    """A patient's phone: its own source address in 127.0.0.0/8 (still this machine), since
    the public self-report endpoints throttle per client address."""
    address = f"127.0.{1 + n // 250}.{2 + n % 250}"
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=httpx.AsyncHTTPTransport(
        local_address=address, limits=httpx.Limits(keepalive_expiry=CLIENT_KEEPALIVE_S)))


async def patient_reporter(u: User, plan: Plan, patients: list[int], end: float,
                           interval: float, index: int = 0) -> None:
    """A stream of patients filling in a PHQ-9 on their phones: the front desk (``u``, logged
    in) gives a link; the patient, without a login, opens the form and submits it. Phones
    take turns, each from its own address (a clinic's patients do not share one)."""
    assert plan.self_report
    phones = []
    for k in range(PHONES_PER_REPORTER):
        phone = User.__new__(User)
        phone.c = phone_client(str(u.c.base_url), u.c.timeout, index * PHONES_PER_REPORTER + k)
        phone.stats, phone.rng, phone.forbidden = u.stats, u.rng, set()
        phones.append(phone)
    try:
        turn = 0
        while time.monotonic() < end:
            pid = u.rng.choice(patients)
            r = await u.call("write", f"POST {plan.self_report}", "POST",
                             plan.self_report.replace("{patient_id}", str(pid)),
                             json={"instrument": "phq9"})
            url = r.json().get("url") if r is not None and r.status_code == 201 else None
            if url and plan.self_report_form:
                await fill_in(phones[turn % len(phones)], plan.self_report_form,
                              url.rsplit("/", 1)[-1])
                turn += 1
            await asyncio.sleep(u.rng.uniform(interval / 2, interval))
    finally:
        for phone in phones:
            await phone.c.aclose()


async def fill_in(phone: User, form_tpl: str, token: str) -> None:
    path = form_tpl.replace("{token}", token)
    r = await phone.call("read", f"GET {form_tpl}", "GET", path)
    if r is None or r.status_code != 200:
        return
    form = r.json()
    await asyncio.sleep(phone.rng.uniform(0.5, 2.0))  # reading and tapping (compressed)
    answers = [phone.rng.choice(item["options"])["score"] if item.get("options") else None
               for item in form["items"]]
    await phone.call("write", f"POST {form_tpl}", "POST", path,
                     json={"form_key": form["form_key"], "answers": answers})


async def _admin(inst: Instance, role: str, rng: random.Random) -> User:
    u = User(inst.base_url, Stats(), rng, 60)
    if not await u.login(role):
        raise RuntimeError(f"the load generator could not log in as {role}")
    return u


async def _in_batches(calls: list, size: int = 10) -> list:
    out: list = []
    for start in range(0, len(calls), size):
        out += await asyncio.gather(*calls[start:start + size])
    return out


async def seed_patients(inst: Instance, n: int, rng: random.Random) -> list[int]:
    admin = await _admin(inst, "admin", rng)
    families = ["Smith", "Lee", "Garcia", "Okafor", "Nakamura", "Jones", "Novak", "Rossi"]

    async def one(i: int) -> int | None:
        r = await admin.c.post("/api/patients", headers={"Idempotency-Key": uuid.uuid4().hex},
                               json={"mrn": f"LD-{i}", "family_name": rng.choice(families),
                                     "given_name": f"Load{i}", "birth_date": "1975-06-15",
                                     "sex": "unknown", "weight": "72 kg"})
        return r.json()["id"] if r.status_code in (200, 201) else None

    ids = await _in_batches([one(i) for i in range(n)])
    await admin.c.aclose()
    return [i for i in ids if i is not None]


#: every screening question answered for a treatment-resistant patient (synthetic)
SCREENING_FACTS = {
    "antidepressant_trials": [
        {"drug": "escitalopram", "dose_mg": 20, "weeks": 8, "improvement_pct": 10,
         "current_episode": True},
        {"drug": "venlafaxine", "dose_mg": 225, "weeks": 10, "response": "minimal",
         "current_episode": True}],
    "episode_duration_months": 18, "symptom_severity": "severe",
    "substance_use_disorder": "none", "bp": {"systolic_mmhg": 128, "diastolic_mmhg": 80},
    "pregnant": False, "breastfeeding": False}


def _hard_stop(body: object) -> bool:
    """Did the check-in's pre-checks end in a hard stop (the patient is not checked in)?"""
    findings = body.get("findings", body) if isinstance(body, dict) else body
    return isinstance(findings, list) and any(
        isinstance(f, dict) and f.get("level") == "hard" for f in findings)


async def seed_infusions(inst: Instance, plan: Plan, patients: list[int], n: int,
                         rng: random.Random) -> list[Infusion]:
    """``n`` active infusions: a course for a patient (prescriber), its first session checked
    in (nurse), so vitals may be recorded. Without the chair API: readings per patient."""
    chosen = [patients[i % len(patients)] for i in range(n)]
    if not (plan.course and plan.checkin and plan.sessions):
        return [Infusion(pid) for pid in chosen]
    doctor, nurse_ = await _admin(inst, "prescriber", rng), await _admin(inst, "nurse", rng)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # UTC, as the API's times are

    async def screen(pid: int) -> None:
        """The closed loop: no check-in without a screening of the treatment that counts."""
        base = f"/api/patients/{pid}"
        await doctor.c.post(f"{base}/diagnoses", json={
            "code": "F33.2", "display": "Recurrent depressive disorder, severe (load test)"})
        r = await doctor.c.get(f"{base}/clinical-facts")
        version = r.json().get("version") if r.status_code == 200 else None
        await doctor.c.put(f"{base}/clinical-facts", json={"facts": SCREENING_FACTS,
                                                            "version": version})
        r = await doctor.c.post(f"{base}/screenings", json={"treatment": "ketamine-iv"})
        if r.status_code == 201 and r.json().get("decision") == "review":
            await doctor.c.post(f"{base}/screenings/{r.json()['id']}/signoff",
                                json={"reason": "load test: findings reviewed"})

    async def one(pid: int) -> Infusion:
        await screen(pid)
        r = await doctor.c.post(plan.course.replace("{patient_id}", str(pid)), json={
            "template_id": "iv_ketamine_induction", "start_date": str(now.date())})
        r = await doctor.c.get(plan.sessions.replace("{patient_id}", str(pid)))
        first = min((s for s in r.json()["items"] if s.get("status") == "planned"),
                    key=lambda s: s["number"], default=None) if r.status_code == 200 else None
        if first is None:
            raise RuntimeError(f"no planned session for an infusion: {r.status_code} "
                               f"{r.text[:200]}")
        r = await nurse_.c.post(plan.checkin.replace("{session_id}", str(first["id"])), json={
            "version": first["version"], "consent_on_file": True,
            "ride_home_arranged": True, "rems_enrolled": True,
            "last_food_at": (now - dt.timedelta(hours=8)).isoformat(),
            "last_liquid_at": (now - dt.timedelta(hours=3)).isoformat(),
            "override_reason": "load test"})
        if r.status_code != 200:
            raise RuntimeError(f"check-in for an infusion failed: {r.status_code} "
                               f"{r.text[:200]}")
        if _hard_stop(r.json()):
            raise RuntimeError(f"check-in for an infusion was a hard stop: {r.text[:300]}")
        return Infusion(pid, first["id"])

    # One course per patient: an infusion beyond the patient count reuses the session.
    unique = list(dict.fromkeys(chosen))
    by_patient = {inf.patient_id: inf for inf in await _in_batches([one(p) for p in unique])}
    await doctor.c.aclose()
    await nurse_.c.aclose()
    return [by_patient[pid] for pid in chosen]


async def has_dashboard_page(inst: Instance, rng: random.Random) -> bool:
    doctor = await _admin(inst, "prescriber", rng)
    try:
        return (await doctor.c.get("/dashboard")).status_code == 200
    finally:
        await doctor.c.aclose()


async def run_load(inst: Instance, users: int, duration_s: float, speed: float, infusions: int,
                   seed: int, ramp_s: float | None = None, ramp_per_user_s: float = 1.0,
                   dashboard_share: float = 0.05) -> tuple[Stats, Plan, float]:
    rng = random.Random(seed)
    schema = httpx.get(inst.base_url + "/api/openapi.json", timeout=30).json()
    plan = discover(schema)
    if dashboard_share <= 0:
        plan.dashboard = None
    elif plan.dashboard is None and await has_dashboard_page(inst, rng):
        plan.dashboard = "/dashboard"
    patients = await seed_patients(inst, max(40, users * 2), rng)
    stats = Stats()
    interval = 300.0 / speed
    ramp = ramp_s if ramp_s is not None else min(300.0, users * ramp_per_user_s)
    n_nurse = max(1, users // 2)
    n_patient = max(1, users // 10) if plan.self_report else 0
    roles = (["nurse"] * n_nurse + ["patient"] * n_patient
             + ["prescriber"] * (users - n_nurse - n_patient))
    active = await seed_infusions(inst, plan, patients, n_nurse * infusions, rng)
    started = time.monotonic()
    end = started + ramp + duration_s
    stats.steady_from = started + ramp + min(10.0, duration_s / 4)

    async def life(i: int, role: str) -> None:
        await asyncio.sleep(ramp * i / max(1, users))
        u = User(inst.base_url, stats, random.Random(rng.random()), 30)
        try:
            login_as = "nurse" if role == "patient" else role  # patients: the front desk
            if not await u.login(login_as):
                return
            if role == "nurse":
                await nurse(u, plan, active[i * infusions:(i + 1) * infusions], end, interval)
            elif role == "patient":
                await patient_reporter(u, plan, patients, end, interval, i - n_nurse)
            else:
                await prescriber(u, plan, patients, end, dashboard_share)
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
                dashboard_share: float = 0.05) -> tuple[str, Stats, int]:
    with Instance(backend, workers=workers) as inst:
        inst.setup()
        stats, plan, elapsed = asyncio.run(run_load(inst, users, duration_s, speed, infusions,
                                                    seed, ramp_s, ramp_per_user_s,
                                                    dashboard_share))
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
    ap.add_argument("--dashboard-share", type=float, default=0.05,
                    help="share of prescriber actions that open the dashboard (0: never)")
    ap.add_argument("--out", type=Path, default=ROOT / "out")
    args = ap.parse_args(argv)
    ok = True
    args.out.mkdir(parents=True, exist_ok=True)
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        users = args.sqlite_users if backend == "sqlite" else args.pg_users
        table, stats, log_locked = run_backend(backend, users, args.duration, args.workers,
                                               args.speed, args.infusions,
                                               ramp_per_user_s=args.ramp_per_user,
                                               dashboard_share=args.dashboard_share)
        (args.out / f"load-{backend}.md").write_text(table)
        print(table)
        ok = ok and "| verdict | PASS" in table
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

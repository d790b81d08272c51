"""Server CPU per request, this tree against an older commit (A/B), on the real server.

Both servers run one worker on their own fresh database with the same seeded clinic (the load
generator's seeding); each request type is timed in interleaved rounds, A then B then B then
A, so a shared machine's noise falls on both. CPU is read from /proc (Linux): the server's
process group, and the PostgreSQL backends of its database. Print ratios, not absolutes.

    python tools/loadcpu.py --base-ref 542e0d2 [--backend postgresql] [--n 15] [--rounds 4]

The older commit is checked out in a temporary git worktree (removed after). Its server
runs without httptools and uvloop, as it did. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadtest  # noqa: E402
from kcharness import ROOT, Instance  # noqa: E402


class OldInstance(Instance):
    """A server from another checkout (``src`` first on PYTHONPATH)."""

    old_src: str = ""
    blocked: str = ""

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env["PYTHONPATH"] = os.pathsep.join(p for p in (self.blocked, self.old_src) if p)
        return env


def cpu_s(inst: Instance) -> tuple[float, float]:
    server = postgres = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if inst.proc is not None and os.getpgid(int(pid)) == inst.proc.pid:
                server += loadtest._proc_cpu_s(pid)
            elif inst.pg_name:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                if cmd.startswith(b"postgres: ") and inst.pg_name.encode() in cmd:
                    postgres += loadtest._proc_cpu_s(pid)
        except (OSError, ProcessLookupError, IndexError, ValueError):
            continue
    return server, postgres


async def requests_for(inst: Instance) -> dict:
    rng = random.Random(1)
    plan = loadtest.discover(httpx.get(inst.base_url + "/api/openapi.json", timeout=30).json())
    patients = await loadtest.seed_patients(inst, 200, rng)
    active = await loadtest.seed_infusions(inst, plan, patients, 60, rng)
    doc = await loadtest._admin(inst, "prescriber", rng)
    nurse = await loadtest._admin(inst, "nurse", rng)
    pick = random.Random(2)

    def pid() -> int:
        return pick.choice(patients)

    def sid() -> int | None:
        return pick.choice(active).session_id

    return {
        "GET /healthz": lambda: doc.c.get("/healthz"),
        "GET /api/me": lambda: doc.c.get("/api/me"),
        "GET /patients (page)": lambda: doc.c.get("/patients"),
        "GET /api/patients?q=": lambda: doc.c.get("/api/patients", params={"q": "smith"}),
        "GET /patients/{id} (page)": lambda: doc.c.get(f"/patients/{pid()}"),
        "GET /api/patients/{id}": lambda: doc.c.get(f"/api/patients/{pid()}"),
        "GET /sessions/{id} (page)": lambda: nurse.c.get(f"/sessions/{sid()}"),
        "POST vitals": lambda: nurse.c.post(
            f"/api/sessions/{sid()}/vitals", json=loadtest.reading_body(plan.reading, pick),
            headers={"Idempotency-Key": uuid.uuid4().hex}),
        "GET /api/patients/{id}/outcomes": lambda: doc.c.get(f"/api/patients/{pid()}/outcomes"),
        "GET /api/patients/{id}/fhir": lambda: doc.c.get(f"/api/patients/{pid()}/fhir"),
    }


async def compare(old: Instance, new: Instance, n: int, rounds: int) -> list[str]:
    ca, cb = await requests_for(old), await requests_for(new)
    lines = ["| request | before: server CPU ms | after | after/before | "
             "before: PostgreSQL CPU ms | after |", "|---|---|---|---|---|---|"]
    for name in ca:
        acc = {"a": [0.0, 0.0], "b": [0.0, 0.0]}
        pairs = [("a", old, ca[name]), ("b", new, cb[name])]
        for _key, _inst, fn in pairs:
            await fn()
        for r in range(rounds):
            for key, inst, fn in (pairs if r % 2 == 0 else pairs[::-1]):
                s0, p0 = cpu_s(inst)
                for _ in range(n):
                    resp = await fn()
                    if resp.status_code >= 400:
                        raise RuntimeError(f"{name} on {key}: {resp.status_code}")
                s1, p1 = cpu_s(inst)
                acc[key][0] += s1 - s0
                acc[key][1] += p1 - p0
        a, b = [x / (n * rounds) * 1000 for x in acc["a"]], [x / (n * rounds) * 1000
                                                           for x in acc["b"]]
        lines.append(f"| `{name}` | {a[0]:.1f} | {b[0]:.1f} | {b[0] / max(a[0], 1e-9):.2f} | "
                     f"{a[1]:.1f} | {b[1]:.1f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="server CPU per request: an older commit vs this tree")
    ap.add_argument("--base-ref", required=True, help="git commit to compare against")
    ap.add_argument("--backend", default="postgresql")
    ap.add_argument("--n", type=int, default=15, help="requests per round")
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kc-loadcpu-") as tmp:
        checkout, blocked = Path(tmp) / "base", Path(tmp) / "blocked"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach",
                        str(checkout), args.base_ref], check=True)
        blocked.mkdir()
        for module in ("uvloop", "httptools"):  # as the old server ran: h11 and asyncio
            (blocked / f"{module}.py").write_text("raise ImportError('blocked')\n")
        try:
            old = OldInstance(args.backend, workers=1)
            old.old_src, old.blocked = str(checkout / "src"), str(blocked)
            with old, Instance(args.backend, workers=1) as new:
                old.setup()
                new.setup()
                print("\n".join(asyncio.run(compare(old, new, args.n, args.rounds))))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(checkout)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Crash durability: SIGKILL the real server mid-write and prove acknowledged writes survive.

For each backend: start ``ketaclinic serve`` (several workers), run concurrent HTTP writers
(nurses registering patients with Idempotency-Key headers and adding weights), SIGKILL the
whole server process group at a random moment, then check on the database directly that
every write the clients saw acknowledged (2xx) is present, that the database passes its
integrity check (SQLite ``PRAGMA integrity_check`` + ``foreign_key_check``; PostgreSQL: no
orphan rows and a consistent audit head) and that the audit chain verifies. Restart, repeat.

    python tools/crashtest.py --trials 20 --backends sqlite,postgresql

Prints a Markdown table (and writes it to out/crashtest.md); exit code 1 on any lost write.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kcharness import ROOT, Instance  # noqa: E402


@dataclass
class Ledger:
    """What the clients saw acknowledged, shared by the writer threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    patients: dict[str, int] = field(default_factory=dict)  # mrn -> id
    weights: dict[int, Counter] = field(default_factory=lambda: defaultdict(Counter))
    acked: int = 0
    in_flight_lost: int = 0
    server_errors: int = 0
    statuses: Counter = field(default_factory=Counter)


def _writer(inst: Instance, client: httpx.Client, ledger: Ledger, stop: threading.Event,
            tag: str, rng: random.Random) -> None:
    mine: list[int] = []
    n = 0
    while not stop.is_set():
        n += 1
        try:
            if not mine or rng.random() < 0.4:
                mrn = f"C{tag}{n}"[:32].upper()
                r = client.post("/api/patients", headers={"Idempotency-Key": uuid.uuid4().hex},
                                json={"mrn": mrn, "family_name": "Crash", "given_name": tag,
                                      "birth_date": "1970-01-01", "sex": "unknown",
                                      "weight": "70 kg"})
                if r.status_code in (200, 201):
                    with ledger.lock:
                        ledger.patients[mrn] = r.json()["id"]
                        ledger.weights[r.json()["id"]][70.0] += 1
                        ledger.acked += 1
                    mine.append(r.json()["id"])
            else:
                pid = rng.choice(mine)
                kg = round(40 + rng.random() * 80, 2)
                r = client.post(f"/api/patients/{pid}/weights", json={"weight": f"{kg} kg"})
                if r.status_code == 201:
                    with ledger.lock:
                        ledger.weights[pid][kg] += 1
                        ledger.acked += 1
            with ledger.lock:
                ledger.statuses[r.status_code] += 1
                if r.status_code >= 500:
                    ledger.server_errors += 1
        except httpx.HTTPError:
            with ledger.lock:
                ledger.in_flight_lost += 1
            if stop.wait(0.05):
                return


def _check_database(inst: Instance, ledger: Ledger) -> dict[str, object]:
    """Run on the database directly, with the server dead."""
    from sqlalchemy import create_engine, func, select, text

    from ketaclinic.config import load_settings
    from ketaclinic.services.audit.trail import AuditTrail, audit_key
    from ketaclinic.store.db import Database
    from ketaclinic.store.tables import AuditEvent, AuditHead, Patient, PatientWeight

    engine = create_engine(inst.url)
    problems: list[str] = []
    with engine.connect() as conn:
        if inst.backend == "sqlite":
            ok = conn.exec_driver_sql("PRAGMA integrity_check").scalar()
            if ok != "ok":
                problems.append(f"integrity_check: {ok}")
            if conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                problems.append("foreign_key_check found orphans")
        else:
            orphans = conn.execute(text(
                "SELECT count(*) FROM patient_weights w LEFT JOIN patients p "
                "ON p.id = w.patient_id WHERE p.id IS NULL")).scalar()
            if orphans:
                problems.append(f"{orphans} orphan weights")
        count, top = conn.execute(select(func.count(AuditEvent.id), func.max(AuditEvent.id))
                                  ).one()
        head = conn.execute(select(func.sum(AuditHead.count), func.max(AuditHead.last_event_id))
                            ).first()
        if head is None or (head[0], head[1]) != (count, top or 0):
            problems.append("audit head does not match the audit rows")
        stored = {m: i for m, i in conn.execute(select(Patient.mrn, Patient.id))}
        weights: dict[int, Counter] = defaultdict(Counter)
        for pid, kg in conn.execute(select(PatientWeight.patient_id, PatientWeight.weight_kg)):
            weights[pid][round(float(kg), 2)] += 1
    engine.dispose()
    missing = 0
    with ledger.lock:
        for mrn, pid in ledger.patients.items():
            if stored.get(mrn) != pid:
                missing += 1
        for pid, acked in ledger.weights.items():
            missing += sum((acked - weights.get(pid, Counter())).values())
        acked_total = ledger.acked
    settings = load_settings({"KETACLINIC_SECRET_KEY": inst.secret,
                              "KETACLINIC_DATABASE_URL": inst.url, "KETACLINIC_ENV": "test"})
    from ketaclinic.store.db import make_engine

    db = Database(make_engine(inst.url))
    with db.transaction() as s:
        verdict = AuditTrail(audit_key(settings)).verify(s)
    db.dispose()
    if not verdict.ok:
        problems.append(verdict.describe())
    return {"acked": acked_total, "missing": missing, "problems": problems,
            "audit_rows": verdict.checked}


def run_backend(backend: str, trials: int, writers: int, max_run_s: float, workers: int,
                seed: int, log=print) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    with Instance(backend, workers=workers) as inst:
        inst.setup()
        clients = [inst.client("nurse") for _ in range(writers)]
        ledger = Ledger()
        for trial in range(1, trials + 1):
            if inst.proc is None:
                inst.start()
            before = ledger.acked
            stop = threading.Event()
            threads = [threading.Thread(target=_writer, args=(
                inst, c, ledger, stop, f"{trial}W{i}N", random.Random(rng.random())),
                daemon=True) for i, c in enumerate(clients)]
            for t in threads:
                t.start()
            kill_after = rng.uniform(0.2, max_run_s)
            time.sleep(kill_after)
            inst.kill()  # SIGKILL, no warning, mid-request
            stop.set()
            for t in threads:
                t.join(timeout=60)
            result = _check_database(inst, ledger)
            row = {"backend": backend, "trial": trial, "killed_after_s": round(kill_after, 2),
                   "acked_this_trial": ledger.acked - before, "acked_total": result["acked"],
                   "missing": result["missing"], "audit_rows": result["audit_rows"],
                   "integrity": "ok" if not result["problems"] else "; ".join(
                       result["problems"]), "server_5xx": ledger.server_errors}
            rows.append(row)
            log(f"{backend} trial {trial}: killed after {row['killed_after_s']} s, "
                f"{row['acked_this_trial']} acked, {row['missing']} missing, {row['integrity']}")
        for c in clients:
            c.close()
    return rows


def markdown(rows: list[dict[str, object]]) -> str:
    head = ["backend", "trial", "killed_after_s", "acked_this_trial", "acked_total", "missing",
            "server_5xx", "audit_rows", "integrity"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r[h]) for h in head) + " |" for r in rows]
    by: dict[str, list[dict[str, object]]] = defaultdict(list)
    for r in rows:
        by[str(r["backend"])].append(r)
    lines += ["", "| backend | trials | acknowledged writes | lost | integrity failures |",
              "|---|---|---|---|---|"]
    for b, rs in by.items():
        bad = sum(1 for r in rs if r["integrity"] != "ok")
        lines.append(f"| {b} | {len(rs)} | {rs[-1]['acked_total']} | "
                     f"{sum(int(r['missing']) for r in rs)} | {bad} |")  # type: ignore[call-overload]
    return "\n".join(lines) + "\n"


def passed(rows: list[dict[str, object]]) -> bool:
    return all(r["missing"] == 0 and r["integrity"] == "ok" and r["server_5xx"] == 0
               for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--writers", type=int, default=6)
    ap.add_argument("--max-run", type=float, default=4.0, help="longest run before a kill (s)")
    ap.add_argument("--workers", type=int, default=2, help="server worker processes")
    ap.add_argument("--seed", type=int, default=20261102)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "crashtest.md")
    args = ap.parse_args(argv)
    rows: list[dict[str, object]] = []
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        rows += run_backend(backend, args.trials, args.writers, args.max_run, args.workers,
                            args.seed)
    table = markdown(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("# Crash durability (SIGKILL during concurrent writes)\n\n" + table)
    print(table)
    ok = passed(rows)
    print("PASS: no acknowledged write lost" if ok else "FAIL: see the table")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

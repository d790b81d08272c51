"""FHIR export benchmark (issue 16): the export against ``json.dumps`` of the same resources.

Data set: the synthetic demo clinic (``seed_demo``, PATIENTS patients, default 220 as the issue
measured), cached as a SQLite file in ``bench-data/`` between runs.

Timed in the same run, best of 3:
* load: reading every table the export needs (one query per table, chunked);
* export: mapping the loaded rows to resources (renderers/fhir_map.py) and serialising each
  resource to an NDJSON line, i.e. what ``ketaclinic export fhir --format ndjson`` does after
  the load;
* floor: ``json.dumps`` of the very same resources (as dicts) to NDJSON lines.

Prints resources/s for the export (without and with the load) and the ratio export/floor, against
the goals (≥ 50,000 resources/s, within 5× of the floor) — printed, never asserted. Also prints
what building a fhir.resources R4B model per resource would cost on a sample (the reason the
mapper builds dicts and validates the shape in the tests and on a run-time sample).

Run: PYTHONPATH=src python benchmarks/bench_fhir.py [--patients N] [--rebuild]
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from ketaclinic.bootstrap import build_services
from ketaclinic.config import Settings
from ketaclinic.renderers import fhir_map as fm
from ketaclinic.services.interop import fhir_records as fr
from ketaclinic.store.tables import Patient

DATA = Path(__file__).resolve().parent.parent / "bench-data"
GOAL_RATE, GOAL_RATIO = 50_000, 5.0


def _args() -> tuple[int, bool]:
    patients = 220
    if "--patients" in sys.argv:
        patients = int(sys.argv[sys.argv.index("--patients") + 1])
    return patients, "--rebuild" in sys.argv


def _services(patients: int, rebuild: bool):  # type: ignore[no-untyped-def]
    DATA.mkdir(exist_ok=True)
    path = DATA / f"fhir-demo-{patients}-v1.db"
    if rebuild and path.exists():
        path.unlink()
    settings = Settings(env="dev", data_dir=DATA, database_url=f"sqlite:///{path}",
                        secret_key=os.environ.get("KETACLINIC_SECRET_KEY",
                                                  "bench-only-secret-" + "k3Q9zP" * 6))
    svc = build_services(settings, upgrade=True)
    with svc.db.transaction() as s:
        have = s.execute(select(func.count(Patient.id))).scalar_one()
    if have == 0:
        from ketaclinic.demo.clinic import seed_demo

        print(f"seeding the demo clinic with {patients} patients (cached in {path.name}) ...")
        t = time.perf_counter()
        seed_demo(svc, patients=patients)
        print(f"  seeded in {time.perf_counter() - t:.0f} s")
    return svc


def _best(fn, runs: int = 3) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    best, out = float("inf"), None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> int:
    patients, rebuild = _args()
    svc = _services(patients, rebuild)
    opt = fm.MapOptions(mrn_system=fm.DEFAULT_MRN_SYSTEM)
    with svc.db.transaction() as s:
        ids = list(s.execute(select(Patient.id).order_by(Patient.id)).scalars())
        load_s, data = _best(lambda: fr.load(s, ids))
        users = fr.practitioners(s, fr.acting_users(data))

    def export() -> list[str]:
        lines = []
        dumps = json.dumps
        for pid in ids:
            for r in fr.patient_resources(data, pid, opt):
                lines.append(dumps(r, separators=(",", ":"), ensure_ascii=False))
        lines += [dumps(u, separators=(",", ":"), ensure_ascii=False) for u in users]
        return lines

    export_s, lines = _best(export)
    resources = [json.loads(line) for line in lines]

    def floor() -> list[str]:
        dumps = json.dumps
        return [dumps(r, separators=(",", ":"), ensure_ascii=False) for r in resources]

    floor_s, _ = _best(floor)
    n = len(resources)
    from fhir.resources.R4B import get_fhir_model_class

    sample = resources[:: max(1, n // 2000)]
    t = time.perf_counter()
    for r in sample:
        get_fhir_model_class(r["resourceType"]).model_validate(r).model_dump_json()
    model_rate = len(sample) / (time.perf_counter() - t)
    rate, floor_rate = n / export_s, n / floor_s
    ratio = export_s / floor_s
    print(f"{len(ids)} patients, {n} resources; load {load_s:.2f} s")
    print(f"export (map + serialise): {rate:,.0f} resources/s "
          f"(goal >= {GOAL_RATE:,}: {'met' if rate >= GOAL_RATE else 'NOT met'})")
    print(f"export including the load: {n / (export_s + load_s):,.0f} resources/s")
    print(f"json.dumps floor: {floor_rate:,.0f} resources/s; ratio export/floor {ratio:.2f}x "
          f"(goal <= {GOAL_RATIO:g}x: {'met' if ratio <= GOAL_RATIO else 'NOT met'})")
    print(f"for comparison, a fhir.resources R4B model per resource (validate + dump): "
          f"{model_rate:,.0f} resources/s on a sample of {len(sample)}")
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    svc.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Properties of saving doses through the service on a real database (weight × dose × route ×
role): nothing above a hard limit is ever saved; every saved soft finding has its reason row; a
checker that raises blocks the save."""

from __future__ import annotations

import datetime as dt
import itertools
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kctest import examples
from sqlalchemy import select

from ketaclinic.clinical.dose_checks import check_dose
from ketaclinic.schemas import PatientCreate
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.dosing.inputs import DoseInput
from ketaclinic.services.dosing.service import DoseBlocked
from ketaclinic.services.errors import InvalidInput, PermissionDenied
from ketaclinic.store.tables_dosing import DoseOrder, DoseOverride

dose_request = DoseInput.model_validate  # the dose request as the JSON body or the form gives it

PROPERTY = settings(max_examples=examples(60), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
_mrn = itertools.count(1)
REASONS = ("titration-per-response", "previously-tolerated", "clinical-judgement")

weights = st.integers(min_value=400, max_value=1600).map(lambda w: w / 10)
routes = st.sampled_from(["iv", "iv", "im", "oral", "sublingual", "intranasal"])
mg_per_kg = st.floats(min_value=0.01, max_value=4.0).map(lambda x: round(x, 3))
minutes = st.sampled_from([5, 15, 40, 60, 100])
roles = st.sampled_from(["prescriber", "prescriber", "admin", "nurse", "analyst"])
nasal = st.tuples(st.sampled_from(["induction", "maintenance", "suicidal-ideation"]),
                  st.integers(1, 12), st.sampled_from([None, 28, 56, 84, 112, 140]))


def _patient(services, weight_kg: float) -> int:  # type: ignore[no-untyped-def]
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn=f"PROP-{next(_mrn)}", family_name="Prop", given_name="Erty",
        birth_date=dt.date(1970, 1, 1), sex="female", weight=f"{weight_kg} kg"))
    return p.id


def _request(route, dose, infusion, nasal_choice):  # type: ignore[no-untyped-def]
    if route == "intranasal":
        phase, session, mg = nasal_choice
        return {"route": route, "phase": phase, "session_number": session,
                "dose_mg": mg}
    data = {"route": route, "mg_per_kg": dose}
    if route == "iv":
        data |= {"infusion_min": infusion, "concentration_mg_per_ml": 1}
    return data


def _stored(services, pid):  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        orders = s.execute(select(DoseOrder).where(DoseOrder.patient_id == pid)).scalars().all()
        return [(json.loads(o.checks_json),
                 s.execute(select(DoseOverride).where(DoseOverride.dose_order_id == o.id)
                           ).scalars().all()) for o in orders]


@PROPERTY
@given(weight=weights, route=routes, dose=mg_per_kg, infusion=minutes, role=roles,
       nasal_choice=nasal, justify=st.data())
def test_nothing_above_a_hard_limit_is_saved_and_every_override_has_a_reason(
        services, users, weight, route, dose, infusion, role, nasal_choice, justify):
    pid = _patient(services, weight)
    data = _request(route, dose, infusion, nasal_choice)
    try:
        plan = services.dosing.check(SYSTEM, pid, dose_request(data))
    except InvalidInput:
        return
    soft = [f.rule for f in plan.result.soft_findings]
    chosen = justify.draw(st.lists(st.sampled_from(soft), unique=True) if soft else st.just([]))
    overrides = [{"rule": r, "reason_code": justify.draw(st.sampled_from(REASONS)),
                  "free_text": "documented reason"} for r in chosen]
    try:
        services.dosing.save(users[role].actor, pid, dose_request({**data, "overrides": overrides}))
        saved = True
    except (DoseBlocked, PermissionDenied):
        saved = False
    stored = _stored(services, pid)
    if role != "prescriber" or plan.result.blocked or set(chosen) != set(soft):
        assert not saved and stored == []
        return
    assert saved and len(stored) == 1
    checks, reason_rows = stored[0]
    assert all(c["level"] != "hard" for c in checks)
    soft_saved = {c["rule"] for c in checks if c["level"] == "soft"}
    assert soft_saved == {r.rule for r in reason_rows}
    assert all(r.reason_code in REASONS and r.free_text and r.username == "prescriber"
               for r in reason_rows)


@PROPERTY
@given(weight=weights, route=routes, dose=mg_per_kg, infusion=minutes,
       nasal_choice=nasal, fail_after=st.integers(0, 2))
def test_a_checker_that_raises_blocks_the_save(services, users, weight, route, dose, infusion,
                                               nasal_choice, fail_after):
    pid = _patient(services, weight)
    calls = {"n": 0}

    def flaky(order, ruleset):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if fail_after == 0:
            raise RuntimeError("drug library unavailable")
        if fail_after == 1:
            raise ZeroDivisionError()
        result = check_dose(order, ruleset)
        return type(result)((), result.rule_set, result.override_reason_codes)  # no checks

    services.dosing.checker = flaky
    try:
        services.dosing.save(users["prescriber"].actor, pid,
                             dose_request(_request(route, dose, infusion, nasal_choice)))
        raise AssertionError("a failing checker let a dose through")
    except DoseBlocked as exc:
        assert any(f.rule == "checker-error" for f in exc.plan.result.checks)
    except InvalidInput:
        pass  # the calculation itself refused the input: nothing to save either
    finally:
        services.dosing.checker = check_dose
    assert _stored(services, pid) == []

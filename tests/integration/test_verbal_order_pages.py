"""The nurse records a read-back verbal order on the dose-orders page and the prescriber who
gave it countersigns it there (issue 12 item 2): CSRF, audit and the same gates as the API."""

from __future__ import annotations

import datetime as dt

from kcchain import screen_eligible
from kctest import csrf_from
from sqlalchemy import func, select

from ketaclinic.schemas import PatientCreate
from ketaclinic.schemas_chair import CourseCreate
from ketaclinic.store.tables import AuditEvent
from ketaclinic.store.tables_dosing import DoseOrder

MONDAY = dt.date(2026, 11, 2)


def _patient(services, users) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    nurse, pres = users["nurse"].actor, users["prescriber"].actor
    patient, _ = services.patients.create(nurse, PatientCreate(
        mrn="V-1", family_name="Verbal", given_name="Test", birth_date=dt.date(1980, 5, 1),
        sex="male", weight="80 kg"))
    course = services.chair.courses.create(pres, patient.id, CourseCreate(
        template_id="iv_ketamine_induction", start_date=MONDAY))
    screen_eligible(services, users, patient.id, "ketamine-iv")
    return patient.id, course.id


def _orders(services) -> list[DoseOrder]:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        rows = s.execute(select(DoseOrder).order_by(DoseOrder.id)).scalars().all()
        s.expunge_all()
        return list(rows)


def _audits(services, action: str, outcome: str = "ok") -> int:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return s.execute(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == action, AuditEvent.outcome == outcome)).scalar_one()


def _form(csrf: str, course_id: int, **changes: str) -> dict[str, str]:
    return {"csrf_token": csrf, "route": "iv", "course_id": str(course_id), "mg_per_kg": "0.5",
            "infusion_min": "40", "concentration_mg_per_ml": "1", "weight_basis": "actual",
            "prescriber": "prescriber", "read_back_confirmed": "on"} | changes


def test_the_nurse_records_a_read_back_verbal_order_and_its_prescriber_countersigns_it_on_the_page(
        services, users, login):
    pid, cid = _patient(services, users)
    c, _ = login("nurse")
    page = c.get(f"/patients/{pid}/dose?route=iv")
    assert page.status_code == 200 and 'id="verbal-form"' in page.text
    assert 'value="prescriber"' in page.text and 'value="nurse"' not in page.text
    csrf = csrf_from(page.text)
    r = c.post(f"/patients/{pid}/verbal-orders", data=_form(csrf, cid), follow_redirects=False)
    assert r.status_code == 303, r.text
    [order] = _orders(services)
    assert order.status == "verbal" and order.read_back_confirmed
    assert order.verbal_prescriber_id == users["prescriber"].id
    assert order.ordered_by == users["nurse"].id and order.course_id == cid
    assert _audits(services, "dose.verbal") == 1
    listed = c.get(f"/patients/{pid}/dose").text
    assert "awaiting countersignature" in listed and f"countersign-{order.id}" not in listed
    # The nurse cannot countersign; the prescriber who gave it can, once, with CSRF.
    r = c.post(f"/patients/{pid}/doses/{order.id}/countersign", data={"csrf_token": csrf},
               follow_redirects=False)
    assert r.status_code == 403 and _orders(services)[0].status == "verbal"
    p, _ = login("prescriber")
    page = p.get(f"/patients/{pid}/dose")
    assert f'id="countersign-{order.id}"' in page.text
    r = p.post(f"/patients/{pid}/doses/{order.id}/countersign", data={"csrf_token": "wrong"},
               follow_redirects=False)
    assert r.status_code in (400, 403) and _orders(services)[0].status == "verbal"
    r = p.post(f"/patients/{pid}/doses/{order.id}/countersign",
               data={"csrf_token": csrf_from(page.text)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    done = _orders(services)[0]
    assert done.status == "countersigned" and done.countersigned_by == users["prescriber"].id
    assert _audits(services, "dose.countersign") == 1
    assert _audits(services, "dose.countersign", "denied") == 1  # the nurse's attempt
    r = p.post(f"/patients/{pid}/doses/{order.id}/countersign",
               data={"csrf_token": csrf_from(page.text)}, follow_redirects=False)
    assert r.status_code == 422 and "needs no countersignature" in r.text


def test_a_verbal_order_page_without_read_back_a_prescriber_or_csrf_records_nothing(
        services, users, login):
    pid, cid = _patient(services, users)
    c, _ = login("nurse")
    csrf = csrf_from(c.get(f"/patients/{pid}/dose").text)
    r = c.post(f"/patients/{pid}/verbal-orders", data=_form(csrf, cid, read_back_confirmed=""))
    assert r.status_code == 422 and "read the order back" in r.text
    r = c.post(f"/patients/{pid}/verbal-orders", data=_form(csrf, cid, prescriber="nurse"))
    assert r.status_code == 422 and "name the prescriber" in r.text
    r = c.post(f"/patients/{pid}/verbal-orders", data=_form(csrf, cid, mg_per_kg="4"))
    assert r.status_code == 422  # the dose checks' hard stop, as for a signed order
    r = c.post(f"/patients/{pid}/verbal-orders", data=_form("forged", cid),
               follow_redirects=False)
    assert r.status_code in (400, 403)
    assert _orders(services) == [] and _audits(services, "dose.verbal") == 0
    a, _ = login("analyst")
    r = a.post(f"/patients/{pid}/verbal-orders", data=_form(csrf, cid), follow_redirects=False)
    assert r.status_code in (400, 403) and _orders(services) == []

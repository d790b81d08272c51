"""The REMS form and its PDF show the order the dose was given on (issue 12 item 2): written or
verbal, the prescriber named, read back, countersigned by/at or overdue; on every backend."""

from __future__ import annotations

import kcchain
from kcchain import order_for
from kcpdf import pdf_text

from ketaclinic.schemas_chair import LeftAgainstAdviceCreate
from ketaclinic.store.tables_treatment import TreatmentSession


def _left_early(services, users, clock, verbal: bool) -> int:  # type: ignore[no-untyped-def]
    """An esketamine session given on a written or a read-back verbal order, then left
    against advice at 70 minutes (so it has a REMS form); returns the session id."""
    nurse = users["nurse"].actor
    pid, cid, sid = kcchain.patient_with_course(services, users, "R-1", ready=False,
                                                lot="LOT-R", family="Form", sex="female",
                                                weight="70 kg")
    kcchain.screen_eligible(services, users, pid, "esketamine")
    if verbal:
        services.dosing.take_verbal_order(nurse, pid,
                                          kcchain.verbal(kcchain.esketamine_request(cid)))
    else:
        kcchain.sign_order(services, users, pid, cid, esketamine=True)
    kcchain.check_in(services, users, sid, clock)
    kcchain.predose(services, users, sid)
    kcchain.dose(services, users, sid, clock, esketamine=True, lot="LOT-R")
    clock.advance(minutes=65)
    services.chair.sessions.leave_against_advice(nurse, sid, LeftAgainstAdviceCreate(
        version=kcchain.version(services, sid), statement="taxi waiting; told to stay"))
    return sid


def test_a_written_order_shows_on_the_rems_form_and_pdf_with_its_prescriber(
        services, users, clock):
    sid = _left_early(services, users, clock, verbal=False)
    form, missing, _findings, _row = services.chair.rems.build(users["nurse"].actor, sid)
    assert form.order_kind.startswith("written order ")
    assert form.order_prescriber == "prescriber"
    assert form.order_read_back is None and form.order_countersigned is None
    assert not {"order_kind", "order_read_back", "order_countersigned"} & set(missing)
    text = pdf_text(services.chair.rems.pdf(users["nurse"].actor, sid))
    assert "written order" in text and "Ordering prescriber" in text
    assert "Verbal order countersigned" not in text


def test_a_verbal_order_shows_read_back_then_overdue_then_countersigned_on_the_form_and_pdf(
        services, users, clock):
    sid = _left_early(services, users, clock, verbal=True)
    nurse, pres = users["nurse"].actor, users["prescriber"].actor
    form, _missing, findings, _row = services.chair.rems.build(nurse, sid)
    assert form.order_kind.startswith("verbal order ") and form.order_prescriber == "prescriber"
    assert form.order_read_back is True
    assert form.order_countersigned.startswith("awaiting countersignature")
    text = pdf_text(services.chair.rems.pdf(nurse, sid))
    assert "verbal order" in text and "awaiting countersignature" in text
    assert "Verbal order read back and confirmed?" in text
    assert "rems.verbal_order_overdue" not in [f.rule for f in findings]
    # Past the rule set's countersign hours, uncountersigned: the form says OVERDUE.
    clock.advance(hours=30)
    form, _missing, findings, _row = services.chair.rems.build(nurse, sid)
    assert form.order_countersigned.startswith("OVERDUE")
    assert "rems.verbal_order_overdue" in [f.rule for f in findings]
    assert "OVERDUE" in pdf_text(services.chair.rems.pdf(nurse, sid))
    with services.db.transaction() as s:
        pid = s.get(TreatmentSession, sid).patient_id
    services.dosing.countersign(pres, pid, order_for(services, sid))
    form, _missing, findings, _row = services.chair.rems.build(nurse, sid)
    assert form.order_kind.startswith("verbal order ")
    stamp = f"{clock.now:%Y-%m-%d %H:%M}"
    assert form.order_countersigned == f"by prescriber at {stamp} UTC"
    assert "rems.verbal_order_overdue" not in [f.rule for f in findings]
    text = pdf_text(services.chair.rems.pdf(nurse, sid))
    assert f"by prescriber at {stamp} UTC" in text and "OVERDUE" not in text

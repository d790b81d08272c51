"""Alerts that a chair rating raises live in two places, and are actioned once.

A rating at the chair (MOAA/S, RASS, CADSS) that fires an alert rule writes a session alert
(``chair_alerts``: shown in the session, must be actioned before discharge) and a clinical
alert (``clinical_alerts``: the clinic's Alerts worklist), both in the rating's transaction
with the same rule and the same timestamp. Recording the action on either closes its twin
with the same note, so the worklist and the session never disagree about what is open.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.clinical.instruments import ScoreResult
from ketaclinic.services.interop.webhooks import queue_urgent_alerts
from ketaclinic.store.tables_chair import SessionAlert
from ketaclinic.store.tables_mbc import ClinicalAlert
from ketaclinic.store.tables_treatment import Assessment


def raise_rating_alerts(s: Session, rating: Assessment, result: ScoreResult,
                        now: dt.datetime) -> list[SessionAlert]:
    """Write the session alert and the worklist alert of every alert the rating fired."""
    out = []
    raised = []
    for alert in result.alerts:
        raised.append(ClinicalAlert(
            patient_id=rating.patient_id, assessment_id=rating.id,
            instrument_id=rating.instrument_id, rule=alert.rule[:60], priority=alert.priority,
            message=alert.message[:500], item=alert.item, value=alert.value,
            threshold=alert.threshold, source=alert.source[:500], raised_at=now))
        s.add(raised[-1])
        session_alert = SessionAlert(
            session_id=rating.session_id, vitals_id=None, rule=alert.rule[:60],
            message=f"{alert.message} ({alert.priority}; source: {alert.source})",
            suggested_action=alert.action or alert.message, created_at=now)
        s.add(session_alert)
        out.append(session_alert)
    s.flush()
    queue_urgent_alerts(s, raised, now)  # webhooks, in the rating's transaction
    return out


def rating_alerts(s: Session, rating: Assessment) -> list[SessionAlert]:
    """The session alerts :func:`raise_rating_alerts` wrote for ``rating`` (for a replay)."""
    rules = select(ClinicalAlert.rule).where(ClinicalAlert.assessment_id == rating.id)
    return list(s.execute(select(SessionAlert).where(
        SessionAlert.session_id == rating.session_id, SessionAlert.vitals_id.is_(None),
        SessionAlert.created_at == rating.created_at, SessionAlert.rule.in_(rules))
        .order_by(SessionAlert.id)).scalars())


def close_session_twins(s: Session, alert: ClinicalAlert, note: str, user_id: int | None,
                        now: dt.datetime) -> int:
    """Record ``note`` as the action on the open session alert(s) raised with ``alert``."""
    session_id = s.execute(select(Assessment.session_id).where(
        Assessment.id == alert.assessment_id)).scalar_one_or_none()
    if session_id is None:
        return 0
    twins = s.execute(select(SessionAlert).where(
        SessionAlert.session_id == session_id, SessionAlert.rule == alert.rule,
        SessionAlert.created_at == alert.raised_at, SessionAlert.action_taken == "")
    ).scalars().all()
    for twin in twins:
        twin.action_taken, twin.action_by, twin.action_at = note, user_id, now
    return len(twins)


def close_worklist_twins(s: Session, alert: SessionAlert, note: str, user_id: int | None,
                         now: dt.datetime) -> int:
    """Acknowledge, with ``note``, the open worklist alert(s) raised with ``alert``."""
    if alert.vitals_id is not None:
        return 0  # vital-sign alerts exist only in the session
    twins = s.execute(select(ClinicalAlert).join(
        Assessment, Assessment.id == ClinicalAlert.assessment_id).where(
        Assessment.session_id == alert.session_id, ClinicalAlert.rule == alert.rule,
        ClinicalAlert.raised_at == alert.created_at, ClinicalAlert.acknowledged_at.is_(None))
    ).scalars().all()
    for twin in twins:
        twin.acknowledged_at, twin.acknowledged_by, twin.ack_note = now, user_id, note
    return len(twins)

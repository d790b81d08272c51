"""The chair area's services in one place: courses, schedule, sessions, REMS forms, ledger."""

from __future__ import annotations

from dataclasses import dataclass

from ketaclinic.services.accounts.auth import AuthService
from ketaclinic.services.chair.board import ChairBoardService
from ketaclinic.services.chair.courses import CourseService
from ketaclinic.services.chair.ledger import LedgerService
from ketaclinic.services.chair.rems_forms import RemsService
from ketaclinic.services.chair.schedule import ScheduleService
from ketaclinic.services.chair.session import SessionService
from ketaclinic.services.chair.view import SessionViewService
from ketaclinic.services.context import Context


@dataclass
class ChairServices:
    courses: CourseService
    schedule: ScheduleService
    sessions: SessionService
    views: SessionViewService
    rems: RemsService
    ledger: LedgerService
    board: ChairBoardService


def build_chair_services(ctx: Context, auth: AuthService) -> ChairServices:
    ledger = LedgerService(ctx, auth)
    return ChairServices(courses=CourseService(ctx), schedule=ScheduleService(ctx),
                         sessions=SessionService(ctx, ledger),
                         views=SessionViewService(ctx, ledger), rems=RemsService(ctx),
                         ledger=ledger, board=ChairBoardService(ctx))

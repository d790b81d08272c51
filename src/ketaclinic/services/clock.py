"""Time enters the application here, and only here (tests pass a fixed or stepping clock)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The current time as naive UTC (the storage convention on every backend)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class SteppingClock:
    """A settable clock for tests and simulations."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now = self.now + dt.timedelta(**delta)

"""The clinic's wall clock: the one place where stored UTC instants meet clinic-local times.

Storage stays naive UTC on every backend (see ``store.tables.UtcDateTime``); the JSON API sends
and takes ISO 8601 with offsets. People, however, see and type the time on the clinic's wall
clock (``KETACLINIC_CLINIC_TIMEZONE``, an IANA name). :class:`ClinicTime` converts at that
edge and computes "today" and "this week" in the clinic's zone.

Daylight-saving changes are handled explicitly:

* A local time that does not exist (the hour skipped when clocks go forward, e.g. 02:30 on
  2026-03-08 in America/New_York) is refused with :class:`InvalidInput`; nothing is guessed.
* A local time that occurs twice (the hour repeated when clocks go back, e.g. 01:30 on
  2026-11-01 in America/New_York) is read as its **first** occurrence, the one still on
  daylight-saving time (``fold=0``). Enter a full ISO time with an offset through the API to
  mean the second one.
* Days and weeks run from local midnight to local midnight, so a day can last 23 or 25 hours;
  where midnight itself is skipped (America/Havana) the day starts at the first instant that
  exists.

Examples
--------
>>> ct = ClinicTime("America/New_York")
>>> ct.from_local(dt.datetime(2026, 1, 15, 9, 0))
datetime.datetime(2026, 1, 15, 14, 0)
>>> ct.from_local(dt.datetime(2026, 7, 15, 9, 0))
datetime.datetime(2026, 7, 15, 13, 0)
>>> ct.format(dt.datetime(2026, 1, 15, 14, 0), "%H:%M", zone=True)
'09:00 EST'
"""

from __future__ import annotations

import datetime as dt

from ketaclinic.config import zone_for
from ketaclinic.services.errors import InvalidInput

UTC = dt.UTC


class ClinicTime:
    """Conversions between stored instants (naive UTC) and the clinic's local wall clock."""

    def __init__(self, zone_name: str = "UTC") -> None:
        self.zone_name = zone_name
        self.zone = zone_for(zone_name)

    def __repr__(self) -> str:
        return f"ClinicTime({self.zone_name!r})"

    # --- instants -> wall clock ---------------------------------------------------------
    def to_local(self, instant: dt.datetime) -> dt.datetime:
        """A stored instant (naive = UTC, or aware) as an aware clinic-local datetime."""
        aware = instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant
        return aware.astimezone(self.zone)

    def local_date(self, instant: dt.datetime) -> dt.date:
        """The clinic's calendar date at ``instant``."""
        return self.to_local(instant).date()

    def today(self, now: dt.datetime) -> dt.date:
        """Today in the clinic, given the clock's ``now`` (naive UTC)."""
        return self.local_date(now)

    def abbreviation(self, instant: dt.datetime) -> str:
        """The zone's abbreviation in force at ``instant`` ("EST", "EDT", "CET", "UTC")."""
        return self.to_local(instant).tzname() or self.zone_name

    def format(self, instant: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M", *,
               zone: bool = False) -> str:
        """``instant`` on the clinic's clock with ``strftime`` ``fmt`` ("" for None); ``zone``
        appends the abbreviation in force then ("09:00 EST")."""
        if instant is None:
            return ""
        local = self.to_local(instant)
        text = local.strftime(fmt)
        return f"{text} {local.tzname()}" if zone else text

    # --- wall clock -> instants ---------------------------------------------------------
    def from_local(self, local: dt.datetime, what: str = "time") -> dt.datetime:
        """A clinic-local wall time as a naive UTC instant (the storage convention).

        An aware ``local`` is simply converted. A naive one is read on the clinic's clock:
        a time skipped by a daylight-saving change raises :class:`InvalidInput` (``what``
        names the field in the message); a repeated one is its first occurrence.
        """
        if local.tzinfo is not None:
            return local.astimezone(UTC).replace(tzinfo=None)
        first = local.replace(tzinfo=self.zone, fold=0)
        instant = first.astimezone(UTC)
        if instant.astimezone(self.zone).replace(tzinfo=None) != local:
            raise InvalidInput(
                f"{what}: {local:%Y-%m-%d %H:%M} does not exist in {self.zone_name} (the clocks "
                "were put forward then); enter the time shown on the clock")
        return instant.replace(tzinfo=None)

    def at(self, day: dt.date, time: dt.time, what: str = "time") -> dt.datetime:
        """``time`` on the clinic's clock on ``day`` as a naive UTC instant."""
        return self.from_local(dt.datetime.combine(day, time), what)

    def is_ambiguous(self, local: dt.datetime) -> bool:
        """True when the naive wall time ``local`` occurs twice (clocks going back)."""
        a = local.replace(tzinfo=self.zone, fold=0).utcoffset()
        b = local.replace(tzinfo=self.zone, fold=1).utcoffset()
        return a != b and not self._skipped(local)

    def _skipped(self, local: dt.datetime) -> bool:
        back = local.replace(tzinfo=self.zone).astimezone(UTC).astimezone(self.zone)
        return back.replace(tzinfo=None) != local

    # --- days and weeks -----------------------------------------------------------------
    def start_of_day(self, day: dt.date) -> dt.datetime:
        """The first instant of the clinic's ``day`` (naive UTC); where local midnight is
        skipped, the instant the clocks jump to."""
        midnight = dt.datetime.combine(day, dt.time(0), tzinfo=self.zone)  # fold=0
        return midnight.astimezone(UTC).replace(tzinfo=None)

    def day_range(self, first: dt.date, days: int = 1) -> tuple[dt.datetime, dt.datetime]:
        """``[start, end)`` in naive UTC covering ``days`` clinic days from ``first``."""
        return self.start_of_day(first), self.start_of_day(first + dt.timedelta(days=days))

    @staticmethod
    def week_start(day: dt.date) -> dt.date:
        """The Monday of ``day``'s week (weeks run Monday to Sunday)."""
        return day - dt.timedelta(days=day.weekday())

    def week_range(self, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        """``[start, end)`` in naive UTC of the clinic week (Monday 00:00 local to the next
        Monday 00:00 local) that holds ``day``."""
        return self.day_range(self.week_start(day), 7)

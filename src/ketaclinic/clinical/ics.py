"""iCalendar (RFC 5545) export of bookings: CRLF lines, escaped text, folded at 75 octets.

No clock is read: the caller passes ``dtstamp``. Event text carries no patient name.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from ketaclinic.clinical.rules import ClinicalInputError
from ketaclinic.clinical.scheduling import CANCELLED, Booking

CRLF = "\r\n"

TREATMENT_LABELS = {"esketamine": "Esketamine session", "iv_ketamine": "IV ketamine session"}


def escape_text(value: str) -> str:
    """Escape a TEXT value (RFC 5545 section 3.3.11): backslash, semicolon, comma, newline."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
    )


def fold_line(line: str) -> str:
    """Fold a content line at 75 octets (RFC 5545 section 3.1) without splitting characters."""
    out: list[str] = []
    current = ""
    for char in line:
        limit = 75 if not out else 74  # continuation lines start with one space
        if len((current + char).encode("utf-8")) > limit:
            out.append(current)
            current = char
        else:
            current += char
    out.append(current)
    return (CRLF + " ").join(out)


def format_datetime(value: datetime) -> str:
    """UTC form (``...Z``) for aware datetimes, floating local time for naive ones."""
    if value.tzinfo is not None:
        return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return value.strftime("%Y%m%dT%H%M%S")


def _event_lines(booking: Booking, dtstamp: datetime, uid_domain: str, location: str) -> list[str]:
    lines = [
        "BEGIN:VEVENT",
        f"UID:{booking.booking_id}@{uid_domain}",
        f"DTSTAMP:{format_datetime(dtstamp)}",
        f"DTSTART:{format_datetime(booking.start)}",
        f"DTEND:{format_datetime(booking.end)}",
        f"SUMMARY:{escape_text(TREATMENT_LABELS.get(booking.treatment, booking.treatment))}",
        f"STATUS:{'CANCELLED' if booking.status == CANCELLED else 'CONFIRMED'}",
    ]
    if location:
        lines.append(f"LOCATION:{escape_text(location)}")
    if booking.change_reason:
        lines.append(f"COMMENT:{escape_text(booking.change_reason)}")
    lines.append("END:VEVENT")
    return lines


def to_ics(
    bookings: Sequence[Booking],
    dtstamp: datetime,
    uid_domain: str = "ketaclinic.invalid",
    location: str = "",
    calendar_name: str = "Treatment sessions",
) -> str:
    """Serialise bookings as an iCalendar VCALENDAR string with CRLF line endings.

    Parameters
    ----------
    bookings : sequence of Booking
        Typically one patient's bookings (cancelled ones are exported as STATUS:CANCELLED).
    dtstamp : datetime
        Creation time of the export (passed in; the core never reads the clock).
    uid_domain : str
        Right-hand side of each UID (``<booking_id>@<uid_domain>``), stable across exports.
    """
    if dtstamp.tzinfo is None:
        raise ClinicalInputError("dtstamp must be timezone-aware (RFC 5545 requires UTC DTSTAMP)")
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//ketaclinic//chair scheduling//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{escape_text(calendar_name)}",
    ]
    for booking in sorted(bookings, key=lambda b: (b.start, b.booking_id)):
        lines += _event_lines(booking, dtstamp, uid_domain, location)
    lines.append("END:VCALENDAR")
    return "".join(fold_line(line) + CRLF for line in lines)

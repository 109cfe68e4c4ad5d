"""Tandem's own meetings <-> iCalendar objects stored on a CalDAV server.

Only Tandem's meetings pass through here (their UID ends with Tandem's suffix); a
user's other events are read by ``ical_busy`` as times only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar

from server.providers.base import EventChange, ExternalEvent

__all__ = ["PRODID", "event_change", "event_to_ics", "uid_of"]

PRODID = "-//Tandem//Tandem scheduling//EN"

_PARTSTAT_TO_RESPONSE = {
    "NEEDS-ACTION": "needs_action",
    "ACCEPTED": "accepted",
    "DECLINED": "declined",
    "TENTATIVE": "tentative",
}
_RESPONSE_TO_PARTSTAT = {value: key for key, value in _PARTSTAT_TO_RESPONSE.items()}


def event_to_ics(event: ExternalEvent, *, now: datetime | None = None) -> str:
    """A METHOD-less VCALENDAR (a stored object, not an iTIP message) for ``event``.

    Start and end carry the meeting's TZID with a VTIMEZONE, so calendar apps show it at
    the intended wall time. Every ATTENDEE has ``SCHEDULE-AGENT=CLIENT`` (RFC 6638 7.1):
    Tandem sends its own invitations, and a server that does implicit scheduling (iCloud)
    must not send a second set.
    """
    zone = ZoneInfo(event.time_zone)
    vevent = icalendar.Event()
    vevent.add("UID", event.uid)
    vevent.add("DTSTAMP", (now or datetime.now(UTC)).astimezone(UTC))
    vevent.add("SEQUENCE", event.sequence)
    vevent.add("DTSTART", event.start.astimezone(zone))
    vevent.add("DTEND", event.end.astimezone(zone))
    vevent.add("SUMMARY", event.title)
    if event.description:
        vevent.add("DESCRIPTION", event.description)
    if event.location:
        vevent.add("LOCATION", event.location)
    vevent.add("STATUS", "CONFIRMED")
    vevent.add("TRANSP", "OPAQUE")
    vevent.add("ORGANIZER", icalendar.vCalAddress(f"mailto:{event.organizer_email}"))
    for attendee in event.attendees:
        address = icalendar.vCalAddress(f"mailto:{attendee.email}")
        if attendee.name:
            address.params["CN"] = attendee.name
        address.params["ROLE"] = "OPT-PARTICIPANT" if attendee.optional else "REQ-PARTICIPANT"
        address.params["PARTSTAT"] = _RESPONSE_TO_PARTSTAT.get(attendee.response, "NEEDS-ACTION")
        address.params["RSVP"] = "TRUE"
        address.params["SCHEDULE-AGENT"] = "CLIENT"
        vevent.add("ATTENDEE", address, encode=False)
    calendar = icalendar.Calendar()
    calendar.add("PRODID", PRODID)
    calendar.add("VERSION", "2.0")
    calendar.add_component(vevent)
    calendar.add_missing_timezones()
    text: bytes = calendar.to_ical()
    return text.decode("utf-8")


def uid_of(text: str | bytes) -> str | None:
    """The UID of the first VEVENT, or None when there is none."""
    for component in icalendar.Calendar.from_ical(text).walk("VEVENT"):
        uid = component.get("UID")
        return str(uid) if uid is not None else None
    return None


def event_change(provider_event_id: str, text: str | bytes) -> EventChange | None:
    """What the owner's copy of a Tandem meeting says now (master VEVENT only).

    CalDAV cannot tell who edited an object; whoever can write the owner's calendar
    acts as the owner, so title, description, start and end are reported as they
    stand, with each attendee's PARTSTAT. Returns None when there is no VEVENT.
    """
    calendar = icalendar.Calendar.from_ical(text)
    masters = [c for c in calendar.walk("VEVENT") if c.get("RECURRENCE-ID") is None]
    if not masters:
        return None
    vevent = masters[0]
    start = _utc(vevent.get("DTSTART"))
    end = _utc(vevent.get("DTEND"))
    duration = getattr(vevent.get("DURATION"), "dt", None)
    if end is None and start is not None and isinstance(duration, timedelta):
        end = start + duration
    return EventChange(
        provider_event_id=provider_event_id,
        deleted=False,
        title=_text(vevent.get("SUMMARY")),
        description=_text(vevent.get("DESCRIPTION")),
        start=start,
        end=end,
        attendee_responses=_responses(vevent.get("ATTENDEE")),
    )


def _responses(value: object) -> Mapping[str, str]:
    attendees = value if isinstance(value, list) else [] if value is None else [value]
    responses: dict[str, str] = {}
    for attendee in attendees:
        email = str(attendee).removeprefix("mailto:").removeprefix("MAILTO:").strip().lower()
        params = getattr(attendee, "params", {})
        partstat = str(params.get("PARTSTAT", "NEEDS-ACTION")).upper()
        responses[email] = _PARTSTAT_TO_RESPONSE.get(partstat, "needs_action")
    return responses


def _utc(prop: object) -> datetime | None:
    value = getattr(prop, "dt", None)
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:  # floating: Tandem never writes it; read as UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _text(value: object) -> str | None:
    return None if value is None else str(value)

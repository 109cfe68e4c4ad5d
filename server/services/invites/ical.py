"""iTIP (RFC 5546) documents for Tandem's meetings: REQUEST to invite or update, CANCEL to end.

These are what make an emailed invitation land in the attendee's calendar with working
Accept/Decline buttons, whether or not anyone connected a calendar to Tandem. Times are
written in the meeting's own zone (``TZID``) together with a generated ``VTIMEZONE``, so
clients that do not know IANA names still place the meeting correctly.

Text loses control and bidi characters once more on the way out (line breaks and tabs
stay, escaped as RFC 5545 says): rows written before input was cleaned must not reach a
calendar raw.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Literal

from icalendar import Calendar, Event, vCalAddress

from server.services.invites.types import Invitation, Person
from server.services.validation import strip_controls

PRODID = "-//Tandem//Tandem Scheduling//EN"

_Method = Literal["REQUEST", "CANCEL"]


def build_request(invite: Invitation, *, now: datetime | None = None) -> bytes:
    """A ``METHOD:REQUEST`` calendar for a new or changed meeting (``STATUS:CONFIRMED``)."""
    return _build(invite, "REQUEST", now)


def build_cancel(invite: Invitation, *, now: datetime | None = None) -> bytes:
    """A ``METHOD:CANCEL`` calendar; pass the invitation with its sequence already raised."""
    return _build(invite, "CANCEL", now)


def _build(invite: Invitation, method: _Method, now: datetime | None) -> bytes:
    stamp = (now or datetime.now(UTC)).astimezone(UTC)
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    cal.add_component(_event(invite, method, stamp))
    # Only the years around the meeting: a full 1970-2038 VTIMEZONE would triple the size.
    year = invite.start.astimezone(invite.zone).year
    cal.add_missing_timezones(first_date=date(year - 1, 1, 1), last_date=date(year + 2, 1, 1))
    document: bytes = cal.to_ical()
    return document


def _event(invite: Invitation, method: _Method, stamp: datetime) -> Event:
    event = Event()
    event.add("uid", invite.uid)
    event.add("sequence", invite.sequence)
    event.add("dtstamp", stamp)
    event.add("dtstart", invite.start.astimezone(invite.zone))
    event.add("dtend", invite.end.astimezone(invite.zone))
    event.add("summary", _text(invite.title))
    description = _text(invite.description or "")
    if description:
        event.add("description", description)
    location = _text(invite.location or "")
    if location:
        event.add("location", location)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("transp", "OPAQUE")
    event.add(
        "organizer",
        _address(invite.organizer),
        parameters={"CN": _text(invite.organizer.name)},
    )
    organizer_key = invite.organizer.email.casefold()
    event.add("attendee", _attendee(invite.organizer, organizer=True))
    seen = {organizer_key}
    for person in invite.attendees:
        key = person.email.casefold()
        if key not in seen:
            seen.add(key)
            event.add("attendee", _attendee(person, organizer=False))
    return event


def _text(value: str) -> str:
    return strip_controls(value, keep="\n\t")


def _address(person: Person) -> vCalAddress:
    return vCalAddress(f"mailto:{person.email}")


def _attendee(person: Person, *, organizer: bool) -> vCalAddress:
    address = _address(person)
    address.params["CN"] = _text(person.name)
    address.params["CUTYPE"] = "INDIVIDUAL"
    # RFC 5545 3.2.16: optional attendees are OPT-PARTICIPANT.
    address.params["ROLE"] = (
        "OPT-PARTICIPANT" if person.optional and not organizer else ("REQ-PARTICIPANT")
    )
    address.params["PARTSTAT"] = "ACCEPTED" if organizer else "NEEDS-ACTION"
    address.params["RSVP"] = "FALSE" if organizer else "TRUE"
    return address

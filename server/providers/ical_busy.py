"""iCalendar text -> busy intervals (times and a kind, nothing else).

CalDAV servers' free-busy reports are unreliable (Radicale keeps recurring instances at
their pre-DST UTC time and puts all-day events on UTC days; iCloud answers 400; Xandikos
answers nothing), so Tandem reads the events themselves and computes busy time here.
The parsed components hold titles, descriptions and attendees, but they never leave this
module: only ``BusyInterval`` values (UTC start, end and a kind) are returned.

Rules (RFC 5545 plus what calendar apps write):

* Recurrences are expanded with ``recurring-ical-events`` (RRULE, RDATE, EXDATE and
  RECURRENCE-ID overrides, including overrides that move or cancel one instance).
* A DATE-TIME with TZID stays at its local wall time in that zone across DST changes; a
  floating DATE-TIME is read in the user's ``time_zone``; a DATE (all-day) event covers
  the user's own days, midnight to midnight in ``time_zone``, with kind ``ALL_DAY``.
* Without DTEND or DURATION a DATE event lasts one day and a DATE-TIME event has zero
  length (RFC 5545 3.6.1). A zero-length event blocks nothing, so it is dropped.
* Not busy: ``TRANSP:TRANSPARENT``, ``STATUS:CANCELLED``, and Microsoft's
  ``X-MICROSOFT-CDO-BUSYSTATUS:FREE``. Kinds: ``OOF`` -> ``OUT_OF_OFFICE``,
  ``STATUS:TENTATIVE`` (or busy status ``TENTATIVE``) -> ``TENTATIVE``; an out-of-office
  or tentative all-day event keeps the more specific kind. ``WORKINGELSEWHERE`` is
  free, as on every provider (Graph ``workingElsewhere``, Google working-location
  events). The busy status is read from ``X-MICROSOFT-CDO-BUSYSTATUS`` (the calendar owner's own status) and, when absent,
  ``X-MICROSOFT-CDO-INTENDEDSTATUS``.
* Events the user declined do not block, as in Google Calendar and Outlook: an
  occurrence whose ATTENDEE for one of ``own_addresses`` (the principal's
  ``calendar-user-address-set`` plus the account email) has ``PARTSTAT=DECLINED`` is
  skipped. Addresses compare case-insensitively without ``mailto:``. Without
  ``own_addresses`` nothing is skipped: guessing which attendee is the user could hide
  real busy time. Each occurrence is judged on its own (an override may decline one).
* VTODO, VJOURNAL and VFREEBUSY components are ignored.
* Intervals are clipped to ``[start, end)``, converted to UTC, sorted, and overlapping or
  touching intervals of the same kind are merged (different kinds may overlap).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
from icalendar.prop import vPeriod

from server.providers.base import BusyInterval, BusyKind

__all__ = ["busy_from_icalendar", "busy_from_vfreebusy", "merge_intervals", "normalize_address"]

log = logging.getLogger(__name__)

# Expansion runs over a window padded by this much so that all-day and floating events,
# whose absolute times depend on the user's zone, are found before clipping.
_PAD = timedelta(days=2)

_BUSY_STATUS_PROPS = ("X-MICROSOFT-CDO-BUSYSTATUS", "X-MICROSOFT-CDO-INTENDEDSTATUS")
# "Working elsewhere" is free on every provider (Graph's workingElsewhere, Google's
# working-location events, which Google writes as transparent): the person is working,
# only not at the usual place, and can be met (README, "What counts as busy").
_NOT_BUSY_STATUSES = frozenset({"FREE", "WORKINGELSEWHERE"})

_FBTYPE_KINDS = {
    "BUSY": BusyKind.BUSY,
    "BUSY-TENTATIVE": BusyKind.TENTATIVE,
    "BUSY-UNAVAILABLE": BusyKind.OUT_OF_OFFICE,
}


def busy_from_icalendar(
    documents: Iterable[str | bytes],
    start: datetime,
    end: datetime,
    time_zone: str,
    own_addresses: Iterable[str] = (),
) -> list[BusyInterval]:
    """Busy intervals of the VEVENTs in ``documents`` overlapping ``[start, end)``.

    ``start``/``end`` must be aware. ``own_addresses`` are the user's calendar addresses
    (``mailto:`` optional): events they declined do not block. A document that cannot be
    parsed is skipped with a warning that names no content: one broken object must not
    hide a whole calendar.
    """
    _require_aware(start, end)
    zone = ZoneInfo(time_zone)
    own = frozenset(a for a in map(normalize_address, own_addresses) if a)
    found: list[BusyInterval] = []
    for index, document in enumerate(documents):
        try:
            found.extend(_document_busy(document, start, end, zone, own))
        except Exception as exc:  # any malformed input; the log names no content
            log.warning("skipping unparsable iCalendar object #%d (%s)", index, type(exc).__name__)
    return merge_intervals(found)


def busy_from_vfreebusy(text: str | bytes, start: datetime, end: datetime) -> list[BusyInterval]:
    """Busy intervals from a VFREEBUSY answer (RFC 4791 free-busy-query); a fallback only.

    Accepts both one VFREEBUSY with FREEBUSY lines (Radicale 3.9, Xandikos) and one
    VFREEBUSY per occurrence with DTSTART/DTEND (older Radicale). A missing FBTYPE means
    BUSY; FREE periods are skipped.
    """
    _require_aware(start, end)
    calendar = icalendar.Calendar.from_ical(text)  # also unfolds long lines
    found: list[BusyInterval] = []
    for component in calendar.walk("VFREEBUSY"):
        periods = _as_list(component.get("FREEBUSY"))
        for period in periods:  # icalendar splits comma-separated periods, keeping params
            kind = _fbtype_kind(period.params.get("FBTYPE"))
            if kind is not None:
                begin, finish = _period_bounds(period.dt)
                _append_clipped(found, begin, finish, kind, start, end)
        if not periods and "DTSTART" in component and "DTEND" in component:
            kind = _fbtype_kind(component.get("FBTYPE"))
            if kind is not None:
                begin = _utc(getattr(component["DTSTART"], "dt", None))
                finish = _utc(getattr(component["DTEND"], "dt", None))
                _append_clipped(found, begin, finish, kind, start, end)
    return merge_intervals(found)


def merge_intervals(intervals: Iterable[BusyInterval]) -> list[BusyInterval]:
    """Sort by start and merge overlapping or touching intervals of the same kind."""
    open_by_kind: dict[BusyKind, BusyInterval] = {}
    merged: list[BusyInterval] = []
    for interval in sorted(intervals):
        current = open_by_kind.get(interval.kind)
        if current is not None and interval.start <= current.end:
            if interval.end > current.end:
                open_by_kind[interval.kind] = BusyInterval(
                    current.start, interval.end, current.kind
                )
            continue
        if current is not None:
            merged.append(current)
        open_by_kind[interval.kind] = interval
    merged.extend(open_by_kind.values())
    return sorted(merged)


def normalize_address(address: object) -> str:
    """A calendar user address as compared here: no ``mailto:``, case-folded."""
    text = str(address).strip()
    if text[:7].lower() == "mailto:":
        text = text[7:]
    return text.strip().casefold()


def _document_busy(
    document: str | bytes,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    own: frozenset[str] = frozenset(),
) -> Iterator[BusyInterval]:
    calendar = icalendar.Calendar.from_ical(document)
    # Query in dates: floating and all-day events compare without a zone there.
    query_start = (start - _PAD).date()
    query_end = (end + _PAD).date()
    occurrences = recurring_ical_events.of(calendar, components=["VEVENT"]).between(
        query_start, query_end
    )
    for occurrence in occurrences:
        kind = _event_kind(occurrence)
        if kind is None or (own and _declined_by(occurrence, own)):
            continue
        begin = _absolute(occurrence.start, zone)
        finish = _absolute(occurrence.end, zone)
        clipped = _clip(begin, finish, start, end)
        if clipped is not None:
            yield BusyInterval(clipped[0], clipped[1], kind)


def _event_kind(event: icalendar.cal.Component) -> BusyKind | None:
    """The kind of busy time an event stands for, or None when it does not block."""
    if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
        return None
    status = str(event.get("STATUS", "CONFIRMED")).upper()
    if status == "CANCELLED":
        return None
    busy_status = next(
        (str(event[name]).upper() for name in _BUSY_STATUS_PROPS if event.get(name) is not None),
        None,
    )
    if busy_status in _NOT_BUSY_STATUSES:
        return None
    if busy_status == "OOF":
        return BusyKind.OUT_OF_OFFICE
    if status == "TENTATIVE" or busy_status == "TENTATIVE":
        return BusyKind.TENTATIVE
    if _is_all_day(event):
        return BusyKind.ALL_DAY
    return BusyKind.BUSY


def _declined_by(event: icalendar.cal.Component, own: frozenset[str]) -> bool:
    """Whether one of the user's own addresses declined this (occurrence of an) event."""
    attendees = event.get("ATTENDEE")
    listed = attendees if isinstance(attendees, list) else [] if attendees is None else [attendees]
    for attendee in listed:
        if normalize_address(attendee) not in own:
            continue
        partstat = getattr(attendee, "params", {}).get("PARTSTAT", "NEEDS-ACTION")
        if str(partstat).upper() == "DECLINED":
            return True
    return False


def _is_all_day(event: icalendar.cal.Component) -> bool:
    dtstart = event.get("DTSTART")
    return dtstart is not None and not isinstance(dtstart.dt, datetime)


def _absolute(value: date | datetime, zone: ZoneInfo) -> datetime:
    """A UTC instant: dates start at the user's midnight, floating times are the user's."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time.min)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _clip(
    begin: datetime, finish: datetime, start: datetime, end: datetime
) -> tuple[datetime, datetime] | None:
    begin = max(begin, start.astimezone(UTC))
    finish = min(finish, end.astimezone(UTC))
    return (begin, finish) if begin < finish else None


def _append_clipped(
    found: list[BusyInterval],
    begin: datetime,
    finish: datetime,
    kind: BusyKind,
    start: datetime,
    end: datetime,
) -> None:
    clipped = _clip(begin, finish, start, end)
    if clipped is not None:
        found.append(BusyInterval(clipped[0], clipped[1], kind))


def _fbtype_kind(fbtype: object) -> BusyKind | None:
    if fbtype is None:
        return BusyKind.BUSY
    name = str(fbtype).upper()
    if name == "FREE":
        return None
    # x-name and unknown types are busy (RFC 5545 3.2.9: treat as BUSY).
    return _FBTYPE_KINDS.get(name, BusyKind.BUSY)


def _period_bounds(value: object) -> tuple[datetime, datetime]:
    if not isinstance(value, tuple) or len(value) != 2:
        raise ValueError("FREEBUSY value is not a period")
    begin, other = value
    finish = begin + other if isinstance(other, timedelta) else other
    return _utc(begin), _utc(finish)


def _utc(value: object) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError("free-busy times must be UTC date-times")
    return value.astimezone(UTC)


def _as_list(value: object) -> list[vPeriod]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]  # type: ignore[list-item]


def _require_aware(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")

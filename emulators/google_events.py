"""Event times and the free/busy rule, the way Google Calendar derives busy time.

Opaque, not cancelled events block; transparent, cancelled, working-location events and
events the calendar owner declined do not; an all-day event blocks its days in the
calendar's time zone. Recurring events are not expanded: each stored event is one
occurrence (seed occurrences separately).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo


class BadTime(ValueError):
    """A time field the API would reject."""


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 timestamp; Google requires the offset, so a naive one is refused."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadTime(value) from exc
    if parsed.tzinfo is None:
        raise BadTime(value)
    return parsed.astimezone(UTC)


def format_rfc3339(moment: datetime, zone: ZoneInfo | None = None) -> str:
    if zone is None or zone.key == "UTC":
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.astimezone(zone).isoformat()


def event_time(value: Any, calendar_zone: str) -> datetime:
    """UTC instant of an EventDateTime (``dateTime`` with offset or ``timeZone``, or ``date``)."""
    if not isinstance(value, dict):
        raise BadTime("missing")
    zone_name = value.get("timeZone") or calendar_zone
    try:
        zone = ZoneInfo(zone_name)
        if "dateTime" in value:
            moment = datetime.fromisoformat(value["dateTime"])
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
            return moment.astimezone(UTC)
        if "date" in value:
            day = date.fromisoformat(value["date"])
            return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    except (ValueError, KeyError, TypeError) as exc:
        raise BadTime(str(value)) from exc
    raise BadTime("missing")


def event_bounds(event: dict[str, Any], calendar_zone: str) -> tuple[datetime, datetime]:
    return event_time(event.get("start"), calendar_zone), event_time(
        event.get("end"), calendar_zone
    )


def blocks_time(event: dict[str, Any], owner_email: str) -> bool:
    if event.get("status") == "cancelled" or event.get("transparency") == "transparent":
        return False
    if event.get("eventType") == "workingLocation":
        return False
    for attendee in event.get("attendees", []):
        is_owner = attendee.get("self") or str(attendee.get("email", "")).lower() == owner_email
        if is_owner and attendee.get("responseStatus") == "declined":
            return False
    return True


def busy_periods(
    events: Iterable[dict[str, Any]],
    owner_email: str,
    calendar_zone: str,
    window: tuple[datetime, datetime],
) -> list[tuple[datetime, datetime]]:
    """Merged busy periods of ``events`` clipped to ``window`` (half-open, UTC)."""
    low, high = window
    spans = []
    for event in events:
        if not blocks_time(event, owner_email):
            continue
        try:
            start, end = event_bounds(event, calendar_zone)
        except BadTime:
            continue
        start, end = max(start, low), min(end, high)
        if start < end:
            spans.append((start, end))
    spans.sort()
    merged: list[tuple[datetime, datetime]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged

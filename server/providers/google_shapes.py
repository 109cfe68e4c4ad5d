"""Request and response shapes both Google Calendar clients share.

The personal connection (``google.GoogleProvider``, one user's OAuth token) and the
organization-wide one (``google_workspace.GoogleWorkspaceDirectory``, a service account
acting for a domain) speak the same Calendar API v3: the same event body, freeBusy
periods, error reasons and rate-limit signals. Keeping them here means a change to how
Tandem writes a meeting reaches both.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from server.providers.base import BusyInterval, ExternalEvent, ProviderError

MAX_FREEBUSY_SPAN = timedelta(days=60)  # Google refuses long ranges (~90 days, undocumented)
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
TO_GOOGLE_RESPONSE = {
    "needs_action": "needsAction",
    "accepted": "accepted",
    "declined": "declined",
    "tentative": "tentative",
}


def event_body(event: ExternalEvent) -> dict[str, Any]:
    zone = ZoneInfo(event.time_zone)
    return {
        "summary": event.title,
        "description": event.description,
        "location": event.location or "",
        "start": {
            "dateTime": event.start.astimezone(zone).isoformat(),
            "timeZone": event.time_zone,
        },
        "end": {"dateTime": event.end.astimezone(zone).isoformat(), "timeZone": event.time_zone},
        "status": "confirmed",
        "attendees": [
            {
                "email": attendee.email,
                **({"displayName": attendee.name} if attendee.name else {}),
                "responseStatus": TO_GOOGLE_RESPONSE.get(attendee.response, "needsAction"),
                # https://developers.google.com/calendar/api/v3/reference/events#attendees.optional
                **({"optional": True} if attendee.optional else {}),
            }
            for attendee in event.attendees
        ],
        "extendedProperties": {"private": {"tandem_uid": event.uid}},
    }


def is_rate_limited(response: httpx.Response) -> bool:
    if response.status_code == 429:
        return True
    return response.status_code == 403 and api_reason(response) in RATE_LIMIT_REASONS


def api_reason(response: httpx.Response) -> str:
    try:
        errors = response.json()["error"]["errors"]
        return safe_code(str(errors[0]["reason"]))
    except (ValueError, KeyError, IndexError, TypeError):
        return "unknown"


def json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise ProviderError("Google returned a response that is not JSON.") from None
    if not isinstance(data, dict):
        raise ProviderError("Google returned an unexpected response.")
    return data


def listed_event_id(listing: dict[str, Any], uid: str) -> str | None:
    """The id of the listed event Tandem wrote with iCalendar UID ``uid`` (marked by its
    private ``tandem_uid`` property), so an event someone else gave that UID is ignored."""
    for item in listing.get("items") or []:
        if not isinstance(item, dict):
            continue
        private = (item.get("extendedProperties") or {}).get("private") or {}
        if private.get("tandem_uid") == uid and item.get("id"):
            return str(item["id"])
    return None


def safe_code(text: str | None) -> str:
    """A provider-supplied code fit for a message (letters and underscores only)."""
    return text if text and re.fullmatch(r"[A-Za-z_]{1,64}", text) else "unknown"


def require_aware(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_period(period: Any) -> tuple[datetime, datetime]:
    """A freeBusy ``{"start", "end"}`` pair as aware UTC datetimes."""
    try:
        start = datetime.fromisoformat(str(period["start"]))
        end = datetime.fromisoformat(str(period["end"]))
    except (KeyError, TypeError, ValueError):
        raise ProviderError("Google returned a malformed busy period.") from None
    if start.tzinfo is None or end.tzinfo is None:
        raise ProviderError("Google returned a busy period without a time zone.")
    return start.astimezone(UTC), end.astimezone(UTC)


def split_spans(
    start: datetime, end: datetime, longest: timedelta
) -> list[tuple[datetime, datetime]]:
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    spans = []
    while start < end:
        spans.append((start, min(end, start + longest)))
        start += longest
    return spans


def merge_intervals(intervals: list[BusyInterval]) -> list[BusyInterval]:
    merged: list[BusyInterval] = []
    for interval in sorted(intervals):
        if merged and interval.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = BusyInterval(last.start, max(last.end, interval.end), last.kind)
        else:
            merged.append(interval)
    return merged

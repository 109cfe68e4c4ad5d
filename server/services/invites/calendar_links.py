"""'Add to calendar' links for a meeting: Google Calendar and Outlook on the web.

Pure URL building from the documented templates, so the meeting page can offer one
click into a calendar that Tandem is not connected to:

- Google: ``https://calendar.google.com/calendar/render?action=TEMPLATE&text=…&dates=
  START/END&details=…&location=…`` with times as ``YYYYMMDDTHHMMSSZ`` (UTC), see
  https://github.com/InteractionDesignFoundation/add-event-to-calendar-docs/blob/main/services/google.md
- Outlook: ``https://outlook.live.com/calendar/0/deeplink/compose?path=/calendar/action/compose
  &rru=addevent&subject=…&startdt=…&enddt=…&body=…&location=…`` (ISO 8601), and the same
  path on ``outlook.office.com`` for work and school accounts, see
  https://github.com/InteractionDesignFoundation/add-event-to-calendar-docs/blob/main/services/outlook-web.md
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from server.services.validation import strip_controls

__all__ = ["CalendarLinks", "calendar_links"]

GOOGLE = "https://calendar.google.com/calendar/render"
OUTLOOK_PERSONAL = "https://outlook.live.com/calendar/0/deeplink/compose"
OUTLOOK_WORK = "https://outlook.office.com/calendar/0/deeplink/compose"
_MAX_DETAILS = 1500  # keeps the URL well under what browsers and proxies accept


@dataclass(frozen=True, slots=True)
class CalendarLinks:
    google: str
    outlook: str  # Outlook.com (personal)
    office: str  # Microsoft 365 (work or school)


def calendar_links(
    title: str, start: datetime, end: datetime, details: str = "", location: str | None = None
) -> CalendarLinks:
    text = strip_controls(title)
    body = strip_controls(details, keep="\n")[:_MAX_DETAILS]
    where = strip_controls(location or "")
    google: dict[str, str] = {
        "action": "TEMPLATE",
        "text": text,
        "dates": f"{_compact(start)}/{_compact(end)}",
    }
    if body:
        google["details"] = body
    if where:
        google["location"] = where
    outlook: dict[str, str] = {
        "path": "/calendar/action/compose",
        "rru": "addevent",
        "subject": text,
        "startdt": _iso(start),
        "enddt": _iso(end),
    }
    if body:
        outlook["body"] = body
    if where:
        outlook["location"] = where
    query = urlencode(outlook)
    return CalendarLinks(
        google=f"{GOOGLE}?{urlencode(google)}",
        outlook=f"{OUTLOOK_PERSONAL}?{query}",
        office=f"{OUTLOOK_WORK}?{query}",
    )


def _compact(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

"""Google Workspace through a service account with domain-wide delegation.

One credential covers a whole domain: the service account acts as ``act_as`` (a user in
the domain, usually an account created for Tandem) and, as that user, reads everyone's
free/busy with ``freeBusy.query`` — up to 50 calendars a call, the documented
``calendarExpansionMax`` — and books covered owners' meetings in its own primary
calendar with the attendees, so invitations come from that account.

Only times are parsed out of freeBusy (it returns nothing else); a per-calendar error
makes only that person unknown. ``config`` is the integration's decrypted configuration:
``service_account_key`` (the JSON key file as a dict), ``domain``, optional ``domains``
and ``act_as``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx

from server.config import Settings
from server.providers.base import (
    AccessDenied,
    BusyInterval,
    ExternalEvent,
    InvalidCredentials,
    ProviderError,
    ProviderMisconfigured,
)
from server.providers.google_service_account import (
    DELEGATION_SCOPES,
    ServiceAccountTokens,
    delegation_client_id,
    load_service_account_key,
    validate_service_account_key,
)
from server.providers.google_shapes import (
    api_reason,
    event_body,
    is_rate_limited,
    json_object,
    listed_event_id,
    merge_intervals,
    parse_period,
    require_aware,
    rfc3339,
)
from server.providers.http_errors import RetryPolicy, Sleep, send_with_retry
from server.providers.org_base import PersonSchedule, UncoveredReason

__all__ = [
    "DELEGATION_SCOPES",
    "GoogleWorkspaceDirectory",
    "delegation_client_id",
    "load_service_account_key",
    "validate_service_account_key",
]

_PER_CALENDAR = {
    "notFound": UncoveredReason.NO_MAILBOX,
    "forbidden": UncoveredReason.ACCESS_DENIED,
    "accessDenied": UncoveredReason.ACCESS_DENIED,
}


def _rate_limited(response: httpx.Response) -> bool:
    """429 and 403 rate/userRate limits (Calendar errors guide), and a 503 that names a
    ``Retry-After``: Google telling us when to come back is a rate signal, not an outage."""
    if response.status_code == 503 and response.headers.get("retry-after"):
        return True
    return is_rate_limited(response)


class GoogleWorkspaceDirectory:
    """``org_base.OrgDirectory`` for a Google Workspace domain."""

    max_people_per_call = 50  # freeBusy calendarExpansionMax (providers.md 1.1)
    max_window_days = 60  # the personal provider's chunk; Google's limit is ~90 days, undocumented

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        config: Mapping[str, Any],
        *,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._http = http
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self.domains = _domains(config)
        act_as = str(config.get("act_as") or "").strip().lower()
        if not act_as or act_as.rpartition("@")[2] not in self.domains:
            raise ProviderMisconfigured(
                "The account to act as must be an address in the integrated domain."
            )
        self.act_as = act_as
        self._tokens = ServiceAccountTokens(
            settings,
            http,
            config.get("service_account_key") or {},
            retry=self._retry,
            sleep=sleep,
            is_rate_limited=_rate_limited,
        )

    @property
    def client_email(self) -> str:
        return self._tokens.client_email

    async def verify(self) -> str:
        """A token acting as ``act_as`` and one freeBusy of its own calendar. Returns the
        service account's ``client_email`` (the credential the Integrations page names;
        invitations come from ``act_as``)."""
        now = datetime.now().astimezone()
        [own] = await self.read_schedules([self.act_as], now, now + timedelta(hours=1), "UTC")
        if own.problem is not None:
            raise ProviderMisconfigured(
                f"Google cannot read the calendar of {self.act_as}, the account to act as."
            )
        return self.client_email

    async def read_schedules(
        self, emails: Sequence[str], start: datetime, end: datetime, time_zone: str
    ) -> list[PersonSchedule]:
        """One freeBusy call for up to 50 addresses over at most 60 days (a longer window
        or batch is refused with ``ValueError``: the calling service splits). Addresses
        outside the domains are answered ``NOT_IN_DOMAIN`` without asking Google.
        ``time_zone`` is unused: Google places all-day events on each calendar's days."""
        require_aware(start, end)
        if end <= start:
            raise ValueError("the window is empty")
        if end - start > timedelta(days=self.max_window_days):
            raise ValueError(f"a window may be at most {self.max_window_days} days long")
        if len(emails) > self.max_people_per_call:
            raise ValueError(f"at most {self.max_people_per_call} people per call")
        asked = [email.strip().lower() for email in emails]
        inside = list(dict.fromkeys(e for e in asked if e.rpartition("@")[2] in self.domains))
        answers = await self._free_busy(inside, start, end) if inside else {}
        return [
            answers.get(email) or PersonSchedule(email, problem=UncoveredReason.NOT_IN_DOMAIN)
            for email in asked
        ]

    async def _free_busy(
        self, emails: list[str], start: datetime, end: datetime
    ) -> dict[str, PersonSchedule]:
        body = {
            "timeMin": rfc3339(start),
            "timeMax": rfc3339(end),
            "timeZone": "UTC",
            "items": [{"id": email} for email in emails],
        }
        response = await self._api("POST", "freeBusy", json=body)
        if response.status_code != 200:
            _raise_for(response)
        calendars = {
            str(key).lower(): value
            for key, value in (json_object(response).get("calendars") or {}).items()
        }
        answers = {}
        for email in emails:
            entry = calendars.get(email)
            if not isinstance(entry, dict):
                answers[email] = PersonSchedule(email, problem=UncoveredReason.UNREADABLE)
                continue
            if entry.get("errors"):
                answers[email] = PersonSchedule(email, problem=_problem(entry["errors"]))
                continue
            intervals = []
            for period in entry.get("busy") or []:
                busy_start, busy_end = parse_period(period)  # only start and end are read
                busy_start, busy_end = max(busy_start, start), min(busy_end, end)
                if busy_start < busy_end:
                    intervals.append(BusyInterval(busy_start, busy_end))
            answers[email] = PersonSchedule(email, intervals=merge_intervals(intervals))
        return answers

    async def create_event(self, event: ExternalEvent) -> str:
        """Insert in ``act_as``'s primary calendar with ``iCalUID`` = the meeting's UID and
        ``sendUpdates=all`` (one invitation per attendee). A retry after an unanswered
        insert meets 409 and patches the event already there instead."""
        response = await self._api(
            "POST",
            "calendars/primary/events",
            params={"sendUpdates": "all"},
            json={"iCalUID": event.uid, **event_body(event)},
        )
        if response.status_code == 200:
            return str(json_object(response)["id"])
        if response.status_code != 409:
            _raise_for(response)
        found = await self._event_id_for_uid(event.uid)
        if found is None:
            raise ProviderError("Google reported the meeting as existing but lists none.")
        await self.update_event(found, event)
        return found

    async def update_event(self, provider_event_id: str, event: ExternalEvent) -> None:
        response = await self._api(
            "PATCH",
            f"calendars/primary/events/{provider_event_id}",
            params={"sendUpdates": "all"},
            json=event_body(event),
        )
        if response.status_code != 200:
            _raise_for(response)

    async def delete_event(self, provider_event_id: str) -> None:
        """Cancel with ``sendUpdates=all``; an event already gone (404, 410) is fine."""
        response = await self._api(
            "DELETE",
            f"calendars/primary/events/{provider_event_id}",
            params={"sendUpdates": "all"},
        )
        if response.status_code not in (200, 204, 404, 410):
            _raise_for(response)

    async def aclose(self) -> None:
        self._tokens.clear()

    async def _event_id_for_uid(self, uid: str) -> str | None:
        params = {"iCalUID": uid, "showDeleted": "true", "maxResults": "10"}
        response = await self._api("GET", "calendars/primary/events", params=params)
        if response.status_code != 200:
            _raise_for(response)
        return listed_event_id(json_object(response), uid)

    async def _api(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """One Calendar API call as ``act_as``; a 401 drops the cached token and tries once
        more with a fresh one."""
        url = f"{self._settings.google_api_base.rstrip('/')}/{path}"
        for attempt in range(2):
            headers = {"Authorization": f"Bearer {await self._tokens.token(self.act_as)}"}

            def send(headers: dict[str, str] = headers) -> Awaitable[httpx.Response]:
                return self._http.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers=headers,
                    timeout=self._settings.provider_timeout_seconds,
                )

            response = await self._send(send)
            if response.status_code != 401 or attempt:
                return response
            self._tokens.forget(self.act_as)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        return await send_with_retry(
            send,
            service="Google",
            policy=self._retry,
            is_rate_limited=_rate_limited,
            sleep=self._sleep,
        )


def _domains(config: Mapping[str, Any]) -> frozenset[str]:
    raw = [config.get("domain"), *(config.get("domains") or [])]
    domains = frozenset(str(d).strip().lower() for d in raw if d and str(d).strip())
    if not domains:
        raise ProviderMisconfigured("The Google Workspace integration names no domain.")
    return domains


def _problem(errors: Any) -> UncoveredReason:
    reasons = [str(e.get("reason", "")) for e in errors if isinstance(e, dict)]
    for reason in reasons:
        if reason in _PER_CALENDAR:
            return _PER_CALENDAR[reason]
    return UncoveredReason.UNREADABLE


def _raise_for(response: httpx.Response) -> None:
    """A whole-call failure as a typed error (status and reason only, never the body)."""
    reason = api_reason(response)
    if response.status_code == 401:
        raise InvalidCredentials("Google no longer accepts the service account's tokens.")
    if response.status_code == 403:
        raise AccessDenied(
            f"Google refused the service account's request ({reason}); check the "
            "domain-wide delegation scopes.",
            policy=reason in ("forbidden", "insufficientPermissions"),
        )
    raise ProviderError(f"Google rejected the request (HTTP {response.status_code}, {reason}).")

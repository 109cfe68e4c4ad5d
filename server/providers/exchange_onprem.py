"""Exchange on-premises through EWS and a service account (exchangelib).

The organization creates a mailbox for Tandem (the *service account*) that "must be able
to view the calendars of your program's participants". Busy times come from
``GetUserAvailability`` in the ``FreeBusyMerged`` view only (times and a busy type, never
``Detailed``, which carries subjects and locations); meetings are created in the service
account's own calendar with the attendees, so Exchange sends the invitations from it, and
``SyncFolderItems`` on that calendar brings responses and edits back.

exchangelib is synchronous: every call runs in a worker thread, a few at a time, with its
``FailFast`` retry policy (no sleeping inside the library) and the provider timeout on
each HTTP request. Throttling (``ErrorServerBusy``) becomes ``RateLimited`` with Exchange's
``BackOffMilliseconds`` so the job system backs off. Free/busy is always asked in UTC:
exchangelib hands back naive times in the requested zone, and UTC is the one zone in
which naive times are never ambiguous (a New York "01:30" in November happens twice).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import requests
import requests.adapters
from exchangelib import (
    DELEGATE,
    Account,
    Body,
    CalendarItem,
    Configuration,
    EWSDateTime,
    FailFast,
    HTMLBody,
)
from exchangelib import Credentials as EwsCredentials
from exchangelib import errors as ews_errors
from exchangelib.ewsdatetime import UTC as EWS_UTC
from exchangelib.items import ID_ONLY, SEND_TO_ALL_AND_SAVE_COPY
from exchangelib.properties import (
    DaylightTime,
    FreeBusyViewOptions,
    ItemId,
    MailboxData,
    StandardTime,
    TimeWindow,
)
from exchangelib.properties import TimeZone as EwsTimeZone
from exchangelib.protocol import BaseProtocol, Protocol
from exchangelib.services import GetUserAvailability, SyncFolderItems
from exchangelib.transport import BASIC, DIGEST, NTLM

from server.config import Settings
from server.providers.base import (
    AccessDenied,
    BusyInterval,
    BusyKind,
    ChangeBatch,
    EventChange,
    ExternalEvent,
    InvalidCredentials,
    OutcomeUnknown,
    ProviderError,
    ProviderMisconfigured,
    ProviderUnavailable,
    RateLimited,
    SyncTokenExpired,
)
from server.providers.html_text import html_to_text
from server.providers.org_base import PersonSchedule, UncoveredReason

T = TypeVar("T")

# exchangelib's DEBUG records carry the request headers (Basic credentials) and the SOAP
# bodies; whatever the root level, they stay off.
logging.getLogger("exchangelib").setLevel(logging.INFO)

TANDEM_UID_SUFFIX = "@tandem"

# The authentication schemes an on-premises EWS endpoint accepts with a user name and a
# password (exchangelib's names). Kerberos (GSSAPI/SSPI) needs a domain-joined host and
# OAuth is Exchange Online's business, so neither is offered.
AUTH_TYPES: Mapping[str, str] = {"ntlm": NTLM, "basic": BASIC, "digest": DIGEST}

# FreeBusyMerged returns the CalendarEventArray (times and BusyType only) plus the
# MergedFreeBusy digits, where "4" means NoData; never ask for Detailed(Merged).
# https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/freebusyviewoptions
REQUESTED_VIEW = "FreeBusyMerged"
MERGED_INTERVAL_MINUTES = 30
_NO_DATA_DIGIT = "4"

# https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/busytype
_BUSY_KINDS: Mapping[str, BusyKind | None] = {
    "Busy": BusyKind.BUSY,
    "Tentative": BusyKind.TENTATIVE,
    "OOF": BusyKind.OUT_OF_OFFICE,
    "Free": None,
    "WorkingElsewhere": None,
}

# https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/responsetype
_RESPONSES: Mapping[str, str] = {
    "Accept": "accepted",
    "Decline": "declined",
    "Tentative": "tentative",
}

_IN_FLIGHT = 4  # calls one directory runs at once; Exchange throttles per account
SYNC_PAGE_SIZE = 100  # SyncFolderItems MaxChangesReturned (1-512)
SYNC_PAGES = 10  # pages one read_changes call reads at most

_CREDENTIALS_REFUSED = "Exchange refused the service account's user name or password"


class _TrustedCAAdapter(requests.adapters.HTTPAdapter):
    """Verifies an EWS endpoint against its configured CA bundle instead of the system
    store. exchangelib builds its sessions itself (``BaseProtocol.HTTP_ADAPTER_CLS``), so
    the bundle is looked up by URL here; verification is never turned off."""

    bundles: dict[str, str] = {}
    _lock = threading.Lock()

    @classmethod
    def trust(cls, endpoint: str, bundle: Path) -> None:
        with cls._lock:
            cls.bundles[endpoint] = str(bundle)
            BaseProtocol.HTTP_ADAPTER_CLS = cls

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        # ``verify`` is True, or the path from REQUESTS_CA_BUNDLE: either way the
        # endpoint's own bundle decides. False (never set by Tandem) stays False.
        if verify is not False:
            for endpoint, bundle in self.bundles.items():
                if str(request.url).startswith(endpoint):
                    verify = bundle
                    break
        return super().send(request, stream, timeout, verify, cert, proxies)


def parse_config(config: Mapping[str, Any]) -> dict[str, str]:
    """Check an integration's configuration; a ``ProviderMisconfigured`` names what is wrong
    (never a value of the password)."""
    values: dict[str, str] = {}
    for key in ("ews_url", "username", "password", "auth_type", "service_account_email"):
        value = config.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ProviderMisconfigured(f"The Exchange integration has no {key.replace('_', ' ')}")
        values[key] = value if key == "password" else value.strip()
    url = httpx.URL(values["ews_url"])
    if url.scheme != "https" or not url.host:
        raise ProviderMisconfigured("The EWS URL must be an https:// address")
    auth = AUTH_TYPES.get(values["auth_type"].lower())
    if auth is None:
        raise ProviderMisconfigured(
            "The authentication type must be one of: " + ", ".join(AUTH_TYPES.values())
        )
    values["auth_type"] = auth
    if "@" not in values["service_account_email"]:
        raise ProviderMisconfigured("The service account must be an email address")
    values["service_account_email"] = values["service_account_email"].lower()
    return values


def _utc_timezone() -> EwsTimeZone:
    """The availability request's TimeZone for UTC: zero bias and no daylight shift (both
    transitions are required by the schema).
    https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/timezone-availability"""
    midnight = time(0, 0)
    return EwsTimeZone(
        bias=0,
        standard_time=StandardTime(bias=0, time=midnight, occurrence=1, iso_month=1, weekday=7),
        daylight_time=DaylightTime(bias=0, time=midnight, occurrence=1, iso_month=1, weekday=7),
    )


class _Availability(GetUserAvailability):  # type: ignore[misc]
    """GetUserAvailability that hands every per-mailbox error back as a value: stock
    exchangelib raises e.g. ``ErrorMailRecipientNotFound`` and loses the whole batch."""

    ERRORS_TO_CATCH_IN_RESPONSE = (ews_errors.ResponseMessageError,)


def _unwrap(exc: Exception) -> Exception:
    """The EWS error behind exchangelib's wrapper: its version probe turns the first
    request's ErrorServerBusy or 401 into "No valid version headers" (a TransportError
    raised while handling it)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ews_errors.ErrorServerBusy | ews_errors.UnauthorizedError):
            found: Exception = seen
            return found
        seen = seen.__context__
    return exc


def _looks_like_address(email: str) -> bool:
    """exchangelib sends any string; one that cannot be an SMTP address is not asked."""
    local, at, domain = email.partition("@")
    return bool(local and at and domain) and not any(c.isspace() or c in "<>" for c in email)


def _as_utc(value: datetime) -> datetime:
    """A plain aware UTC datetime from exchangelib's value (naive ones are UTC wall times
    because the request asked in UTC)."""
    plain = datetime(
        value.year, value.month, value.day, value.hour, value.minute, value.second, tzinfo=UTC
    )
    offset = value.utcoffset() if value.tzinfo is not None else None
    return plain - offset if offset else plain


def _ews_time(value: datetime) -> Any:
    return EWSDateTime.from_datetime(value.astimezone(UTC)).astimezone(EWS_UTC)


def _windows(start: datetime, end: datetime, days: int) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    cursor = start
    while cursor < end:
        stop = min(end, cursor + timedelta(days=days))
        out.append((cursor, stop))
        cursor = stop
    return out


class ExchangeOnPremDirectory:
    """``OrgDirectory`` for an Exchange server reached through EWS with a service account."""

    max_people_per_call = 100  # GetUserAvailability: at most 100 mailboxes per request
    max_window_days = 42  # and a time window of at most 42 days

    def __init__(
        self, settings: Settings, http: httpx.AsyncClient, config: Mapping[str, Any]
    ) -> None:
        values = parse_config(config)
        self.service_account_email = values["service_account_email"]
        self._timeout = settings.provider_timeout_seconds
        if settings.ews_ca_bundle is not None:
            _TrustedCAAdapter.trust(values["ews_url"], settings.ews_ca_bundle)
        self._configuration = Configuration(
            service_endpoint=values["ews_url"],
            credentials=EwsCredentials(values["username"], values["password"]),
            auth_type=values["auth_type"],
            retry_policy=FailFast(),
            max_connections=_IN_FLIGHT,
        )
        self._account: Any = None
        self._account_lock = threading.Lock()
        self._in_flight = asyncio.Semaphore(_IN_FLIGHT)

    def __repr__(self) -> str:
        return f"ExchangeOnPremDirectory(service_account={self.service_account_email!r})"

    # -- plumbing ---------------------------------------------------------------------

    def _mailbox(self) -> Any:
        """The service account's mailbox, built once (no autodiscover: the URL is given)."""
        with self._account_lock:
            if self._account is None:
                account = Account(
                    primary_smtp_address=self.service_account_email,
                    config=self._configuration,
                    autodiscover=False,
                    access_type=DELEGATE,
                    default_timezone=EWS_UTC,
                    locale="en_US",
                )
                # Each HTTP request gives up after the provider timeout (exchangelib's
                # default is 120 s); the instance attribute shadows the class default.
                account.protocol.TIMEOUT = self._timeout
                self._account = account
            return self._account

    async def _run(self, what: str, call: Callable[[], T], *, write: bool = False) -> T:
        """Run one blocking exchangelib call in a thread and translate its errors."""
        async with self._in_flight:
            try:
                return await asyncio.wait_for(asyncio.to_thread(call), timeout=self._timeout * 3)
            except ProviderError:
                raise
            except TimeoutError as exc:
                raise self._unavailable(what, write) from exc
            except ews_errors.EWSError as exc:
                raise self._translate(_unwrap(exc), what, write) from exc

    def _translate(self, exc: Exception, what: str, write: bool) -> ProviderError:
        if isinstance(exc, ews_errors.UnauthorizedError):
            return InvalidCredentials(_CREDENTIALS_REFUSED)
        if isinstance(exc, ews_errors.ErrorServerBusy):
            if str(exc).startswith("Reraised from"):  # a connection error in disguise
                return self._unavailable(what, write)
            return RateLimited(f"Exchange is busy ({what})", retry_after=exc.back_off)
        if isinstance(exc, ews_errors.ErrorTimeoutExpired):
            return self._unavailable(what, write)
        if isinstance(exc, ews_errors.ErrorInvalidSyncStateData):
            return SyncTokenExpired("Exchange no longer knows this sync state")
        if isinstance(exc, ews_errors.ErrorAccessDenied | ews_errors.ErrorNoFreeBusyAccess):
            return AccessDenied(f"Exchange denied the service account access ({what})")
        if isinstance(
            exc, ews_errors.ErrorNonExistentMailbox | ews_errors.ErrorMailRecipientNotFound
        ):
            return ProviderMisconfigured(
                f"Exchange has no mailbox for the service account {self.service_account_email}"
            )
        if isinstance(exc, ews_errors.TransportError) and "certificate" in str(exc).lower():
            return ProviderMisconfigured(
                "The Exchange server's TLS certificate is not trusted (set the EWS CA bundle)"
            )
        if isinstance(exc, ews_errors.TransportError) and not isinstance(
            exc, ews_errors.ResponseMessageError
        ):
            return self._unavailable(what, write, "could not be reached")
        return ProviderUnavailable(f"Exchange failed ({what}): {type(exc).__name__}")

    @staticmethod
    def _unavailable(
        what: str, write: bool, failure: str = "did not answer in time"
    ) -> ProviderUnavailable:
        if write:
            return OutcomeUnknown(f"Exchange {failure} ({what}); it may have happened")
        return ProviderUnavailable(f"Exchange {failure} ({what})")

    # -- busy times -------------------------------------------------------------------

    async def verify(self) -> str:
        """One GetUserAvailability for the service account itself: proves the URL, the
        TLS trust, the password and the mailbox in one call."""
        now = datetime.now(UTC).replace(microsecond=0)
        [me] = await self._availability([self.service_account_email], now, now + timedelta(hours=1))
        if me.problem is UncoveredReason.NO_MAILBOX:
            raise ProviderMisconfigured(
                f"Exchange has no mailbox for the service account {self.service_account_email}"
            )
        return self.service_account_email

    async def read_schedules(
        self, emails: Sequence[str], start: datetime, end: datetime, time_zone: str
    ) -> list[PersonSchedule]:
        """Busy times per person. ``time_zone`` does not matter to EWS (busy blocks are
        absolute times); larger batches or windows than one call allows are split."""
        asked = [email.strip().lower() for email in emails]
        unique = [email for email in dict.fromkeys(asked) if _looks_like_address(email)]
        found: dict[str, PersonSchedule] = {}
        for window_start, window_end in _windows(start, end, self.max_window_days):
            for i in range(0, len(unique), self.max_people_per_call):
                chunk = unique[i : i + self.max_people_per_call]
                for person in await self._availability(chunk, window_start, window_end):
                    found[person.email] = _merge(found.get(person.email), person)
        return [
            found.get(email)
            or PersonSchedule(
                email=email,
                problem=None if _looks_like_address(email) else UncoveredReason.NO_MAILBOX,
            )
            for email in asked
        ]

    async def _availability(
        self, emails: list[str], start: datetime, end: datetime
    ) -> list[PersonSchedule]:
        def call() -> list[Any]:
            account = self._mailbox()
            service = _Availability(protocol=account.protocol)
            return list(
                service.call(
                    tzinfo=EWS_UTC,
                    mailbox_data=[
                        MailboxData(email=email, attendee_type="Required", exclude_conflicts=False)
                        for email in emails
                    ],
                    timezone=_utc_timezone(),
                    free_busy_view_options=FreeBusyViewOptions(
                        time_window=TimeWindow(start=_ews_time(start), end=_ews_time(end)),
                        merged_free_busy_interval=MERGED_INTERVAL_MINUTES,
                        requested_view=REQUESTED_VIEW,
                    ),
                )
            )

        views = await self._run("free/busy", call)
        if len(views) != len(emails):
            raise ProviderUnavailable(
                "Exchange answered free/busy for a different number of people"
            )
        return [
            _schedule(email, view, start, end) for email, view in zip(emails, views, strict=True)
        ]

    # -- meetings ---------------------------------------------------------------------

    async def create_event(self, event: ExternalEvent) -> str:
        """CreateItem in the service account's calendar; Exchange sends the invitations
        and keeps a copy. The item id (stable across updates) is the provider event id.

        A create whose answer was lost (``OutcomeUnknown``) is retried by the caller, and
        EWS has no idempotency key: so the meeting's slot is looked up first and an item
        with Tandem's UID there is returned instead of a second meeting (and a second
        round of invitations)."""

        def call() -> str:
            account = self._mailbox()
            existing = self._find_by_uid(account, event)
            if existing is not None:
                return existing
            item = CalendarItem(
                account=account,
                folder=account.calendar,
                uid=event.uid,
                **self._fields(event),
            )
            item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
            return str(item.id)

        return await self._run("creating the meeting", call, write=True)

    async def update_event(self, provider_event_id: str, event: ExternalEvent) -> None:
        """UpdateItem with ``SendToAllAndSaveCopy`` (attendees added or removed get an
        invitation or a cancellation). The current change key is read first."""

        def call() -> None:
            account = self._mailbox()
            [item] = self._fetch(account, [provider_event_id], ["uid"])
            if item is None:
                raise ProviderError(
                    "The meeting no longer exists in the service account's Exchange calendar"
                )
            fields = self._fields(event)
            for name, value in fields.items():
                setattr(item, name, value)
            item.save(
                update_fields=list(fields),
                send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY,
            )

        await self._run("updating the meeting", call, write=True)

    async def delete_event(self, provider_event_id: str) -> None:
        """DeleteItem with cancellations to everyone; an item already gone is fine."""

        def call() -> None:
            account = self._mailbox()
            item = CalendarItem(account=account, id=provider_event_id, changekey=None)
            with suppress(ews_errors.ErrorItemNotFound):
                item.delete(send_meeting_cancellations=SEND_TO_ALL_AND_SAVE_COPY)

        await self._run("cancelling the meeting", call, write=True)

    def _fields(self, event: ExternalEvent) -> dict[str, Any]:
        # The meeting lives in the service account's calendar, so the Tandem owner (the
        # event's organizer) is invited like everyone else; the service account is not.
        # Optional invitees go to OptionalAttendees (EWS CalendarItem schema:
        # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/optionalattendees).
        optional = {a.email.strip().lower() for a in event.attendees if a.optional}
        people = [event.organizer_email, *(a.email for a in event.attendees)]
        invited = [
            email
            for email in dict.fromkeys(p.strip().lower() for p in people if p.strip())
            if email != self.service_account_email
        ]
        required = [email for email in invited if email not in optional]
        return {
            "subject": event.title,
            "body": Body(event.description),
            "location": event.location,
            "start": _ews_time(event.start),
            "end": _ews_time(event.end),
            "required_attendees": required or None,
            "optional_attendees": [email for email in invited if email in optional] or None,
        }

    @staticmethod
    def _find_by_uid(account: Any, event: ExternalEvent) -> str | None:
        """The id of the item with ``event.uid`` in the event's own time slot (FindItem
        with a CalendarView, then the UIDs only)."""
        if event.end <= event.start:
            return None
        view = account.calendar.view(start=_ews_time(event.start), end=_ews_time(event.end))
        for item in view.only("uid"):
            if not isinstance(item, Exception) and item.uid == event.uid:
                return str(item.id)
        return None

    @staticmethod
    def _fetch(account: Any, item_ids: list[str], fields: list[str]) -> list[Any]:
        """GetItem for several items in one call (exchangelib chunks at 100); None for an
        item that is gone."""
        found: list[Any] = []
        for item in account.fetch(
            ids=[ItemId(id=i) for i in item_ids], folder=account.calendar, only_fields=fields
        ):
            if isinstance(item, ews_errors.ErrorItemNotFound):
                found.append(None)
            elif isinstance(item, Exception):
                raise item
            else:
                found.append(item)
        return found

    async def read_changes(self, sync_state: str | None) -> ChangeBatch:
        """Changes in the service account's calendar since ``sync_state`` (SyncFolderItems;
        None starts from the beginning). Only the UID of each changed item is read; items
        whose UID is Tandem's are then read in detail. Deletions carry only an id and are
        all reported: the caller ignores ids it does not know.

        One call reads at most ``SYNC_PAGES`` pages of ``SYNC_PAGE_SIZE`` changes and
        returns the state reached, so a large first sync spreads over several calls
        instead of outliving the timeout every time."""

        def call() -> ChangeBatch:
            account = self._mailbox()
            calendar = account.calendar
            service = SyncFolderItems(account=account)
            uid_only = {
                f for f in calendar.normalize_fields(fields=["uid"]) if not f.field.is_attribute
            }
            changes: list[EventChange] = []
            ours: list[str] = []
            state = sync_state
            for _ in range(SYNC_PAGES):
                for kind, item in service.call(
                    folder=calendar,
                    shape=ID_ONLY,
                    additional_fields=uid_only,
                    sync_state=state,
                    ignore=None,
                    max_changes_returned=SYNC_PAGE_SIZE,
                    sync_scope=None,
                ):
                    if kind == "delete":
                        changes.append(EventChange(provider_event_id=str(item.id), deleted=True))
                    elif kind in ("create", "update") and str(item.uid or "").endswith(
                        TANDEM_UID_SUFFIX
                    ):
                        ours.append(str(item.id))
                finished = service.includes_last_item_in_range or service.sync_state == state
                state = service.sync_state
                if finished:
                    break
            ids = list(dict.fromkeys(ours))
            details = self._fetch(account, ids, _DETAIL_FIELDS) if ids else []
            for item_id, item in zip(ids, details, strict=True):
                if item is None:
                    changes.append(EventChange(provider_event_id=item_id, deleted=True))
                else:
                    changes.append(_change(item_id, item))
            return ChangeBatch(changes=changes, sync_token=state)

        return await self._run("reading changes", call)

    async def aclose(self) -> None:
        """Close exchangelib's sessions for this endpoint and forget its cached protocol,
        also when the mailbox was never built (a refused password fails inside
        ``Account``, after the protocol opened its sessions)."""
        account, self._account = self._account, None

        def call() -> None:
            protocol = account.protocol if account is not None else None
            if protocol is None:
                with suppress(KeyError):
                    cached, _ = Protocol[self._configuration]
                    protocol = None if isinstance(cached, Exception) else cached
            if protocol is not None:
                protocol.close()
            with suppress(KeyError):
                del Protocol[self._configuration]

        await asyncio.to_thread(call)


_DETAIL_FIELDS = [
    "uid",
    "subject",
    "body",
    "start",
    "end",
    "is_cancelled",
    "required_attendees",
    "optional_attendees",
]


def _change(item_id: str, item: Any) -> EventChange:
    if item.is_cancelled:
        return EventChange(provider_event_id=item_id, deleted=True)
    body = item.body
    description = None
    if body is not None:
        description = html_to_text(str(body)) if isinstance(body, HTMLBody) else str(body)
    responses: dict[str, str] = {}
    for attendee in [*(item.required_attendees or []), *(item.optional_attendees or [])]:
        email = (attendee.mailbox.email_address or "").lower()
        if email:
            responses[email] = _RESPONSES.get(attendee.response_type or "", "needs_action")
    return EventChange(
        provider_event_id=item_id,
        deleted=False,
        title=item.subject,
        description=description,
        start=_as_utc(item.start) if item.start else None,
        end=_as_utc(item.end) if item.end else None,
        attendee_responses=responses,
    )


def _schedule(email: str, view: Any, start: datetime, end: datetime) -> PersonSchedule:
    """One mailbox's FreeBusyView (or its error) as times and kinds only."""
    if isinstance(view, ews_errors.ErrorServerBusy):
        raise RateLimited("Exchange is busy (free/busy)", retry_after=view.back_off)
    if isinstance(view, ews_errors.ErrorMailRecipientNotFound | ews_errors.ErrorNonExistentMailbox):
        return PersonSchedule(email=email, problem=UncoveredReason.NO_MAILBOX)
    if isinstance(view, ews_errors.ErrorNoFreeBusyAccess | ews_errors.ErrorAccessDenied):
        return PersonSchedule(email=email, problem=UncoveredReason.ACCESS_DENIED)
    if isinstance(view, Exception) or view is None or view.view_type in (None, "None"):
        return PersonSchedule(email=email, problem=UncoveredReason.UNREADABLE)
    if _NO_DATA_DIGIT in (view.merged or ""):
        return PersonSchedule(email=email, problem=UncoveredReason.UNREADABLE)
    intervals: list[BusyInterval] = []
    for event in view.calendar_events or []:
        if event.busy_type == "NoData":
            return PersonSchedule(email=email, problem=UncoveredReason.UNREADABLE)
        kind = _BUSY_KINDS.get(event.busy_type, BusyKind.BUSY)
        if kind is None or event.start is None or event.end is None:
            continue
        lo, hi = max(_as_utc(event.start), start), min(_as_utc(event.end), end)
        if lo < hi:
            intervals.append(BusyInterval(lo, hi, kind))
    return PersonSchedule(email=email, intervals=sorted(intervals))


def _merge(before: PersonSchedule | None, more: PersonSchedule) -> PersonSchedule:
    """Join one person's answers for consecutive windows: a problem anywhere wins."""
    if before is None:
        return more
    if before.problem is not None:
        return before
    if more.problem is not None:
        return more
    return PersonSchedule(email=before.email, intervals=[*before.intervals, *more.intervals])

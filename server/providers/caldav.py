"""iCloud and any other CalDAV server, through python-caldav's async client.

Connecting takes a user name and an app-specific password (iCloud requires one for
accounts with two-factor authentication; the user creates it at account.apple.com).

Busy time is computed client-side: a time-range ``calendar-query`` per calendar returns
the events, and ``ical_busy`` expands them in the user's zone. Server free-busy reports
are not trusted (Radicale shifts recurring events after a DST change, iCloud answers
400, Xandikos returns nothing).

Tandem's meetings are written as plain stored objects (``PUT``, no iTIP METHOD). Tandem
assumes no RFC 6638 scheduling: a CalDAV server does not send invitations for it, so
Tandem's own mailer sends them whatever ``send_invitations`` says, and attendees carry
``SCHEDULE-AGENT=CLIENT`` so that a server which does schedule (iCloud) stays quiet.

iCloud serves each account from a partition host (``pNN-caldav.icloud.com``): the
principal is found on ``caldav.icloud.com``, its ``calendar-home-set`` names the
partition host, and listings there may still carry hrefs on ``caldav.icloud.com``
(python caldav 3.x ``compatibility_hints.py``, iCloud notes; its ``URL.relocate`` keeps
the old host as an alias for the same reason). Tandem does the same: hrefs on the host
the principal was found on are moved onto the calendar home's host, and redirects are
followed by hand (each hop re-checked by the SSRF guard, credentials re-sent only to a
checked host). For an iCloud account every host must be under ``icloud.com``. Apple
does not document any of this; it is what clients observe.

The user's own addresses (``calendar-user-address-set``, ``mailto:`` entries, plus the
account name when it is an email) decide two things: events they declined do not count
as busy, and the ORGANIZER of Tandem's meetings is one of them rather than whatever
address the caller passed.

Every network failure becomes one of the typed errors from ``base``; their messages
never contain the password, and no event content is logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, NoReturn, cast
from urllib.parse import quote, unquote, urljoin, urlsplit
from xml.sax.saxutils import escape

import httpx
import niquests
from caldav.async_davclient import AsyncDAVClient
from caldav.collection import Calendar
from caldav.lib import error as caldav_error

from server.config import Settings
from server.providers.base import (
    AuthExpired,
    BusyFetch,
    ChangeBatch,
    ConnectedAccount,
    Credentials,
    EventChange,
    ExternalEvent,
    InvalidCredentials,
    ProviderError,
    ProviderName,
    ProviderUnavailable,
    RateLimited,
    SyncTokenExpired,
)
from server.providers.caldav_guard import (
    CalDAVURLRejected,
    check_server_url,
    install_address_hooks,
)
from server.providers.caldav_ics import event_change, event_to_ics, uid_of
from server.providers.ical_busy import busy_from_icalendar, normalize_address

__all__ = ["CalDAVProvider", "CalDAVURLRejected", "NoEventCalendars"]

TANDEM_UID_SUFFIX = "@tandem"

# The server's time-range filter sees all-day and floating events in UTC (or its own
# zone); pad the query so events on the user's days are returned, then clip locally.
_QUERY_PAD = timedelta(days=1)

_CALDAV = "urn:ietf:params:xml:ns:caldav"
_CALENDAR_TYPE = f"{{{_CALDAV}}}calendar"
_COMPONENTS = f"{{{_CALDAV}}}supported-calendar-component-set"
_HOME_SET = f"{{{_CALDAV}}}calendar-home-set"
_ADDRESS_SET = f"{{{_CALDAV}}}calendar-user-address-set"
_CURRENT_PRINCIPAL = "{DAV:}current-user-principal"
# Change detection: Apple's CalendarServer ctag (iCloud, Radicale, most servers) and
# RFC 6578's sync-token; either changes whenever anything in the collection does.
# https://github.com/apple/ccs-calendarserver/blob/master/doc/Extensions/caldav-ctag.txt
# https://www.rfc-editor.org/rfc/rfc6578#section-4
_CTAG = "{http://calendarserver.org/ns/}getctag"
_SYNC_TOKEN = "{DAV:}sync-token"  # noqa: S105 - a property name
_MAX_REDIRECTS = 3
_ICLOUD_DOMAIN = "icloud.com"
_PRIVILEGES = "{DAV:}current-user-privilege-set"
_WRITE_PRIVILEGES = {"{DAV:}write", "{DAV:}write-content", "{DAV:}all"}
_LIST_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    f'<D:propfind xmlns:D="DAV:" xmlns:C="{_CALDAV}"><D:prop>'
    "<D:resourcetype/><C:supported-calendar-component-set/><D:current-user-privilege-set/>"
    "</D:prop></D:propfind>"
)
_NETWORK_ERRORS = (niquests.exceptions.RequestException, httpx.HTTPError, OSError, TimeoutError)
_LOGIN_REFUSED = (
    "Apple ID or app-specific password was not accepted by the calendar server. "
    "Check the user name and create a new app-specific password if needed."
)


class NoEventCalendars(InvalidCredentials):
    """The account signed in but has no calendar that holds events (only to-do lists)."""


@dataclass(frozen=True, slots=True)
class _CalendarInfo:
    url: str
    writable: bool


@dataclass(frozen=True, slots=True)
class _Discovery:
    """What the principal says about the account: its event calendars and addresses."""

    calendars: list[_CalendarInfo]
    addresses: list[str]  # bare email addresses from calendar-user-address-set


class CalDAVProvider:
    """``PasswordProvider`` for iCloud and other CalDAV servers."""

    name = ProviderName.ICLOUD

    def __init__(self, settings: Settings) -> None:
        self._allow_private = settings.caldav_allow_private_hosts
        self._default_url = settings.caldav_default_url
        self._timeout = settings.provider_timeout_seconds

    # -- connect ---------------------------------------------------------------------

    async def connect_with_password(
        self, username: str, password: str, server_url: str
    ) -> ConnectedAccount:
        """Sign in, find the principal and its event calendars, return what to store.

        Raises ``InvalidCredentials`` for a refused login, ``CalDAVURLRejected`` for a
        URL that is not allowed, ``NoEventCalendars`` when there is nothing to read, and
        ``ProviderUnavailable`` when the server cannot be reached.
        """
        url = await self._check(server_url or self._default_url)
        async with self._session(url, username, password, on_401=InvalidCredentials) as client:
            principal_url = await self._principal_url(client, url)
            found = await self._discover(client, url, principal_url)
        calendars = found.calendars
        if not calendars:
            raise NoEventCalendars("This account has no calendar that can hold events.")
        secret = {
            "username": username,
            "password": password,
            "server_url": url,
            "principal_url": principal_url,
            "calendar_urls": [calendar.url for calendar in calendars],
            "write_calendar_url": _write_calendar(calendars),
            "user_addresses": found.addresses,
        }
        return ConnectedAccount(
            credentials=Credentials(ProviderName.ICLOUD, secret),
            account_email=username,
            label="iCal",
        )

    # -- busy ------------------------------------------------------------------------

    async def fetch_busy(
        self, credentials: Credentials, start: datetime, end: datetime, time_zone: str
    ) -> BusyFetch:
        """Busy intervals over ``[start, end)`` from every event calendar of the account.

        The calendar list is re-read each time (new calendars count, to-do lists never
        do); a changed list is written back through ``credentials.replace_secret``. A
        calendar that fails to read makes the result ``readable=False``; a 401 means the
        app-specific password was revoked (``AuthExpired``).
        """
        secret = credentials.secret
        documents: list[str] = []
        async with self._account_session(secret) as client:
            found = await self._discover(client, secret["server_url"], secret["principal_url"])
            calendars = found.calendars
            self._remember_calendars(credentials, found)
            readable = bool(calendars)  # no calendar to read: unknown, never "free"
            for calendar in calendars:
                texts = await self._query_events(client, calendar.url, start, end)
                if texts is None:
                    readable = False
                else:
                    documents.extend(texts)
        own = own_addresses(credentials.secret)
        intervals = busy_from_icalendar(documents, start, end, time_zone, own)
        return BusyFetch(intervals=intervals, readable=readable)

    async def change_tag(self, credentials: Credentials) -> str | None:
        """One Depth-0 PROPFIND per known calendar for its ctag / sync-token, digested.

        Calendars added to the account since the last full read are not seen here (the
        list is re-read by ``fetch_busy``, which the periodic full read still runs). A
        calendar without either property makes the answer None: no cheap check there."""
        secret = credentials.secret
        urls = list(secret.get("calendar_urls") or [])
        if not urls:
            return None
        parts: list[str] = []
        async with self._account_session(secret) as client:
            for url in urls:
                _answered, response = await self._propfind(
                    client, url, secret["server_url"], props=[_CTAG, _SYNC_TOKEN], depth=0
                )
                found = [_properties(result) for result in response.results or []]
                tag = next(
                    (
                        str(value)
                        for properties in found
                        for name in (_CTAG, _SYNC_TOKEN)
                        if (value := properties.get(name))
                    ),
                    None,
                )
                if tag is None:
                    return None
                parts.append(f"{url}\n{tag}")
        return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()

    # -- Tandem's own events ---------------------------------------------------------

    async def create_event(
        self, credentials: Credentials, event: ExternalEvent, *, send_invitations: bool
    ) -> str:
        """PUT the meeting into the account's first writable calendar; returns its URL.

        Re-running with the same UID overwrites the same object, so a retried create
        does not duplicate the meeting. ``send_invitations`` is ignored (see module).
        """
        url = _object_url(credentials.secret["write_calendar_url"], f"{event.uid}.ics")
        await self._put(credentials, url, event)
        return url

    async def update_event(
        self,
        credentials: Credentials,
        provider_event_id: str,
        event: ExternalEvent,
        *,
        send_invitations: bool,
    ) -> None:
        await self._put(credentials, self._own_object(credentials, provider_event_id), event)

    async def delete_event(
        self, credentials: Credentials, provider_event_id: str, *, send_invitations: bool
    ) -> None:
        """Delete the object; one that is already gone is fine."""
        url = self._own_object(credentials, provider_event_id)
        async with self._account_session(credentials.secret) as client:
            response = await client.delete(url)
        if response.status not in (200, 204, 404, 410):
            _refused("delete", response.status)

    async def read_changes(
        self,
        credentials: Credentials,
        sync_token: str | None,
        start: datetime,
        end: datetime,
        *,
        uid_suffix: str = TANDEM_UID_SUFFIX,
    ) -> ChangeBatch:
        """Changes to Tandem's own meetings since ``sync_token`` (RFC 6578 sync-collection).

        Only objects whose UID ends with ``uid_suffix`` are reported; other events are
        never loaded. Without a token this is a full listing of Tandem's meetings that
        overlap ``[start, end)``; with one, every change is reported (a meeting moved out
        of the window is still news). An invalid or expired token (Radicale 403,
        Xandikos 412) raises ``SyncTokenExpired``: call again without a token.
        """
        calendar_url = credentials.secret["write_calendar_url"]
        async with self._account_session(credentials.secret, at=calendar_url) as client:
            collection = await self._sync_collection(client, calendar_url, sync_token)
            deleted = {_object_name(str(url)) for url in collection.deleted_urls}
            changed = {
                name
                for obj in collection
                if (name := _object_name(str(obj.url))) not in deleted
                and _is_tandem_name(name, uid_suffix)
            }
            texts = await self._multiget(client, calendar_url, sorted(changed))
        changes = [
            EventChange(provider_event_id=_object_url(calendar_url, name), deleted=True)
            for name in sorted(deleted)
            if _is_tandem_name(name, uid_suffix)
        ]
        for name in sorted(changed):
            change = _tandem_change(calendar_url, name, texts.get(name), uid_suffix)
            if sync_token is None and not _overlaps(change, start, end):
                continue
            changes.append(change)
        return ChangeBatch(changes=changes, sync_token=collection.sync_token)

    async def revoke(self, credentials: Credentials) -> None:
        """No-op: app-specific passwords cannot be revoked through CalDAV.

        The UI tells the user to revoke it at account.apple.com (Sign-In and Security ->
        App-Specific Passwords); Tandem deletes its stored copy.
        """

    # -- sessions and errors ---------------------------------------------------------

    async def _check(self, url: str, server_url: str | None = None) -> str:
        """The SSRF guard, and for an iCloud account: only hosts under icloud.com."""
        checked = await check_server_url(url, allow_private=self._allow_private)
        if server_url is not None and is_icloud(server_url) and not is_icloud(checked):
            raise CalDAVURLRejected("iCloud pointed Tandem at a host outside icloud.com.")
        return checked

    @asynccontextmanager
    async def _account_session(
        self, secret: dict[str, Any], *, at: str | None = None
    ) -> AsyncIterator[AsyncDAVClient]:
        """A session for stored credentials: every host they name is re-checked. ``at``
        roots the client on another of the account's hosts (caldav's collections only join
        URLs on the client's own host; iCloud calendars live on a partition host)."""
        server_url = secret["server_url"]
        for url in _distinct_origins([server_url, *secret.get("calendar_urls", [])]):
            await self._check(url, server_url)
        root = _host(at) + "/" if at is not None else server_url
        async with self._session(
            root, secret["username"], secret["password"], on_401=AuthExpired
        ) as client:
            yield client

    @asynccontextmanager
    async def _session(
        self, url: str, username: str, password: str, *, on_401: type[ProviderError]
    ) -> AsyncIterator[AsyncDAVClient]:
        """An async caldav client with a deadline, translating every failure."""
        client = AsyncDAVClient(
            url=url,
            username=username,
            password=password,
            timeout=math.ceil(self._timeout),
            enable_rfc6764=False,
            rate_limit_handle=False,
        )
        if not self._allow_private:
            install_address_hooks(client.session)
        # niquests does not run pre_send hooks on redirect hops (a public server could
        # bounce a request to a private address) and drops the credentials on a hop to
        # another host: it follows none, discovery follows them itself (_propfind).
        client.session.max_redirects = 0
        try:
            async with asyncio.timeout(self._timeout * 4):
                yield client
        except ProviderError:
            raise
        except caldav_error.AuthorizationError as exc:
            if exc.status == 401 or on_401 is InvalidCredentials:
                message = _LOGIN_REFUSED if on_401 is InvalidCredentials else _REVOKED
                raise on_401(message) from None
            raise ProviderUnavailable(
                f"The calendar server refused access (HTTP {exc.status})."
            ) from None
        except niquests.exceptions.TooManyRedirects:
            raise ProviderUnavailable(
                "The calendar server redirected Tandem elsewhere; use the final server URL."
            ) from None
        except caldav_error.RateLimitError as exc:
            raise RateLimited(
                "The calendar server asked us to slow down.", exc.retry_after_seconds
            ) from None
        except (caldav_error.DAVError, *_NETWORK_ERRORS) as exc:
            raise ProviderUnavailable(
                f"The calendar server could not be reached ({type(exc).__name__})."
            ) from None
        finally:
            await client.close()

    # -- discovery -------------------------------------------------------------------

    async def _principal_url(self, client: AsyncDAVClient, server_url: str) -> str:
        """RFC 5397 ``current-user-principal`` of the server URL (redirects followed)."""
        answered, response = await self._propfind(
            client, server_url, server_url, props=[_CURRENT_PRINCIPAL], depth=0
        )
        href = next(
            (
                str(value)
                for properties in map(_properties, response.results or [])
                if (value := properties.get(_CURRENT_PRINCIPAL))
            ),
            None,
        )
        if href is None:  # servers without RFC 5397: the URL itself is the principal
            return await self._check(answered, server_url)
        return await self._check(urljoin(answered, href), server_url)

    async def _discover(
        self, client: AsyncDAVClient, server_url: str, principal_url: str
    ) -> _Discovery:
        """Calendars under the principal's calendar homes that accept VEVENTs, and the
        principal's own ``mailto:`` addresses."""
        answered, response = await self._propfind(
            client, principal_url, server_url, props=[_HOME_SET, _ADDRESS_SET], depth=0
        )
        found = [_properties(result) for result in response.results or []]
        homes = [
            urljoin(answered, str(properties[_HOME_SET]))
            for properties in found
            if properties.get(_HOME_SET)
        ] or [answered]
        addresses = _mailto_addresses(properties.get(_ADDRESS_SET) for properties in found)
        calendars: list[_CalendarInfo] = []
        for home in homes:
            home = await self._check(home, server_url)
            # iCloud: the home is on the partition host, but its listing may still name
            # the host the principal was found on; those hrefs mean the partition host.
            aliases = {_host(server_url), _host(principal_url), _host(answered)} - {_host(home)}
            listed_at, listing = await self._propfind(
                client, home, server_url, body=_LIST_BODY, depth=1
            )
            if listing.status not in (200, 207):
                continue
            for result in listing.results or []:
                info = _calendar_info(listed_at, _properties(result), result.href, aliases)
                if info is not None:
                    await self._check(info.url, server_url)
                    calendars.append(info)
        return _Discovery(calendars=calendars, addresses=addresses)

    async def _propfind(
        self, client: AsyncDAVClient, url: str, server_url: str, **kwargs: Any
    ) -> tuple[str, Any]:
        """A PROPFIND that follows up to three redirects, each target re-checked by the
        guard (and kept under icloud.com for iCloud). Returns the URL that answered."""
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                return url, await client.propfind(url, **kwargs)
            except niquests.exceptions.TooManyRedirects as exc:
                url = await self._redirect_target(exc, url, server_url)
        raise ProviderUnavailable("The calendar server redirected Tandem too many times.")

    async def _redirect_target(self, exc: Exception, url: str, server_url: str) -> str:
        response = getattr(exc, "response", None)
        location = getattr(response, "headers", {}).get("Location") if response else None
        if not location:
            raise ProviderUnavailable("The calendar server redirected Tandem nowhere.")
        target = urljoin(url, str(location))
        if urlsplit(url).scheme == "https" and urlsplit(target).scheme != "https":
            raise CalDAVURLRejected("The calendar server redirected Tandem to plain http.")
        return await self._check(target, server_url)

    def _remember_calendars(self, credentials: Credentials, found: _Discovery) -> None:
        calendars = found.calendars
        urls = [calendar.url for calendar in calendars]
        secret = dict(credentials.secret)
        if urls and urls != secret.get("calendar_urls"):
            secret["calendar_urls"] = urls
            if secret.get("write_calendar_url") not in urls:
                secret["write_calendar_url"] = _write_calendar(calendars)
        if found.addresses and found.addresses != secret.get("user_addresses"):
            secret["user_addresses"] = found.addresses
        if secret != credentials.secret:
            credentials.replace_secret(secret)

    # -- reading ---------------------------------------------------------------------

    async def _query_events(
        self, client: AsyncDAVClient, calendar_url: str, start: datetime, end: datetime
    ) -> list[str] | None:
        """The iCalendar texts of events overlapping the padded window; None if unreadable."""
        try:
            response = await client.calendar_query(
                url=calendar_url, start=start - _QUERY_PAD, end=end + _QUERY_PAD, event=True
            )
        except caldav_error.AuthorizationError as exc:
            if exc.status == 401:
                raise
            return None
        except caldav_error.RateLimitError:
            raise
        except caldav_error.DAVError:
            return None
        if response.status not in (200, 207):
            return None
        return [text for result in response.results or [] if (text := _calendar_data(result))]

    async def _sync_collection(
        self, client: AsyncDAVClient, calendar_url: str, sync_token: str | None
    ) -> Any:
        # caldav's objects are dual-mode; its annotations only name the sync client.
        calendar: Any = Calendar(client=cast(Any, client), url=calendar_url)
        try:
            return await calendar.get_objects_by_sync_token(
                sync_token=sync_token, load_objects=False, disable_fallback=True
            )
        except caldav_error.DAVError as exc:
            if exc.status == 401 or isinstance(exc, caldav_error.RateLimitError):
                raise
            if sync_token is not None and (
                exc.status in (403, 409, 412) or "{DAV:}valid-sync-token" in exc.preconditions
            ):
                raise SyncTokenExpired("The calendar sync token is no longer valid.") from None
            raise

    async def _multiget(
        self, client: AsyncDAVClient, calendar_url: str, names: list[str]
    ) -> dict[str, str]:
        """Object texts by name in one calendar-multiget REPORT.

        The body is built here: caldav 3.6's async ``calendar_multiget`` writes the hrefs
        as attributes (``<D:href name=...>``), which Radicale answers with a 500.
        """
        if not names:
            return {}
        hrefs = "".join(
            f"<D:href>{escape(urlsplit(_object_url(calendar_url, name)).path)}</D:href>"
            for name in names
        )
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<C:calendar-multiget xmlns:D="DAV:" xmlns:C="{_CALDAV}">'
            f"<D:prop><D:getetag/><C:calendar-data/></D:prop>{hrefs}</C:calendar-multiget>"
        )
        response = await client.report(calendar_url, body, depth=None)
        if response.status not in (200, 207):
            _refused("read", response.status)
        return {
            _object_name(result.href): text
            for result in response.parse_calendar_query()
            if (text := _calendar_data(result))
        }

    # -- writing ---------------------------------------------------------------------

    async def _put(self, credentials: Credentials, url: str, event: ExternalEvent) -> None:
        organizer = organizer_address(credentials.secret, event.organizer_email)
        body = event_to_ics(replace(event, organizer_email=organizer))
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        async with self._account_session(credentials.secret) as client:
            response = await client.put(url, body, headers)
        if response.status not in (200, 201, 204):
            _refused("save", response.status)

    def _own_object(self, credentials: Credentials, provider_event_id: str) -> str:
        """Only touch objects inside the account's own calendars."""
        calendars = [credentials.secret["write_calendar_url"], *credentials.secret["calendar_urls"]]
        if not any(provider_event_id.startswith(url) for url in calendars):
            raise ProviderError("The event does not belong to this CalDAV account.")
        return provider_event_id


_REVOKED = (
    "The calendar server no longer accepts the app-specific password; reconnect the calendar."
)


def _refused(action: str, status: int) -> NoReturn:
    if status >= 500:
        raise ProviderUnavailable(
            f"The calendar server failed to {action} the event (HTTP {status})."
        )
    raise ProviderError(f"The calendar server refused to {action} the event (HTTP {status}).")


def _properties(result: object) -> dict[str, Any]:
    properties = getattr(result, "properties", None)
    return properties if isinstance(properties, dict) else {}


def _calendar_data(result: object) -> str | None:
    text = getattr(result, "calendar_data", None)
    return text if isinstance(text, str) and text else None


def is_icloud(url: str) -> bool:
    """Whether ``url`` is on Apple's iCloud (``icloud.com`` or a host under it)."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    return host == _ICLOUD_DOMAIN or host.endswith("." + _ICLOUD_DOMAIN)


def own_addresses(secret: dict[str, Any]) -> list[str]:
    """The account's own calendar addresses: the principal's and the account name."""
    addresses = list(secret.get("user_addresses") or [])
    username = normalize_address(secret.get("username", ""))
    if "@" in username and username not in addresses:
        addresses.append(username)
    return addresses


def organizer_address(secret: dict[str, Any], preferred: str) -> str:
    """The ORGANIZER for Tandem's meetings: ``preferred`` (the connection's account
    email) when the server lists it among the account's addresses, else the first
    address the server lists; ``preferred`` when it lists none."""
    addresses = [str(address) for address in secret.get("user_addresses") or []]
    if not addresses or normalize_address(preferred) in addresses:
        return preferred
    return addresses[0]


def _mailto_addresses(values: Iterable[object]) -> list[str]:
    found: list[str] = []
    for value in values:
        hrefs = value if isinstance(value, list) else [] if value is None else [value]
        for href in hrefs:
            text = str(href).strip()
            address = normalize_address(text) if text[:7].lower() == "mailto:" else ""
            if address and address not in found:
                found.append(address)
    return found


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _calendar_info(
    home: str, properties: dict[str, Any], href: str, aliases: Iterable[str] = ()
) -> _CalendarInfo | None:
    if _CALENDAR_TYPE not in (properties.get("{DAV:}resourcetype") or []):
        return None
    components = properties.get(_COMPONENTS)
    if components and "VEVENT" not in components:  # absent means "all components"
        return None
    privileges = properties.get(_PRIVILEGES)
    writable = privileges is None or bool(_WRITE_PRIVILEGES & set(privileges))
    url = urljoin(home, href)
    if _host(url) in set(aliases):  # an href on an alias host: the home's host serves it
        parts = urlsplit(url)
        url = _host(home) + parts.path + (f"?{parts.query}" if parts.query else "")
    return _CalendarInfo(url=url if url.endswith("/") else f"{url}/", writable=writable)


def _write_calendar(calendars: list[_CalendarInfo]) -> str:
    return next((c.url for c in calendars if c.writable), calendars[0].url)


def _distinct_origins(urls: Iterable[str]) -> list[str]:
    origins: dict[str, str] = {}
    for url in urls:
        parts = urlsplit(url)
        origins.setdefault(f"{parts.scheme}://{parts.netloc}", url)
    return list(origins.values())


def _object_name(url: str) -> str:
    return unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])


def _object_url(calendar_url: str, name: str) -> str:
    base = calendar_url if calendar_url.endswith("/") else f"{calendar_url}/"
    return base + quote(name, safe="")


def _is_tandem_name(name: str, uid_suffix: str) -> bool:
    return name.endswith(f"{uid_suffix}.ics")


def _tandem_change(calendar_url: str, name: str, text: str | None, uid_suffix: str) -> EventChange:
    """The change for one Tandem object; gone or no longer Tandem's -> deleted."""
    url = _object_url(calendar_url, name)
    uid = uid_of(text) if text else None
    change = event_change(url, text) if text and uid and uid.endswith(uid_suffix) else None
    return change or EventChange(provider_event_id=url, deleted=True)


def _overlaps(change: EventChange, start: datetime, end: datetime) -> bool:
    if change.deleted or change.start is None or change.end is None:
        return True
    return change.start < end and change.end > start

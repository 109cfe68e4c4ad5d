"""Server-side request forgery guard for user-supplied CalDAV server URLs.

A user types the CalDAV server URL, so without a guard Tandem could be made to probe
its own network (cloud metadata at 169.254.169.254, admin ports on loopback, private
ranges). Three layers:

1. ``check_server_url`` refuses non-http(s) schemes, user info in the URL, plain http,
   and host names that resolve to a non-public address. It also runs on every URL the
   server hands back (principal, calendar home, calendars), which may name other hosts.
2. ``install_address_hooks`` re-checks the address each HTTP connection actually
   reached (niquests exposes it before the request is sent), which defeats DNS
   rebinding between the check and the request; redirected hops are checked when their
   response arrives and then discarded.
3. Settings: ``caldav_allow_private_hosts`` turns all of this off for tests and the
   demo, which talk to a Radicale on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from server.providers.base import InvalidCredentials, ProviderUnavailable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CalDAVURLRejected(InvalidCredentials):
    """The CalDAV server URL is malformed or points at a private network.

    A subclass of ``InvalidCredentials`` because the URL is part of what the user typed
    to connect, and the message is meant for them.
    """


def is_forbidden_address(address: IPAddress) -> bool:
    """True for loopback, private, link-local (cloud metadata), multicast and reserved."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


async def check_server_url(url: str, *, allow_private: bool) -> str:
    """Validate a CalDAV URL and return it; raises ``CalDAVURLRejected``.

    A host name that does not resolve raises ``ProviderUnavailable``: during a periodic
    fetch that is a passing DNS problem, not a reason to ask the user to reconnect.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise CalDAVURLRejected("The CalDAV server URL must start with https://.")
    if not parts.hostname:
        raise CalDAVURLRejected("The CalDAV server URL has no host name.")
    if parts.username is not None or parts.password is not None:
        raise CalDAVURLRejected("Put the user name and password in their own fields, not the URL.")
    if allow_private:
        return parts.geturl()
    if parts.scheme != "https":
        raise CalDAVURLRejected("The CalDAV server URL must use https://.")
    try:
        port = parts.port or 443
    except ValueError as exc:
        raise CalDAVURLRejected("The CalDAV server URL has an invalid port.") from exc
    for address in await _resolve(parts.hostname, port):
        if is_forbidden_address(address):
            raise CalDAVURLRejected(
                "The CalDAV server URL points at a private or local network address."
            )
    return parts.geturl()


def install_address_hooks(session: Any) -> None:
    """Refuse connections that land on a forbidden address (niquests sessions only)."""
    hooks = getattr(session, "hooks", None)
    if not isinstance(hooks, dict) or "pre_send" not in hooks:
        return

    def check(message: Any, **_: Any) -> Any:
        info = getattr(message, "conn_info", None)
        destination = getattr(info, "destination_address", None)
        if destination:
            address = ipaddress.ip_address(destination[0])
            if is_forbidden_address(address):
                raise CalDAVURLRejected(
                    "The CalDAV server URL points at a private or local network address."
                )
        return message

    hooks["pre_send"].append(check)
    hooks["response"].append(check)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ProviderUnavailable("The CalDAV server's host name could not be found.") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]

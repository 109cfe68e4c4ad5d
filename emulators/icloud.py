"""iCloud's CalDAV host layout in front of a real Radicale, for tests (no internet).

What is modelled, and where it comes from:

- **Partition hosts.** iCloud answers the principal on ``caldav.icloud.com`` but keeps
  the account's calendar home on a per-account partition host
  (``pNN-caldav.icloud.com``), and listings there "may still return hrefs on
  caldav.icloud.com" (python caldav 3.x ``compatibility_hints.py``, iCloud section, and
  its ``base_client._follow_calendar_home``; python-caldav issues #3 and #730). Here the
  *entry* host plays ``caldav.icloud.com`` and the *partition* host plays
  ``pNN-caldav.icloud.com``: the principal's ``calendar-home-set`` names the partition
  host, and the home listing's calendar hrefs name the entry host.
- **Redirects.** Account paths asked on the entry host are redirected (301) to the
  partition host, the way a load-balanced front end does. Apple does not document
  whether iCloud redirects or serves both hosts; redirecting is the stricter choice
  (a client that does not follow hops across hosts fails here).
- **An undocumented sync-token error.** ``fail_sync_with_token(status)`` answers
  sync-collection REPORTs that carry a token with ``status`` (e.g. 400 or 500). RFC 6578
  §3.2 asks for 403/409 with ``DAV:valid-sync-token``; what iCloud sends for a bad token
  is not documented, so clients must not rely on those codes.

The two hosts are two loopback addresses (127.0.0.1 and 127.0.0.2) on their own ports,
so Tandem's CalDAV code sees two different origins without any DNS override; tests run
it with ``caldav_allow_private_hosts`` on.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

import httpx
from starlette.types import Receive, Scope, Send

from emulators.runner import BackgroundServer

__all__ = ["ICloudHosts", "start_icloud_hosts"]

_HOME_SET = re.compile(
    rb"(<(?:[A-Za-z0-9]+:)?calendar-home-set[^>]*>\s*<(?:[A-Za-z0-9]+:)?href>)(/[^<]*)"
)
_HREF = re.compile(rb"(<(?:[A-Za-z0-9]+:)?href>)(/[^<]*/)(</)")
_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


@dataclass
class _State:
    radicale_url: str
    entry_url: str = ""
    partition_url: str = ""
    sync_fault: int | None = None
    sync_requests: int = 0
    redirects: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Proxy:
    def __init__(self, state: _State, *, partition: bool) -> None:
        self.state = state
        self.partition = partition

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        query = scope.get("query_string", b"").decode()
        method = scope["method"]
        headers = {
            k.decode(): v.decode() for k, v in scope["headers"] if k.decode() not in _HOP_HEADERS
        }
        if not self.partition and path not in ("/", ""):
            with self.state.lock:
                self.state.redirects += 1
            target = self.state.partition_url + path + (f"?{query}" if query else "")
            await _answer(send, 301, [(b"location", target.encode())], b"")
            return
        if method == "REPORT" and b"sync-collection" in body:
            with self.state.lock:
                self.state.sync_requests += 1
                fault = self.state.sync_fault
            if fault is not None and re.search(rb"<(?:\w+:)?sync-token>\s*[^<\s]", body):
                await _answer(send, fault, [(b"content-type", b"text/plain")], b"error")
                return
        url = self.state.radicale_url + path + (f"?{query}" if query else "")
        async with httpx.AsyncClient(timeout=10) as client:
            upstream = await client.request(method, url, headers=headers, content=body)
        content = upstream.content
        if method == "PROPFIND":
            content = self._rewrite(content, headers.get("depth", headers.get("Depth", "0")))
        out = [
            (k.encode(), v.encode())
            for k, v in upstream.headers.items()
            if k.lower() not in _HOP_HEADERS and k.lower() != "content-encoding"
        ]
        await _answer(send, upstream.status_code, out, content)

    def _rewrite(self, content: bytes, depth: str) -> bytes:
        partition = self.state.partition_url.encode()
        entry = self.state.entry_url.encode()
        content = _HOME_SET.sub(lambda m: m.group(1) + partition + m.group(2), content)
        if self.partition and depth == "1":
            # The home listing names its calendars on the entry host.
            content = _HREF.sub(lambda m: m.group(1) + entry + m.group(2) + m.group(3), content)
        return content


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass
class ICloudHosts:
    """The two running hosts; ``entry_url`` is what a user types as the server URL."""

    state: _State
    servers: tuple[BackgroundServer, BackgroundServer]

    @property
    def entry_url(self) -> str:
        return self.state.entry_url

    @property
    def partition_url(self) -> str:
        return self.state.partition_url

    @property
    def redirects(self) -> int:
        return self.state.redirects

    def fail_sync_with_token(self, status: int | None) -> None:
        """Answer sync-collection REPORTs carrying a token with ``status`` (None: stop)."""
        with self.state.lock:
            self.state.sync_fault = status

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def start_icloud_hosts(radicale_url: str) -> ICloudHosts:
    """Serve ``radicale_url`` as an entry host (127.0.0.1) and a partition host (127.0.0.2)."""
    state = _State(radicale_url=radicale_url.rstrip("/"))
    entry = BackgroundServer(_Proxy(state, partition=False), host="127.0.0.1").start()
    partition = BackgroundServer(_Proxy(state, partition=True), host="127.0.0.2").start()
    state.entry_url, state.partition_url = entry.url, partition.url
    return ICloudHosts(state, (entry, partition))

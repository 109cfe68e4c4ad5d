"""uvicorn settings for ``tandem serve``: bounded headers, header and keep-alive timeouts.

uvicorn's h11 protocol closes idle keep-alive connections, but it starts no timer while the
first request's headers arrive, and every byte cancels the keep-alive timer: a client
sending one header byte every few seconds holds the connection forever. The protocol
below closes a connection whose request line and headers are not complete within
``header_timeout`` of the connection opening (or of the previous response).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any
from urllib.parse import urlsplit

from uvicorn.protocols.http.h11_impl import H11Protocol

from server.config import Settings


class BoundedH11Protocol(H11Protocol):
    header_timeout: float = 10.0
    max_header_bytes: int = 16 * 1024

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._waiting_after: object = None
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._waiting_after = self.cycle  # headers are complete once a new cycle starts
        self._head_bytes = 0
        self._tail = b""
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def data_received(self, data: bytes) -> None:
        if self._header_timer is not None and self._head_too_large(data):
            self._refuse_head()
            return
        super().data_received(data)
        if self._header_timer is not None and self.cycle is not self._waiting_after:
            self._cancel_header_timer()

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._arm_header_timer()
        super().on_response_complete()  # may start a pipelined request at once
        if self.cycle is not self._waiting_after and not self.cycle.response_complete:
            self._cancel_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _head_too_large(self, data: bytes) -> bool:
        """h11 bounds only an *incomplete* head; a complete one of any size arriving in
        one read would pass. Count the bytes of the head until its blank line."""
        window = self._tail + data
        end = window.find(b"\r\n\r\n")
        if end >= 0:
            size = self._head_bytes + end + 4 - len(self._tail)
        else:
            size = self._head_bytes + len(data)
        self._head_bytes = size
        self._tail = window[-3:]
        return size > self.max_header_bytes

    def _refuse_head(self) -> None:
        self._cancel_header_timer()
        body = b"Request headers too large."
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        self.transport.close()

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def protocol_for(settings: Settings) -> type[BoundedH11Protocol]:
    return type(
        "TandemH11Protocol",
        (BoundedH11Protocol,),
        {
            "header_timeout": settings.http_header_timeout_seconds,
            "max_header_bytes": settings.http_max_header_bytes,
        },
    )


_TOKEN_PATHS = ("/setup/", "/rsvp/")


class _NoQueryStrings(logging.Filter):
    """Access-log lines keep the path but drop the query string: OAuth callbacks carry
    one-time codes there, and a refused ``GET /graphql`` would carry the document. Paths
    that are themselves a credential (account setup and RSVP links) lose their token."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path = urlsplit(args[2]).path or args[2].split("?", 1)[0]
            for prefix in _TOKEN_PATHS:
                if path.startswith(prefix):
                    path = prefix + "[token]"
            record.args = (*args[:2], path, *args[3:])
        return True


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Everything ``tandem serve`` passes to uvicorn besides the app, host and port."""
    logging.getLogger("uvicorn.access").addFilter(_NoQueryStrings())
    return {
        "http": protocol_for(settings),
        "h11_max_incomplete_event_size": settings.http_max_header_bytes,
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "log_level": "info",
    }


def settle_heap() -> None:
    """Move everything built at start-up (modules, the schema, templates, services) out of
    the garbage collector's reach. A large answer allocates tens of thousands of short-lived
    objects; each full collection would otherwise walk the whole start-up heap again
    (measured: a 100-person answer took about 30% longer without this)."""
    gc.collect()
    gc.freeze()

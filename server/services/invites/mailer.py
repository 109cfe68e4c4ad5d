"""Where finished emails go: an SMTP server in production, ``.eml`` files otherwise.

Services depend on the small :class:`Mailer` protocol, so the demo and tests run without
a mail server and production swaps in SMTP through :func:`mailer_from_settings`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import aiosmtplib

from server.config import Settings

_IMPLICIT_TLS_PORT = 465


class MailError(Exception):
    """Delivery failed. ``permanent`` is True when the server refused for good (5xx), so a
    retrying job can stop. The message names the server and the SMTP code, never
    credentials or message content."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` to its To/Cc/Bcc recipients or raise :class:`MailError`."""
        ...


class SmtpMailer:
    """Sends through the configured SMTP server, one connection per message.

    STARTTLS is used whenever ``smtp_starttls`` is on and the server offers it; port 465
    means TLS from the first byte. Credentials are only ever sent over an encrypted
    connection: a server that offers no TLS gets a :class:`MailError` instead of a password.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if not settings.smtp_host:
            raise ValueError("smtp_host is not configured")
        self._host = settings.smtp_host
        self._port = settings.smtp_port
        self._starttls = settings.smtp_starttls
        self._username = settings.smtp_username
        self._password = settings.smtp_password
        self._timeout = timeout
        self._tls_context = tls_context

    def __repr__(self) -> str:
        return f"SmtpMailer(host={self._host!r}, port={self._port})"

    async def send(self, message: EmailMessage) -> None:
        implicit_tls = self._port == _IMPLICIT_TLS_PORT
        client = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            timeout=self._timeout,
            use_tls=implicit_tls,
            start_tls=None if self._starttls and not implicit_tls else False,
            tls_context=self._tls_context,
        )
        try:
            async with client:
                if self._username:
                    if client.get_transport_info("sslcontext") is None:
                        raise MailError(
                            f"{self._where}: refusing to log in over an unencrypted connection",
                            permanent=True,
                        )
                    password = self._password.get_secret_value() if self._password else ""
                    await client.login(self._username, password)
                await client.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({refusal.code for refusal in exc.recipients})
            raise MailError(
                f"{self._where}: recipients refused ({', '.join(map(str, codes))})",
                permanent=all(code >= 500 for code in codes),
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise MailError(
                f"{self._where}: server answered {exc.code} ({type(exc).__name__})",
                permanent=exc.code >= 500,
            ) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailError(f"{self._where}: {type(exc).__name__}") from None

    @property
    def _where(self) -> str:
        return f"SMTP {self._host}:{self._port}"


class OutboxMailer:
    """Writes each message as an ``.eml`` file, for development, the demo and tests.

    Names start with a UTC timestamp so ``ls`` shows them in sending order; a random
    suffix keeps two messages in the same microsecond apart. Files appear atomically,
    so a watcher never reads half a message.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __repr__(self) -> str:
        return f"OutboxMailer({str(self.directory)!r})"

    async def send(self, message: EmailMessage) -> None:
        data = message.as_bytes()
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}.eml"
        try:
            await asyncio.to_thread(self._write, name, data)
        except OSError as exc:
            raise MailError(f"outbox {self.directory}: {type(exc).__name__}") from None

    def _write(self, name: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.directory / f".{name}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, self.directory / name)


class MemoryMailer:
    """Keeps sent messages in ``sent``; for service tests that only check what was sent."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        self.sent.append(message)


def mailer_from_settings(settings: Settings) -> Mailer:
    """SMTP when ``smtp_host`` is set, else ``DATA_DIR/outbox/``."""
    if settings.smtp_host:
        return SmtpMailer(settings)
    return OutboxMailer(settings.data_dir / "outbox")

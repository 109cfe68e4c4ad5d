"""Delivery through a real SMTP server (aiosmtpd on loopback) and through the outbox folder."""

from __future__ import annotations

import email
import email.policy
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from pydantic import SecretStr

from emulators.runner import free_port
from server.config import Settings
from server.services.invites import (
    Invitation,
    MailError,
    OutboxMailer,
    Person,
    SmtpMailer,
    invitation_message,
    mailer_from_settings,
)

PASSWORD = "s3cret-smtp-pa55"
ORGANIZER = Person("Olga Organizer", "olga@example.org")
ANN = Person("Ann Attendee", "ann@example.org", "Europe/Paris")
LINKS = {
    "accepted": "https://tandem.example/rsvp/A",
    "tentative": "https://tandem.example/rsvp/T",
    "declined": "https://tandem.example/rsvp/D",
}


def make_invite(title: str = "Weekly sync, part 2") -> Invitation:
    start = datetime(2025, 6, 2, 8, 30, tzinfo=UTC)
    return Invitation(
        uid="abc@tandem.example",
        sequence=0,
        title=title,
        description="Bring questions.",
        location=None,
        start=start,
        end=start + timedelta(hours=1),
        time_zone="Europe/Berlin",
        organizer=ORGANIZER,
        attendees=[ANN],
        meeting_id=uuid.uuid4(),
    )


def make_message(title: str = "Weekly sync, part 2") -> EmailMessage:
    return invitation_message(
        make_invite(title), ANN, LINKS, "request", "Tandem <tandem@example.org>"
    )


@dataclass
class Inbox:
    """The SMTP handler: keeps every accepted envelope and whether it came over TLS with AUTH."""

    envelopes: list[Envelope] = field(default_factory=list)
    secure: list[bool] = field(default_factory=list)
    authenticated: list[bool] = field(default_factory=list)
    refuse_recipients: bool = False

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if self.refuse_recipients:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        self.secure.append(session.ssl is not None)
        self.authenticated.append(bool(session.authenticated))
        return "250 Message accepted for delivery"

    def received(self) -> EmailMessage:
        assert len(self.envelopes) == 1
        content = self.envelopes[0].original_content or self.envelopes[0].content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def check_password(
    server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = (
        isinstance(data, LoginPassword)
        and data.login == b"tandem"
        and data.password == PASSWORD.encode()
    )
    # handled=False makes aiosmtpd answer 535 itself; its default leaves the client waiting.
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def plain_server(inbox: Inbox) -> Iterator[int]:
    """An SMTP server without TLS, like a local relay or Mailpit."""
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(inbox: Inbox, ca: trustme.CA) -> Iterator[int]:
    """An SMTP submission server: STARTTLS required, AUTH required (only over TLS)."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        server_hostname="127.0.0.1",
        tls_context=server_context,
        require_starttls=True,
        auth_required=True,
        authenticator=check_password,
    )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def smtp_settings(port: int, **changes: Any) -> Settings:
    return Settings(smtp_host="127.0.0.1", smtp_port=port, **changes)


async def test_smtp_delivers_a_complete_invitation(plain_server: int, inbox: Inbox) -> None:
    await SmtpMailer(smtp_settings(plain_server), timeout=5).send(make_message())

    assert inbox.envelopes[0].mail_from == "tandem@example.org"
    assert inbox.envelopes[0].rcpt_tos == ["ann@example.org"]
    received = inbox.received()
    assert received["From"] == "Tandem <tandem@example.org>"
    assert received["To"] == "Ann Attendee <ann@example.org>"
    assert str(received["Subject"]).strip() == (
        "Invitation: Weekly sync, part 2 (Mon 02 Jun 2025 10:30 Europe/Paris)"
    )
    text = received.get_body(("plain",))
    html = received.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "Mon 02 Jun 2025, 10:30\u201311:30 (Europe/Paris, UTC+02:00)" in text.get_content()
    assert 'href="https://tandem.example/rsvp/T"' in html.get_content()
    calendar = next(p for p in received.walk() if p.get_content_type() == "text/calendar")
    assert calendar.get_param("method") == "REQUEST"
    ics = calendar.get_payload(decode=True)
    assert b"METHOD:REQUEST" in ics
    assert b"SUMMARY:Weekly sync\\, part 2" in ics
    attachments = list(received.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["invite.ics"]
    assert attachments[0].get_payload(decode=True) == ics


async def test_smtp_html_part_keeps_script_titles_inert(plain_server: int, inbox: Inbox) -> None:
    await SmtpMailer(smtp_settings(plain_server), timeout=5).send(
        make_message("<script>alert(1)</script>")
    )

    html = inbox.received().get_body(("html",))
    assert html is not None
    assert "<script>" not in html.get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html.get_content()


async def test_smtp_uses_starttls_and_logs_in(
    tls_server: int, inbox: Inbox, client_context: ssl.SSLContext
) -> None:
    settings = smtp_settings(tls_server, smtp_username="tandem", smtp_password=SecretStr(PASSWORD))

    await SmtpMailer(settings, timeout=5, tls_context=client_context).send(make_message())

    assert inbox.secure == [True]
    assert inbox.authenticated == [True]
    assert inbox.received()["To"] == "Ann Attendee <ann@example.org>"


async def test_wrong_password_is_a_permanent_error_without_the_password(
    tls_server: int, inbox: Inbox, client_context: ssl.SSLContext
) -> None:
    settings = smtp_settings(
        tls_server, smtp_username="tandem", smtp_password=SecretStr("nope-" + PASSWORD)
    )

    with pytest.raises(MailError) as caught:
        await SmtpMailer(settings, timeout=5, tls_context=client_context).send(make_message())

    assert caught.value.permanent
    assert "535" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(caught.value)
    assert inbox.envelopes == []


async def test_password_is_never_sent_without_tls(plain_server: int, inbox: Inbox) -> None:
    settings = smtp_settings(
        plain_server, smtp_username="tandem", smtp_password=SecretStr(PASSWORD)
    )

    with pytest.raises(MailError, match="unencrypted") as caught:
        await SmtpMailer(settings, timeout=5).send(make_message())

    assert PASSWORD not in str(caught.value)
    assert inbox.envelopes == []


async def test_refused_recipient_is_permanent(plain_server: int, inbox: Inbox) -> None:
    inbox.refuse_recipients = True

    with pytest.raises(MailError) as caught:
        await SmtpMailer(smtp_settings(plain_server), timeout=5).send(make_message())

    assert caught.value.permanent
    assert "550" in str(caught.value)


async def test_unreachable_server_is_a_transient_error() -> None:
    with pytest.raises(MailError) as caught:
        await SmtpMailer(smtp_settings(free_port()), timeout=5).send(make_message())

    assert not caught.value.permanent
    assert "127.0.0.1" in str(caught.value)


def test_repr_shows_no_credentials() -> None:
    settings = smtp_settings(2525, smtp_username="tandem", smtp_password=SecretStr(PASSWORD))

    assert PASSWORD not in repr(SmtpMailer(settings))


async def test_outbox_writes_parseable_sortable_eml_files(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    mailer = OutboxMailer(outbox)

    await mailer.send(make_message("first"))
    await mailer.send(make_message("second"))

    files = sorted(outbox.iterdir())
    assert [f.suffix for f in files] == [".eml", ".eml"]
    subjects = []
    for path in files:
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        subjects.append(str(parsed["Subject"]).strip())
        assert any(p.get_content_type() == "text/calendar" for p in parsed.walk())
    assert subjects[0].startswith("Invitation: first (")
    assert subjects[1].startswith("Invitation: second (")


def test_mailer_from_settings_prefers_smtp_when_configured(tmp_path: Path) -> None:
    assert isinstance(mailer_from_settings(smtp_settings(2525)), SmtpMailer)
    fallback = mailer_from_settings(Settings(smtp_host=None, data_dir=tmp_path))
    assert isinstance(fallback, OutboxMailer)
    assert fallback.directory == tmp_path / "outbox"

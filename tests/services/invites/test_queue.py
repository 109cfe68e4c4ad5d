"""Invitations survive an SMTP outage: queued (encrypted) and delivered by the retry job
once a real SMTP server answers again; a permanent refusal is not retried."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from sqlmodel import select

from emulators.runner import free_port
from server.jobs.runner import retry_mail
from server.models import QueuedMail
from server.models.base import utcnow
from server.services.invites import MailError
from server.services.invites.queue import QueueingMailer
from server.wiring import AppServices, build_services, close_services
from tests.conftest import make_settings


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
async def smtp_down(tmp_path: Path, sqlite_url: str) -> AsyncIterator[tuple[AppServices, int]]:
    port = free_port()  # nothing listens here yet
    services = build_services(
        make_settings(
            tmp_path, sqlite_url, smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False
        )
    )
    yield services, port
    await close_services(services)


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Tandem <tandem@example.org>"
    message["To"] = "mo@example.org"
    message["Subject"] = "Invitation: First chat"
    message.set_content("Please answer: https://tandem.example/rsvp/signed-token")
    return message


async def _queued(services: AppServices) -> list[QueuedMail]:
    async with services.db.session() as db:
        return list((await db.exec(select(QueuedMail))).all())


async def test_outage_queues_then_the_job_delivers(smtp_down: tuple[AppServices, int]) -> None:
    services, port = smtp_down
    assert isinstance(services.mailer, QueueingMailer)
    await services.mailer.send(_message())  # the server is down: kept, not lost
    (row,) = await _queued(services)
    assert row.attempts == 1 and not row.failed
    assert (
        b"signed-token" not in row.encrypted_message and b"First chat" not in row.encrypted_message
    )
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        await retry_mail(services)  # not due yet: nothing sent
        assert inbox.envelopes == []
        async with services.db.session() as db:
            due = (await db.exec(select(QueuedMail))).one()
            due.next_attempt_at = utcnow()
            db.add(due)
            await db.commit()
        await retry_mail(services)
    finally:
        controller.stop()
    assert len(inbox.envelopes) == 1
    received = message_from_bytes(inbox.envelopes[0].content, policy=policy.default)
    assert received["Subject"].strip() == "Invitation: First chat"
    assert "signed-token" in received.get_content()
    assert await _queued(services) == []


async def test_permanent_refusal_is_not_queued(smtp_down: tuple[AppServices, int]) -> None:
    services, _port = smtp_down

    class Refusing:
        async def send(self, message: EmailMessage) -> None:
            raise MailError("550 no such user", permanent=True)

    mailer = QueueingMailer(Refusing(), services.db, services.secrets)
    with pytest.raises(MailError):
        await mailer.send(_message())
    assert await _queued(services) == []

"""Organizers are informed, through a real SMTP server (aiosmtpd): a copy of each
invitation, an email when someone declines (in the app or by an emailed link) or says No
to every slot of a poll; cancel and finalize ask first and carry the organizer's message;
the meeting page offers an .ics and Add to Google / Outlook links."""

from __future__ import annotations

import email
import email.policy
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from icalendar import Calendar
from sqlmodel import select

from emulators.runner import free_port
from server.config import Settings
from server.models import Meeting
from server.models.enums import MeetingStatus
from server.wiring import AppServices
from tests.conftest import login, make_settings, new_client
from tests.meetings_support import World, make_world, weekday_slot
from tests.polls_support import make_circle, make_poll

RSVP_LINK = re.compile(r"http://testserver(/rsvp/[A-Za-z0-9_\-.]+)")


@dataclass
class Inbox:
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpt, m in self.messages if address in rcpt]

    def subjects(self, address: str) -> list[str]:
        return [str(m["Subject"]) for m in self.to(address)]


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, smtp: tuple[Inbox, int]) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp[1],
        smtp_starttls=False,
        mail_from="Tandem <tandem@example.org>",
        organizer_copy=True,
    )


async def _email(services: AppServices, user_id: uuid.UUID) -> str:
    from server.models import User

    async with services.db.session() as db:
        user = await db.get(User, user_id)
        assert user is not None
        return user.email


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")  # type: ignore[attr-defined]


async def _book(client: httpx.AsyncClient, csrf: str, world: World) -> str:
    local = weekday_slot().astimezone(ZoneInfo("Europe/Paris"))
    booked = await client.post(
        f"/connections/{world.connection}/meetings",
        data={
            "title": "Weekly sync",
            "description": "Agenda: goals",
            "location": "",
            "date": local.strftime("%Y-%m-%d"),
            "time": local.strftime("%H:%M"),
            "duration": "30",
            "csrf_token": csrf,
        },
    )
    assert booked.status_code == 303, booked.text
    return booked.headers["location"].split("?")[0].rsplit("/", 1)[1]


async def test_copy_decline_notice_and_confirmed_cancel_with_a_message(
    client: httpx.AsyncClient, app: object, services: AppServices, smtp: tuple[Inbox, int]
) -> None:
    inbox = smtp[0]
    world = await make_world(services)
    mentor, mentee = await _email(services, world.mentor), await _email(services, world.mentee)
    csrf = await login(client, mentor)
    meeting_id = await _book(client, csrf, world)

    # The attendee's invitation, and the organizer's copy without answer links.
    assert inbox.subjects(mentee)[0].startswith("Invitation: Weekly sync")
    (copy,) = inbox.to(mentor)
    assert str(copy["Subject"]).startswith("Copy: Invitation: Weekly sync")
    assert "Your copy of what the other attendees received." in _text(copy)
    assert not RSVP_LINK.search(_text(copy))
    kinds = [part.get_content_type() for part in copy.walk()]
    assert "application/ics" in kinds and "text/calendar" not in kinds

    # The mentee declines by the emailed link: the organizer hears of it once.
    link = RSVP_LINK.findall(_text(inbox.to(mentee)[0]))[2]  # Yes, Maybe, No
    async with await new_client(app) as anonymous:
        page = await anonymous.get(link)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        data = {"csrf_token": token.group(1)} if token else {}
        done = await anonymous.post(link, data=data)
        assert done.status_code == 200, done.text
    notices = [s for s in inbox.subjects(mentor) if "declined" in s]
    assert notices == ["Manu Mentee declined: Weekly sync"]
    notice = next(m for m in inbox.to(mentor) if "declined" in str(m["Subject"]))
    assert "Europe/Paris" in _text(notice) and f"/meetings/{meeting_id}" in _text(notice)

    # Declining again in the app is no news; accepting then declining is.
    async with await new_client(app) as attendee:
        their_csrf = await login(attendee, mentee)
        for answer in ("declined", "accepted", "declined"):
            saved = await attendee.post(
                f"/meetings/{meeting_id}/respond",
                data={"csrf_token": their_csrf, "response": answer},
            )
            assert saved.status_code == 303
    assert [s for s in inbox.subjects(mentor) if "declined" in s] == [
        "Manu Mentee declined: Weekly sync"
    ] * 2

    # Cancel asks first: a page without JavaScript, a dialog for htmx.
    page = await client.get(f"/meetings/{meeting_id}")
    assert f'href="/meetings/{meeting_id}/cancel"' in page.text
    assert f'action="/meetings/{meeting_id}/cancel"' not in page.text  # no one-click cancel
    step = await client.get(f"/meetings/{meeting_id}/cancel")
    assert step.status_code == 200 and "<html" in step.text
    assert "Cancel this meeting?" in step.text and "Keep the meeting" in step.text
    assert f'action="/meetings/{meeting_id}/cancel"' in step.text and 'name="message"' in step.text
    dialog = await client.get(f"/meetings/{meeting_id}/cancel", headers={"HX-Request": "true"})
    assert dialog.text.lstrip().startswith('<dialog id="confirm-dialog"')
    assert '<form method="dialog">' in dialog.text

    too_long = await client.post(
        f"/meetings/{meeting_id}/cancel", data={"csrf_token": csrf, "message": "x" * 1001}
    )
    assert too_long.status_code == 422 and "longer than 1000 characters" in too_long.text
    async with services.db.session() as db:
        row = (await db.exec(select(Meeting).where(Meeting.id == uuid.UUID(meeting_id)))).one()
        assert row.status == MeetingStatus.SCHEDULED  # a refused message changes nothing

    before = len(inbox.to(mentee))
    cancelled = await client.post(
        f"/meetings/{meeting_id}/cancel",
        data={"csrf_token": csrf, "message": "Sorry, I am ill.\nNext week?"},
    )
    assert cancelled.status_code == 303
    cancel_mail = inbox.to(mentee)[before]
    assert str(cancel_mail["Subject"]).startswith("Cancelled: Weekly sync")
    assert "Message from Mona Mentor:\nSorry, I am ill.\nNext week?" in _text(cancel_mail)
    html = cancel_mail.get_body(("html",))
    assert html is not None and "Sorry, I am ill." in str(html.get_content())  # type: ignore[attr-defined]
    assert str(inbox.to(mentor)[-1]["Subject"]).startswith("Copy: Cancelled: Weekly sync")


async def test_meeting_page_offers_ics_and_add_to_calendar_links(
    client: httpx.AsyncClient, app: object, services: AppServices
) -> None:
    world = await make_world(services)
    csrf = await login(client, await _email(services, world.mentor))
    meeting_id = await _book(client, csrf, world)
    page = await client.get(f"/meetings/{meeting_id}")
    assert f'href="/meetings/{meeting_id}/invite.ics"' in page.text
    links = dict(re.findall(r'href="(https://[^"]+)"[^>]*>(Add to [^<]+)<', page.text))
    by_label = {label: url.replace("&amp;", "&") for url, label in links.items()}
    start = weekday_slot()
    google = urlparse(by_label["Add to Google Calendar"])
    assert (google.netloc, google.path) == ("calendar.google.com", "/calendar/render")
    query = parse_qs(google.query)
    assert query["action"] == ["TEMPLATE"] and query["text"] == ["Weekly sync"]
    assert query["dates"] == [f"{start:%Y%m%dT%H%M%SZ}/{start.replace(minute=30):%Y%m%dT%H%M%SZ}"]
    assert query["details"] == ["Agenda: goals"]
    for label, host in (
        ("Add to Outlook.com", "outlook.live.com"),
        ("Add to Outlook (work or school)", "outlook.office.com"),
    ):
        outlook = urlparse(by_label[label])
        assert (outlook.netloc, outlook.path) == (host, "/calendar/0/deeplink/compose")
        query = parse_qs(outlook.query)
        assert query["subject"] == ["Weekly sync"]
        assert query["startdt"] == [f"{start:%Y-%m-%dT%H:%M:%SZ}"]

    ics = await client.get(f"/meetings/{meeting_id}/invite.ics")
    assert ics.status_code == 200 and ics.headers["content-type"].startswith("text/calendar")
    event = next(iter(Calendar.from_ical(ics.content).walk("VEVENT")))
    assert str(event["SUMMARY"]) == "Weekly sync"
    assert event.decoded("DTSTART").astimezone().timestamp() == start.timestamp()
    async with await new_client(app) as stranger:
        await login(stranger, await _email(services, world.admin))
        assert (await stranger.get(f"/meetings/{meeting_id}/invite.ics")).status_code == 404


async def test_poll_no_to_everything_tells_the_organizer_and_finalize_asks_first(
    client: httpx.AsyncClient, app: object, services: AppServices, smtp: tuple[Inbox, int]
) -> None:
    inbox = smtp[0]
    circle = await make_circle(services, size=3)
    poll = await make_poll(services, circle, title="Kickoff")
    organizer = circle.emails[circle.organizer]
    member = circle.others[0]
    async with await new_client(app) as invitee:
        their_csrf = await login(invitee, circle.emails[member])
        page = await invitee.get(f"/polls/{poll.id}")
        slot_ids = list(dict.fromkeys(re.findall(r'name="answer-([0-9a-f-]+)"', page.text)))
        assert len(slot_ids) == 3
        for _ in range(2):  # the same all-No answer twice: one email
            saved = await invitee.post(
                f"/polls/{poll.id}/answers",
                data={"csrf_token": their_csrf, **{f"answer-{s}": "no" for s in slot_ids}},
            )
            assert saved.status_code == 303
    subjects = inbox.subjects(organizer)
    name = circle.names[member]
    assert subjects.count(f"{name} can make none of the times: Kickoff") == 1

    csrf = await login(client, organizer)
    page = await client.get(f"/polls/{poll.id}")
    assert f'action="/polls/{poll.id}/finalize"' in page.text
    assert 'method="get" action="/polls/' in page.text  # the first click only asks
    step = await client.get(f"/polls/{poll.id}/finalize", params={"slot_id": slot_ids[1]})
    assert step.status_code == 200 and "Finalize the poll?" in step.text
    assert f'name="slot_id" value="{slot_ids[1]}"' in step.text
    dialog = await client.get(
        f"/polls/{poll.id}/finalize",
        params={"slot_id": slot_ids[1]},
        headers={"HX-Request": "true"},
    )
    assert dialog.text.lstrip().startswith("<dialog")
    bad = await client.get(f"/polls/{poll.id}/finalize", params={"slot_id": "nope"})
    assert bad.status_code == 422

    done = await client.post(
        f"/polls/{poll.id}/finalize",
        data={"csrf_token": csrf, "slot_id": slot_ids[1], "message": "See you there!"},
    )
    assert done.status_code == 303
    invitation = [
        m for m in inbox.to(circle.emails[member]) if str(m["Subject"]).startswith("Invitation:")
    ][-1]
    assert "Message from Olga Organizer:\nSee you there!" in _text(invitation)

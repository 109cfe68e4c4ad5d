"""The emails a poll sends: the invitation to answer, the reminder, and "time to pick".

Titles and names are user text: the HTML bodies escape them, subjects are flattened to
one line by ``notification_message``. Every link points at the poll page, which needs a
login, so an email forwarded to someone else opens nothing for them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from server.models import Poll, User
from server.services.calendars.deps import CalendarDeps
from server.services.invites import Mailer, MailError, Person, notification_message

log = logging.getLogger("tandem.polls")


@dataclass(frozen=True, slots=True)
class PollDeps:
    """What poll services need from the process: where mail goes and the site's address."""

    mailer: Mailer
    mail_from: str
    base_url: str
    # Reading invitees' calendars for slots no cache covers yet (busy marks up to 12
    # months ahead); without it polls read the cache only.
    calendar: CalendarDeps | None = None

    def poll_url(self, poll: Poll) -> str:
        return f"{self.base_url.rstrip('/')}/polls/{poll.id}"


def _deadline_text(poll: Poll, zone: str) -> str:
    if poll.deadline is None:
        return ""
    local = poll.deadline.astimezone(ZoneInfo(zone))
    return f"{local:%a %d %b %Y, %H:%M} ({zone})"


def _person(user: User) -> Person | None:
    try:
        return Person(name=user.name, email=user.email, time_zone=user.time_zone)
    except ValueError:  # an address no mail server would take; skip rather than fail
        return None


def _html(paragraphs: Sequence[str], url: str, label: str) -> str:
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    link = Markup('<p><a href="{}">{}</a></p>').format(url, label)
    return f"<!doctype html><html><body>{body}{link}</body></html>"


async def _send(
    deps: PollDeps, user: User, subject: str, lines: list[str], label: str, url: str
) -> bool:
    person = _person(user)
    if person is None:
        return False
    text = "\n\n".join([*lines, f"{label}: {url}"]) + "\n"
    message = notification_message(person, subject, text, _html(lines, url, label), deps.mail_from)
    try:
        await deps.mailer.send(message)
    except MailError as exc:  # one bad address must not stop the others
        log.warning("poll email to user %s failed: %s", user.id, exc)
        return False
    return True


async def send_invitations(
    deps: PollDeps, poll: Poll, organizer: User, group_name: str, invitees: Sequence[User]
) -> int:
    """Ask each invitee to answer; returns how many emails went out."""
    sent = 0
    for user in invitees:
        lines = [
            f"{organizer.name} proposed times for \u201c{poll.title}\u201d in {group_name}.",
            "Tell them which times suit you: yes, if need be, or no for each slot.",
        ]
        if poll.deadline is not None:
            lines.append(f"Answers close on {_deadline_text(poll, user.time_zone)}.")
        subject = f"When can you meet? {poll.title}"
        sent += await _send(deps, user, subject, lines, "Answer the poll", deps.poll_url(poll))
    return sent


async def send_reminders(deps: PollDeps, poll: Poll, invitees: Sequence[User]) -> int:
    sent = 0
    for user in invitees:
        lines = [
            f"You have not answered the poll \u201c{poll.title}\u201d yet.",
            f"It closes on {_deadline_text(poll, user.time_zone)}.",
        ]
        subject = f"Reminder: {poll.title}"
        sent += await _send(deps, user, subject, lines, "Answer the poll", deps.poll_url(poll))
    return sent


async def send_no_time_fits(deps: PollDeps, poll: Poll, organizer: User, invitee: User) -> bool:
    """Tell the organizer that an invitee answered No to every proposed slot."""
    lines = [
        f"{invitee.name} answered No to every time proposed in \u201c{poll.title}\u201d.",
        "You may propose other times in a new poll, or finalize without them.",
    ]
    subject = f"{invitee.name} can make none of the times: {poll.title}"
    return await _send(deps, organizer, subject, lines, "Open the poll", deps.poll_url(poll))


async def send_time_to_pick(
    deps: PollDeps, poll: Poll, organizer: User, answered: int, invited: int
) -> bool:
    lines = [
        f"The poll \u201c{poll.title}\u201d reached its deadline and is closed.",
        f"{answered} of {invited} invitees answered. It is time to pick a slot: "
        "finalizing it schedules the meeting and invites everyone.",
    ]
    subject = f"Time to pick a slot: {poll.title}"
    return await _send(deps, organizer, subject, lines, "Pick a slot", deps.poll_url(poll))

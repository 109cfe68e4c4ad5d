"""Invitation and notification emails, built as standard-library ``EmailMessage`` objects.

An invitation is laid out the way Google Calendar's own invitations are, because that is
the shape every major client recognises::

    multipart/mixed
      multipart/alternative
        text/plain                       readable anywhere
        text/html                        buttons for the signed RSVP links
        text/calendar; method=REQUEST    Gmail, Outlook and Apple Mail read this part
      application/ics  invite.ics        attachment, for clients that only import files

The calendar part inside the alternative is what turns the email into an invitation
with native Accept/Decline buttons; the attachment lets anyone save the event by hand.
The attachment is ``application/ics`` rather than a second ``text/calendar`` so Outlook
does not show the meeting twice. Both carry the very same bytes.

Titles, descriptions and names are user text: the HTML template is autoescaped, and
header values are flattened to one line so nobody can inject headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from server.services.invites.ical import build_cancel, build_request
from server.services.invites.types import Invitation, InviteKind, Person
from server.services.validation import clean_line

TEMPLATES_DIR = Path(__file__).resolve().parents[3] / "templates" / "email"

_SUBJECT_PREFIX: dict[InviteKind, str] = {
    "request": "Invitation",
    "update": "Updated invitation",
    "cancel": "Cancelled",
}
# The same words as the meeting page's buttons (docs/vocabulary.md).
_RESPONSE_LABELS = (("accepted", "Accept"), ("tentative", "Tentative"), ("declined", "Decline"))


def invitation_message(
    invite: Invitation,
    attendee: Person,
    links: Mapping[str, str],
    kind: InviteKind,
    mail_from: str,
    *,
    now: datetime | None = None,
    note: str | None = None,
    organizer_copy: bool = False,
) -> EmailMessage:
    """The email inviting (or re-inviting, or un-inviting) one attendee.

    ``links`` maps ``accepted`` / ``tentative`` / ``declined`` to signed RSVP URLs (see
    :func:`server.services.invites.links.rsvp_links`); it is ignored for ``cancel``. Times
    are shown in the attendee's own zone when known, else in the meeting's zone.
    ``note`` is the organizer's own message (e.g. why a meeting is cancelled).
    ``organizer_copy`` makes the organizer's copy: the same words and ``invite.ics``
    attachment, but no answer links and no ``text/calendar`` part, so the organizer's
    mail client does not treat it as an invitation to answer.
    """
    ics = build_cancel(invite, now=now) if kind == "cancel" else build_request(invite, now=now)
    method = "CANCEL" if kind == "cancel" else "REQUEST"
    zone_name = attendee.time_zone or invite.time_zone
    when = _when(invite.start, invite.end, ZoneInfo(zone_name), zone_name)
    context = {
        "kind": kind,
        "invite": invite,
        "attendee": attendee,
        "title": _one_line(invite.title),
        "when": when,
        "links": [
            (label, links[key])
            for key, label in _RESPONSE_LABELS
            if key in links and kind != "cancel" and not organizer_copy
        ],
        "note": note or "",
        "organizer_copy": organizer_copy,
    }
    env = _environment()
    text = env.get_template("invitation.txt").render(context)
    html = env.get_template("invitation.html").render(context)

    subject = f"{_SUBJECT_PREFIX[kind]}: {_one_line(invite.title)} ({when['short']})"
    if organizer_copy:
        subject = f"Copy: {subject}"
    message = _envelope(attendee, subject, mail_from, now)
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    if organizer_copy:
        message.add_attachment(ics, maintype="application", subtype="ics", filename="invite.ics")
        return message
    # ``charset`` goes in as a parameter: bytes content takes none, yet clients need it
    # to read non-ASCII names in the calendar part.
    message.add_alternative(
        ics,
        maintype="text",
        subtype="calendar",
        cte="base64",
        params={"method": method, "charset": "UTF-8"},
    )
    message.add_attachment(ics, maintype="application", subtype="ics", filename="invite.ics")
    return message


def notification_message(
    to: Person | str,
    subject: str,
    text_body: str,
    html_body: str | None,
    mail_from: str,
    *,
    now: datetime | None = None,
) -> EmailMessage:
    """A plain notification (poll opened, reminder): text, optionally with an HTML alternative.

    The caller renders ``html_body`` itself with an autoescaping environment.
    """
    person = to if isinstance(to, Person) else Person(name="", email=to)
    message = _envelope(person, _one_line(subject), mail_from, now)
    message.set_content(text_body, cte="quoted-printable")
    if html_body is not None:
        message.add_alternative(html_body, subtype="html", cte="quoted-printable")
    return message


def _envelope(to: Person, subject: str, mail_from: str, now: datetime | None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = Address(display_name=_one_line(to.name), addr_spec=to.email)
    message["Subject"] = subject
    message["Date"] = format_datetime((now or datetime.now(UTC)).astimezone(UTC))
    message["Message-ID"] = make_msgid(domain=_domain(mail_from))
    # Keeps out-of-office auto-replies from bouncing back to an unattended sender.
    message["Auto-Submitted"] = "auto-generated"
    return message


def _when(start: datetime, end: datetime, zone: ZoneInfo, zone_name: str) -> dict[str, str]:
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    offset = local_start.strftime("%z")
    utc_offset = f"UTC{offset[:3]}:{offset[3:]}"
    day = local_start.strftime("%a %d %b %Y")
    if local_end.date() == local_start.date():
        span = f"{day}, {local_start:%H:%M}\u2013{local_end:%H:%M}"
    else:
        span = f"{day}, {local_start:%H:%M} \u2013 {local_end:%a %d %b %Y, %H:%M}"
    return {
        "short": f"{day} {local_start:%H:%M} {zone_name}",
        "long": f"{span} ({zone_name}, {utc_offset})",
    }


def _one_line(text: str) -> str:
    return clean_line(text)


def _domain(mail_from: str) -> str:
    address = parseaddr(mail_from)[1]
    return address.rpartition("@")[2] or "localhost"


@cache
def _environment() -> Environment:
    """Autoescape for ``.html`` only: escaping the text part would show ``&amp;`` to readers."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )

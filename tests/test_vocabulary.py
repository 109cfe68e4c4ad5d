"""One vocabulary (docs/vocabulary.md): forbidden variants stay out of templates, of the
strings the server shows or mails (docstrings and comments aside), and of rendered pages
and emails."""

from __future__ import annotations

import ast
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from server.services.calendars.status import PROVIDER_LABELS
from server.services.invites.messages import invitation_message
from server.services.invites.types import Invitation, Person
from tests.conftest import create_user, login

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = [
    re.compile(r"\bMicrosoft 365\b"),
    re.compile(r"\bOffice365\b|\bO365\b"),
    re.compile(r"\bMaybe\b"),
    re.compile(r"iCloud / CalDAV"),
]
# Headings, buttons, titles and summaries say "iCal", never "iCloud".
PROMINENT = re.compile(
    r"<(h[1-6]|button|title|summary)\b[^>]*>(?:(?!</\1>).)*iCloud(?:(?!</\1>).)*</\1>"
    r"|{% block title %}[^{]*iCloud",
    re.S,
)


def _shown_strings(path: Path) -> list[str]:
    """String literals of a module, without its docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def _offences(text: str) -> list[str]:
    found = [m.group(0) for rule in FORBIDDEN for m in rule.finditer(text)]
    return found + [m.group(0)[:80] for m in PROMINENT.finditer(text)]


def test_rules_catch_the_old_words() -> None:
    """The checks below would see the variants this vocabulary replaced."""
    assert _offences("Connect Microsoft 365 / Outlook.com")
    assert _offences('("tentative", "Maybe")')
    assert _offences("<h1>Connect your iCloud calendar</h1>")
    assert not _offences('<p class="muted">Leave empty for iCloud (https://caldav.icloud.com).</p>')
    assert not _offences("Your Office 365 / Outlook.com calendar")


def test_templates_use_the_vocabulary() -> None:
    problems = {
        str(path.relative_to(ROOT)): _offences(path.read_text())
        for path in (ROOT / "templates").rglob("*")
        if path.is_file()
    }
    assert not {k: v for k, v in problems.items() if v}


def test_server_strings_use_the_vocabulary() -> None:
    problems = {}
    for path in (ROOT / "server").rglob("*.py"):
        found = [o for text in _shown_strings(path) for o in _offences(text)]
        if found:
            problems[str(path.relative_to(ROOT))] = found
    assert not problems
    assert PROVIDER_LABELS == {
        "google": "Google",
        "microsoft": "Office 365 / Outlook.com",
        "icloud": "iCal / CalDAV",
    }


def test_schema_descriptions_use_the_vocabulary() -> None:
    assert not _offences((ROOT / "schema.graphql").read_text())


async def test_rendered_pages_use_the_vocabulary(client: httpx.AsyncClient, services) -> None:
    await create_user(services, "voc@example.org", name="Vo Cab")
    await login(client, "voc@example.org")
    pages = {
        path: (await client.get(path)).text
        for path in (
            "/profile/edit?tab=settings",
            "/calendar/connect/microsoft",
            "/calendar/connect/icloud",
        )
    }
    for path, html in pages.items():
        assert not _offences(html), path
    assert "Connect Office 365 / Outlook.com" in pages["/profile/edit?tab=settings"]
    assert "<h1>Connect your iCal calendar</h1>" in pages["/calendar/connect/icloud"]
    assert (
        "<h1>Connect your Office 365 / Outlook.com calendar</h1>"
        in pages["/calendar/connect/microsoft"]
    )


def test_invitation_email_offers_the_meeting_page_words() -> None:
    start = datetime(2030, 3, 4, 9, tzinfo=UTC)
    organizer = Person(name="Olga", email="olga@example.org", time_zone="UTC")
    guest = Person(name="Gus", email="gus@example.org", time_zone="UTC")
    invite = Invitation(
        uid="u@tandem",
        sequence=0,
        title="Chat",
        description="",
        location=None,
        start=start,
        end=start + timedelta(minutes=30),
        time_zone="UTC",
        organizer=organizer,
        attendees=[organizer, guest],
        meeting_id=uuid.uuid4(),
    )
    links = {r: f"https://t.example/rsvp/{r}" for r in ("accepted", "tentative", "declined")}
    message = invitation_message(invite, guest, links, "request", "t@example.org")
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for body in (text, html):
        assert not _offences(body)
        for word in ("Accept", "Tentative", "Decline"):
            assert word in body

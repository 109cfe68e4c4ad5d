"""Text from users loses control characters (NUL, ESC, C1) and bidirectional overrides and
isolates wherever it is accepted, keeps ordinary Unicode, and never makes PostgreSQL fail
on NUL. Each test runs on SQLite and PostgreSQL (the ``database_url`` fixture)."""

from __future__ import annotations

import json
import uuid
from email.message import EmailMessage

import httpx
from sqlmodel import select

from server.models import ApiToken, PollComment, User
from server.services.invites import MemoryMailer
from server.wiring import AppServices
from tests.conftest import create_user, csrf_from, gql, login, use_mailer
from tests.meetings_support import make_world
from tests.polls_support import make_circle, make_poll
from tests.polls_support import token_for as poll_token
from tests.schema.test_graphql_meetings import SCHEDULE, _input
from tests.schema.test_graphql_polls import COMMENT
from tests.schema.test_graphql_programs import CREATE_CONNECTION, CREATE_PROGRAM, token_for

HOSTILE = "\x00\x1b\u202e\u2066\u200f\x85\x7f\x08"  # NUL ESC RLO LRI RLM NEL DEL BS
KEPT = "Zoë 李 🎉 👩\u200d💻"  # accents, CJK, emoji with a zero-width joiner


def _dirty(text: str) -> str:
    """Hostile characters sprinkled through ``text``."""
    return HOSTILE + text.replace(" ", f" {HOSTILE}", 1) + HOSTILE


async def _user(services: AppServices, user_id: uuid.UUID) -> User:
    async with services.db.session() as db:
        user = await db.get(User, user_id)
        assert user is not None
        return user


async def test_profile_name_from_the_page_is_cleaned(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    me = await create_user(services, "clean@example.org")
    csrf = await login(client, "clean@example.org")
    saved = await client.post(
        "/profile/edit",
        data={"name": _dirty(f"Ana {KEPT}"), "time_zone": "Europe/Paris", "csrf_token": csrf},
    )
    assert saved.status_code == 303
    assert (await _user(services, me)).name == f"Ana {KEPT}"
    nothing = await client.post(
        "/profile/edit", data={"name": HOSTILE, "time_zone": "UTC", "csrf_token": csrf}
    )
    assert nothing.status_code == 422 and "Name cannot be empty." in nothing.text


async def test_program_and_connection_names_via_graphql(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    root = await create_user(services, "rootclean@example.org", global_admin=True)
    a = await create_user(services, "a-clean@example.org")
    b = await create_user(services, "b-clean@example.org")
    token = await token_for(services, root)
    # A lone surrogate is as unstorable as NUL; JSON lets a client send one.
    raw = json.dumps({"query": CREATE_PROGRAM, "variables": {"name": _dirty("Eng\ud800 Circle")}})
    made = await client.post(
        "/graphql",
        content=raw.encode(),  # ASCII: the surrogate travels as a \\ud800 escape
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    program = made.json()["data"]["createProgram"]["program"]
    assert program["name"] == "Eng Circle"
    for member in (a, b):
        await gql(
            client,
            """mutation A($p: ID!, $u: ID!) { addProgramMember(input: {programId: $p, userId: $u,
            role: MENTEE}) { errors { code } } }""",
            {"p": program["id"], "u": str(member)},
            token=token,
        )
    connected = await gql(
        client,
        CREATE_CONNECTION,
        {
            "programId": program["id"],
            "memberIds": [str(a), str(b)],
            "kind": "PAIR",
            "name": _dirty(f"Pair {KEPT}"),
        },
        token=token,
    )
    assert connected["data"]["createMentoringConnection"]["connection"]["name"] == (f"Pair {KEPT}")


def _attachment(message: EmailMessage) -> str:
    for part in message.walk():
        if part.get_content_type() == "application/ics":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("no iCalendar attachment")


async def test_meeting_text_is_cleaned_and_the_invitation_is_clean(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    mailer = MemoryMailer()
    use_mailer(services, mailer)
    world = await make_world(services)
    token = await token_for(services, world.mentor)
    booked = await gql(
        client,
        SCHEDULE,
        {
            "input": _input(
                world,
                title=_dirty("Kick off"),
                description=f"First\x00 line\r\n\tsecond {HOSTILE}line",
                location=_dirty("Room 4"),
            )
        },
        token=token,
    )
    meeting = booked["data"]["scheduleMeeting"]["meeting"]
    assert meeting["title"] == "Kick off"
    assert meeting["description"] == "First line\n\tsecond line"
    assert meeting["location"] == "Room 4"
    ics = _attachment(mailer.sent[-1])
    for char in HOSTILE:
        assert char not in ics, repr(char)


async def test_comments_keep_line_breaks_and_lose_controls(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    circle = await make_circle(services, size=2)
    poll = await make_poll(services, circle)
    token = await poll_token(services, circle.members[1])
    posted = await gql(
        client,
        COMMENT,
        {"input": {"pollId": str(poll.id), "body": f"Hi{HOSTILE} there\nsee you {KEPT}"}},
        token=token,
    )
    assert posted["data"]["addPollComment"]["comment"]["body"] == f"Hi there\nsee you {KEPT}"
    async with services.db.session() as db:
        stored = (await db.exec(select(PollComment.body))).all()
    assert stored == [f"Hi there\nsee you {KEPT}"]
    # The page refuses a comment that is nothing but control characters.
    csrf = await login(client, circle.emails[circle.members[1]])
    empty = await client.post(
        f"/polls/{poll.id}/comments", data={"body": HOSTILE, "csrf_token": csrf}
    )
    assert empty.status_code == 422 and "Write something first." in empty.text


async def test_token_labels_and_sign_in_emails(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    me = await create_user(services, "tok@example.org")
    await login(client, "tok@example.org")
    csrf = csrf_from((await client.get("/profile/edit?tab=settings")).text)
    made = await client.post("/profile/tokens", data={"name": _dirty("CI bot"), "csrf_token": csrf})
    assert made.status_code == 200
    async with services.db.session() as db:
        names = (await db.exec(select(ApiToken.name).where(ApiToken.user_id == me))).all()
    assert names == ["CI bot"]
    # Signing in with NUL in the address is a wrong address, not a database error.
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as anon:
        page = await anon.get("/login")
        refused = await anon.post(
            "/login",
            data={
                "email": "tok\x00@example.org",
                "password": "whatever-it-is",
                "csrf_token": csrf_from(page.text),
            },
        )
        assert refused.status_code < 500
        assert "Email or password is incorrect." in refused.text

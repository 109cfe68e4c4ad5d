"""Meeting pages through the ASGI app: book from a slot, My meetings, details, answer,
change, cancel, the public RSVP page, the admin activity page; user text stays inert."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlmodel import select

from server.models import Meeting, MeetingAttendee
from server.models.enums import AttendeeResponse
from server.services.invites import MemoryMailer, make_rsvp_token
from server.wiring import AppServices
from tests.conftest import csrf_from, login, new_client, use_mailer
from tests.meetings_support import World, make_world, weekday_slot

RSVP_LINK = re.compile(r"http://testserver(/rsvp/[A-Za-z0-9_\-.]+)")


@pytest.fixture
def mailer(services: AppServices) -> MemoryMailer:
    memory = MemoryMailer()
    use_mailer(services, memory)
    return memory


@pytest.fixture
async def world(services: AppServices, mailer: MemoryMailer) -> World:
    return await make_world(services, tag=uuid.uuid4().hex[:6])


async def _email(services: AppServices, user_id: uuid.UUID) -> str:
    from server.models import User

    async with services.db.session() as db:
        user = await db.get(User, user_id)
        assert user is not None
        return user.email


def _form(start: datetime, zone: str = "Europe/Paris", **extra: Any) -> dict[str, Any]:
    local = start.astimezone(ZoneInfo(zone))
    values = {
        "title": "Weekly sync",
        "description": "",
        "location": "",
        "date": local.strftime("%Y-%m-%d"),
        "time": local.strftime("%H:%M"),
        "duration": "30",
    }
    values.update(extra)
    return values


async def _book(
    client: httpx.AsyncClient, csrf: str, world: World, start: datetime, **extra: Any
) -> httpx.Response:
    return await client.post(
        f"/connections/{world.connection}/meetings",
        data={**_form(start, **extra), "csrf_token": csrf},
    )


async def _meeting_id(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    match = re.match(
        r"/meetings/([0-9a-f-]+)\?notice=meeting_scheduled", response.headers["location"]
    )
    assert match, response.headers["location"]
    return match.group(1)


async def test_book_from_a_slot_and_see_it_everywhere(
    client: httpx.AsyncClient, app: Any, services: AppServices, world: World, mailer: MemoryMailer
) -> None:
    csrf = await login(client, await _email(services, world.mentor))
    start = weekday_slot()
    form = await client.get(
        f"/connections/{world.connection}/meetings/new",
        params={"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": "45"},
    )
    assert form.status_code == 200
    local = start.astimezone(ZoneInfo("Europe/Paris"))
    assert f'value="{local:%Y-%m-%d}"' in form.text and f'value="{local:%H:%M}"' in form.text
    assert "Europe/Paris" in form.text and "Manu Mentee" in form.text
    assert '<option value="45" selected>' in form.text
    assert 'name="csrf_token"' in form.text

    booked = await _book(
        client, csrf, world, start, title="Weekly sync", location="https://meet.example.org/abc"
    )
    meeting_id = await _meeting_id(booked)
    page = await client.get(booked.headers["location"])
    assert "The meeting is booked" in page.text and "Weekly sync" in page.text
    assert 'href="https://meet.example.org/abc"' in page.text
    assert "Not answered yet" in page.text and "Cancel the meeting" in page.text
    assert f'href="/meetings/{meeting_id}/edit"' in page.text
    assert "Accept</button>" not in page.text  # the organizer does not answer
    assert len(mailer.sent) == 1

    listing = await client.get("/meetings")
    assert 'href="/meetings"' in listing.text  # the nav link
    upcoming = listing.text.split('id="h-upcoming"')[1].split('id="h-past"')[0]
    assert "Weekly sync" in upcoming and "You organize" in upcoming

    async with await new_client(app) as other:
        await login(other, await _email(services, world.mentee))
        theirs = await other.get(f"/meetings/{meeting_id}")
        assert theirs.status_code == 200
        assert "Accept</button>" in theirs.text and "Decline</button>" in theirs.text
        assert "Cancel the meeting" not in theirs.text
        # The mentee sees New York time.
        ny = start.astimezone(ZoneInfo("America/New_York"))
        assert f"{ny:%H:%M}" in theirs.text and "America/New_York" in theirs.text
        edit = await other.get(f"/meetings/{meeting_id}/edit")
        assert edit.status_code == 404


async def test_answer_with_and_without_htmx(
    client: httpx.AsyncClient, app: Any, services: AppServices, world: World
) -> None:
    csrf = await login(client, await _email(services, world.mentor))
    meeting_id = await _meeting_id(await _book(client, csrf, world, weekday_slot()))
    async with await new_client(app) as mentee:
        token = await login(mentee, await _email(services, world.mentee))
        plain = await mentee.post(
            f"/meetings/{meeting_id}/respond", data={"response": "tentative", "csrf_token": token}
        )
        assert plain.status_code == 303 and plain.headers["location"].endswith(
            "notice=answer_saved"
        )
        swapped = await mentee.post(
            f"/meetings/{meeting_id}/respond",
            data={"response": "accepted"},
            headers={"HX-Request": "true", "X-CSRF-Token": token},
        )
        assert swapped.status_code == 200
        assert swapped.text.lstrip().startswith('<section id="meeting-answer"')
        assert 'aria-live="polite"' in swapped.text and "Saved: Accepted." in swapped.text
        assert "HX-Request" in swapped.headers["vary"]
        bad = await mentee.post(
            f"/meetings/{meeting_id}/respond",
            data={"response": "maybe-later"},
            headers={"HX-Request": "true", "X-CSRF-Token": token},
        )
        assert bad.status_code == 422 and 'role="alert"' in bad.text
    owner_view = await client.get(f"/meetings/{meeting_id}")
    assert "Accepted" in owner_view.text


async def test_invalid_and_taken_times_rerender_the_form(
    client: httpx.AsyncClient, services: AppServices, world: World
) -> None:
    csrf = await login(client, await _email(services, world.mentor))
    start = weekday_slot()
    empty_title = await _book(client, csrf, world, start, title="  ")
    assert empty_title.status_code == 422
    assert "Title cannot be empty" in empty_title.text and 'aria-invalid="true"' in empty_title.text
    assert 'name="csrf_token"' in empty_title.text
    bad_date = await client.post(
        f"/connections/{world.connection}/meetings",
        data={**_form(start), "date": "soon", "csrf_token": csrf},
    )
    assert bad_date.status_code == 422 and "Give a date and a time" in bad_date.text
    await _meeting_id(await _book(client, csrf, world, start))
    taken = await client.post(
        f"/connections/{world.connection}/meetings",
        data={**_form(start + timedelta(minutes=15)), "csrf_token": csrf},
        headers={"HX-Request": "true"},
    )
    assert taken.status_code == 409
    assert taken.text.lstrip().startswith('<form id="meeting-form"')
    assert "That time is taken: you already have a meeting then" in taken.text
    missing = await client.post(
        f"/connections/{uuid.uuid4()}/meetings", data={**_form(start), "csrf_token": csrf}
    )
    assert missing.status_code == 404


async def test_change_and_cancel_from_the_pages(
    client: httpx.AsyncClient, services: AppServices, world: World, mailer: MemoryMailer
) -> None:
    csrf = await login(client, await _email(services, world.mentor))
    start = weekday_slot()
    meeting_id = await _meeting_id(await _book(client, csrf, world, start))
    edit = await client.get(f"/meetings/{meeting_id}/edit")
    assert edit.status_code == 200 and 'value="Weekly sync"' in edit.text
    saved = await client.post(
        f"/meetings/{meeting_id}/edit",
        data={**_form(start + timedelta(hours=1), title="Moved sync"), "csrf_token": csrf},
    )
    assert saved.status_code == 303 and saved.headers["location"].endswith("notice=meeting_updated")
    async with services.db.session() as db:
        row = await db.get(Meeting, uuid.UUID(meeting_id))
        assert row is not None and row.start_at == start + timedelta(hours=1) and row.sequence == 1
    cancelled = await client.post(f"/meetings/{meeting_id}/cancel", data={"csrf_token": csrf})
    assert cancelled.status_code == 303
    page = await client.get(cancelled.headers["location"])
    assert "The meeting is cancelled" in page.text and "Cancelled</span>" in page.text
    assert "Cancel the meeting" not in page.text
    assert [m["Subject"].split(":")[0] for m in mailer.sent] == [
        "Invitation",
        "Updated invitation",
        "Cancelled",
    ]


async def test_rsvp_link_from_the_email_confirms_once_without_login(
    client: httpx.AsyncClient, app: Any, services: AppServices, world: World, mailer: MemoryMailer
) -> None:
    csrf = await login(client, await _email(services, world.mentor))
    meeting_id = await _meeting_id(
        await _book(client, csrf, world, weekday_slot(), title="Planning")
    )
    text = mailer.sent[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    links = RSVP_LINK.findall(text)
    assert len(links) == 3
    accept = next(link for link in links if link)  # order: Yes, Maybe, No
    async with await new_client(app) as anonymous:
        shown = await anonymous.get(accept)
        assert (
            shown.status_code == 200
            and "Confirm: Accepted" in shown.text
            and "Planning" in shown.text
        )
        async with services.db.session() as db:
            row = (
                await db.exec(
                    select(MeetingAttendee).where(MeetingAttendee.user_id == world.mentee)
                )
            ).one()
            assert row.response == AttendeeResponse.NEEDS_ACTION  # opening the link changed nothing
        done = await anonymous.post(accept, data={"csrf_token": csrf_from(shown.text)})
        assert done.status_code == 200 and "Your answer is recorded" in done.text
        replay = await anonymous.post(accept, data={"csrf_token": csrf_from(shown.text)})
        assert replay.status_code == 400 and "already used" in replay.text
        again = await anonymous.get(accept)
        assert again.status_code == 400 and "Nothing was changed" in again.text
        tampered = await anonymous.get(
            accept[:-3] + ("AAA" if not accept.endswith("AAA") else "BBB")
        )
        assert tampered.status_code == 400 and "not valid" in tampered.text
        deps = services.meetings
        expired = make_rsvp_token(
            deps.rsvp_key,
            uuid.UUID(meeting_id),
            await _email(services, world.mentee),
            AttendeeResponse.DECLINED,
            datetime.now(UTC) - timedelta(seconds=1),
            0,
        )
        late = await anonymous.get(f"/rsvp/{expired}")
        assert late.status_code == 400 and "expired" in late.text
        no_csrf = await anonymous.post(links[2])
        assert no_csrf.status_code == 403
    owner_view = await client.get(f"/meetings/{meeting_id}")
    assert "Accepted" in owner_view.text


async def test_strangers_get_not_found(
    client: httpx.AsyncClient, app: Any, services: AppServices, world: World
) -> None:
    from tests.conftest import create_user

    csrf = await login(client, await _email(services, world.mentor))
    meeting_id = await _meeting_id(await _book(client, csrf, world, weekday_slot()))
    stranger = await create_user(
        services, f"st-{uuid.uuid4().hex[:6]}@example.org", name="Stranger"
    )
    async with await new_client(app) as other:
        token = await login(other, await _email(services, stranger))
        for path in (
            f"/meetings/{meeting_id}",
            f"/meetings/{meeting_id}/edit",
            "/meetings/not-an-id",
            f"/connections/{world.connection}/meetings/new",
        ):
            assert (await other.get(path)).status_code == 404, path
        assert (
            await other.post(f"/meetings/{meeting_id}/cancel", data={"csrf_token": token})
        ).status_code == 404
        assert (
            await other.post(
                f"/meetings/{meeting_id}/respond",
                data={"response": "accepted", "csrf_token": token},
            )
        ).status_code == 404
        assert (await other.get(f"/admin/programs/{world.program}/activity")).status_code == 404
    anonymous = await (await new_client(app)).get("/meetings")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")


async def test_user_text_stays_inert_on_every_page(
    client: httpx.AsyncClient, app: Any, services: AppServices, world: World, mailer: MemoryMailer
) -> None:
    csrf = await login(client, await _email(services, world.mentor))
    title = '<script>alert(1)</script><b hx-get="/admin" hx-trigger="load">x</b>'
    booked = await _book(
        client,
        csrf,
        world,
        weekday_slot(),
        title=title,
        description='<img src=x onerror="alert(2)"> <div hx-post="/meetings" hx-trigger="load">',
        location="javascript:alert(3)",
    )
    meeting_id = await _meeting_id(booked)
    pages = [
        await client.get(f"/meetings/{meeting_id}"),
        await client.get("/meetings"),
        await client.get(f"/meetings/{meeting_id}/edit"),
    ]
    async with await new_client(app) as anonymous:
        text = mailer.sent[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
        pages.append(await anonymous.get(RSVP_LINK.findall(text)[0]))
    for page in pages:
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert 'hx-get="/admin"' not in page.text and 'hx-post="/meetings"' not in page.text
        assert "<img src=x" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    detail = pages[0].text
    assert 'href="javascript:' not in detail and "javascript:alert(3)" in detail
    html = mailer.sent[0].get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<script>alert" not in html and 'hx-get="/admin"' not in html


async def test_admin_activity_page(
    client: httpx.AsyncClient, app: Any, services: AppServices, world: World
) -> None:
    csrf = await login(client, await _email(services, world.mentor))
    await _meeting_id(await _book(client, csrf, world, weekday_slot(), title="Private topic"))
    async with await new_client(app) as admin:
        await login(admin, await _email(services, world.admin))
        home = await admin.get("/admin")
        assert f'href="/admin/programs/{world.program}/activity"' in home.text
        page = await admin.get(f"/admin/programs/{world.program}/activity")
        assert page.status_code == 200
        row = page.text.split("<tbody>")[1].split("</tbody>")[0]
        cells = re.findall(r"<td>([^<]*)</td>", row)
        assert cells[1:5] == ["1", "0", "1", "0"]  # scheduled, held, upcoming, cancelled
        assert "None yet" in row and "Private topic" not in page.text
    assert (await client.get(f"/admin/programs/{world.program}/activity")).status_code == 404

"""The poll pages end to end: the group page and its button, suggestions, creating,
answering, the live tally, comments and finalizing; escaping of user text."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select

from server.models import Poll
from server.services.invites import MemoryMailer
from server.services.polls import rules as poll_rules
from server.wiring import AppServices
from tests.conftest import login, new_client, use_mailer
from tests.polls_support import Circle, connect, make_circle, make_poll, next_monday

BUTTON = "Create a Poll with Proposed Meeting Slots"


@pytest.fixture
async def browsers(app: Any) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Separate cookie jars, one per person."""
    clients = [await new_client(app) for _ in range(3)]
    yield clients
    for c in clients:
        await c.aclose()


async def _as(client: httpx.AsyncClient, circle: Circle, user_id: uuid.UUID) -> str:
    """Signs in as a member (or the stranger); returns the CSRF token."""
    email = circle.stranger_email if user_id == circle.stranger else circle.emails[user_id]
    return await login(client, email)


async def test_group_page_shows_members_polls_and_the_button(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    circle = await make_circle(services)
    await connect(services, circle.members[1])
    poll = await make_poll(services, circle, title="Kickoff")
    await _as(client, circle, circle.organizer)
    page = await client.get(f"/groups/{circle.group}")
    assert page.status_code == 200
    assert f'<a class="button" href="/groups/{circle.group}/polls/new">{BUTTON}</a>' in page.text
    assert "1 of 4 members have connected their calendars." in page.text
    assert all(name in page.text for name in circle.names.values())
    assert f'href="/polls/{poll.id}">Kickoff</a>' in page.text


async def test_members_see_no_button_and_strangers_get_404(
    browsers: list[httpx.AsyncClient], services: AppServices
) -> None:
    circle = await make_circle(services)
    member, stranger, _ = browsers
    await _as(member, circle, circle.members[1])
    page = await member.get(f"/groups/{circle.group}")
    assert page.status_code == 200 and BUTTON not in page.text
    assert (await member.get(f"/groups/{circle.group}/polls/new")).status_code == 403
    await _as(stranger, circle, circle.stranger)
    assert (await stranger.get(f"/groups/{circle.group}")).status_code == 404
    assert (await stranger.get(f"/groups/{uuid.uuid4()}")).status_code == 404
    assert (await stranger.get("/groups/not-an-id")).status_code == 404


async def test_polls_off_the_button_explains_why(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    circle = await make_circle(services, polls_on=False)
    await _as(client, circle, circle.organizer)
    page = await client.get(f"/groups/{circle.group}")
    assert re.search(
        rf'<button type="button" disabled aria-describedby="polls-off">{BUTTON}</button>', page.text
    )
    assert "Group polls are switched off for this program." in page.text
    new = await client.get(f"/groups/{circle.group}/polls/new")
    assert new.status_code == 403
    assert "Group polls are switched off for this program." in new.text


async def test_new_poll_page_suggests_slots_and_names_the_unavailable(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    circle = await make_circle(services)
    olga, ana, bo, _cy = circle.members
    day = next_monday(weeks=2)
    await connect(services, olga)
    await connect(services, ana, [(day + timedelta(hours=8), day + timedelta(hours=20))])
    await _as(client, circle, olga)
    params = {"from": day.date().isoformat(), "to": day.date().isoformat(), "duration": "60"}
    page = await client.get(f"/groups/{circle.group}/polls/new", params=params)
    assert page.status_code == 200
    assert "2 of 4 invitees have connected their calendars." in page.text
    assert page.text.count('name="slot"') > 5
    rows = re.findall(r"<tr>.*?</tr>", page.text, flags=re.DOTALL)
    assert any("Ana" in row for row in rows)  # Ana is busy all day, named as unavailable
    assert "Bo" not in "".join(re.findall(r"<td>([^<]*Ana[^<]*)</td>", page.text))
    fragment = await client.get(
        f"/groups/{circle.group}/polls/new", params=params, headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and 'name="slot"' in fragment.text
    assert "HX-Request" in fragment.headers["vary"]
    assert bo  # Bo has no calendar: never shown as busy


async def test_create_answer_comment_and_finalize_through_the_pages(
    browsers: list[httpx.AsyncClient], services: AppServices
) -> None:
    use_mailer(services, MemoryMailer())
    circle = await make_circle(services)
    olga, ana = circle.members[0], circle.members[1]
    day = next_monday(weeks=2)
    await connect(services, ana, [(day + timedelta(hours=9), day + timedelta(hours=10))])
    organizer, member, _ = browsers
    csrf = await _as(organizer, circle, olga)
    params = {"from": day.date().isoformat(), "to": day.date().isoformat(), "duration": "60"}
    page = await organizer.get(f"/groups/{circle.group}/polls/new", params=params)
    offered = re.findall(r'name="slot" value="([^"]+)"', page.text)
    ten = next(v for v in offered if "T10:00:00" in v)  # suggested: Ana is free
    assert not any("T09:00:00" in v for v in offered[:3])  # Ana is busy: ranked lower

    title = "<script>alert('x')</script> Kickoff"
    created = await organizer.post(
        f"/groups/{circle.group}/polls/new",
        data={
            "csrf_token": csrf,
            "title": title,
            "duration": "60",
            "slot": [ten],
            "extra_slot": [
                f"{day.date().isoformat()}T09:00",
                f"{day.date().isoformat()}T15:00",
                "",
            ],
            "deadline": "",
            "optional": [str(circle.members[3])],
            "from": params["from"],
            "to": params["to"],
        },
    )
    assert created.status_code == 303, created.text
    location = created.headers["location"]
    assert location.startswith("/polls/") and location.endswith("?notice=poll_created")
    poll_url = location.split("?")[0]
    assert len(services.mailer.sent) == 3

    member_csrf = await _as(member, circle, ana)
    page = await member.get(poll_url)
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "&lt;script&gt;alert(" in page.text
    assert page.text.count("Your calendar shows you busy") == 1  # only the 09:00 slot
    assert "0 of 4 invitees have connected" not in page.text
    assert "1 of 4 invitees have connected their calendars." in page.text
    slot_ids = re.findall(r'name="answer-([0-9a-f-]+)" value="yes"', page.text)
    assert len(slot_ids) == 3

    missing = await member.post(
        f"{poll_url}/answers", data={"csrf_token": member_csrf, f"answer-{slot_ids[0]}": "yes"}
    )
    assert missing.status_code == 422 and "Answer every slot" in missing.text
    answers = dict(zip([f"answer-{s}" for s in slot_ids], ["no", "yes", "if_need_be"], strict=True))
    saved = await member.post(f"{poll_url}/answers", data={"csrf_token": member_csrf, **answers})
    assert saved.status_code == 303
    page = await member.get(saved.headers["location"])
    assert "Your answers are saved." in page.text
    assert re.search(rf'name="answer-{slot_ids[1]}" value="yes" required checked', page.text)

    tally = await member.get(f"{poll_url}/tally")
    assert tally.status_code == 200 and "<html" not in tally.text
    assert "Best slot" in tally.text
    best_row = next(
        r for r in re.findall(r"<tr class=\"best\">.*?</tr>", tally.text, flags=re.DOTALL)
    )
    assert "10:00" in best_row and "Ana" in best_row
    assert 'hx-trigger="every 5s"' in page.text and f'hx-get="{poll_url}/tally"' in page.text

    comment = await member.post(
        f"{poll_url}/comments",
        data={"csrf_token": member_csrf, "body": "<img src=x onerror=alert(1)> ok"},
    )
    assert comment.status_code == 303
    page = await member.get(poll_url)
    assert "<img src=x" not in page.text and "&lt;img src=x onerror=alert(1)&gt; ok" in page.text

    refused = await member.post(
        f"{poll_url}/finalize", data={"csrf_token": member_csrf, "slot_id": slot_ids[1]}
    )
    assert refused.status_code == 403 and "Only the poll&#39;s organizer" in refused.text
    done = await organizer.post(
        f"{poll_url}/finalize", data={"csrf_token": csrf, "slot_id": slot_ids[1]}
    )
    assert done.status_code == 303
    page = await member.get(poll_url)
    assert "This poll is finalized" in page.text and 'name="answer-' not in page.text
    late = await member.post(f"{poll_url}/answers", data={"csrf_token": member_csrf, **answers})
    assert late.status_code == 409 and "This poll is finalized" in late.text
    async with services.db.session() as db:
        row = (await db.exec(select(Poll))).one()
        assert row.meeting_id is not None and str(row.final_slot_id) == slot_ids[1]


async def test_invalid_create_form_comes_back_with_422(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    circle = await make_circle(services)
    csrf = await _as(client, circle, circle.organizer)
    response = await client.post(
        f"/groups/{circle.group}/polls/new",
        data={"csrf_token": csrf, "title": "Kept title", "duration": "60"},
    )
    assert response.status_code == 422
    assert "Propose at least one slot." in response.text
    assert 'value="Kept title"' in response.text
    bad = await client.post(
        f"/groups/{circle.group}/polls/new",
        data={"csrf_token": csrf, "title": "T", "extra_slot": "tomorrow-ish"},
    )
    assert bad.status_code == 422 and "is not a valid date and time" in bad.text


async def test_a_closed_poll_refuses_answers_with_a_clear_message(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    from server.models.base import utcnow

    circle = await make_circle(services, size=2)
    poll = await make_poll(services, circle, deadline=utcnow() + timedelta(hours=1))
    async with services.db.session() as db:
        await poll_rules.close_due_polls(db, circle.deps(), utcnow() + timedelta(hours=2))
    csrf = await _as(client, circle, circle.members[1])
    page = await client.get(f"/polls/{poll.id}")
    assert "This poll is closed: it no longer accepts answers." in page.text
    assert 'name="answer-' not in page.text
    async with services.db.session() as db:
        details = (await poll_rules.load_details(db, [poll]))[0]
    data = {f"answer-{s.id}": "yes" for s in details.slots}
    response = await client.post(f"/polls/{poll.id}/answers", data={"csrf_token": csrf, **data})
    assert response.status_code == 409
    assert "This poll is closed: it no longer accepts answers." in response.text


async def test_strangers_get_404_for_a_poll(
    browsers: list[httpx.AsyncClient], services: AppServices
) -> None:
    circle = await make_circle(services, size=2)
    poll = await make_poll(services, circle)
    stranger = browsers[0]
    csrf = await _as(stranger, circle, circle.stranger)
    assert (await stranger.get(f"/polls/{poll.id}")).status_code == 404
    assert (await stranger.get(f"/polls/{poll.id}/tally")).status_code == 404
    posted = await stranger.post(
        f"/polls/{poll.id}/comments", data={"csrf_token": csrf, "body": "hi"}
    )
    assert posted.status_code == 404

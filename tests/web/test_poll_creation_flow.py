"""Creating a poll: ticks survive a change of From, To or Length, the suggestions show a
loading state, slots early or late on an invitee's own clock are marked, and comments
arrive live (an htmx-polled fragment)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import update

from server.models import User
from server.services.polls.suggestions import unsocial_hours
from server.wiring import AppServices
from tests.conftest import login, new_client
from tests.polls_support import connect, make_circle, make_poll, next_monday


def _person(name: str, zone: str) -> User:
    return User(email=f"{name.lower()}@example.org", name=name, time_zone=zone)


def test_unsocial_hours_name_whom_a_time_is_hard_on() -> None:
    start = datetime(2026, 12, 7, 23, 30, tzinfo=UTC)  # 05:00 in Kolkata, 00:30 in Paris
    people = [
        _person("Asha", "Asia/Kolkata"),
        _person("Ana", "Europe/Paris"),
        _person("Maya", "America/New_York"),  # 18:30
    ]
    assert unsocial_hours(start, start + timedelta(hours=1), people) == [
        "05:00 for Asha (Asia/Kolkata)",
        "00:30 for Ana (Europe/Paris)",
    ]
    evening = datetime(2026, 12, 7, 19, 0, tzinfo=UTC)  # ends 20:00 in London: fine
    assert unsocial_hours(evening, evening + timedelta(hours=1), [_person("Lu", "UTC")]) == []
    late = datetime(2026, 12, 7, 19, 30, tzinfo=UTC)  # ends 20:30: late
    assert unsocial_hours(late, late + timedelta(hours=1), [_person("Lu", "UTC")]) == [
        "19:30 for Lu (UTC)"
    ]


async def test_ticked_slots_survive_a_filter_change_and_early_slots_are_marked(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    circle = await make_circle(services, size=3)
    olga, ana, _bo = circle.members
    async with services.db.session() as db:
        await db.exec(update(User).where(User.id == ana).values(time_zone="Asia/Kolkata"))  # type: ignore[call-overload]
        await db.commit()
    await connect(services, olga)
    await login(client, circle.emails[olga])
    day = next_monday(weeks=2)
    params = {"from": day.date().isoformat(), "to": day.date().isoformat(), "duration": "60"}
    page = await client.get(f"/groups/{circle.group}/polls/new", params=params)
    assert 'hx-indicator="#suggestions-loading"' in page.text
    assert 'id="suggestions-loading" class="htmx-indicator' in page.text
    assert 'hx-include="#suggestions input[name=slot]:checked"' in page.text
    # 16:00 UTC is 21:30 in Kolkata: marked with Ana's own time and zone.
    row = next(
        r
        for r in re.findall(r"<tr>.*?</tr>", page.text, flags=re.DOTALL)
        if "16:00\u201317:00" in r
    )
    assert "21:30 for Ana (Asia/Kolkata)" in row
    morning = next(
        r
        for r in re.findall(r"<tr>.*?</tr>", page.text, flags=re.DOTALL)
        if "09:00\u201310:00" in r
    )
    assert "for Ana" not in morning  # 14:30 in Kolkata

    ticked = [(day + timedelta(hours=h)).isoformat() for h in (9, 11)]
    # Length changes to 30 minutes and the range moves a week on: both ticks stay ticked.
    later = {
        "from": (day + timedelta(days=7)).date().isoformat(),
        "to": (day + timedelta(days=7)).date().isoformat(),
        "duration": "30",
    }
    fragment = await client.get(
        f"/groups/{circle.group}/polls/new",
        params=[*later.items(), *(("slot", t) for t in ticked), ("slot", "not a time")],
        headers={"HX-Request": "true"},
    )
    assert fragment.status_code == 200 and "<html" not in fragment.text
    kept = fragment.text.split("Still ticked from before")[1].split("</fieldset>")[0]
    for value in ticked:
        assert f'name="slot" value="{value}" checked' in kept
    assert "not a time" not in fragment.text
    # Same range again with a tick among the suggestions: ticked in place, not listed twice.
    again = await client.get(
        f"/groups/{circle.group}/polls/new",
        params=[*params.items(), ("slot", ticked[0])],
        headers={"HX-Request": "true"},
    )
    assert "Still ticked from before" not in again.text
    assert re.search(
        rf'name="slot" value="{re.escape(ticked[0])}" id="slot-\d+" checked', again.text
    )


async def test_comments_arrive_live(
    client: httpx.AsyncClient, app: object, services: AppServices
) -> None:
    circle = await make_circle(services, size=3)
    poll = await make_poll(services, circle)
    csrf = await login(client, circle.emails[circle.others[0]])
    page = await client.get(f"/polls/{poll.id}")
    assert f'hx-get="/polls/{poll.id}/comments" hx-trigger="every 5s"' in page.text
    empty = await client.get(f"/polls/{poll.id}/comments", headers={"HX-Request": "true"})
    assert "No comments yet." in empty.text and "<html" not in empty.text
    await client.post(f"/polls/{poll.id}/comments", data={"csrf_token": csrf, "body": "Tue works"})
    fresh = await client.get(f"/polls/{poll.id}/comments", headers={"HX-Request": "true"})
    assert "Tue works" in fresh.text and "(UTC)" in fresh.text
    async with await new_client(app) as stranger:
        await login(stranger, circle.stranger_email)
        assert (await stranger.get(f"/polls/{poll.id}/comments")).status_code == 404


async def test_poll_page_shows_a_heat_map_that_reads_as_a_table(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    circle = await make_circle(services, size=3)
    poll = await make_poll(services, circle, slots=2)
    csrf = await login(client, circle.emails[circle.others[0]])
    page = await client.get(f"/polls/{poll.id}")
    slot_ids = list(dict.fromkeys(re.findall(r'name="answer-([0-9a-f-]+)"', page.text)))
    answers = {f"answer-{slot_ids[0]}": "yes", f"answer-{slot_ids[1]}": "no"}
    await client.post(f"/polls/{poll.id}/answers", data={"csrf_token": csrf, **answers})
    tally = await client.get(f"/polls/{poll.id}/tally", headers={"HX-Request": "true"})
    heat = tally.text.split('class="heat" role="table"')[1]
    assert heat.count('role="columnheader"') == 2  # "Start" and the one day
    assert heat.count('role="rowheader"') == 2  # 09:00 and 10:00
    name = circle.names[circle.others[0]]
    assert (
        f'<strong>1</strong><span class="heat-of">/3</span><span class="sr-only"> free: {name}'
        in heat
    )
    assert '<strong>0</strong><span class="heat-of">/3</span>' in heat
    assert "heat-1" in heat and "heat-0" in heat

"""The pair scheduling page: who may open it, what a week shows, and its htmx partial."""

from __future__ import annotations

import html
import re
import uuid
from datetime import date, datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx

from server.wiring import AppServices
from tests.conftest import create_user, login, new_client
from tests.scheduling_data import Pair, add_busy, connect_calendar, local, make_pair, next_monday

PARIS = "Europe/Paris"
UNKNOWN = "Your partner has not connected a calendar, so their availability is unknown"


def _today() -> date:
    return datetime.now(ZoneInfo(PARIS)).date()


def _url(pair: Pair, **params: object) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/connections/{pair.connection}/schedule" + (f"?{query}" if query else "")


def _day(d: date) -> str:
    return f"{d:%a} {d.day} {d:%b}"


async def _both_connected(services: AppServices) -> Pair:
    pair = await make_pair(services)
    await connect_calendar(services, pair.mentor)
    await connect_calendar(services, pair.mentee)
    return pair


async def test_member_sees_free_slots_linking_to_the_meeting_form_and_busy_times(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    pair = await _both_connected(services)
    monday = next_monday(PARIS)
    tuesday = monday + timedelta(days=1)
    # Maya is busy Tuesday 16:00-17:00 Paris time; Ana is busy Wednesday 18:00-18:30.
    await add_busy(
        services, pair.mentee, local(tuesday, 16, 0, PARIS), local(tuesday, 17, 0, PARIS)
    )
    wednesday = monday + timedelta(days=2)
    await add_busy(
        services, pair.mentor, local(wednesday, 18, 0, PARIS), local(wednesday, 18, 30, PARIS)
    )
    await login(client, "ana@example.org")

    page = await client.get(_url(pair, week=monday.isoformat()))

    assert page.status_code == 200
    text = page.text
    assert "Times are shown in your time zone, <strong>Europe/Paris</strong>" in text
    assert "Maya is in America/New_York." in text
    assert UNKNOWN not in text
    assert f"Week of Monday {monday.day} {monday:%B %Y}" in text
    start = local(tuesday, 18, 0, PARIS).strftime("%Y-%m-%dT%H:%M:%SZ")
    href = f"/connections/{pair.connection}/meetings/new?start={quote(start)}&amp;duration=30"
    assert f'href="{href}"' in text
    assert f'aria-label="Book {_day(tuesday)} 18:00-18:30"' in text
    maya_busy = '<span aria-hidden="true">Maya busy</span><span class="sr-only">Maya is busy</span>'
    mine = (
        '<span aria-hidden="true">You&#39;re busy</span><span class="sr-only">you are busy</span>'
    )
    assert text.count(maya_busy) == 2 and text.count("cell-busy-partner") == 2 + 1  # + legend
    assert text.count(mine) == 1 and text.count("cell-busy-me") == 1 + 1
    assert f'aria-label="Book {_day(tuesday)} 16:00-16:30"' not in text
    assert "Outside meeting hours" in text  # the weekend, at least
    # Maya's own clock beside Ana's, both zones named; closed hours folded into one band.
    assert 'Maya\'s time <span class="zone">(America/New_York)</span>' in text
    assert (
        '<th scope="row">08:00\u201314:00</th>' in text and "Outside meeting hours for Maya" in text
    )
    assert '<td class="partner-clock">12:00</td>' in text  # 18:00 in Paris
    # Below 600 px the same free times as a list of days.
    day_list = text.split('id="day-list"')[1]
    assert f'aria-label="Book {_day(tuesday)} 18:00-18:30"' in day_list
    # No event detail exists to leak, and the page says so through "busy" only.
    assert "Your partner" not in text


async def test_partner_without_calendar_is_unknown_not_free(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    pair = await make_pair(services)
    await connect_calendar(services, pair.mentor)
    await login(client, "ana@example.org")

    page = await client.get(_url(pair, week=next_monday(PARIS).isoformat()))

    assert page.status_code == 200
    assert UNKNOWN in page.text
    assert "Maya is busy" not in page.text
    assert "You have not connected a calendar" not in page.text


async def test_viewer_without_calendar_is_sent_to_calendar_settings(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    pair = await make_pair(services)
    await connect_calendar(services, pair.mentee)
    await login(client, "ana@example.org")

    page = await client.get(_url(pair))

    assert "You have not connected a calendar" in page.text
    assert 'href="/profile/edit?tab=settings#calendar">Calendar Settings</a>' in page.text
    assert UNKNOWN not in page.text


async def test_strangers_get_the_same_404_as_a_missing_connection(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    pair = await _both_connected(services)
    await login(client, "stan@example.org")

    theirs = await client.get(_url(pair))
    missing = await client.get(f"/connections/{uuid.uuid4()}/schedule")
    garbage = await client.get("/connections/not-an-id/schedule")

    assert theirs.status_code == missing.status_code == garbage.status_code == 404
    assert theirs.text == missing.text == garbage.text
    assert "Maya" not in theirs.text


async def test_signed_out_visitors_are_sent_to_login(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    pair = await make_pair(services)
    page = await client.get(_url(pair))
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login?next=")


async def test_program_admin_outside_the_pair_may_look(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    pair = await make_pair(services)
    await login(client, "root@example.org")

    page = await client.get(_url(pair))

    assert page.status_code == 200
    assert "Ana is in Europe/Paris." in page.text
    assert "Maya has not connected a calendar, so their availability is unknown" in page.text


async def test_htmx_request_gets_only_the_week_partial(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    pair = await _both_connected(services)
    await login(client, "ana@example.org")
    monday = next_monday(PARIS, weeks=2)

    full = await client.get(_url(pair, week=monday.isoformat()))
    partial = await client.get(_url(pair, week=monday.isoformat()), headers={"HX-Request": "true"})
    restore = await client.get(
        _url(pair, week=monday.isoformat()),
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )

    for response in (full, partial, restore):
        assert response.status_code == 200
        assert "HX-Request" in response.headers["vary"]
    assert "<html" in full.text and 'id="schedule-week"' in full.text
    assert "<html" not in partial.text and 'id="schedule-week"' not in partial.text
    assert partial.text.lstrip().startswith('<h2 id="week-heading">')
    assert f"Week of Monday {monday.day}" in partial.text
    assert "<html" in restore.text  # history restores need the whole page


async def test_previous_and_next_week_and_duration(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    pair = await _both_connected(services)
    await login(client, "ana@example.org")
    monday = next_monday(PARIS)
    following = monday + timedelta(days=7)

    page = await client.get(_url(pair, week=monday.isoformat()))
    links = re.findall(
        r'<a id="week-(prev|next)"[^>]*href="([^"]+)"[^>]*hx-get="([^"]+)"', page.text
    )
    assert dict((kind, html.unescape(href)) for kind, href, _ in links) == {
        "prev": _url(pair, week=max(monday - timedelta(days=7), _today()).isoformat(), duration=30),
        "next": _url(pair, week=following.isoformat(), duration=30),
    }
    assert all(href == get for _, href, get in links)
    assert page.text.count('hx-target="#schedule-week"') == 4  # prev, this, next, form
    assert page.text.count('hx-push-url="true"') == 4

    later = await client.get(_url(pair, week=following.isoformat(), duration=30))
    assert f"Week of Monday {following.day} {following:%B %Y}" in later.text

    # The asked day starts the view; a 60-minute meeting is offered in 60-minute slots.
    thursday = following + timedelta(days=3)
    longer = await client.get(_url(pair, week=thursday.isoformat(), duration=60))
    assert f"7 days from Thursday {thursday.day} {thursday:%B %Y}" in longer.text
    assert '<option value="60" selected>' in longer.text
    tuesday = thursday + timedelta(days=5)
    assert f'aria-label="Book {_day(tuesday)} 18:00-19:00"' in longer.text
    assert "duration=60" in longer.text

    odd = await client.get(_url(pair, week="someday", duration=7))
    assert odd.status_code == 200
    assert '<option value="30" selected>' in odd.text


async def test_the_view_starts_today_and_never_shows_past_days(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    pair = await _both_connected(services)
    await login(client, "ana@example.org")
    today = _today()
    for asked in (None, (today - timedelta(days=3)).isoformat()):
        page = await client.get(_url(pair) if asked is None else _url(pair, week=asked))
        assert page.status_code == 200
        days = re.findall(
            r'<th scope="col"(?: aria-current="date" class="today")?>(\w{3} \d+ \w{3})', page.text
        )
        assert len(days) == 7 and days[0] == _day(today)
        assert f'aria-current="date" class="today">{_day(today)}' in page.text
        assert 'aria-current="date"' in page.text
        assert 'id="week-prev"' not in page.text  # nothing earlier to show
        assert f"week={today + timedelta(days=7)}" in page.text


async def test_group_connection_points_to_the_group_page(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    from server.models import User
    from server.models.enums import ConnectionKind
    from server.services.people import mentoring

    pair = await make_pair(services)
    async with services.db.session() as db:
        root = await db.get(User, pair.admin)
        assert root is not None
        group = await mentoring.create_connection(
            db,
            root,
            program_id=pair.program,
            member_ids=[pair.mentor, pair.mentee, pair.stranger],
            kind=ConnectionKind.GROUP,
            name="Circle",
        )
        await db.commit()
    await login(client, "ana@example.org")

    page = await client.get(f"/connections/{group.id}/schedule")

    assert page.status_code == 200
    assert f'href="/groups/{group.id}"' in page.text
    assert "Week of" not in page.text


async def test_acting_admin_sees_the_participants_view(app: object, services: AppServices) -> None:
    """Working on behalf of Ana shows Ana's page (her zone, her partner)."""
    pair = await make_pair(services)
    await connect_calendar(services, pair.mentor)
    await create_user(services, "helper@example.org", name="Helper", global_admin=True)
    async with await new_client(app) as admin_client:
        csrf = await login(admin_client, "helper@example.org")
        started = await admin_client.post(
            "/admin/act-as",
            data={"user_id": str(pair.mentor), "reason": "help", "csrf_token": csrf},
        )
        assert started.status_code == 303
        page = await admin_client.get(_url(pair))
    assert page.status_code == 200
    assert UNKNOWN in page.text
    assert "<strong>Europe/Paris</strong>" in page.text


async def test_a_refused_booking_offers_the_three_nearest_free_times(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    pair = await _both_connected(services)
    tuesday = next_monday(PARIS) + timedelta(days=1)
    # Maya is busy 16:00-17:00 Paris time; Ana asks for 16:00.
    await add_busy(
        services, pair.mentee, local(tuesday, 16, 0, PARIS), local(tuesday, 17, 0, PARIS)
    )
    csrf = await login(client, "ana@example.org")
    form = {
        "title": "Catch-up",
        "description": "",
        "location": "",
        "date": tuesday.isoformat(),
        "time": "16:00",
        "duration": "30",
        "csrf_token": csrf,
    }
    refused = await client.post(f"/connections/{pair.connection}/meetings", data=form)
    assert refused.status_code == 409
    assert "Pick one of the nearest free times." in refused.text
    assert "make them optional" not in refused.text and "no longer available" not in refused.text
    picks = re.findall(r'<button type="submit" name="pick" value="([^"]+)"', refused.text)
    expected = [local(tuesday, h, m, PARIS) for h, m in ((15, 0), (15, 30), (17, 0))]
    assert picks == [e.strftime("%Y-%m-%dT%H:%M:%SZ") for e in expected]
    assert f"Book {tuesday:%a %d %b}, 15:30" in refused.text
    assert 'value="Catch-up"' in refused.text  # what was typed is kept

    booked = await client.post(
        f"/connections/{pair.connection}/meetings", data={**form, "pick": picks[2]}
    )
    assert booked.status_code == 303
    page = await client.get(booked.headers["location"])
    assert "Catch-up" in page.text and "17:00" in page.text


async def test_the_week_page_takes_one_connection_from_the_pool(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    """The session the guard checked the cookie in is the page's session: one connection
    per request from the pool, not two (other pages still open their own); and four
    statements: the session, the pair with its members (who need no second visibility
    check), the program's rules, the people with their calendars and booked meetings."""
    from sqlalchemy import event

    pair = await _both_connected(services)
    await login(client, "ana@example.org")
    url = _url(pair, week=next_monday(PARIS).isoformat())
    assert (await client.get(url)).status_code == 200  # warm
    checkouts: list[str] = []
    statements: list[str] = []

    def count(*_args: object) -> None:
        checkouts.append("checkout")

    def record(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(statement)

    sync_engine = services.db.engine.sync_engine
    event.listen(sync_engine, "checkout", count)
    event.listen(sync_engine, "before_cursor_execute", record)
    try:
        page = await client.get(url)
        assert page.status_code == 200 and "Book" in page.text
        assert len(checkouts) == 1
        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 4, statements
        assert not any("connection_member AS theirs" in s for s in selects)
        assert any("meeting_attendee.user_id" in s and "user_account" in s for s in selects)
        meetings = await client.get("/meetings")
        assert meetings.status_code == 200
        assert len(checkouts) == 3  # the guard's, then the page's own
    finally:
        event.remove(sync_engine, "checkout", count)
        event.remove(sync_engine, "before_cursor_execute", record)

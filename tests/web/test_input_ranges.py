"""Every time a user gives has a range (about two years either way): year 1 and year 9999
come back as field errors from the API, 422 forms from the pages and 400 for a bad query
parameter, never a 500; pages stay up for times already stored at the edges."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from server.models import PollSlot, User
from server.services.errors import ValidationFailed
from server.services.invites import MemoryMailer
from server.services.validation import HORIZON, check_moment, wall_clock_to_utc
from server.wiring import AppServices
from tests.conftest import gql, login, use_mailer
from tests.meetings_support import World, make_world
from tests.polls_support import make_circle, make_poll, slot_starts
from tests.polls_support import token_for as poll_token
from tests.schema.test_graphql_meetings import SCHEDULE, UPDATE, _input
from tests.schema.test_graphql_programs import token_for
from tests.web.test_meetings_pages import _email

YEAR_ONE = ("0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00+05:00")
YEAR_9999 = ("9999-12-31T23:55:00+00:00", "9999-12-31T23:55:00-05:00", "9999-12-31T10:00:00Z")
FAR = (datetime.now(UTC) + timedelta(days=3 * 365)).replace(minute=0, second=0, microsecond=0)
EXTREMES = (*YEAR_ONE, *YEAR_9999)
AVAILABILITY = """
query A($input: AvailabilityInput!) { availability(input: $input) { slots { start } } }"""
CREATE_POLL = """
mutation C($input: CreatePollInput!) {
  createPoll(input: $input) { poll { id } errors { field code message } }
}"""


@pytest.fixture
async def world(services: AppServices) -> World:
    use_mailer(services, MemoryMailer())
    return await make_world(services)


def test_the_rule_itself() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert check_moment(now + HORIZON, field="start", now=now) == now + HORIZON
    for bad in (now + HORIZON + timedelta(minutes=1), now - HORIZON - timedelta(minutes=1)):
        with pytest.raises(ValidationFailed, match="within two years") as refused:
            check_moment(bad, field="start", now=now)
        assert refused.value.field == "start"
    for extreme in (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)):
        with pytest.raises(ValidationFailed, match="within two years"):
            check_moment(extreme, field="start", now=now)
    with pytest.raises(ValidationFailed, match="within two years"):  # no OverflowError
        check_moment(datetime.fromisoformat("0001-01-01T00:00:00+05:00"), field="x", now=now)
    with pytest.raises(ValidationFailed, match="offset"):
        check_moment(datetime(2026, 6, 2), field="start", now=now)
    # Wall-clock times that do not fit in a datetime once moved to UTC are field errors.
    with pytest.raises(ValidationFailed, match="within two years"):
        wall_clock_to_utc(datetime(1, 1, 1), "Europe/Paris")
    with pytest.raises(ValidationFailed, match="within two years"):
        wall_clock_to_utc(datetime(9999, 12, 31, 23, 55), "America/New_York")


@pytest.mark.parametrize("value", [*EXTREMES, FAR.isoformat()])
async def test_availability_refuses_times_out_of_range_on_either_end(
    client: httpx.AsyncClient, services: AppServices, world: World, value: str
) -> None:
    token = await token_for(services, world.mentor)
    ordinary = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    for start, end, field in ((value, ordinary, "start"), (ordinary, value, "end")):
        body = await gql(
            client,
            AVAILABILITY,
            {
                "input": {
                    "participantIds": [str(world.mentor), str(world.mentee)],
                    "start": start,
                    "end": end,
                    "durationMinutes": 30,
                }
            },
            token=token,
            allow_errors=True,
        )
        error = body["errors"][0]
        assert error["extensions"] == {"code": "invalid", "field": field}, error
        assert "within two years" in error["message"]


@pytest.mark.parametrize("value", [*YEAR_9999, FAR.isoformat()])
async def test_schedule_and_update_meeting_refuse_far_times_with_typed_errors(
    client: httpx.AsyncClient, services: AppServices, world: World, value: str
) -> None:
    token = await token_for(services, world.mentor)
    refused = await gql(client, SCHEDULE, {"input": _input(world, start=value)}, token=token)
    assert refused["data"]["scheduleMeeting"]["errors"] == [
        {
            "field": "start",
            "code": "INVALID",
            "message": "The start must be within two years of today.",
        }
    ]
    booked = await gql(client, SCHEDULE, {"input": _input(world)}, token=token)
    meeting_id = booked["data"]["scheduleMeeting"]["meeting"]["id"]
    moved = await gql(
        client, UPDATE, {"input": {"meetingId": meeting_id, "start": value}}, token=token
    )
    assert moved["data"]["updateMeeting"]["errors"][0]["field"] == "start"
    assert "within two years" in moved["data"]["updateMeeting"]["errors"][0]["message"]


@pytest.mark.parametrize("value", YEAR_ONE)
async def test_year_one_is_a_typed_error_too(
    client: httpx.AsyncClient, services: AppServices, world: World, value: str
) -> None:
    token = await token_for(services, world.mentor)
    refused = await gql(client, SCHEDULE, {"input": _input(world, start=value)}, token=token)
    assert refused["data"]["scheduleMeeting"]["errors"][0]["field"] == "start"


def _form(day: str, clock: str, csrf: str) -> dict[str, str]:
    return {
        "title": "Sync",
        "description": "",
        "location": "",
        "date": day,
        "time": clock,
        "duration": "30",
        "csrf_token": csrf,
    }


@pytest.mark.parametrize(
    ("day", "clock"),
    [
        ("0001-01-01", "00:00"),
        ("9999-12-31", "23:55"),
        ("9999-12-31", "10:00"),
        (f"{FAR:%Y-%m-%d}", "10:00"),
    ],
)
async def test_booking_and_edit_pages_rerender_with_422(
    client: httpx.AsyncClient, services: AppServices, world: World, day: str, clock: str
) -> None:
    token = await token_for(services, world.mentor)
    booked = await gql(client, SCHEDULE, {"input": _input(world)}, token=token)
    meeting_id = booked["data"]["scheduleMeeting"]["meeting"]["id"]
    csrf = await login(client, await _email(services, world.mentor))
    for url in (f"/connections/{world.connection}/meetings", f"/meetings/{meeting_id}/edit"):
        page = await client.post(url, data=_form(day, clock, csrf))
        assert page.status_code == 422, url
        assert "within two years of today" in page.text
        assert f'value="{day}"' in page.text  # the form comes back with what was typed


@pytest.mark.parametrize(
    "start", [*EXTREMES, "0001-01-01T00:00:00", "not-a-time", FAR.strftime("%Y-%m-%dT%H:%M:%SZ")]
)
async def test_a_bad_start_in_the_booking_link_is_a_400(
    client: httpx.AsyncClient, services: AppServices, world: World, start: str
) -> None:
    await login(client, await _email(services, world.mentor))
    url = f"/connections/{world.connection}/meetings/new"
    assert (await client.get(url, params={"start": start})).status_code == 400
    assert (await client.get(url)).status_code == 200  # no start at all: an empty form


@pytest.mark.parametrize(
    "slot", ["9999-12-31T23:00:00+00:00", "9999-12-31T10:00:00+00:00", FAR.isoformat()]
)
async def test_a_poll_slot_out_of_range_is_refused_at_creation(
    client: httpx.AsyncClient, services: AppServices, slot: str
) -> None:
    circle = await make_circle(services, size=2)
    token = await poll_token(services, circle.organizer)
    inputs: list[dict[str, Any]] = [
        {"slots": [{"start": slot}]},
        {"slots": [{"start": slot}], "deadline": "9999-12-30T10:00:00+00:00"},
    ]
    for extra in inputs:
        body = await gql(
            client,
            CREATE_POLL,
            {"input": {"groupId": str(circle.group), "title": "T", "durationMinutes": 60, **extra}},
            token=token,
        )
        assert body["data"]["createPoll"]["poll"] is None
        error = body["data"]["createPoll"]["errors"][0]
        assert (error["field"], error["code"]) == ("slots", "INVALID")
        assert "within two years" in error["message"]
    # The new-poll page refuses the same slot typed by hand.
    csrf = await login(client, circle.emails[circle.organizer])
    page = await client.post(
        f"/groups/{circle.group}/polls/new",
        data={
            "title": "T",
            "duration": "60",
            "extra_slot": slot.removesuffix("+00:00"),
            "csrf_token": csrf,
        },
    )
    assert page.status_code == 422 and "within two years" in page.text


async def test_a_deadline_in_year_one_is_a_field_error(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    circle = await make_circle(services, size=2)
    token = await poll_token(services, circle.organizer)
    body = await gql(
        client,
        CREATE_POLL,
        {
            "input": {
                "groupId": str(circle.group),
                "title": "T",
                "durationMinutes": 60,
                "slots": [{"start": slot_starts(1)[0].isoformat()}],
                "deadline": "0001-01-01T00:00:00+05:00",
            }
        },
        token=token,
    )
    assert body["data"]["createPoll"]["errors"][0]["field"] == "deadline"


async def test_poll_page_and_tally_survive_a_stored_year_9999_slot(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    """A slot written before the rule existed, seen from a zone east of UTC (where it
    would be year 10000): the page and its 5-second tally answer, in UTC."""
    circle = await make_circle(services, size=2)
    poll = await make_poll(services, circle, slots=1)
    member = circle.members[1]
    async with services.db.session() as db:
        user = await db.get(User, member)
        assert user is not None
        user.time_zone = "Pacific/Kiritimati"
        db.add(user)
        edge = datetime(9999, 12, 31, 22, 0, tzinfo=UTC)
        db.add(
            PollSlot(
                id=uuid.uuid4(), poll_id=poll.id, start_at=edge, end_at=edge + timedelta(hours=1)
            )
        )
        await db.commit()
    await login(client, circle.emails[member])
    for url in (f"/polls/{poll.id}", f"/polls/{poll.id}/tally"):
        page = await client.get(url)
        assert page.status_code == 200, url
        assert "31 Dec 9999, 22:00 UTC" in page.text

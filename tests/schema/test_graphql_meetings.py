"""The meetings API: book, change, cancel, answer; who may see and do what; no N+1."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from server.services.invites import MemoryMailer
from server.wiring import AppServices
from tests.conftest import create_user, gql, statements_run, use_mailer
from tests.meetings_support import World, event_of, make_world, weekday_slot
from tests.schema.test_graphql_programs import token_for

ERRORS = "errors { field code message }"
MEETING_FIELDS = """
  id title description location start end timeZone status sequence icalUid connectionId calendarSyncState
  organizer { id name }
  attendees { name email response respondedAt isOrganizer user { id } }
"""
SCHEDULE = f"""
mutation Schedule($input: ScheduleMeetingInput!) {{
  scheduleMeeting(input: $input) {{ meeting {{ {MEETING_FIELDS} }} {ERRORS} }}
}}"""
UPDATE = f"""
mutation Update($input: UpdateMeetingInput!) {{
  updateMeeting(input: $input) {{ meeting {{ {MEETING_FIELDS} }} {ERRORS} }}
}}"""
CANCEL = f"""
mutation Cancel($id: ID!) {{
  cancelMeeting(input: {{meetingId: $id}}) {{ meeting {{ id status sequence }} {ERRORS} }}
}}"""
RESPOND = f"""
mutation Respond($id: ID!, $response: RsvpResponse!) {{
  respondToMeeting(input: {{meetingId: $id, response: $response}}) {{
    meeting {{ id attendees {{ email response isOrganizer }} }} {ERRORS}
  }}
}}"""
MEETING = f"query M($id: ID!) {{ meeting(id: $id) {{ {MEETING_FIELDS} }} }}"
MEETINGS = """
query List($upcoming: Boolean, $connectionId: ID) {
  meetings(upcoming: $upcoming, connectionId: $connectionId) { id title attendees { email response user { name } } organizer { name } }
}"""


@pytest.fixture
def mailer(services: AppServices) -> MemoryMailer:
    memory = MemoryMailer()
    use_mailer(services, memory)
    return memory


@pytest.fixture
async def world(services: AppServices, mailer: MemoryMailer) -> World:
    return await make_world(services)


def _input(world: World, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "connectionId": str(world.connection),
        "start": weekday_slot().isoformat(),
        "durationMinutes": 45,
        "title": "Kick-off",
        "description": "Goals for the term",
        "location": "Room 4",
    }
    values.update(overrides)
    return values


async def test_schedule_then_read_change_answer_and_cancel(
    client: httpx.AsyncClient, services: AppServices, world: World, mailer: MemoryMailer
) -> None:
    mentor, mentee = (
        await token_for(services, world.mentor),
        await token_for(services, world.mentee),
    )
    booked = await gql(client, SCHEDULE, {"input": _input(world)}, token=mentor)
    payload = booked["data"]["scheduleMeeting"]
    assert payload["errors"] == []
    meeting = payload["meeting"]
    assert (
        meeting["title"] == "Kick-off"
        and meeting["status"] == "SCHEDULED"
        and meeting["sequence"] == 0
    )
    assert meeting["icalUid"].endswith("@tandem") and meeting["calendarSyncState"] == "NONE"
    assert meeting["organizer"]["id"] == str(world.mentor)
    answers = {a["user"]["id"]: (a["response"], a["isOrganizer"]) for a in meeting["attendees"]}
    assert answers == {
        str(world.mentor): ("ACCEPTED", True),
        str(world.mentee): ("NEEDS_ACTION", False),
    }
    assert len(mailer.sent) == 1

    seen = await gql(client, MEETING, {"id": meeting["id"]}, token=mentee)
    assert seen["data"]["meeting"]["id"] == meeting["id"]

    answered = await gql(
        client, RESPOND, {"id": meeting["id"], "response": "TENTATIVE"}, token=mentee
    )
    assert answered["data"]["respondToMeeting"]["errors"] == []
    mine = [
        a
        for a in answered["data"]["respondToMeeting"]["meeting"]["attendees"]
        if not a["isOrganizer"]
    ]
    assert mine[0]["response"] == "TENTATIVE"

    owner_answer = await gql(
        client, RESPOND, {"id": meeting["id"], "response": "ACCEPTED"}, token=mentor
    )
    assert owner_answer["data"]["respondToMeeting"]["errors"][0]["code"] == "FORBIDDEN"

    changed = await gql(
        client,
        UPDATE,
        {"input": {"meetingId": meeting["id"], "title": "Kick-off (moved)", "durationMinutes": 60}},
        token=mentor,
    )
    updated = changed["data"]["updateMeeting"]["meeting"]
    assert updated["sequence"] == 1 and updated["title"] == "Kick-off (moved)"
    assert event_of(mailer.sent[-1])["sequence"] == "1"

    by_mentee = await gql(
        client, UPDATE, {"input": {"meetingId": meeting["id"], "title": "Hijack"}}, token=mentee
    )
    assert by_mentee["data"]["updateMeeting"]["meeting"] is None
    assert by_mentee["data"]["updateMeeting"]["errors"][0]["code"] == "FORBIDDEN"
    cancel_by_mentee = await gql(client, CANCEL, {"id": meeting["id"]}, token=mentee)
    assert cancel_by_mentee["data"]["cancelMeeting"]["errors"][0]["code"] == "FORBIDDEN"

    cancelled = await gql(client, CANCEL, {"id": meeting["id"]}, token=mentor)
    assert cancelled["data"]["cancelMeeting"]["meeting"] == {
        "id": meeting["id"],
        "status": "CANCELLED",
        "sequence": 2,
    }
    assert event_of(mailer.sent[-1])["method"] == "CANCEL"


async def test_strangers_see_nothing_and_bad_input_is_a_typed_error(
    client: httpx.AsyncClient, services: AppServices, world: World
) -> None:
    mentor = await token_for(services, world.mentor)
    stranger_id = await create_user(services, f"x-{uuid.uuid4().hex[:6]}@example.org", name="X")
    stranger = await token_for(services, stranger_id)
    booked = await gql(client, SCHEDULE, {"input": _input(world)}, token=mentor)
    meeting_id = booked["data"]["scheduleMeeting"]["meeting"]["id"]
    assert (await gql(client, MEETING, {"id": meeting_id}, token=stranger))["data"][
        "meeting"
    ] is None
    assert (await gql(client, MEETING, {"id": "not-a-uuid"}, token=mentor))["data"][
        "meeting"
    ] is None
    assert (await gql(client, MEETINGS, {}, token=stranger))["data"]["meetings"] == []
    refused = await gql(client, RESPOND, {"id": meeting_id, "response": "ACCEPTED"}, token=stranger)
    assert refused["data"]["respondToMeeting"]["errors"][0]["code"] == "NOT_FOUND"
    by_stranger = await gql(client, SCHEDULE, {"input": _input(world)}, token=stranger)
    assert by_stranger["data"]["scheduleMeeting"]["errors"][0]["code"] == "NOT_FOUND"
    taken = await gql(client, SCHEDULE, {"input": _input(world)}, token=mentor)
    error = taken["data"]["scheduleMeeting"]["errors"][0]
    assert (
        error["code"] == "CONFLICT" and error["field"] == "start" and "already" in error["message"]
    )
    short = await gql(client, SCHEDULE, {"input": _input(world, durationMinutes=2)}, token=mentor)
    assert short["data"]["scheduleMeeting"]["errors"][0]["field"] == "durationMinutes"
    anonymous = await gql(client, MEETINGS, {}, allow_errors=True)
    assert anonymous["data"] is None and "Sign in" in anonymous["errors"][0]["message"]


async def test_meeting_lists_load_attendees_without_n_plus_one(
    client: httpx.AsyncClient, services: AppServices, world: World
) -> None:
    mentor = await token_for(services, world.mentor)
    start = weekday_slot(days=3, hour=13)
    await gql(client, SCHEDULE, {"input": _input(world, start=start.isoformat())}, token=mentor)
    with statements_run(services) as one:
        listed = await gql(client, MEETINGS, {"upcoming": True}, token=mentor)
    assert len(listed["data"]["meetings"]) == 1
    for hours in (1, 2, 3, 4):
        moved = (start + timedelta(hours=hours)).isoformat()
        result = await gql(client, SCHEDULE, {"input": _input(world, start=moved)}, token=mentor)
        assert result["data"]["scheduleMeeting"]["errors"] == []
    with statements_run(services) as five:
        listed = await gql(
            client,
            MEETINGS,
            {"upcoming": True, "connectionId": str(world.connection)},
            token=mentor,
        )
    assert len(listed["data"]["meetings"]) == 5
    assert all(
        len(m["attendees"]) == 2 and m["organizer"]["name"] == "Mona Mentor"
        for m in listed["data"]["meetings"]
    )
    assert len(five) == len(one), (len(one), len(five))
    past = await gql(client, MEETINGS, {"upcoming": False}, token=mentor)
    assert past["data"]["meetings"] == []


CANCEL_WITH_MESSAGE = f"""
mutation Cancel($id: ID!, $message: String) {{
  cancelMeeting(input: {{meetingId: $id, message: $message}}) {{ meeting {{ id status }} {ERRORS} }}
}}"""


async def test_cancel_carries_the_organizers_message_and_a_bad_one_changes_nothing(
    client: httpx.AsyncClient, services: AppServices, world: World, mailer: MemoryMailer
) -> None:
    mentor = await token_for(services, world.mentor)
    booked = await gql(client, SCHEDULE, {"input": _input(world)}, token=mentor)
    meeting_id = booked["data"]["scheduleMeeting"]["meeting"]["id"]
    refused = await gql(
        client, CANCEL_WITH_MESSAGE, {"id": meeting_id, "message": "x" * 1001}, token=mentor
    )
    payload = refused["data"]["cancelMeeting"]
    assert payload["meeting"] is None
    assert (payload["errors"][0]["field"], payload["errors"][0]["code"]) == ("message", "INVALID")
    assert len(mailer.sent) == 1  # only the invitation
    done = await gql(
        client, CANCEL_WITH_MESSAGE, {"id": meeting_id, "message": "Moving to May."}, token=mentor
    )
    assert done["data"]["cancelMeeting"]["meeting"]["status"] == "CANCELLED"
    body = mailer.sent[-1].get_body(("plain",))
    assert body is not None and "Moving to May." in str(body.get_content())  # type: ignore[attr-defined]

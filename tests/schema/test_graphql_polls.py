"""The poll API: shapes integrators build on, typed errors, and who may do what."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlmodel import func, select

from server.models import Meeting, PollAnswer
from server.models.base import utcnow
from server.services.invites import MemoryMailer
from server.services.polls import rules as poll_rules
from server.wiring import AppServices
from tests.conftest import gql, use_mailer
from tests.polls_support import Circle, connect, make_circle, slot_starts, token_for

CREATE = """
mutation Create($input: CreatePollInput!) {
  createPoll(input: $input) {
    poll { id title status inviteeCount connectedInviteeCount
           slots { id start end unavailableUserIds yesCount ifNeedBeCount noCount } }
    errors { field code message }
  }
}"""
POLL = """
query Poll($id: ID!) {
  poll(id: $id) {
    id title status inviteeCount connectedInviteeCount bestSlotId
    invitees { user { id } optional answered }
    slots { id start end unavailableUserIds yesCount ifNeedBeCount noCount answers { user { id } answer } }
    comments { user { id } body }
  }
}"""
POLLS = """
query Polls($groupId: ID!, $status: PollStatus) {
  polls(groupId: $groupId, status: $status) { id title status }
}"""
ANSWER = """
mutation Answer($input: AnswerPollInput!) {
  answerPoll(input: $input) {
    poll { id slots { id yesCount ifNeedBeCount noCount answers { user { id } answer } } }
    errors { field code message }
  }
}"""
COMMENT = """
mutation Comment($input: AddPollCommentInput!) {
  addPollComment(input: $input) { comment { user { id } body } errors { field code message } }
}"""
FINALIZE = """
mutation Finalize($input: FinalizePollInput!) {
  finalizePoll(input: $input) {
    meeting { id title start end attendees { user { id } } }
    poll { id status }
    errors { field code message }
  }
}"""


def _create_input(circle: Circle, count: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "groupId": str(circle.group),
        "title": "Circle kickoff",
        "durationMinutes": 60,
        "slots": [{"start": s.isoformat()} for s in slot_starts(count)],
        **extra,
    }


async def _create(
    client: httpx.AsyncClient, token: str, circle: Circle, **extra: Any
) -> dict[str, Any]:
    body = await gql(client, CREATE, {"input": _create_input(circle, **extra)}, token=token)
    payload: dict[str, Any] = body["data"]["createPoll"]
    return payload


async def _answer(
    client: httpx.AsyncClient, token: str, poll_id: str, answers: list[tuple[str, str]]
) -> dict[str, Any]:
    variables = {
        "input": {"pollId": poll_id, "answers": [{"slotId": s, "answer": a} for s, a in answers]}
    }
    body = await gql(client, ANSWER, variables, token=token)
    payload: dict[str, Any] = body["data"]["answerPoll"]
    return payload


async def _rows(services: AppServices) -> int:
    async with services.db.session() as db:
        return int((await db.exec(select(func.count()).select_from(PollAnswer))).one())


async def test_create_answer_and_read_a_poll(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    use_mailer(services, MemoryMailer())
    circle = await make_circle(services)
    ana, bo = circle.members[1], circle.members[2]
    first = slot_starts(1)[0]
    await connect(services, bo, [(first, first + timedelta(minutes=15))])
    organizer = await token_for(services, circle.organizer)
    created = await _create(client, organizer, circle)
    assert created["errors"] == []
    poll = created["poll"]
    assert poll["status"] == "OPEN" and poll["title"] == "Circle kickoff"
    assert (poll["inviteeCount"], poll["connectedInviteeCount"]) == (4, 1)
    assert [s["unavailableUserIds"] for s in poll["slots"]] == [[str(bo)], [], []]
    assert poll["slots"][0]["start"].endswith("+00:00")
    slots = [s["id"] for s in poll["slots"]]

    ana_token = await token_for(services, ana)
    answered = await _answer(
        client, ana_token, poll["id"], list(zip(slots, ["YES", "IF_NEED_BE", "NO"], strict=True))
    )
    assert answered["errors"] == []
    tallies = [(s["yesCount"], s["ifNeedBeCount"], s["noCount"]) for s in answered["poll"]["slots"]]
    assert tallies == [(1, 0, 0), (0, 1, 0), (0, 0, 1)]
    # The voter is whoever the token belongs to; the input has no user to fake.
    assert answered["poll"]["slots"][0]["answers"] == [{"user": {"id": str(ana)}, "answer": "YES"}]

    body = await gql(client, POLL, {"id": poll["id"]}, token=await token_for(services, bo))
    read = body["data"]["poll"]
    assert read["bestSlotId"] == slots[0]
    assert {i["user"]["id"]: i["answered"] for i in read["invitees"]}[str(ana)] is True
    assert len(circle.mailer.sent) == 0  # the API used services.mailer
    assert len(services.mailer.sent) == 3


async def test_voter_cannot_be_named_in_the_input(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    circle = await make_circle(services, size=2)
    token = await token_for(services, circle.organizer)
    poll = (await _create(client, token, circle, count=1))["poll"]
    variables = {
        "input": {
            "pollId": poll["id"],
            "userId": str(circle.members[1]),
            "answers": [{"slotId": poll["slots"][0]["id"], "answer": "YES"}],
        }
    }
    body = await gql(client, ANSWER, variables, token=token, allow_errors=True)
    assert body.get("errors") and body.get("data") is None
    assert await _rows(services) == 0


async def test_typed_errors_change_nothing(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    circle = await make_circle(services)
    organizer = await token_for(services, circle.organizer)
    member = await token_for(services, circle.members[1])
    stranger = await token_for(services, circle.stranger)

    empty = await _create(client, organizer, circle, count=0)
    assert empty["poll"] is None
    assert empty["errors"] == [
        {"field": "slots", "code": "INVALID", "message": "Propose at least one slot."}
    ]
    too_many = await _create(client, organizer, circle, count=51)
    assert too_many["errors"][0]["field"] == "slots" and "50" in too_many["errors"][0]["message"]
    assert (await _create(client, member, circle))["errors"][0]["code"] == "FORBIDDEN"
    assert (await _create(client, stranger, circle))["errors"][0]["code"] == "NOT_FOUND"

    poll = (await _create(client, organizer, circle))["poll"]
    other = (await _create(client, organizer, circle, count=2))["poll"]
    slots = [s["id"] for s in poll["slots"]]
    foreign = [*slots[:2], other["slots"][0]["id"]]
    result = await _answer(client, member, poll["id"], [(s, "YES") for s in foreign])
    assert result["poll"] is None
    assert result["errors"] == [
        {"field": "answers", "code": "NOT_FOUND", "message": "Slot not found."}
    ]
    result = await _answer(client, stranger, poll["id"], [(s, "YES") for s in slots])
    assert result["errors"][0]["code"] == "NOT_FOUND"
    result = await _answer(client, member, poll["id"], [(slots[0], "YES")])
    assert (
        result["errors"][0]["code"] == "INVALID" and "every slot" in result["errors"][0]["message"]
    )
    result = await _answer(client, member, poll["id"], [(slots[0], "YES")] * 51)
    assert result["errors"][0]["field"] == "answers"
    assert await _rows(services) == 0


async def test_a_closed_poll_refuses_votes(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    use_mailer(services, MemoryMailer())
    circle = await make_circle(services, size=2)
    organizer = await token_for(services, circle.organizer)
    deadline = (utcnow() + timedelta(hours=1)).isoformat()
    poll = (await _create(client, organizer, circle, deadline=deadline))["poll"]
    async with services.db.session() as db:
        closed = await poll_rules.close_due_polls(db, circle.deps(), utcnow() + timedelta(hours=2))
    assert closed == 1
    member = await token_for(services, circle.members[1])
    result = await _answer(client, member, poll["id"], [(s["id"], "YES") for s in poll["slots"]])
    assert result["errors"] == [
        {
            "field": None,
            "code": "CONFLICT",
            "message": "This poll is closed: it no longer accepts answers.",
        }
    ]
    listed = await gql(
        client, POLLS, {"groupId": str(circle.group), "status": "CLOSED"}, token=member
    )
    assert [p["id"] for p in listed["data"]["polls"]] == [poll["id"]]
    listed = await gql(
        client, POLLS, {"groupId": str(circle.group), "status": "OPEN"}, token=member
    )
    assert listed["data"]["polls"] == []
    assert await _rows(services) == 0


async def test_non_members_see_nothing(client: httpx.AsyncClient, services: AppServices) -> None:
    circle = await make_circle(services, size=2)
    organizer = await token_for(services, circle.organizer)
    poll = (await _create(client, organizer, circle))["poll"]
    stranger = await token_for(services, circle.stranger)
    assert (await gql(client, POLL, {"id": poll["id"]}, token=stranger))["data"]["poll"] is None
    assert (await gql(client, POLL, {"id": "not-a-uuid"}, token=stranger))["data"]["poll"] is None
    listed = await gql(client, POLLS, {"groupId": str(circle.group)}, token=stranger)
    assert listed["data"]["polls"] == []
    comment = await gql(
        client, COMMENT, {"input": {"pollId": poll["id"], "body": "hi"}}, token=stranger
    )
    assert comment["data"]["addPollComment"]["errors"][0]["code"] == "NOT_FOUND"
    anonymous = await gql(client, POLL, {"id": poll["id"]}, allow_errors=True)
    assert anonymous["errors"] and anonymous["data"] == {"poll": None}


async def test_comments_are_listed_on_the_poll(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    circle = await make_circle(services, size=2)
    organizer = await token_for(services, circle.organizer)
    poll = (await _create(client, organizer, circle))["poll"]
    member = await token_for(services, circle.members[1])
    added = await gql(
        client,
        COMMENT,
        {"input": {"pollId": poll["id"], "body": "<i>Mornings</i> please"}},
        token=member,
    )
    assert added["data"]["addPollComment"]["errors"] == []
    read = await gql(client, POLL, {"id": poll["id"]}, token=organizer)
    assert read["data"]["poll"]["comments"] == [
        {"user": {"id": str(circle.members[1])}, "body": "<i>Mornings</i> please"}
    ]
    blank = await gql(client, COMMENT, {"input": {"pollId": poll["id"], "body": " "}}, token=member)
    assert blank["data"]["addPollComment"]["errors"][0]["field"] == "body"


async def test_only_the_organizer_finalizes(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    use_mailer(services, MemoryMailer())
    circle = await make_circle(services)
    organizer = await token_for(services, circle.organizer)
    poll = (await _create(client, organizer, circle))["poll"]
    slot = poll["slots"][1]
    member = await token_for(services, circle.members[1])
    variables = {"input": {"pollId": poll["id"], "slotId": slot["id"]}}
    refused = (await gql(client, FINALIZE, variables, token=member))["data"]["finalizePoll"]
    assert refused["meeting"] is None and refused["errors"][0]["code"] == "FORBIDDEN"
    stranger = await token_for(services, circle.stranger)
    hidden = (await gql(client, FINALIZE, variables, token=stranger))["data"]["finalizePoll"]
    assert hidden["errors"][0]["code"] == "NOT_FOUND"

    done = (await gql(client, FINALIZE, variables, token=organizer))["data"]["finalizePoll"]
    assert done["errors"] == []
    assert done["poll"] == {"id": poll["id"], "status": "FINALIZED"}
    meeting = done["meeting"]
    assert (meeting["title"], meeting["start"], meeting["end"]) == (
        "Circle kickoff",
        slot["start"],
        slot["end"],
    )
    assert {a["user"]["id"] for a in meeting["attendees"]} == {str(m) for m in circle.members}

    again = (await gql(client, FINALIZE, variables, token=organizer))["data"]["finalizePoll"]
    assert again["errors"][0]["code"] == "CONFLICT"
    late = await _answer(client, member, poll["id"], [(s["id"], "YES") for s in poll["slots"]])
    assert late["errors"][0]["code"] == "CONFLICT" and "finalized" in late["errors"][0]["message"]
    async with services.db.session() as db:
        assert (await db.exec(select(func.count()).select_from(Meeting))).one() == 1

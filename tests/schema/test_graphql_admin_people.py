"""The GraphQL side of the admin pages' services: taking roles away, deactivating and
reactivating, group members, and naming a pair's mentor."""

from __future__ import annotations

import httpx
from sqlmodel import select

from server.models import AuditEvent
from server.wiring import AppServices
from tests.conftest import create_user, gql
from tests.schema.test_graphql_programs import ADD_MEMBER, provision, token_for

REMOVE_MEMBER = """
mutation R($programId: ID!, $userId: ID!, $role: ProgramRole!) {
  removeProgramMember(input: {programId: $programId, userId: $userId, role: $role}) {
    removed errors { field code message }
  }
}"""
SET_ACTIVE = """
mutation A($programId: ID!, $userId: ID!, $active: Boolean!) {
  setUserActive(input: {programId: $programId, userId: $userId, active: $active}) {
    user { id } active errors { code message }
  }
}"""
PAIR = """
mutation P($programId: ID!, $memberIds: [ID!]!, $mentorId: ID) {
  createMentoringConnection(input: {programId: $programId, memberIds: $memberIds, kind: PAIR,
                                    mentorId: $mentorId}) {
    connection { members { user { id } role } } errors { field message }
  }
}"""
GROUP = """
mutation G($programId: ID!, $memberIds: [ID!]!) {
  createMentoringConnection(input: {programId: $programId, memberIds: $memberIds, kind: GROUP,
                                    name: "Circle"}) {
    connection { id } errors { message }
  }
}"""
ADD_TO_GROUP = """
mutation M($connectionId: ID!, $userId: ID!) {
  addConnectionMember(input: {connectionId: $connectionId, userId: $userId}) {
    connection { members { user { id } } } errors { field code message }
  }
}"""
REMOVE_FROM_GROUP = """
mutation M($connectionId: ID!, $userId: ID!) {
  removeConnectionMember(input: {connectionId: $connectionId, userId: $userId}) {
    connection { members { user { id } } } errors { field code message }
  }
}"""


async def test_roles_are_removed_and_accounts_deactivated_through_the_api(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    p = await provision(client, services)
    token, program = str(p["token"]), p["program"]
    mentee = str(p["mentee"])
    removed = await gql(
        client,
        REMOVE_MEMBER,
        {"programId": program, "userId": mentee, "role": "MENTEE"},
        token=token,
    )
    assert removed["data"]["removeProgramMember"] == {"removed": True, "errors": []}
    again = await gql(
        client,
        REMOVE_MEMBER,
        {"programId": program, "userId": mentee, "role": "MENTEE"},
        token=token,
    )
    assert again["data"]["removeProgramMember"]["errors"][0]["code"] == "NOT_FOUND"
    mentor_token = await token_for(services, p["mentor"])  # type: ignore[arg-type]
    off = await gql(
        client,
        SET_ACTIVE,
        {"programId": program, "userId": str(p["mentor"]), "active": False},
        token=token,
    )
    assert off["data"]["setUserActive"]["active"] is False
    refused = await gql(client, "query { me { id } }", token=mentor_token, allow_errors=True)
    assert refused.get("data") is None
    on = await gql(
        client,
        SET_ACTIVE,
        {"programId": program, "userId": str(p["mentor"]), "active": True},
        token=token,
    )
    assert on["data"]["setUserActive"] == {
        "user": {"id": str(p["mentor"])},
        "active": True,
        "errors": [],
    }
    async with services.db.session() as db:
        actions = [e.action for e in (await db.exec(select(AuditEvent))).all()]
    assert {"program.member_removed", "user.deactivated", "user.reactivated"} <= set(actions)


async def test_strangers_cannot_deactivate(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    p = await provision(client, services)
    stranger_token = await token_for(services, p["stranger"])  # type: ignore[arg-type]
    refused = await gql(
        client,
        SET_ACTIVE,
        {"programId": p["program"], "userId": str(p["mentor"]), "active": False},
        token=stranger_token,
    )
    assert refused["data"]["setUserActive"]["errors"][0]["code"] == "NOT_FOUND"
    works = await token_for(services, p["mentor"])  # type: ignore[arg-type]
    assert (await gql(client, "query { me { id } }", token=works))["data"]["me"]


async def test_pair_mentor_and_group_members(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    p = await provision(client, services)
    token, program = str(p["token"]), p["program"]
    mentor, mentee = str(p["mentor"]), str(p["mentee"])
    # The program mentee mentors in this pair because the input says so.
    pair = await gql(
        client,
        PAIR,
        {"programId": program, "memberIds": [mentor, mentee], "mentorId": mentee},
        token=token,
    )
    roles = {
        m["user"]["id"]: m["role"]
        for m in pair["data"]["createMentoringConnection"]["connection"]["members"]
    }
    assert roles == {mentee: "mentor", mentor: "mentee"}
    extra = await create_user(services, "third@example.org", name="Third", password="")
    added = await gql(
        client,
        ADD_MEMBER,
        {"programId": program, "userId": str(extra), "role": "PARTICIPANT"},
        token=token,
    )
    assert added["data"]["addProgramMember"]["errors"] == []
    group = await gql(
        client, GROUP, {"programId": program, "memberIds": [mentor, mentee]}, token=token
    )
    group_id = group["data"]["createMentoringConnection"]["connection"]["id"]
    joined = await gql(
        client, ADD_TO_GROUP, {"connectionId": group_id, "userId": str(extra)}, token=token
    )
    members = joined["data"]["addConnectionMember"]["connection"]["members"]
    assert {m["user"]["id"] for m in members} == {mentor, mentee, str(extra)}
    stranger = await gql(
        client, ADD_TO_GROUP, {"connectionId": group_id, "userId": str(p["stranger"])}, token=token
    )
    assert stranger["data"]["addConnectionMember"]["errors"] == [
        {"field": "userId", "code": "INVALID", "message": "This person is not in the program."}
    ]
    left = await gql(
        client, REMOVE_FROM_GROUP, {"connectionId": group_id, "userId": mentee}, token=token
    )
    members = left["data"]["removeConnectionMember"]["connection"]["members"]
    assert {m["user"]["id"] for m in members} == {mentor, str(extra)}

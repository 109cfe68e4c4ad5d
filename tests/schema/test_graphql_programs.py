"""The provisioning API: programs, members, connections, settings; who may see what."""

from __future__ import annotations

import uuid

import httpx

from server.services.people import api_tokens
from server.wiring import AppServices
from tests.conftest import create_user, gql

CREATE_PROGRAM = """
mutation Create($name: String!) {
  createProgram(input: {name: $name}) { program { id name } errors { field code message } }
}"""
ADD_MEMBER = """
mutation Add($programId: ID!, $userId: ID!, $role: ProgramRole!) {
  addProgramMember(input: {programId: $programId, userId: $userId, role: $role}) {
    member { user { id name } role } errors { field code message }
  }
}"""
CREATE_CONNECTION = """
mutation Conn($programId: ID!, $memberIds: [ID!]!, $kind: ConnectionKind!, $name: String) {
  createMentoringConnection(input: {programId: $programId, memberIds: $memberIds, kind: $kind, name: $name}) {
    connection { id kind name members { user { id } role } } errors { field code message }
  }
}"""
UPDATE_SETTINGS = """
mutation Settings($input: UpdateProgramSettingsInput!) {
  updateProgramSettings(input: $input) {
    program { id settings { allowWeekends earliestHour latestHour allowedProviders groupPollsEnabled twoWaySyncEnabled } }
    errors { field code message }
  }
}"""
PROGRAM = "query P($id: ID!) { program(id: $id) { id name members { user { id } role } } }"
USER = "query U($id: ID!) { user(id: $id) { id name calendar { status provider } } }"
ME = "{ me { id name email timeZone calendar { status } } }"


async def token_for(services: AppServices, user_id: uuid.UUID) -> str:
    async with services.db.session() as db:
        from server.models import User

        user = await db.get(User, user_id)
        assert user is not None
        raw, _ = await api_tokens.create_token(db, user, "test")
        await db.commit()
        return raw


async def provision(client: httpx.AsyncClient, services: AppServices) -> dict[str, object]:
    admin = await create_user(services, "root@example.org", name="Root", global_admin=True)
    mentor = await create_user(services, "mentor@example.org", name="Maya")
    mentee = await create_user(services, "mentee@example.org", name="Mo")
    stranger = await create_user(services, "stranger@example.org", name="Stan")
    token = await token_for(services, admin)
    created = await gql(client, CREATE_PROGRAM, {"name": "Engineering"}, token=token)
    program_id = created["data"]["createProgram"]["program"]["id"]
    for user_id, role in ((mentor, "MENTOR"), (mentee, "MENTEE")):
        added = await gql(
            client,
            ADD_MEMBER,
            {"programId": program_id, "userId": str(user_id), "role": role},
            token=token,
        )
        assert added["data"]["addProgramMember"]["errors"] == []
    return {
        "admin": admin,
        "mentor": mentor,
        "mentee": mentee,
        "stranger": stranger,
        "token": token,
        "program": program_id,
    }


async def test_provisioning_flow_creates_pair(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    p = await provision(client, services)
    result = await gql(
        client,
        CREATE_CONNECTION,
        {
            "programId": p["program"],
            "memberIds": [str(p["mentor"]), str(p["mentee"])],
            "kind": "PAIR",
        },
        token=str(p["token"]),
    )
    payload = result["data"]["createMentoringConnection"]
    assert payload["errors"] == []
    connection = payload["connection"]
    assert connection["kind"] == "PAIR" and connection["name"] == "Maya & Mo"
    uuid.UUID(connection["id"])  # ids are UUIDs
    roles = {m["user"]["id"]: m["role"] for m in connection["members"]}
    assert roles == {str(p["mentor"]): "mentor", str(p["mentee"]): "mentee"}


async def test_expected_failures_are_typed_errors(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    p = await provision(client, services)
    token = str(p["token"])
    dup = await gql(client, CREATE_PROGRAM, {"name": "Engineering"}, token=token)
    assert dup["data"]["createProgram"] == {
        "program": None,
        "errors": [
            {
                "field": "name",
                "code": "INVALID",
                "message": "A program named 'Engineering' already exists.",
            }
        ],
    }
    outsider = await gql(
        client,
        CREATE_CONNECTION,
        {
            "programId": p["program"],
            "memberIds": [str(p["mentor"]), str(p["stranger"])],
            "kind": "PAIR",
        },
        token=token,
    )
    assert outsider["data"]["createMentoringConnection"]["errors"][0]["field"] == "memberIds"
    bad_hours = await gql(
        client,
        UPDATE_SETTINGS,
        {"input": {"programId": p["program"], "earliestHour": 19, "latestHour": 9}},
        token=token,
    )
    assert bad_hours["data"]["updateProgramSettings"]["errors"][0]["code"] == "INVALID"


async def test_participants_cannot_provision(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    p = await provision(client, services)
    mentor_token = await token_for(services, p["mentor"])  # type: ignore[arg-type]
    denied = await gql(client, CREATE_PROGRAM, {"name": "Mine"}, token=mentor_token)
    assert denied["data"]["createProgram"]["errors"][0]["code"] == "FORBIDDEN"
    settings = await gql(
        client,
        UPDATE_SETTINGS,
        {"input": {"programId": p["program"], "allowWeekends": True}},
        token=mentor_token,
    )
    assert settings["data"]["updateProgramSettings"]["errors"][0]["code"] == "FORBIDDEN"


async def test_operator_only_switches(client: httpx.AsyncClient, services: AppServices) -> None:
    p = await provision(client, services)
    token = str(p["token"])
    refused = await gql(
        client,
        UPDATE_SETTINGS,
        {"input": {"programId": p["program"], "groupPollsEnabled": True}},
        token=token,
    )
    assert refused["data"]["updateProgramSettings"]["errors"][0]["code"] == "FORBIDDEN"
    allowed = await gql(
        client,
        UPDATE_SETTINGS,
        {
            "input": {
                "programId": p["program"],
                "allowWeekends": True,
                "earliestHour": 7,
                "allowedProviders": ["GOOGLE", "ICLOUD"],
            }
        },
        token=token,
    )
    settings = allowed["data"]["updateProgramSettings"]["program"]["settings"]
    assert (
        settings["allowWeekends"] is True
        and settings["earliestHour"] == 7
        and settings["latestHour"] == 20
    )
    assert settings["allowedProviders"] == ["GOOGLE", "ICLOUD"]
    operator = await create_user(services, "op@example.org", global_admin=True, operator=True)
    op_token = await token_for(services, operator)
    switched = await gql(
        client,
        UPDATE_SETTINGS,
        {"input": {"programId": p["program"], "groupPollsEnabled": True}},
        token=op_token,
    )
    assert (
        switched["data"]["updateProgramSettings"]["program"]["settings"]["groupPollsEnabled"]
        is True
    )


async def test_not_yours_looks_exactly_like_missing(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    p = await provision(client, services)
    stranger_token = await token_for(services, p["stranger"])  # type: ignore[arg-type]
    theirs = await gql(client, USER, {"id": str(p["mentor"])}, token=stranger_token)
    missing = await gql(client, USER, {"id": str(uuid.uuid4())}, token=stranger_token)
    malformed = await gql(client, USER, {"id": "1"}, token=stranger_token)
    assert theirs == missing == malformed == {"data": {"user": None}}
    program_theirs = await gql(client, PROGRAM, {"id": p["program"]}, token=stranger_token)
    program_missing = await gql(client, PROGRAM, {"id": str(uuid.uuid4())}, token=stranger_token)
    assert program_theirs == program_missing == {"data": {"program": None}}


async def test_partner_sees_partner_and_calendar_status_only(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    p = await provision(client, services)
    await gql(
        client,
        CREATE_CONNECTION,
        {
            "programId": p["program"],
            "memberIds": [str(p["mentor"]), str(p["mentee"])],
            "kind": "PAIR",
        },
        token=str(p["token"]),
    )
    mentee_token = await token_for(services, p["mentee"])  # type: ignore[arg-type]
    seen = await gql(client, USER, {"id": str(p["mentor"])}, token=mentee_token)
    assert seen["data"]["user"] == {
        "id": str(p["mentor"]),
        "name": "Maya",
        "calendar": {"status": "NOT_CONNECTED", "provider": None},
    }
    me = await gql(client, ME, token=mentee_token)
    assert me["data"]["me"]["email"] == "mentee@example.org"
    # A participant sees only members they may see: themselves and their partner.
    program = await gql(client, PROGRAM, {"id": p["program"]}, token=mentee_token)
    ids = {m["user"]["id"] for m in program["data"]["program"]["members"]}
    assert ids == {str(p["mentor"]), str(p["mentee"])}


async def test_program_list_fields_do_not_query_per_program(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    """settings, members and connections of every program load in a fixed number of queries."""
    from sqlalchemy import event

    from server.models.enums import ConnectionKind, ProgramRole
    from server.services.people import accounts, mentoring, programs

    admin = await create_user(services, "counter@example.org", global_admin=True)
    people = [await create_user(services, f"p{i}@example.org") for i in range(4)]
    token = await token_for(services, admin)
    query = "{ programs { id settings { earliestHour } members { user { id } role } connections { id members { user { id } } } } }"

    async def add_programs(count: int) -> None:
        async with services.db.session() as db:
            root = await accounts.get_user(db, admin)
            for _ in range(count):
                program = await programs.create_program(db, root, f"Program {uuid.uuid4().hex[:6]}")
                for person in people:
                    await programs.add_member(db, root, program.id, person, ProgramRole.PARTICIPANT)
                await mentoring.create_connection(
                    db,
                    root,
                    program_id=program.id,
                    member_ids=people[:2],
                    kind=ConnectionKind.PAIR,
                    name=None,
                )
            await db.commit()

    statements: list[str] = []

    def count(*args: object, **kwargs: object) -> None:
        statements.append(str(args[2]))

    async def run() -> int:
        statements.clear()
        event.listen(services.db.engine.sync_engine, "before_cursor_execute", count)
        try:
            body = await gql(client, query, token=token)
        finally:
            event.remove(services.db.engine.sync_engine, "before_cursor_execute", count)
        assert all(
            len(p["members"]) == 4 and len(p["connections"]) == 1 for p in body["data"]["programs"]
        )
        return len(statements)

    await add_programs(2)
    await run()  # warm up: the token's first use is recorded once
    few = await run()
    await add_programs(5)
    many = await run()
    assert many == few, f"{few} queries for 2 programs but {many} for 7"

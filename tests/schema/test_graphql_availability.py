"""The ``availability`` query and the calendar mutations, through the API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulators.google import RunningGoogle
from emulators.radicale import RunningRadicale
from server.app import create_app
from server.models import BusyBlock, CalendarConnection
from server.models.base import utcnow
from server.models.enums import BusyKind, CalendarStatus, ConnectionKind, ProgramRole, ProviderName
from server.services.people import accounts, mentoring, programs
from server.wiring import AppServices, build_services, close_services
from tests.calendar_fixtures import CALDAV_PASSWORD, CALDAV_USER, provider_overrides
from tests.conftest import create_user, gql, make_settings
from tests.schema.test_graphql_programs import token_for

AVAILABILITY = """
query A($input: AvailabilityInput!) {
  availability(input: $input) {
    participants { user { id } calendarStatus }
    busy { userId start end kind }
    slots { start end freeUserIds busyUserIds unknownUserIds reason }
    emptyReason
  }
}"""


def monday(weeks_ahead: int = 1) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=7 * weeks_ahead - today.weekday())


async def _pair(services: AppServices, *, connected: tuple[bool, bool]) -> dict[str, Any]:
    admin = await create_user(services, f"a{uuid.uuid4().hex[:6]}@example.org", global_admin=True)
    mentor = await create_user(
        services, f"m{uuid.uuid4().hex[:6]}@example.org", name="Maya", time_zone="UTC"
    )
    mentee = await create_user(
        services, f"e{uuid.uuid4().hex[:6]}@example.org", name="Kim", time_zone="UTC"
    )
    stranger = await create_user(services, f"s{uuid.uuid4().hex[:6]}@example.org", name="Stan")
    async with services.db.session() as db:
        root = await accounts.get_user(db, admin)
        program = await programs.create_program(db, root, f"P{uuid.uuid4().hex[:4]}")
        await programs.add_member(db, root, program.id, mentor, ProgramRole.MENTOR)
        await programs.add_member(db, root, program.id, mentee, ProgramRole.MENTEE)
        await mentoring.create_connection(
            db,
            root,
            program_id=program.id,
            member_ids=[mentor, mentee],
            kind=ConnectionKind.PAIR,
            name=None,
        )
        for user_id, on in zip((mentor, mentee), connected, strict=True):
            if on:
                db.add(
                    CalendarConnection(
                        user_id=user_id,
                        provider=ProviderName.GOOGLE,
                        status=CalendarStatus.CONNECTED,
                        label="Google",
                        account_email="x@y.z",
                        last_synced_at=utcnow(),
                    )
                )
        await db.commit()
    return {"mentor": mentor, "mentee": mentee, "stranger": stranger, "program": program.id}


async def test_pair_slots_skip_busy_and_flag_unknown_partner(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    p = await _pair(services, connected=(True, False))
    day = monday()
    async with services.db.session() as db:
        db.add(
            BusyBlock(
                user_id=p["mentor"],
                start_at=day + timedelta(hours=9),
                end_at=day + timedelta(hours=10),
                kind=BusyKind.TENTATIVE,
            )
        )
        await db.commit()
    token = await token_for(services, p["mentor"])
    body = await gql(
        client,
        AVAILABILITY,
        {
            "input": {
                "participantIds": [str(p["mentor"]), str(p["mentee"])],
                "start": (day + timedelta(hours=8)).isoformat(),
                "end": (day + timedelta(hours=12)).isoformat(),
                "durationMinutes": 60,
                "stepMinutes": 60,
                "programId": str(p["program"]),
            }
        },
        token=token,
    )
    answer = body["data"]["availability"]
    statuses = {x["user"]["id"]: x["calendarStatus"] for x in answer["participants"]}
    assert statuses == {str(p["mentor"]): "CONNECTED", str(p["mentee"]): "NOT_CONNECTED"}
    assert answer["busy"] == [
        {
            "userId": str(p["mentor"]),
            "start": (day + timedelta(hours=9)).isoformat(),
            "end": (day + timedelta(hours=10)).isoformat(),
            "kind": "TENTATIVE",
        }
    ]
    starts = [s["start"] for s in answer["slots"]]
    assert starts == [(day + timedelta(hours=h)).isoformat() for h in (8, 10, 11)]
    for slot in answer["slots"]:
        assert slot["unknownUserIds"] == [str(p["mentee"])]
        assert slot["freeUserIds"] == [str(p["mentor"])]
        assert "Kim has no calendar connected" in slot["reason"]


async def test_strangers_and_bad_windows_get_clear_errors(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    p = await _pair(services, connected=(True, True))
    token = await token_for(services, p["stranger"])
    day = monday()
    base = {"participantIds": [str(p["mentor"])], "start": day.isoformat(), "durationMinutes": 30}
    hidden = await gql(
        client,
        AVAILABILITY,
        {"input": {**base, "end": (day + timedelta(days=1)).isoformat()}},
        token=token,
        allow_errors=True,
    )
    assert hidden["errors"][0]["message"] == "Participant not found."
    mine = await token_for(services, p["mentor"])
    too_long = await gql(
        client,
        AVAILABILITY,
        {"input": {**base, "end": (day + timedelta(days=91)).isoformat()}},
        token=mine,
        allow_errors=True,
    )
    assert too_long["errors"][0]["message"] == "Ask for at most 90 days at a time."
    tiny_step = await gql(
        client,
        AVAILABILITY,
        {"input": {**base, "end": (day + timedelta(days=1)).isoformat(), "stepMinutes": 1}},
        token=mine,
        allow_errors=True,
    )
    assert "step" in tiny_step["errors"][0]["message"]


async def test_empty_answer_explains_weekends(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    p = await _pair(services, connected=(True, True))
    saturday = monday() + timedelta(days=5)
    token = await token_for(services, p["mentor"])
    body = await gql(
        client,
        AVAILABILITY,
        {
            "input": {
                "participantIds": [str(p["mentor"]), str(p["mentee"])],
                "start": saturday.isoformat(),
                "end": (saturday + timedelta(days=2)).isoformat(),
                "durationMinutes": 30,
                "programId": str(p["program"]),
            }
        },
        token=token,
    )
    answer = body["data"]["availability"]
    assert answer["slots"] == []
    assert "weekend" in answer["emptyReason"].lower()


LEAVES = """
query L($input: AvailabilityInput!) {
  availability(input: $input) {
    busy { start }
    slots { start freeUserIds }
    unknown { start }
    compact { slots busy }
  }
}"""
EMPTY_ONLY = """
query E($input: AvailabilityInput!) { availability(input: $input) { emptyReason } }"""


async def test_slot_and_busy_leaves_are_refused_to_anonymous_callers_and_strangers(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    """The leaves are built lazily from the answer; the root field's check still guards
    them: asking only for leaves gets nothing but the refusal."""
    p = await _pair(services, connected=(True, True))
    day = monday()
    variables = {
        "input": {
            "participantIds": [str(p["mentor"]), str(p["mentee"])],
            "start": day.isoformat(),
            "end": (day + timedelta(days=1)).isoformat(),
            "durationMinutes": 30,
        }
    }
    anonymous = await gql(client, LEAVES, variables, allow_errors=True)
    assert anonymous["data"] is None
    assert anonymous["errors"][0]["message"].startswith("Sign in or send an API token")
    stranger = await gql(
        client, LEAVES, variables, token=await token_for(services, p["stranger"]), allow_errors=True
    )
    assert stranger["data"] is None
    assert stranger["errors"][0]["message"] == "Participant not found."
    mine = await gql(client, LEAVES, variables, token=await token_for(services, p["mentor"]))
    assert mine["data"]["availability"]["slots"]
    assert mine["data"]["availability"]["compact"]["slots"]


async def test_empty_reason_alone_matches_the_full_answer(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    p = await _pair(services, connected=(True, True))
    token = await token_for(services, p["mentor"])
    saturday = monday() + timedelta(days=5)
    variables = {
        "input": {
            "participantIds": [str(p["mentor"]), str(p["mentee"])],
            "start": saturday.isoformat(),
            "end": (saturday + timedelta(days=2)).isoformat(),
            "durationMinutes": 30,
        }
    }
    full = await gql(client, AVAILABILITY, variables, token=token)
    alone = await gql(client, EMPTY_ONLY, variables, token=token)
    assert alone["data"]["availability"] == {
        "emptyReason": full["data"]["availability"]["emptyReason"]
    }
    assert alone["data"]["availability"]["emptyReason"]


START = "mutation S($p: CalendarProvider!) { startCalendarConnection(provider: $p) { authorizationUrl errors { code message } } }"
CALDAV = """mutation C($u: String!, $p: String!, $s: String) {
  connectCaldavCalendar(username: $u, appPassword: $p, serverUrl: $s) { calendar { provider status } errors { field code message } }
}"""
DISCONNECT = "mutation { disconnectCalendar { calendar { status } errors { code message } } }"


@pytest.fixture
async def cal_client(
    tmp_path: Path, sqlite_url: str, google: RunningGoogle
) -> AsyncIterator[tuple[httpx.AsyncClient, AppServices]]:
    svc = build_services(make_settings(tmp_path, sqlite_url, **provider_overrides(google)))
    app = create_app(services=svc)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        yield c, svc
    await close_services(svc)


async def test_calendar_mutations(
    cal_client: tuple[httpx.AsyncClient, AppServices], radicale: RunningRadicale
) -> None:
    client, svc = cal_client
    user = await create_user(svc, "api@example.org")
    token = await token_for(svc, user)
    started = await gql(client, START, {"p": "GOOGLE"}, token=token)
    url = started["data"]["startCalendarConnection"]["authorizationUrl"]
    assert "code_challenge=" in url and "state=" in url and "access_type=offline" in url
    wrong = await gql(
        client, CALDAV, {"u": CALDAV_USER, "p": "definitely-wrong", "s": radicale.url}, token=token
    )
    payload = wrong["data"]["connectCaldavCalendar"]
    assert payload["calendar"] is None and payload["errors"][0]["field"] == "app_password"
    assert "definitely-wrong" not in str(wrong)
    radicale.make_calendar(CALDAV_USER, CALDAV_PASSWORD, "api-cal")
    ok = await gql(
        client, CALDAV, {"u": CALDAV_USER, "p": CALDAV_PASSWORD, "s": radicale.url}, token=token
    )
    assert ok["data"]["connectCaldavCalendar"] == {
        "calendar": {"provider": "ICLOUD", "status": "CONNECTED"},
        "errors": [],
    }
    assert CALDAV_PASSWORD not in str(ok)
    me = await gql(client, "{ me { calendar { provider status lastSyncedAt } } }", token=token)
    assert (
        me["data"]["me"]["calendar"]["status"] == "CONNECTED"
        and me["data"]["me"]["calendar"]["lastSyncedAt"]
    )
    gone = await gql(client, DISCONNECT, token=token)
    assert gone["data"]["disconnectCalendar"] == {
        "calendar": {"status": "NOT_CONNECTED"},
        "errors": [],
    }


COMPACT = """
query A($input: AvailabilityInput!) {
  availability(input: $input) {
    participants { user { id } }
    busy { userId start end kind }
    unknown { userId start end reason }
    slots { start end freeUserIds busyUserIds unknownUserIds reason }
    compact { userIds slots busy unknown }
  }
}"""


async def test_compact_rows_carry_the_same_answer_as_the_objects(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    p = await _pair(services, connected=(True, False))
    day = monday()
    async with services.db.session() as db:
        for hour, kind in ((9, BusyKind.TENTATIVE), (13, BusyKind.OUT_OF_OFFICE)):
            db.add(
                BusyBlock(
                    user_id=p["mentor"],
                    start_at=day + timedelta(hours=hour),
                    end_at=day + timedelta(hours=hour + 1),
                    kind=kind,
                )
            )
        await db.commit()
    token = await token_for(services, p["mentor"])
    variables = {
        "input": {
            "participantIds": [str(p["mentee"]), str(p["mentor"])],
            "start": (day + timedelta(hours=8)).isoformat(),
            "end": (day + timedelta(hours=15)).isoformat(),
            "durationMinutes": 60,
            "stepMinutes": 30,
            "programId": str(p["program"]),
        }
    }
    answer = (await gql(client, COMPACT, variables, token=token))["data"]["availability"]
    compact = answer["compact"]
    people = compact["userIds"]
    assert people == [str(p["mentee"]), str(p["mentor"])]  # the order asked
    assert compact["busy"] == [
        [people.index(b["userId"]), b["start"], b["end"], b["kind"]] for b in answer["busy"]
    ]
    assert [row[3] for row in compact["busy"]] == ["TENTATIVE", "OUT_OF_OFFICE"]
    assert compact["unknown"] == [
        [people.index(u["userId"]), u["start"], u["end"], u["reason"]] for u in answer["unknown"]
    ]

    def positions(ids: list[str]) -> list[int]:
        return [people.index(i) for i in ids]

    assert compact["slots"] == [
        [
            s["start"],
            s["end"],
            positions(s["freeUserIds"]),
            positions(s["busyUserIds"]),
            positions(s["unknownUserIds"]),
            s["reason"],
        ]
        for s in answer["slots"]
    ]
    assert compact["slots"] and all(row[4] == [0] for row in compact["slots"])  # Kim: unknown
    assert compact["slots"][0][0] == (day + timedelta(hours=8)).isoformat()


BUSY_SHAPES = """
query A($input: AvailabilityInput!) {
  availability(input: $input) {
    busy { userId start end kind }
    again: busy { __typename kind who: userId end }
    compact { busy }
  }
}"""


async def test_busy_written_from_columns_matches_the_objects(
    client: httpx.AsyncClient, services: AppServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Busy blocks go out as columns of text (``fast_lists.Columns``); the same question
    answered through BusyBlock objects and graphql-core's own coercion is identical:
    odd seconds and microseconds, every kind, blocks clipped at both window edges."""
    p = await _pair(services, connected=(True, True))
    day = monday()
    start, end = day + timedelta(hours=8), day + timedelta(hours=15)
    blocks = [
        (p["mentor"], start - timedelta(hours=1), start + timedelta(minutes=7), BusyKind.BUSY),
        (
            p["mentor"],
            day + timedelta(hours=9, seconds=13, microseconds=250_001),
            day + timedelta(hours=9, minutes=40, microseconds=7),
            BusyKind.TENTATIVE,
        ),
        (p["mentee"], day + timedelta(hours=11), day + timedelta(hours=12), BusyKind.ALL_DAY),
        (p["mentee"], end - timedelta(minutes=5), end + timedelta(hours=2), BusyKind.OUT_OF_OFFICE),
    ]
    async with services.db.session() as db:
        for user_id, begin, finish, kind in blocks:
            db.add(BusyBlock(user_id=user_id, start_at=begin, end_at=finish, kind=kind))
        await db.commit()
    token = await token_for(services, p["mentor"])
    variables = {
        "input": {
            "participantIds": [str(p["mentor"]), str(p["mentee"])],
            "start": start.isoformat(),
            "end": end.isoformat(),
            "durationMinutes": 30,
            "stepMinutes": 15,
        }
    }
    fast = await _from_columns_and_objects(client, monkeypatch, BUSY_SHAPES, variables, token)
    busy = fast["data"]["availability"]["busy"]
    assert [b["kind"] for b in busy] == ["BUSY", "TENTATIVE", "ALL_DAY", "OUT_OF_OFFICE"]
    assert busy[0]["start"] == start.isoformat()  # clipped to the window
    assert (
        busy[1]["start"] == (day + timedelta(hours=9, seconds=13, microseconds=250_001)).isoformat()
    )
    assert busy[3]["end"] == end.isoformat()
    assert fast["data"]["availability"]["again"][0] == {
        "__typename": "BusyBlock",
        "kind": "BUSY",
        "who": str(p["mentor"]),
        "end": (start + timedelta(minutes=7)).isoformat(),
    }


SLOT_SHAPES = """
query A($input: AvailabilityInput!) {
  availability(input: $input) {
    slots { start end freeUserIds busyUserIds unknownUserIds reason }
    again: slots { __typename reason who: busyUserIds start }
  }
}"""


async def test_slots_written_from_columns_match_the_objects(
    client: httpx.AsyncClient, services: AppServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slots go out as columns (times from the engine's arrays, each standing's ids
    named once); the same question answered through AvailabilitySlot objects and
    graphql-core's own coercion is identical, in every standing."""
    p = await _pair(services, connected=(True, True))
    day = monday()
    start = day + timedelta(hours=8, seconds=7, microseconds=500_001)
    async with services.db.session() as db:
        for user_id, begin, hours in ((p["mentor"], 9, 1), (p["mentee"], 10.5, 0.5)):
            db.add(
                BusyBlock(
                    user_id=user_id,
                    start_at=day + timedelta(hours=begin),
                    end_at=day + timedelta(hours=begin + hours),
                    kind=BusyKind.BUSY,
                )
            )
        await db.commit()
    token = await token_for(services, p["mentor"])
    variables = {
        "input": {
            "participantIds": [str(p["mentor"])],
            "optionalParticipantIds": [str(p["mentee"])],
            "start": start.isoformat(),
            "end": (day + timedelta(hours=12)).isoformat(),
            "durationMinutes": 30,
            "stepMinutes": 15,
        }
    }
    fast = await _from_columns_and_objects(client, monkeypatch, SLOT_SHAPES, variables, token)
    slots = fast["data"]["availability"]["slots"]
    # The window starts at an odd instant; slots start on the quarter hours after it.
    assert slots[0]["start"] == (day + timedelta(hours=8, minutes=15)).isoformat()
    standings = {(len(s["freeUserIds"]), len(s["busyUserIds"])) for s in slots}
    assert standings == {(2, 0), (1, 1)}
    assert {s["busyUserIds"][0] for s in slots if s["busyUserIds"]} == {str(p["mentee"])}
    assert fast["data"]["availability"]["again"][0]["__typename"] == "AvailabilitySlot"


async def _from_columns_and_objects(
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    query: str,
    variables: dict[str, Any],
    token: str,
) -> dict[str, Any]:
    """The answer with both selections written from ``fast_lists.Columns``, checked equal
    to the same question answered through objects and graphql-core's own coercion."""
    from server.schema import fast_lists

    built: list[bool] = []
    columns_route = fast_lists.FastListsExecutionContext._rows_from_columns

    def spying(self: Any, *args: Any) -> Any:
        rows = columns_route(self, *args)
        built.append(rows is not None)
        return rows

    monkeypatch.setattr(fast_lists.FastListsExecutionContext, "_rows_from_columns", spying)
    fast = await gql(client, query, variables, token=token)
    assert built == [True, True]  # both selections were written from the columns
    monkeypatch.setattr(fast_lists.FastListsExecutionContext, "_rows_from_columns", lambda *_: None)
    objects = await gql(client, query, variables, token=token)
    assert "errors" not in fast and fast == objects
    return fast

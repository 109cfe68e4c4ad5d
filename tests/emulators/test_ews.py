"""The EWS emulator's own contract: the SOAP shapes, refusals and time zone rules that
clients (exchangelib) depend on, checked with hand-written requests."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from emulators.ews import EwsState, M, MailboxEvent, RunningEws, T, start_ews_emulator
from emulators.ews_time import Rule, SerializableTimeZone
from emulators.runner import client_ssl_context

ANN = "ann@contoso.example"
NS = {"s": "http://schemas.xmlsoap.org/soap/envelope/", "m": M, "t": T}
ENVELOPE = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="{m}" xmlns:t="{t}">'
    '<s:Header><t:RequestServerVersion Version="{version}"/></s:Header>'
    "<s:Body>{body}</s:Body></s:Envelope>"
)
# Europe/Berlin as Windows describes it: UTC+1, +1 more from the last Sunday of March
# at 02:00 to the last Sunday of October at 03:00.
BERLIN_TZ = (
    "<t:TimeZone><t:Bias>-60</t:Bias>"
    "<t:StandardTime><t:Bias>0</t:Bias><t:Time>03:00:00</t:Time><t:DayOrder>5</t:DayOrder>"
    "<t:Month>10</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:StandardTime>"
    "<t:DaylightTime><t:Bias>-60</t:Bias><t:Time>02:00:00</t:Time><t:DayOrder>5</t:DayOrder>"
    "<t:Month>3</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:DaylightTime></t:TimeZone>"
)
BERLIN = SerializableTimeZone(
    -60,
    Rule(0, datetime(1, 1, 1, 3).time(), 5, 10, "Sunday"),
    Rule(-60, datetime(1, 1, 1, 2).time(), 5, 3, "Sunday"),
)
NEW_YORK = SerializableTimeZone(
    300,
    Rule(0, datetime(1, 1, 1, 2).time(), 1, 11, "Sunday"),
    Rule(-60, datetime(1, 1, 1, 2).time(), 2, 3, "Sunday"),
)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[RunningEws]:
    running = start_ews_emulator(tmp_path, EwsState())
    yield running
    running.stop()


@pytest.fixture
async def http(emulator: RunningEws) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=client_ssl_context(emulator.ca_path)) as client:
        yield client


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "text/xml; charset=utf-8"}


async def soap(
    http: httpx.AsyncClient,
    emulator: RunningEws,
    body: str,
    *,
    version: str = "Exchange2016",
    password: str | None = None,
) -> httpx.Response:
    state = emulator.state
    return await http.post(
        emulator.ews_url,
        content=ENVELOPE.format(m=M, t=T, version=version, body=body),
        headers=basic(state.username, state.password if password is None else password),
    )


def availability(emails: list[str], start: str, end: str, view: str, tz: str = BERLIN_TZ) -> str:
    boxes = "".join(
        f"<t:MailboxData><t:Email><t:Address>{e}</t:Address></t:Email>"
        "<t:AttendeeType>Required</t:AttendeeType></t:MailboxData>"
        for e in emails
    )
    return (
        f"<m:GetUserAvailabilityRequest>{tz}<m:MailboxDataArray>{boxes}</m:MailboxDataArray>"
        f"<t:FreeBusyViewOptions><t:TimeWindow><t:StartTime>{start}</t:StartTime>"
        f"<t:EndTime>{end}</t:EndTime></t:TimeWindow>"
        "<t:MergedFreeBusyIntervalInMinutes>60</t:MergedFreeBusyIntervalInMinutes>"
        f"<t:RequestedView>{view}</t:RequestedView></t:FreeBusyViewOptions>"
        "</m:GetUserAvailabilityRequest>"
    )


def fault_code(response: httpx.Response) -> str | None:
    root = ET.fromstring(response.content)  # noqa: S314 - the emulator's own answer
    code = root.find(".//{http://schemas.microsoft.com/exchange/services/2006/errors}ResponseCode")
    return code.text if code is not None else None


def parse(response: httpx.Response) -> ET.Element:
    assert response.status_code == 200, response.text
    return ET.fromstring(response.content)  # noqa: S314 - the emulator's own answer


async def test_credentials_are_checked_before_anything_else(
    http: httpx.AsyncClient, emulator: RunningEws
) -> None:
    no_auth = await http.post(emulator.ews_url, content=b"<x/>")
    assert no_auth.status_code == 401
    offers = no_auth.headers.get_list("www-authenticate")
    assert offers == ["NTLM", 'Basic realm="localhost"']
    wrong = await soap(http, emulator, availability([ANN], "a", "b", "FreeBusy"), password="nope")
    assert wrong.status_code == 401
    assert emulator.state.received == []


async def test_the_server_version_is_negotiated_in_the_soap_header(
    http: httpx.AsyncClient, emulator: RunningEws
) -> None:
    bad = await soap(http, emulator, "<m:ConvertId/>", version="Exchange2099")
    assert (bad.status_code, fault_code(bad)) == (500, "ErrorInvalidServerVersion")
    good = parse(await soap(http, emulator, "<m:ConvertId><m:SourceIds/></m:ConvertId>"))
    info = good.find("s:Header/t:ServerVersionInfo", NS)
    assert info is not None
    assert (info.get("MajorVersion"), info.get("MinorVersion"), info.get("Version")) == (
        "15",
        "1",
        "Exchange2016",
    )


async def test_free_busy_is_answered_in_the_requested_zone_across_dst(
    http: httpx.AsyncClient, emulator: RunningEws
) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    emulator.state.add_mailbox(
        ANN,
        MailboxEvent(
            datetime(2026, 3, 28, 9, tzinfo=berlin), datetime(2026, 3, 28, 10, tzinfo=berlin)
        ),
        MailboxEvent(
            datetime(2026, 3, 30, 9, tzinfo=berlin), datetime(2026, 3, 30, 10, tzinfo=berlin)
        ),
    )
    root = parse(
        await soap(
            http,
            emulator,
            availability([ANN], "2026-03-27T00:00:00", "2026-04-01T00:00:00", "FreeBusyMerged"),
        )
    )
    starts = [e.text for e in root.iterfind(".//t:CalendarEvent/t:StartTime", NS)]
    assert starts == ["2026-03-28T09:00:00", "2026-03-30T09:00:00"]  # Berlin wall clock
    merged = root.findtext(".//t:MergedFreeBusy", namespaces=NS)
    assert merged is not None and len(merged) == 5 * 24 - 1  # one hour lost to DST
    assert merged[24 + 9] == "2" and merged.count("2") == 2


async def test_only_detailed_views_carry_subjects(
    http: httpx.AsyncClient, emulator: RunningEws
) -> None:
    day = datetime(2026, 5, 4, tzinfo=UTC)
    emulator.state.add_mailbox(ANN, MailboxEvent(day, day + timedelta(hours=1), subject="Dentist"))
    window = ("2026-05-04T00:00:00", "2026-05-05T00:00:00")
    free_busy = await soap(http, emulator, availability([ANN], *window, "FreeBusyMerged", ""))
    assert "Dentist" not in free_busy.text and "<t:BusyType>Busy</t:BusyType>" in free_busy.text
    detailed = await soap(http, emulator, availability([ANN], *window, "Detailed", ""))
    assert "<t:Subject>Dentist</t:Subject>" in detailed.text


async def test_per_mailbox_errors_and_request_limits(
    http: httpx.AsyncClient, emulator: RunningEws
) -> None:
    emulator.state.add_mailbox(ANN)
    window = ("2026-05-04T00:00:00", "2026-05-05T00:00:00")
    root = parse(
        await soap(
            http, emulator, availability([ANN, "ghost@contoso.example"], *window, "FreeBusy")
        )
    )
    codes = [e.text for e in root.iterfind(".//m:ResponseMessage/m:ResponseCode", NS)]
    assert codes == ["NoError", "ErrorMailRecipientNotFound"]
    many = await soap(http, emulator, availability([ANN] * 101, *window, "FreeBusy"))
    assert fault_code(many) == "ErrorMailboxDataArrayTooBig"
    long = await soap(
        http,
        emulator,
        availability([ANN], "2026-05-01T00:00:00", "2026-06-13T00:00:00", "FreeBusy"),
    )
    assert fault_code(long) == "ErrorTimeIntervalTooBig"


async def test_server_busy_carries_the_back_off_in_message_xml(
    http: httpx.AsyncClient, emulator: RunningEws
) -> None:
    emulator.state.server_busy(back_off_ms=30000)
    busy = await soap(http, emulator, "<m:ConvertId><m:SourceIds/></m:ConvertId>")
    assert (busy.status_code, fault_code(busy)) == (500, "ErrorServerBusy")
    value = ET.fromstring(busy.content).find(".//t:MessageXml/t:Value", NS)  # noqa: S314
    assert value is not None
    assert (value.get("Name"), value.text) == ("BackOffMilliseconds", "30000")
    again = await soap(http, emulator, "<m:ConvertId><m:SourceIds/></m:ConvertId>")
    assert again.status_code == 200


async def test_meeting_writes_require_the_invitation_attributes(
    http: httpx.AsyncClient, emulator: RunningEws
) -> None:
    item = (
        "<m:Items><t:CalendarItem><t:Subject>x</t:Subject><t:UID>u@tandem</t:UID>"
        "<t:Start>2026-05-04T09:00:00Z</t:Start><t:End>2026-05-04T10:00:00Z</t:End>"
        "<t:RequiredAttendees><t:Attendee><t:Mailbox><t:EmailAddress>ann@contoso.example"
        "</t:EmailAddress></t:Mailbox></t:Attendee></t:RequiredAttendees></t:CalendarItem></m:Items>"
    )
    missing = await soap(
        http, emulator, f'<m:CreateItem MessageDisposition="SaveOnly">{item}</m:CreateItem>'
    )
    assert parse(missing).findtext(".//m:ResponseCode", namespaces=NS) == (
        "ErrorSendMeetingInvitationsRequired"
    )
    assert emulator.state.items == {} and emulator.state.outbox == []
    quiet = await soap(
        http,
        emulator,
        f'<m:CreateItem MessageDisposition="SaveOnly" SendMeetingInvitations="SendToNone">{item}'
        "</m:CreateItem>",
    )
    assert parse(quiet).find(".//t:CalendarItem/t:ItemId", NS) is not None
    assert len(emulator.state.items) == 1 and emulator.state.outbox == []


async def test_sync_states_move_forward_and_foreign_ones_are_refused(
    http: httpx.AsyncClient, emulator: RunningEws
) -> None:
    state = emulator.state
    day = datetime(2026, 5, 4, tzinfo=UTC)
    first = state.seed_item("a@x", "A", day, day + timedelta(hours=1))
    state.seed_item("b@x", "B", day, day + timedelta(hours=1))

    def sync(sync_state: str | None, limit: int = 1) -> str:
        tag = f"<m:SyncState>{sync_state}</m:SyncState>" if sync_state else ""
        return (
            "<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>"
            f'<m:SyncFolderId><t:DistinguishedFolderId Id="calendar"/></m:SyncFolderId>{tag}'
            f"<m:MaxChangesReturned>{limit}</m:MaxChangesReturned></m:SyncFolderItems>"
        )

    page = parse(await soap(http, emulator, sync(None)))
    assert page.findtext(".//m:IncludesLastItemInRange", namespaces=NS) == "false"
    assert [e.get("Id") for e in page.iterfind(".//t:Create/t:CalendarItem/t:ItemId", NS)] == [
        first.item_id
    ]
    assert page.find(".//t:Subject", NS) is None  # IdOnly: no subject unless asked
    token = page.findtext(".//m:SyncState", namespaces=NS)
    rest = parse(await soap(http, emulator, sync(token, 10)))
    assert rest.findtext(".//m:IncludesLastItemInRange", namespaces=NS) == "true"
    assert len(rest.findall(".//t:Create", NS)) == 1
    foreign = parse(await soap(http, emulator, sync(base64.b64encode(b"elsewhere:1").decode())))
    assert foreign.findtext(".//m:ResponseCode", namespaces=NS) == "ErrorInvalidSyncStateData"


@pytest.mark.parametrize(
    ("rules", "zone", "day"),
    [
        (BERLIN, "Europe/Berlin", datetime(2026, 3, 29, tzinfo=UTC)),
        (BERLIN, "Europe/Berlin", datetime(2026, 10, 25, tzinfo=UTC)),
        (NEW_YORK, "America/New_York", datetime(2026, 3, 8, 4, tzinfo=UTC)),
        (NEW_YORK, "America/New_York", datetime(2026, 11, 1, 4, tzinfo=UTC)),
    ],
)
def test_serializable_time_zone_matches_the_tz_database(
    rules: SerializableTimeZone, zone: str, day: datetime
) -> None:
    tz = ZoneInfo(zone)
    for quarter in range(-8 * 4, 8 * 4):
        moment = day + timedelta(minutes=15 * quarter)
        local = moment.astimezone(tz).replace(tzinfo=None)
        assert rules.to_local(moment) == local, moment
        back = rules.to_utc(local)
        assert back == moment or back.astimezone(tz).replace(tzinfo=None) == local

"""A local stand-in for an Exchange server's EWS endpoint (``/EWS/Exchange.asmx``).

It speaks the SOAP shapes exchangelib sends and parses, as documented in the EWS
reference (https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/...):
GetUserAvailability, GetFolder, CreateItem, GetItem, UpdateItem, DeleteItem,
SyncFolderItems, FindItem and ConvertId (exchangelib's server version probe), behind
Basic or NTLM authentication (``ews_auth``). Calendar item operations live in
``ews_items``, SOAP plumbing in ``ews_xml``. ``start_ews_emulator`` serves it over HTTPS
with a throwaway CA, like the Microsoft emulator. Tests and the demo use it; production
never does.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path

from defusedxml.ElementTree import fromstring
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulators.ews_auth import EwsAuth, install_ntlm_users
from emulators.ews_items import ItemOperations
from emulators.ews_state import EwsState, MailboxEvent, Received
from emulators.ews_time import Rule, SerializableTimeZone
from emulators.ews_xml import (
    E,
    M,
    S,
    SoapFault,
    T,
    children,
    envelope,
    fault_body,
    m,
    message,
    parse_time,
    serialize,
    sub,
    t,
    text,
)
from emulators.runner import BackgroundServer, make_test_ca

__all__ = [
    "E",
    "EwsState",
    "M",
    "MailboxEvent",
    "RunningEws",
    "S",
    "T",
    "create_ews_emulator",
    "start_ews_emulator",
]

EWS_PATH = "/EWS/Exchange.asmx"
# RequestServerVersion values an Exchange 2016/2019 server accepts.
# https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/requestserverversion
_VERSIONS = {
    "Exchange2007",
    "Exchange2007_SP1",
    "Exchange2010",
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2013",
    "Exchange2013_SP1",
    "Exchange2015",
    "Exchange2016",
}
# GetUserAvailability limits: 100 mailboxes and a 42-day window per request.
# https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getuseravailability-operation
MAX_MAILBOXES = 100
MAX_WINDOW = timedelta(days=42)
_MERGED_DIGITS = {"Free": "0", "Tentative": "1", "Busy": "2", "OOF": "3", "WorkingElsewhere": "5"}


class _Handler(ItemOperations):
    """One SOAP request: authenticated, version-checked, dispatched by operation."""

    def __init__(self, state: EwsState) -> None:
        self.state = state

    def __call__(self, op: ET.Element, body: ET.Element) -> None:
        name = op.tag.split("}")[-1]
        handlers: dict[str, Callable[[ET.Element, ET.Element], None]] = {
            "GetUserAvailabilityRequest": self.get_user_availability,
            "GetFolder": self.get_folder,
            "CreateItem": self.create_item,
            "GetItem": self.get_item,
            "UpdateItem": self.update_item,
            "DeleteItem": self.delete_item,
            "SyncFolderItems": self.sync_folder_items,
            "FindItem": self.find_item,
            "ConvertId": self.convert_id,
        }
        handler = handlers.get(name)
        if handler is None:
            raise SoapFault("ErrorSchemaValidation", f"The request {name} is not supported.")
        handler(op, body)

    # GetUserAvailability: FreeBusyView per mailbox, in the order asked.
    # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getuseravailability-operation
    # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/freebusyview
    def get_user_availability(self, op: ET.Element, body: ET.Element) -> None:
        zone = _zone(op.find(t("TimeZone")))
        options = op.find(t("FreeBusyViewOptions"))
        if options is None:
            raise SoapFault("ErrorSchemaValidation", "FreeBusyViewOptions is required.")
        view = text(options, "t:RequestedView") or "None"
        if view not in {"MergedOnly", "FreeBusy", "FreeBusyMerged", "Detailed", "DetailedMerged"}:
            raise SoapFault("ErrorSchemaValidation", f"RequestedView {view} is not valid.")
        start = parse_time(text(options, "t:TimeWindow/t:StartTime"), zone)
        end = parse_time(text(options, "t:TimeWindow/t:EndTime"), zone)
        if end - start > MAX_WINDOW:
            # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/timewindow
            raise SoapFault("ErrorTimeIntervalTooBig", "The time interval is larger than 42 days.")
        interval = int(text(options, "t:MergedFreeBusyIntervalInMinutes") or "30")
        boxes = op.findall(f"{m('MailboxDataArray')}/{t('MailboxData')}")
        if not boxes:
            raise SoapFault("ErrorMailboxDataArrayEmpty", "MailboxDataArray is empty.")
        if len(boxes) > MAX_MAILBOXES:
            raise SoapFault("ErrorMailboxDataArrayTooBig", "More than 100 mailboxes requested.")
        response = sub(body, m("GetUserAvailabilityResponse"))
        array = sub(response, m("FreeBusyResponseArray"))
        for box in boxes:
            email = (text(box, "t:Email/t:Address") or "").lower()
            self._free_busy(array, email, start, end, view, interval, zone)

    def _free_busy(
        self,
        array: ET.Element,
        email: str,
        start: datetime,
        end: datetime,
        view: str,
        interval: int,
        zone: SerializableTimeZone,
    ) -> None:
        state = self.state
        answer = sub(array, m("FreeBusyResponse"))
        if email not in state.mailboxes:
            message(
                answer,
                "ResponseMessage",
                "ErrorMailRecipientNotFound",
                "No mailbox with such guid.",
            )
            sub(sub(answer, m("FreeBusyView")), t("FreeBusyViewType"), "None")
            return
        if email in state.denied:
            message(
                answer,
                "ResponseMessage",
                "ErrorNoFreeBusyAccess",
                "The caller does not have free/busy viewing rights.",
            )
            sub(sub(answer, m("FreeBusyView")), t("FreeBusyViewType"), "None")
            return
        message(answer, "ResponseMessage")
        fb = sub(answer, m("FreeBusyView"))
        sub(fb, t("FreeBusyViewType"), view)
        events = state.busy_events(email, start, end)
        if view in ("MergedOnly", "FreeBusyMerged", "DetailedMerged"):
            sub(
                fb,
                t("MergedFreeBusy"),
                _merged(events, start, end, interval, email in state.no_data),
            )
        if view == "MergedOnly" or email in state.no_data:
            return
        array_elem = sub(fb, t("CalendarEventArray"))
        for event in events:
            if event.busy_type == "Free":
                continue
            item = sub(array_elem, t("CalendarEvent"))
            sub(item, t("StartTime"), zone.to_local(event.start).isoformat())
            sub(item, t("EndTime"), zone.to_local(event.end).isoformat())
            sub(item, t("BusyType"), event.busy_type)
            if view.startswith("Detailed"):
                # Detailed views carry what the owner typed: Tandem must never ask.
                # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/calendareventdetails
                details = sub(item, t("CalendarEventDetails"))
                sub(details, t("Subject"), event.subject)
                sub(details, t("Location"), event.location)

    # GetFolder for distinguished folders (exchangelib asks for root, then calendar).
    # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getfolder-operation
    def get_folder(self, op: ET.Element, body: ET.Element) -> None:
        response = sub(body, m("GetFolderResponse"))
        messages = sub(response, m("ResponseMessages"))
        for ref in children(op.find(m("FolderIds"))):
            name = ref.get("Id", "")
            is_calendar = name == "calendar" or name == self.state.calendar_id
            is_root = name in ("root", "msgfolderroot") or name == self.state.root_id
            mailbox = (text(ref, "t:Mailbox/t:EmailAddress") or self.state.service_account).lower()
            if not (is_calendar or is_root) or mailbox != self.state.service_account:
                message(messages, "GetFolderResponseMessage", "ErrorFolderNotFound", "Not found.")
                continue
            msg = message(messages, "GetFolderResponseMessage")
            folders = sub(msg, m("Folders"))
            folder = sub(folders, t("CalendarFolder" if is_calendar else "Folder"))
            folder_id = self.state.calendar_id if is_calendar else self.state.root_id
            sub(folder, t("FolderId"), Id=folder_id, ChangeKey="AgAAAA==")
            if is_calendar:
                sub(folder, t("ParentFolderId"), Id=self.state.root_id, ChangeKey="AQAAAA==")
                sub(folder, t("FolderClass"), "IPF.Appointment")
            sub(folder, t("DisplayName"), "Calendar" if is_calendar else "Top of Information Store")
            sub(folder, t("TotalCount"), str(len(self.state.items) if is_calendar else 0))
            sub(folder, t("ChildFolderCount"), "0")

    # ConvertId: exchangelib's first request, sent only to learn the server version from
    # the ServerVersionInfo header. A made-up id is malformed.
    # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/convertid-operation
    def convert_id(self, op: ET.Element, body: ET.Element) -> None:
        response = sub(body, m("ConvertIdResponse"))
        messages = sub(response, m("ResponseMessages"))
        for _ in children(op.find(m("SourceIds"))):
            message(messages, "ConvertIdResponseMessage", "ErrorInvalidIdMalformed", "Malformed.")


def _zone(elem: ET.Element | None) -> SerializableTimeZone:
    """The request's TimeZone (SerializableTimeZone); UTC when absent."""
    if elem is None:
        return SerializableTimeZone(0)

    def rule(tag: str) -> Rule | None:
        part = elem.find(t(tag))
        if part is None:
            return None
        hh, mm, *_ = (text(part, "t:Time") or "00:00:00").split(":")
        return Rule(
            bias=int(text(part, "t:Bias") or "0"),
            at=time(int(hh), int(mm)),
            day_order=int(text(part, "t:DayOrder") or "1"),
            month=int(text(part, "t:Month") or "1"),
            weekday=text(part, "t:DayOfWeek") or "Sunday",
        )

    return SerializableTimeZone(
        int(text(elem, "t:Bias") or "0"), rule("StandardTime"), rule("DaylightTime")
    )


def _merged(
    events: list[MailboxEvent], start: datetime, end: datetime, minutes: int, no_data: bool
) -> str:
    """MergedFreeBusy: one digit per interval, the strongest status in it (4 = NoData).
    https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/mergedfreebusy"""
    rank = ["0", "5", "1", "2", "3"]
    digits: list[str] = []
    step = timedelta(minutes=minutes)
    cursor = start
    while cursor < end:
        if no_data:
            digits.append("4")
        else:
            inside = [
                _MERGED_DIGITS.get(e.busy_type, "2")
                for e in events
                if e.start < cursor + step and e.end > cursor
            ]
            digits.append(max(inside, key=rank.index) if inside else "0")
        cursor += step
    return "".join(digits)


def create_ews_emulator(state: EwsState | None = None) -> Starlette:
    state = state or EwsState()
    handler = _Handler(state)
    auth = EwsAuth(state)

    async def ews(request: Request) -> Response:
        raw = await request.body()
        if state.stall_seconds:
            await asyncio.sleep(state.stall_seconds)
        refused = auth.check(request)
        if refused is not None:
            return refused
        try:
            request_xml = fromstring(raw)
            soap_body = request_xml.find(f"{{{S}}}Body")
            version_elem = request_xml.find(f"{{{S}}}Header/{t('RequestServerVersion')}")
            if soap_body is None or len(soap_body) == 0:
                raise SoapFault("ErrorInvalidRequest", "The request is invalid.")
            op = soap_body[0]
            state.received.append(Received(op.tag.split("}")[-1], raw.decode()))
            version = version_elem.get("Version", "") if version_elem is not None else ""
            if version not in _VERSIONS:
                raise SoapFault(
                    "ErrorInvalidServerVersion", "The specified server version is invalid."
                )
            back_off = state.take_busy()
            if back_off is not None:
                raise SoapFault(
                    "ErrorServerBusy",
                    "The server cannot service this request right now. Try again later.",
                    back_off,
                )
            env, body = envelope(version)
            handler(op, body)
            late = state.late_after_commit.pop(op.tag.split("}")[-1], 0.0)
            if late:
                await asyncio.sleep(late)  # the work is done; the answer comes too late
        except SoapFault as fault:
            return Response(
                fault_body(fault), status_code=500, media_type="text/xml; charset=utf-8"
            )
        except ET.ParseError:
            return Response(
                fault_body(
                    SoapFault("ErrorSchemaValidation", "The request is not well-formed XML.")
                ),
                status_code=500,
                media_type="text/xml; charset=utf-8",
            )
        return Response(serialize(env), media_type="text/xml; charset=utf-8")

    app = Starlette(routes=[Route(EWS_PATH, ews, methods=["POST"])])
    app.state.emulator = state
    return app


@dataclass
class RunningEws:
    """A started emulator: its EWS URL, the CA to trust and the integration's config."""

    state: EwsState
    server: BackgroundServer
    ca_path: Path

    @property
    def ews_url(self) -> str:
        return f"{self.server.url}{EWS_PATH}"

    def config(self, **overrides: str) -> dict[str, str]:
        """The integration configuration that points Tandem at this emulator."""
        values = {
            "ews_url": self.ews_url,
            "username": self.state.username,
            "password": self.state.password,
            "auth_type": "basic",
            "service_account_email": self.state.service_account,
        }
        values.update(overrides)
        return values

    def stop(self) -> None:
        self.server.stop()


def start_ews_emulator(tmpdir: Path, state: EwsState | None = None) -> RunningEws:
    """Serve the emulator over HTTPS on a free loopback port (host name ``localhost``)."""
    state = state or EwsState()
    ca_path, tls = make_test_ca(tmpdir)
    install_ntlm_users(tmpdir, state)
    server = BackgroundServer(create_ews_emulator(state), tls=tls).start()
    return RunningEws(state=state, server=server, ca_path=ca_path)

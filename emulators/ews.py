"""A local stand-in for an Exchange server's EWS endpoint (``/EWS/Exchange.asmx``).

It speaks the SOAP shapes exchangelib sends and parses, as documented in the EWS
reference (https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/...):
GetUserAvailability, GetFolder, CreateItem, GetItem, UpdateItem, DeleteItem,
SyncFolderItems and ConvertId (exchangelib's server version probe), behind Basic or
NTLM authentication (``ews_auth``). ``start_ews_emulator`` serves it over HTTPS with a throwaway
CA, like the Microsoft emulator. Tests and the demo use it; production never does.
"""

from __future__ import annotations

import asyncio
import base64
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from defusedxml.ElementTree import fromstring
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulators.ews_auth import EwsAuth, install_ntlm_users
from emulators.ews_state import (
    Attendee,
    CalendarItem,
    EwsState,
    MailboxEvent,
    Received,
    SentMail,
)
from emulators.ews_time import Rule, SerializableTimeZone
from emulators.runner import BackgroundServer, make_test_ca

__all__ = ["EwsState", "MailboxEvent", "RunningEws", "create_ews_emulator", "start_ews_emulator"]

S = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
for _prefix, _ns in (("s", S), ("m", M), ("t", T), ("e", E)):
    ET.register_namespace(_prefix, _ns)

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


class SoapFault(Exception):
    """A request-level EWS error: a SOAP fault with the response code in its detail."""

    def __init__(self, code: str, message: str, back_off_ms: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.back_off_ms = code, message, back_off_ms


def t(tag: str) -> str:
    return f"{{{T}}}{tag}"


def m(tag: str) -> str:
    return f"{{{M}}}{tag}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, tag, attrs)
    if text is not None:
        child.text = text
    return child


def _text(elem: ET.Element | None, path: str) -> str | None:
    if elem is None:
        return None
    found = elem.find(path, {"t": T, "m": M})
    return found.text if found is not None else None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str | None, zone: SerializableTimeZone | None = None) -> datetime:
    if not value:
        raise SoapFault("ErrorSchemaValidation", "A required date/time value is missing.")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        # Naive times are local to the request's time zone (UTC when none is given).
        return zone.to_utc(parsed) if zone else parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _message(parent: ET.Element, tag: str, code: str = "NoError", text: str = "") -> ET.Element:
    """A ResponseMessage; errors carry MessageText and DescriptiveLinkKey.
    https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/responsecode"""
    ok = code == "NoError"
    msg = _sub(parent, m(tag), ResponseClass="Success" if ok else "Error")
    if not ok:
        _sub(msg, m("MessageText"), text)
    _sub(msg, m("ResponseCode"), code)
    if not ok:
        _sub(msg, m("DescriptiveLinkKey"), "0")
    return msg


class _Handler:
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
        view = _text(options, "t:RequestedView") or "None"
        if view not in {"MergedOnly", "FreeBusy", "FreeBusyMerged", "Detailed", "DetailedMerged"}:
            raise SoapFault("ErrorSchemaValidation", f"RequestedView {view} is not valid.")
        start = _parse_time(_text(options, "t:TimeWindow/t:StartTime"), zone)
        end = _parse_time(_text(options, "t:TimeWindow/t:EndTime"), zone)
        if end - start > MAX_WINDOW:
            # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/timewindow
            raise SoapFault("ErrorTimeIntervalTooBig", "The time interval is larger than 42 days.")
        interval = int(_text(options, "t:MergedFreeBusyIntervalInMinutes") or "30")
        boxes = op.findall(f"{m('MailboxDataArray')}/{t('MailboxData')}")
        if not boxes:
            raise SoapFault("ErrorMailboxDataArrayEmpty", "MailboxDataArray is empty.")
        if len(boxes) > MAX_MAILBOXES:
            raise SoapFault("ErrorMailboxDataArrayTooBig", "More than 100 mailboxes requested.")
        response = _sub(body, m("GetUserAvailabilityResponse"))
        array = _sub(response, m("FreeBusyResponseArray"))
        for box in boxes:
            email = (_text(box, "t:Email/t:Address") or "").lower()
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
        answer = _sub(array, m("FreeBusyResponse"))
        if email not in state.mailboxes:
            _message(
                answer,
                "ResponseMessage",
                "ErrorMailRecipientNotFound",
                "No mailbox with such guid.",
            )
            _sub(_sub(answer, m("FreeBusyView")), t("FreeBusyViewType"), "None")
            return
        if email in state.denied:
            _message(
                answer,
                "ResponseMessage",
                "ErrorNoFreeBusyAccess",
                "The caller does not have free/busy viewing rights.",
            )
            _sub(_sub(answer, m("FreeBusyView")), t("FreeBusyViewType"), "None")
            return
        _message(answer, "ResponseMessage")
        fb = _sub(answer, m("FreeBusyView"))
        _sub(fb, t("FreeBusyViewType"), view)
        events = state.busy_events(email, start, end)
        if view in ("MergedOnly", "FreeBusyMerged", "DetailedMerged"):
            _sub(
                fb,
                t("MergedFreeBusy"),
                _merged(events, start, end, interval, email in state.no_data),
            )
        if view == "MergedOnly" or email in state.no_data:
            return
        array_elem = _sub(fb, t("CalendarEventArray"))
        for event in events:
            if event.busy_type == "Free":
                continue
            item = _sub(array_elem, t("CalendarEvent"))
            _sub(item, t("StartTime"), zone.to_local(event.start).isoformat())
            _sub(item, t("EndTime"), zone.to_local(event.end).isoformat())
            _sub(item, t("BusyType"), event.busy_type)
            if view.startswith("Detailed"):
                # Detailed views carry what the owner typed: Tandem must never ask.
                # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/calendareventdetails
                details = _sub(item, t("CalendarEventDetails"))
                _sub(details, t("Subject"), event.subject)
                _sub(details, t("Location"), event.location)

    # GetFolder for distinguished folders (exchangelib asks for root, then calendar).
    # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getfolder-operation
    def get_folder(self, op: ET.Element, body: ET.Element) -> None:
        response = _sub(body, m("GetFolderResponse"))
        messages = _sub(response, m("ResponseMessages"))
        for ref in _children(op.find(m("FolderIds"))):
            name = ref.get("Id", "")
            is_calendar = name == "calendar" or name == self.state.calendar_id
            is_root = name in ("root", "msgfolderroot") or name == self.state.root_id
            mailbox = (_text(ref, "t:Mailbox/t:EmailAddress") or self.state.service_account).lower()
            if not (is_calendar or is_root) or mailbox != self.state.service_account:
                _message(messages, "GetFolderResponseMessage", "ErrorFolderNotFound", "Not found.")
                continue
            msg = _message(messages, "GetFolderResponseMessage")
            folders = _sub(msg, m("Folders"))
            folder = _sub(folders, t("CalendarFolder" if is_calendar else "Folder"))
            folder_id = self.state.calendar_id if is_calendar else self.state.root_id
            _sub(folder, t("FolderId"), Id=folder_id, ChangeKey="AgAAAA==")
            if is_calendar:
                _sub(folder, t("ParentFolderId"), Id=self.state.root_id, ChangeKey="AQAAAA==")
                _sub(folder, t("FolderClass"), "IPF.Appointment")
            _sub(
                folder, t("DisplayName"), "Calendar" if is_calendar else "Top of Information Store"
            )
            _sub(folder, t("TotalCount"), str(len(self.state.items) if is_calendar else 0))
            _sub(folder, t("ChildFolderCount"), "0")

    # CreateItem of meetings; SendMeetingInvitations decides who gets a request.
    # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/createitem-operation-calendar-item
    def create_item(self, op: ET.Element, body: ET.Element) -> None:
        send = op.get("SendMeetingInvitations")
        response = _sub(body, m("CreateItemResponse"))
        messages = _sub(response, m("ResponseMessages"))
        for elem in _children(op.find(m("Items"))):
            if elem.tag != t("CalendarItem"):
                _message(messages, "CreateItemResponseMessage", "ErrorInvalidItemForOperation", "")
                continue
            if send is None:
                # "This attribute is required for calendar items."
                raise SoapFault(
                    "ErrorSendMeetingInvitationsRequired",
                    "SendMeetingInvitations is required for calendar items.",
                )
            item = self.state.new_item(
                uid=_text(elem, "t:UID") or f"{self.state.calendar_id}-{len(self.state.items)}",
                subject=_text(elem, "t:Subject") or "",
                body=_text(elem, "t:Body") or "",
                location=_text(elem, "t:Location"),
                start=_parse_time(_text(elem, "t:Start")),
                end=_parse_time(_text(elem, "t:End")),
                required=_attendees(elem.find(t("RequiredAttendees"))),
                optional=_attendees(elem.find(t("OptionalAttendees"))),
            )
            if send != "SendToNone":
                self._mail("invitation", item, item.attendees())
            msg = _message(messages, "CreateItemResponseMessage")
            _item_id(_sub(_sub(msg, m("Items")), t("CalendarItem")), item)

    # GetItem with IdOnly plus the requested fields, nothing more.
    # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getitem-operation-calendar-item
    def get_item(self, op: ET.Element, body: ET.Element) -> None:
        fields = {
            f.get("FieldURI", "")
            for f in op.findall(f"{m('ItemShape')}/{t('AdditionalProperties')}/{t('FieldURI')}")
        }
        response = _sub(body, m("GetItemResponse"))
        messages = _sub(response, m("ResponseMessages"))
        for ref in _children(op.find(m("ItemIds"))):
            item = self.state.items.get(ref.get("Id", ""))
            if item is None:
                _message(
                    messages,
                    "GetItemResponseMessage",
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                )
                continue
            msg = _message(messages, "GetItemResponseMessage")
            _calendar_item(_sub(msg, m("Items")), item, fields)

    # UpdateItem: SetItemField / DeleteItemField per field, then who gets told.
    # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/updateitem-operation-calendar-item
    def update_item(self, op: ET.Element, body: ET.Element) -> None:
        send = op.get("SendMeetingInvitationsOrCancellations")
        response = _sub(body, m("UpdateItemResponse"))
        messages = _sub(response, m("ResponseMessages"))
        for change in op.findall(f"{m('ItemChanges')}/{t('ItemChange')}"):
            ref = change.find(t("ItemId"))
            item = self.state.items.get(ref.get("Id", "") if ref is not None else "")
            if item is None:
                _message(messages, "UpdateItemResponseMessage", "ErrorItemNotFound", "Not found.")
                continue
            if send is None:
                raise SoapFault(
                    "ErrorSendMeetingInvitationsOrCancellationsRequired",
                    "SendMeetingInvitationsOrCancellations is required for calendar items.",
                )
            before = {a.email for a in item.attendees()}
            for update in _children(change.find(t("Updates"))):
                uri_elem = update.find(t("FieldURI"))
                uri = uri_elem.get("FieldURI", "") if uri_elem is not None else ""
                value = update.find(t("CalendarItem"))
                _apply(item, uri, value if update.tag == t("SetItemField") else None)
            item.change_key = base64.b64encode(item.change_key.encode()[:8] + b"+").decode()
            self.state.touch(item.item_id)
            if send != "SendToNone":
                now = {a.email for a in item.attendees()}
                self._mail("update", item, [a for a in item.attendees() if a.email in before])
                self._mail(
                    "invitation", item, [a for a in item.attendees() if a.email not in before]
                )
                self._mail("cancellation", item, [Attendee(e) for e in sorted(before - now)])
            msg = _message(messages, "UpdateItemResponseMessage")
            _item_id(_sub(_sub(msg, m("Items")), t("CalendarItem")), item)
            _sub(msg, m("ConflictResults")).append(_element(t("Count"), "0"))

    # DeleteItem; SendMeetingCancellations is required for calendar items.
    # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/deleteitem-operation
    def delete_item(self, op: ET.Element, body: ET.Element) -> None:
        send = op.get("SendMeetingCancellations")
        response = _sub(body, m("DeleteItemResponse"))
        messages = _sub(response, m("ResponseMessages"))
        for ref in _children(op.find(m("ItemIds"))):
            item = self.state.items.get(ref.get("Id", ""))
            if item is None:
                _message(
                    messages,
                    "DeleteItemResponseMessage",
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                )
                continue
            if send is None:
                raise SoapFault(
                    "ErrorSendMeetingCancellationsRequired",
                    "SendMeetingCancellations is required for calendar items.",
                )
            del self.state.items[item.item_id]
            self.state.touch(item.item_id)
            if send != "SendToNone":
                self._mail("cancellation", item, item.attendees())
            _message(messages, "DeleteItemResponseMessage")

    # SyncFolderItems: changes since the SyncState, at most MaxChangesReturned.
    # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/syncfolderitems
    def sync_folder_items(self, op: ET.Element, body: ET.Element) -> None:
        fields = {
            f.get("FieldURI", "")
            for f in op.findall(f"{m('ItemShape')}/{t('AdditionalProperties')}/{t('FieldURI')}")
        }
        folder = op.find(f"{m('SyncFolderId')}/*")
        folder_id = folder.get("Id") if folder is not None else None
        response = _sub(body, m("SyncFolderItemsResponse"))
        messages = _sub(response, m("ResponseMessages"))
        if folder_id not in ("calendar", self.state.calendar_id):
            _message(messages, "SyncFolderItemsResponseMessage", "ErrorFolderNotFound", "No.")
            return
        position = self.state.position(_text(op, "m:SyncState"))
        if position is None:
            # An error message still carries (empty) SyncState and IncludesLastItemInRange.
            # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/syncfolderitemsresponsemessage
            msg = _message(
                messages,
                "SyncFolderItemsResponseMessage",
                "ErrorInvalidSyncStateData",
                "Synchronization state data is corrupt or otherwise invalid.",
            )
            _sub(msg, m("SyncState"))
            _sub(msg, m("IncludesLastItemInRange"), "true")
            return
        limit = int(_text(op, "m:MaxChangesReturned") or "100")
        changes, _ = self.state.changes_since(position)
        page, more = changes[:limit], len(changes) > limit
        newest = position
        for _kind, item_id in page:
            newest = max(newest, self.state.last_touch(item_id))
        if not more:
            newest = max(newest, self.state.newest_position())
        msg = _message(messages, "SyncFolderItemsResponseMessage")
        _sub(msg, m("SyncState"), self.state.sync_state(newest))
        _sub(msg, m("IncludesLastItemInRange"), "false" if more else "true")
        out = _sub(msg, m("Changes"))
        for kind, item_id in page:
            change = _sub(out, t(kind))
            if kind == "Delete":
                _sub(change, t("ItemId"), Id=item_id, ChangeKey="AAAA")
            else:
                _calendar_item(change, self.state.items[item_id], fields)

    # FindItem with a CalendarView: the items overlapping [StartDate, EndDate).
    # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/finditem-operation-calendar-item
    # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/calendarview
    def find_item(self, op: ET.Element, body: ET.Element) -> None:
        view = op.find(m("CalendarView"))
        folder = op.find(f"{m('ParentFolderIds')}/*")
        if view is None or folder is None:
            raise SoapFault("ErrorInvalidOperation", "Only calendar views are emulated.")
        fields = {
            f.get("FieldURI", "")
            for f in op.findall(f"{m('ItemShape')}/{t('AdditionalProperties')}/{t('FieldURI')}")
        }
        start = _parse_time(view.get("StartDate"))
        end = _parse_time(view.get("EndDate"))
        response = _sub(body, m("FindItemResponse"))
        messages = _sub(response, m("ResponseMessages"))
        if folder.get("Id") not in ("calendar", self.state.calendar_id):
            _message(messages, "FindItemResponseMessage", "ErrorFolderNotFound", "No.")
            return
        found = [i for i in self.state.items.values() if i.start < end and i.end > start]
        msg = _message(messages, "FindItemResponseMessage")
        root = _sub(
            msg,
            m("RootFolder"),
            TotalItemsInView=str(len(found)),
            IncludesLastItemInRange="true",
        )
        items = _sub(root, t("Items"))
        for item in sorted(found, key=lambda i: i.start):
            _calendar_item(items, item, fields)

    # ConvertId: exchangelib's first request, sent only to learn the server version from
    # the ServerVersionInfo header. A made-up id is malformed.
    # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/convertid-operation
    def convert_id(self, op: ET.Element, body: ET.Element) -> None:
        response = _sub(body, m("ConvertIdResponse"))
        messages = _sub(response, m("ResponseMessages"))
        for _ in _children(op.find(m("SourceIds"))):
            _message(messages, "ConvertIdResponseMessage", "ErrorInvalidIdMalformed", "Malformed.")

    def _mail(self, kind: str, item: CalendarItem, to: list[Attendee]) -> None:
        for attendee in to:
            self.state.outbox.append(SentMail(kind, attendee.email, item.uid, item.subject))


def _children(elem: ET.Element | None) -> list[ET.Element]:
    return list(elem) if elem is not None else []


def _element(tag: str, text: str) -> ET.Element:
    elem = ET.Element(tag)
    elem.text = text
    return elem


def _zone(elem: ET.Element | None) -> SerializableTimeZone:
    """The request's TimeZone (SerializableTimeZone); UTC when absent."""
    if elem is None:
        return SerializableTimeZone(0)

    def rule(tag: str) -> Rule | None:
        part = elem.find(t(tag))
        if part is None:
            return None
        hh, mm, *_ = (_text(part, "t:Time") or "00:00:00").split(":")
        return Rule(
            bias=int(_text(part, "t:Bias") or "0"),
            at=time(int(hh), int(mm)),
            day_order=int(_text(part, "t:DayOrder") or "1"),
            month=int(_text(part, "t:Month") or "1"),
            weekday=_text(part, "t:DayOfWeek") or "Sunday",
        )

    return SerializableTimeZone(
        int(_text(elem, "t:Bias") or "0"), rule("StandardTime"), rule("DaylightTime")
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


def _attendees(elem: ET.Element | None) -> list[Attendee]:
    if elem is None:
        return []
    return [
        Attendee((_text(a, "t:Mailbox/t:EmailAddress") or "").lower())
        for a in elem.findall(t("Attendee"))
    ]


def _item_id(parent: ET.Element, item: CalendarItem) -> None:
    _sub(parent, t("ItemId"), Id=item.item_id, ChangeKey=item.change_key)


def _calendar_item(parent: ET.Element, item: CalendarItem, fields: set[str]) -> None:
    """A CalendarItem with its ItemId and only the fields asked for."""
    elem = _sub(parent, t("CalendarItem"))
    _item_id(elem, item)
    if "item:Subject" in fields:
        _sub(elem, t("Subject"), item.subject)
    if "item:Body" in fields:
        _sub(elem, t("Body"), item.body, BodyType="Text")
    if "calendar:UID" in fields:
        _sub(elem, t("UID"), item.uid)
    if "calendar:Start" in fields:
        _sub(elem, t("Start"), _iso(item.start))
    if "calendar:End" in fields:
        _sub(elem, t("End"), _iso(item.end))
    if "calendar:IsCancelled" in fields:
        _sub(elem, t("IsCancelled"), "true" if item.is_cancelled else "false")
    if "calendar:Location" in fields and item.location:
        _sub(elem, t("Location"), item.location)
    for uri, tag, people in (
        ("calendar:RequiredAttendees", "RequiredAttendees", item.required),
        ("calendar:OptionalAttendees", "OptionalAttendees", item.optional),
    ):
        if uri in fields and people:
            group = _sub(elem, t(tag))
            for person in people:
                attendee = _sub(group, t("Attendee"))
                mailbox = _sub(attendee, t("Mailbox"))
                _sub(mailbox, t("EmailAddress"), person.email)
                _sub(mailbox, t("RoutingType"), "SMTP")
                _sub(attendee, t("ResponseType"), person.response)


def _apply(item: CalendarItem, uri: str, value: ET.Element | None) -> None:
    """One SetItemField (``value`` given) or DeleteItemField."""
    if uri == "item:Subject":
        item.subject = _text(value, "t:Subject") or ""
    elif uri == "item:Body":
        item.body = _text(value, "t:Body") or ""
    elif uri == "calendar:Location":
        item.location = _text(value, "t:Location")
    elif uri == "calendar:Start" and value is not None:
        item.start = _parse_time(_text(value, "t:Start"))
    elif uri == "calendar:End" and value is not None:
        item.end = _parse_time(_text(value, "t:End"))
    elif uri == "calendar:RequiredAttendees":
        item.required = _merge_responses(item.required, value, "RequiredAttendees")
    elif uri == "calendar:OptionalAttendees":
        item.optional = _merge_responses(item.optional, value, "OptionalAttendees")


def _merge_responses(old: list[Attendee], value: ET.Element | None, tag: str) -> list[Attendee]:
    known = {a.email: a for a in old}
    fresh = _attendees(value.find(t(tag)) if value is not None else None)
    return [known.get(a.email, a) for a in fresh]


def _envelope(requested_version: str) -> tuple[ET.Element, ET.Element]:
    """The response envelope with the ServerVersionInfo header exchangelib reads.
    https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/serverversioninfo"""
    env = ET.Element(f"{{{S}}}Envelope")
    header = _sub(env, f"{{{S}}}Header")
    _sub(
        header,
        t("ServerVersionInfo"),
        MajorVersion="15",
        MinorVersion="1",
        MajorBuildNumber="2507",
        MinorBuildNumber="6",
        Version=requested_version,
    )
    return env, _sub(env, f"{{{S}}}Body")


def _fault(fault: SoapFault) -> bytes:
    """A SOAP fault with the EWS ResponseCode (and MessageXml for ErrorServerBusy's
    BackOffMilliseconds), answered with HTTP 500.
    https://learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/ews-throttling-in-exchange"""
    env = ET.Element(f"{{{S}}}Envelope")
    body = _sub(env, f"{{{S}}}Body")
    elem = _sub(body, f"{{{S}}}Fault")
    _sub(elem, "faultcode", f"a:{fault.code}")
    _sub(elem, "faultstring", fault.message)
    detail = _sub(elem, "detail")
    _sub(detail, f"{{{E}}}ResponseCode", fault.code)
    _sub(detail, f"{{{E}}}Message", fault.message)
    if fault.back_off_ms is not None:
        xml = _sub(detail, t("MessageXml"))
        _sub(xml, t("Value"), str(fault.back_off_ms), Name="BackOffMilliseconds")
    return _serialize(env)


def _serialize(env: ET.Element) -> bytes:
    data: bytes = ET.tostring(env, encoding="utf-8", xml_declaration=True)
    return data


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
            envelope = fromstring(raw)
            soap_body = envelope.find(f"{{{S}}}Body")
            version_elem = envelope.find(f"{{{S}}}Header/{t('RequestServerVersion')}")
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
            env, body = _envelope(version)
            handler(op, body)
            late = state.late_after_commit.pop(op.tag.split("}")[-1], 0.0)
            if late:
                await asyncio.sleep(late)  # the work is done; the answer comes too late
        except SoapFault as fault:
            return Response(_fault(fault), status_code=500, media_type="text/xml; charset=utf-8")
        except ET.ParseError:
            return Response(
                _fault(SoapFault("ErrorSchemaValidation", "The request is not well-formed XML.")),
                status_code=500,
                media_type="text/xml; charset=utf-8",
            )
        return Response(_serialize(env), media_type="text/xml; charset=utf-8")

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

"""The EWS emulator's calendar item operations on the service account's calendar:
CreateItem, GetItem, UpdateItem, DeleteItem, SyncFolderItems and FindItem (CalendarView),
with the meeting mail Exchange would send recorded in the state's outbox."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from emulators.ews_state import Attendee, CalendarItem, EwsState, SentMail, new_id
from emulators.ews_xml import (
    SoapFault,
    children,
    element,
    iso,
    m,
    message,
    parse_time,
    sub,
    t,
    text,
)


class ItemOperations:
    """Handlers taking the operation element and the response body to fill."""

    state: EwsState

    # CreateItem of meetings; SendMeetingInvitations decides who gets a request.
    # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/createitem-operation-calendar-item
    def create_item(self, op: ET.Element, body: ET.Element) -> None:
        send = op.get("SendMeetingInvitations")
        response = sub(body, m("CreateItemResponse"))
        messages = sub(response, m("ResponseMessages"))
        for elem in children(op.find(m("Items"))):
            if elem.tag != t("CalendarItem"):
                message(messages, "CreateItemResponseMessage", "ErrorInvalidItemForOperation", "")
                continue
            if send is None:
                # "This attribute is required for calendar items."
                message(
                    messages,
                    "CreateItemResponseMessage",
                    "ErrorSendMeetingInvitationsRequired",
                    "SendMeetingInvitations is required for calendar items.",
                )
                continue
            item = self.state.new_item(
                uid=text(elem, "t:UID") or f"{self.state.calendar_id}-{len(self.state.items)}",
                subject=text(elem, "t:Subject") or "",
                body=text(elem, "t:Body") or "",
                location=text(elem, "t:Location"),
                start=parse_time(text(elem, "t:Start")),
                end=parse_time(text(elem, "t:End")),
                required=_attendees(elem.find(t("RequiredAttendees"))),
                optional=_attendees(elem.find(t("OptionalAttendees"))),
            )
            if send != "SendToNone":
                self._mail("invitation", item, item.attendees())
            msg = message(messages, "CreateItemResponseMessage")
            _item_id(sub(sub(msg, m("Items")), t("CalendarItem")), item)

    # GetItem with IdOnly plus the requested fields, nothing more.
    # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getitem-operation-calendar-item
    def get_item(self, op: ET.Element, body: ET.Element) -> None:
        fields = {
            f.get("FieldURI", "")
            for f in op.findall(f"{m('ItemShape')}/{t('AdditionalProperties')}/{t('FieldURI')}")
        }
        response = sub(body, m("GetItemResponse"))
        messages = sub(response, m("ResponseMessages"))
        for ref in children(op.find(m("ItemIds"))):
            item = self.state.items.get(ref.get("Id", ""))
            if item is None:
                message(
                    messages,
                    "GetItemResponseMessage",
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                )
                continue
            msg = message(messages, "GetItemResponseMessage")
            _calendar_item(sub(msg, m("Items")), item, fields)

    # UpdateItem: SetItemField / DeleteItemField per field, then who gets told.
    # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/updateitem-operation-calendar-item
    def update_item(self, op: ET.Element, body: ET.Element) -> None:
        send = op.get("SendMeetingInvitationsOrCancellations")
        response = sub(body, m("UpdateItemResponse"))
        messages = sub(response, m("ResponseMessages"))
        for change in op.findall(f"{m('ItemChanges')}/{t('ItemChange')}"):
            ref = change.find(t("ItemId"))
            item = self.state.items.get(ref.get("Id", "") if ref is not None else "")
            if item is None:
                message(messages, "UpdateItemResponseMessage", "ErrorItemNotFound", "Not found.")
                continue
            if send is None:
                message(
                    messages,
                    "UpdateItemResponseMessage",
                    "ErrorSendMeetingInvitationsOrCancellationsRequired",
                    "SendMeetingInvitationsOrCancellations is required for calendar items.",
                )
                continue
            before = {a.email for a in item.attendees()}
            for update in children(change.find(t("Updates"))):
                uri_elem = update.find(t("FieldURI"))
                uri = uri_elem.get("FieldURI", "") if uri_elem is not None else ""
                value = update.find(t("CalendarItem"))
                _apply(item, uri, value if update.tag == t("SetItemField") else None)
            item.change_key = new_id()
            self.state.touch(item.item_id)
            if send != "SendToNone":
                now = {a.email for a in item.attendees()}
                self._mail("update", item, [a for a in item.attendees() if a.email in before])
                self._mail(
                    "invitation", item, [a for a in item.attendees() if a.email not in before]
                )
                self._mail("cancellation", item, [Attendee(e) for e in sorted(before - now)])
            msg = message(messages, "UpdateItemResponseMessage")
            _item_id(sub(sub(msg, m("Items")), t("CalendarItem")), item)
            sub(msg, m("ConflictResults")).append(element(t("Count"), "0"))

    # DeleteItem; SendMeetingCancellations is required for calendar items.
    # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/deleteitem-operation
    def delete_item(self, op: ET.Element, body: ET.Element) -> None:
        send = op.get("SendMeetingCancellations")
        response = sub(body, m("DeleteItemResponse"))
        messages = sub(response, m("ResponseMessages"))
        for ref in children(op.find(m("ItemIds"))):
            item = self.state.items.get(ref.get("Id", ""))
            if item is None:
                message(
                    messages,
                    "DeleteItemResponseMessage",
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                )
                continue
            if send is None:
                message(
                    messages,
                    "DeleteItemResponseMessage",
                    "ErrorSendMeetingCancellationsRequired",
                    "SendMeetingCancellations is required for calendar items.",
                )
                continue
            del self.state.items[item.item_id]
            self.state.touch(item.item_id)
            if send != "SendToNone":
                self._mail("cancellation", item, item.attendees())
            message(messages, "DeleteItemResponseMessage")

    # SyncFolderItems: changes since the SyncState, at most MaxChangesReturned.
    # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/syncfolderitems
    def sync_folder_items(self, op: ET.Element, body: ET.Element) -> None:
        fields = {
            f.get("FieldURI", "")
            for f in op.findall(f"{m('ItemShape')}/{t('AdditionalProperties')}/{t('FieldURI')}")
        }
        folder = op.find(f"{m('SyncFolderId')}/*")
        folder_id = folder.get("Id") if folder is not None else None
        response = sub(body, m("SyncFolderItemsResponse"))
        messages = sub(response, m("ResponseMessages"))
        if folder_id not in ("calendar", self.state.calendar_id):
            message(messages, "SyncFolderItemsResponseMessage", "ErrorFolderNotFound", "No.")
            return
        position = self.state.position(text(op, "m:SyncState"))
        if position is None:
            # An error message still carries (empty) SyncState and IncludesLastItemInRange.
            # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/syncfolderitemsresponsemessage
            msg = message(
                messages,
                "SyncFolderItemsResponseMessage",
                "ErrorInvalidSyncStateData",
                "Synchronization state data is corrupt or otherwise invalid.",
            )
            sub(msg, m("SyncState"))
            sub(msg, m("IncludesLastItemInRange"), "true")
            return
        limit = int(text(op, "m:MaxChangesReturned") or "100")
        changes, _ = self.state.changes_since(position)
        page, more = changes[:limit], len(changes) > limit
        newest = position
        for _kind, item_id in page:
            newest = max(newest, self.state.last_touch(item_id))
        if not more:
            newest = max(newest, self.state.newest_position())
        msg = message(messages, "SyncFolderItemsResponseMessage")
        sub(msg, m("SyncState"), self.state.sync_state(newest))
        sub(msg, m("IncludesLastItemInRange"), "false" if more else "true")
        out = sub(msg, m("Changes"))
        for kind, item_id in page:
            change = sub(out, t(kind))
            if kind == "Delete":
                sub(change, t("ItemId"), Id=item_id, ChangeKey="AAAA")
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
        start = parse_time(view.get("StartDate"))
        end = parse_time(view.get("EndDate"))
        response = sub(body, m("FindItemResponse"))
        messages = sub(response, m("ResponseMessages"))
        if folder.get("Id") not in ("calendar", self.state.calendar_id):
            message(messages, "FindItemResponseMessage", "ErrorFolderNotFound", "No.")
            return
        found = [i for i in self.state.items.values() if i.start < end and i.end > start]
        msg = message(messages, "FindItemResponseMessage")
        root = sub(
            msg,
            m("RootFolder"),
            TotalItemsInView=str(len(found)),
            IncludesLastItemInRange="true",
        )
        items = sub(root, t("Items"))
        for item in sorted(found, key=lambda i: i.start):
            _calendar_item(items, item, fields)

    def _mail(self, kind: str, item: CalendarItem, to: list[Attendee]) -> None:
        for attendee in to:
            self.state.outbox.append(SentMail(kind, attendee.email, item.uid, item.subject))


def _attendees(elem: ET.Element | None) -> list[Attendee]:
    if elem is None:
        return []
    return [
        Attendee((text(a, "t:Mailbox/t:EmailAddress") or "").lower())
        for a in elem.findall(t("Attendee"))
    ]


def _item_id(parent: ET.Element, item: CalendarItem) -> None:
    sub(parent, t("ItemId"), Id=item.item_id, ChangeKey=item.change_key)


def _calendar_item(parent: ET.Element, item: CalendarItem, fields: set[str]) -> None:
    """A CalendarItem with its ItemId and only the fields asked for."""
    elem = sub(parent, t("CalendarItem"))
    _item_id(elem, item)
    if "item:Subject" in fields:
        sub(elem, t("Subject"), item.subject)
    if "item:Body" in fields:
        sub(elem, t("Body"), item.body, BodyType="Text")
    if "calendar:UID" in fields:
        sub(elem, t("UID"), item.uid)
    if "calendar:Start" in fields:
        sub(elem, t("Start"), iso(item.start))
    if "calendar:End" in fields:
        sub(elem, t("End"), iso(item.end))
    if "calendar:IsCancelled" in fields:
        sub(elem, t("IsCancelled"), "true" if item.is_cancelled else "false")
    if "calendar:Location" in fields and item.location:
        sub(elem, t("Location"), item.location)
    for uri, tag, people in (
        ("calendar:RequiredAttendees", "RequiredAttendees", item.required),
        ("calendar:OptionalAttendees", "OptionalAttendees", item.optional),
    ):
        if uri in fields and people:
            group = sub(elem, t(tag))
            for person in people:
                attendee = sub(group, t("Attendee"))
                mailbox = sub(attendee, t("Mailbox"))
                sub(mailbox, t("EmailAddress"), person.email)
                sub(mailbox, t("RoutingType"), "SMTP")
                sub(attendee, t("ResponseType"), person.response)


def _apply(item: CalendarItem, uri: str, value: ET.Element | None) -> None:
    """One SetItemField (``value`` given) or DeleteItemField."""
    if uri == "item:Subject":
        item.subject = text(value, "t:Subject") or ""
    elif uri == "item:Body":
        item.body = text(value, "t:Body") or ""
    elif uri == "calendar:Location":
        item.location = text(value, "t:Location")
    elif uri == "calendar:Start" and value is not None:
        item.start = parse_time(text(value, "t:Start"))
    elif uri == "calendar:End" and value is not None:
        item.end = parse_time(text(value, "t:End"))
    elif uri == "calendar:RequiredAttendees":
        item.required = _merge_responses(item.required, value, "RequiredAttendees")
    elif uri == "calendar:OptionalAttendees":
        item.optional = _merge_responses(item.optional, value, "OptionalAttendees")


def _merge_responses(old: list[Attendee], value: ET.Element | None, tag: str) -> list[Attendee]:
    known = {a.email: a for a in old}
    fresh = _attendees(value.find(t(tag)) if value is not None else None)
    return [known.get(a.email, a) for a in fresh]

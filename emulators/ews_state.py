"""What the EWS emulator knows: mailboxes with their events (subjects and locations
included, so tests can prove they never leak through free/busy), the service account's
calendar items, the mail Exchange would have sent, and every request it received."""

from __future__ import annotations

import base64
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class MailboxEvent:
    """One event in someone's calendar, as the mailbox owner sees it."""

    start: datetime  # aware
    end: datetime
    busy_type: str = "Busy"  # Free | Tentative | Busy | OOF | WorkingElsewhere
    subject: str = "Private subject"
    location: str = "Private room"


@dataclass
class Attendee:
    email: str
    response: str = "NoResponseReceived"  # Accept | Decline | Tentative | Unknown


@dataclass
class CalendarItem:
    """A meeting in the service account's calendar (created through CreateItem or seeded)."""

    item_id: str
    change_key: str
    uid: str
    subject: str
    body: str
    location: str | None
    start: datetime
    end: datetime
    required: list[Attendee] = field(default_factory=list)
    optional: list[Attendee] = field(default_factory=list)
    is_cancelled: bool = False

    def attendees(self) -> list[Attendee]:
        return [*self.required, *self.optional]


@dataclass(frozen=True)
class SentMail:
    """A meeting request, update or cancellation Exchange sent on the organizer's behalf."""

    kind: str  # invitation | update | cancellation
    to: str
    uid: str
    subject: str


@dataclass(frozen=True)
class Received:
    operation: str
    body: str  # the SOAP request as text


def new_id() -> str:
    return base64.b64encode(b"AAMk" + uuid.uuid4().bytes).decode()


class EwsState:
    """The emulated Exchange organization."""

    def __init__(
        self,
        *,
        username: str = "CONTOSO\\tandem-svc",
        password: str = "correct horse battery staple",
        service_account: str = "tandem@contoso.example",
    ) -> None:
        self.username = username
        self.password = password
        self.service_account = service_account.lower()
        self.mailboxes: dict[str, list[MailboxEvent]] = {self.service_account: []}
        self.no_data: set[str] = set()  # mailboxes whose free/busy Exchange cannot produce
        self.denied: set[str] = set()  # mailboxes the service account may not view
        self.items: dict[str, CalendarItem] = {}
        self.outbox: list[SentMail] = []
        self.received: list[Received] = []
        self.calendar_id = new_id()
        self.root_id = new_id()
        self._changes: list[tuple[int, str]] = []  # (sequence, item id)
        self._seq = itertools.count(1)
        self._busy: list[int] = []  # BackOffMilliseconds of the next ErrorServerBusy answers
        self.stall_seconds = 0.0  # answer every request this late (timeout tests)
        # operation -> seconds: do the work, then answer that late (a lost answer)
        self.late_after_commit: dict[str, float] = {}

    # -- setup by tests ---------------------------------------------------------------

    def add_mailbox(self, email: str, *events: MailboxEvent) -> None:
        self.mailboxes.setdefault(email.lower(), []).extend(events)

    def server_busy(self, back_off_ms: int, times: int = 1) -> None:
        """Answer the next ``times`` requests with ErrorServerBusy."""
        self._busy.extend([back_off_ms] * times)

    def take_busy(self) -> int | None:
        return self._busy.pop(0) if self._busy else None

    def seed_item(
        self, uid: str, subject: str, start: datetime, end: datetime, location: str | None = None
    ) -> CalendarItem:
        """A meeting someone else put in the service account's calendar."""
        item = CalendarItem(new_id(), new_id(), uid, subject, "", location, start, end)
        self.items[item.item_id] = item
        self.touch(item.item_id)
        return item

    def respond(self, item_id: str, email: str, response: str) -> None:
        """An attendee answers the meeting request (Accept, Decline, Tentative)."""
        item = self.items[item_id]
        for attendee in item.attendees():
            if attendee.email == email.lower():
                attendee.response = response
                item.change_key = new_id()
                self.touch(item_id)
                return
        raise KeyError(email)

    # -- used by the protocol handlers ------------------------------------------------

    def operations(self) -> list[str]:
        return [r.operation for r in self.received]

    def new_item(self, **fields: object) -> CalendarItem:
        item = CalendarItem(item_id=new_id(), change_key=new_id(), **fields)  # type: ignore[arg-type]
        self.items[item.item_id] = item
        self.touch(item.item_id)
        return item

    def touch(self, item_id: str) -> None:
        self._changes.append((next(self._seq), item_id))

    def sync_state(self, position: int) -> str:
        return base64.b64encode(f"tandem-ews:{self.calendar_id}:{position}".encode()).decode()

    def position(self, state: str | None) -> int | None:
        """The change-log position a sync state stands for; None when it is not ours."""
        if not state:
            return 0
        try:
            prefix, folder, number = base64.b64decode(state, validate=True).decode().split(":")
            if prefix != "tandem-ews" or folder != self.calendar_id:
                return None
            return int(number)
        except ValueError:
            return None

    def changes_since(self, position: int) -> tuple[list[tuple[str, str]], int]:
        """(kind, item id) per item changed after ``position``, in order, and the newest
        position. A deleted item known before ``position`` is a delete; one created after
        it and deleted since is nothing at all."""
        seen: dict[str, int] = {}
        newest = position
        for seq, item_id in self._changes:
            if seq > position:
                seen.setdefault(item_id, seq)
                newest = max(newest, seq)
        created_before = {item_id for seq, item_id in self._changes if seq <= position}
        out: list[tuple[str, str]] = []
        for item_id in sorted(seen, key=seen.__getitem__):
            exists = item_id in self.items
            if item_id in created_before:
                out.append(("Update" if exists else "Delete", item_id))
            elif exists:
                out.append(("Create", item_id))
        return out, newest

    def last_touch(self, item_id: str) -> int:
        return max(seq for seq, touched in self._changes if touched == item_id)

    def newest_position(self) -> int:
        return self._changes[-1][0] if self._changes else 0

    def busy_events(self, email: str, start: datetime, end: datetime) -> list[MailboxEvent]:
        return [e for e in self.mailboxes.get(email, []) if e.start < end and e.end > start]

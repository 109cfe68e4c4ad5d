"""Two-way sync of Tandem's own meetings (DESIGN rule 8): what changed in the owner's
calendar flows back into Tandem.

Only the owner's edits made in their own calendar count (title, description, start,
end, or deleting the event); other attendees can only answer, and their answers flow
back too. Nothing else of the event is read, and providers report Tandem's own events
only (``read_changes``), so nothing of the owner's other events is ever stored.

Changes are applied to the owner's own meetings only, matched by the event id Tandem
keeps on the meeting. A change that matches what Tandem already has does nothing, so
replays, full listings and the echo of Tandem's own writes send no email. Meetings with
a calendar write in flight (``pending``), or changed in Tandem while the calendar was
being read, are skipped: Tandem's newer version is about to overwrite the calendar.

The provider's change token is claimed with a conditional UPDATE in the same
transaction that applies the changes, so two workers reading the same calendar apply
one batch once. Emails go out after the commit through ``delivery.deliver``
(the same path as ``update_meeting``), without writing the change back to the calendar
it came from.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import CalendarConnection, Meeting, MeetingAttendee, MentoringConnection
from server.models.base import utcnow
from server.models.enums import AttendeeResponse, CalendarStatus, MeetingStatus
from server.providers.base import (
    AuthExpired,
    ChangeBatch,
    Credentials,
    EventChange,
    InvalidCredentials,
    ProviderError,
    RateLimited,
    RemovalRechecking,
    SyncTokenExpired,
)
from server.providers.secrets import SecretError
from server.services import audit
from server.services.calendars import refresh_lock
from server.services.calendars.deps import load_credentials, save_refreshed_credentials
from server.services.errors import ValidationFailed
from server.services.invites import InviteKind
from server.services.meetings.booking import MAX_DESCRIPTION
from server.services.meetings.delivery import STATE_SYNCED, MeetingDeps, deliver
from server.services.people import programs
from server.services.validation import check_moment, clean_line, clean_text

__all__ = ["LOOKBEHIND", "sync_meeting_changes"]

log = logging.getLogger("tandem.meeting_sync")

LOOKBEHIND = timedelta(days=1)
# Reads with the same change token that may fail in a row before it is dropped. Servers
# answer an invalid token with 403/409/412 (RFC 6578, Radicale, Xandikos) or 410 (Google,
# Graph), which raise SyncTokenExpired at once; iCloud's answer is undocumented, so any
# other failure repeated this often is taken to mean the token is bad.
TOKEN_FAILURES_BEFORE_RELIST = 3
MAX_TITLE = 200
_RESPONSES = frozenset(r.value for r in AttendeeResponse)


@dataclass(frozen=True, slots=True)
class _Seen:
    """A meeting as it stood before the calendar was read."""

    meeting_id: uuid.UUID
    sequence: int
    state: str


@dataclass(slots=True)
class _Owner:
    connection: CalendarConnection
    seen: dict[str, _Seen] = field(default_factory=dict)  # by provider event id


@dataclass(slots=True)
class _Outcome:
    meeting: Meeting
    kind: InviteKind | None  # the email to send, if any


async def sync_meeting_changes(
    db: AsyncSession,
    deps: MeetingDeps,
    user_ids: Sequence[uuid.UUID] | None = None,
    *,
    max_age: timedelta | None = None,
) -> int:
    """Read the owners' calendars for changes to their Tandem meetings and apply them;
    returns how many meetings changed (edited, cancelled or answered).

    Owners qualify with a connected calendar and an upcoming scheduled meeting written
    there, in a program with two-way sync on. ``user_ids`` limits the owners; with
    ``max_age`` only owners due are read (a push notification asked, or the last read is
    older). Provider failures are logged and retried on a later run; never raises for them.
    """
    now = utcnow()
    owners = await _owners(db, user_ids, max_age, now)
    await db.commit()  # no transaction stays open while providers are called
    changed = 0
    for owner in owners:
        try:
            changed += await _sync_owner(db, deps, owner, now)
        except Exception as exc:  # one calendar's bug must not stop the others
            await db.rollback()
            log.warning(
                "meeting changes of user %s failed: %s",
                owner.connection.user_id,
                type(exc).__name__,
            )
    return changed


# --- who is read -----------------------------------------------------------------------


async def _owners(
    db: AsyncSession,
    user_ids: Sequence[uuid.UUID] | None,
    max_age: timedelta | None,
    now: datetime,
) -> list[_Owner]:
    query = (
        select(Meeting, CalendarConnection, MentoringConnection.program_id)
        .join(CalendarConnection, col(CalendarConnection.user_id) == col(Meeting.owner_id))
        .join(
            MentoringConnection,
            col(MentoringConnection.id) == col(Meeting.connection_id),
            isouter=True,
        )
        .where(
            Meeting.status == MeetingStatus.SCHEDULED,
            col(Meeting.provider_event_id).is_not(None),
            col(Meeting.end_at) > now,
            CalendarConnection.status == CalendarStatus.CONNECTED,
            col(CalendarConnection.can_write_events).is_(True),
            # Meetings of covered owners live in the organization's service mailbox:
            # ``mailbox_sync`` reads that one mailbox for all of them.
            col(CalendarConnection.integration_id).is_(None),
        )
    )
    if user_ids is not None:
        query = query.where(col(Meeting.owner_id).in_(list(user_ids)))
    if max_age is not None:
        query = query.where(
            or_(
                col(CalendarConnection.sync_requested).is_(True),
                col(CalendarConnection.changes_read_at).is_(None),
                col(CalendarConnection.changes_read_at) < now - max_age,
            )
        )
    syncing: dict[uuid.UUID | None, bool] = {}
    owners: dict[uuid.UUID, _Owner] = {}
    for meeting, connection, program_id in (await db.exec(query)).all():
        if meeting.calendar_provider != connection.provider.value:
            continue  # written to a calendar the owner has since replaced
        if program_id not in syncing:
            settings = await programs.settings_for(db, program_id)
            syncing[program_id] = settings.two_way_sync_enabled
        if not syncing[program_id] or meeting.provider_event_id is None:
            continue
        owner = owners.setdefault(connection.user_id, _Owner(connection))
        owner.seen[meeting.provider_event_id] = _Seen(
            meeting.id, meeting.sequence, meeting.calendar_sync_state
        )
    return list(owners.values())


# --- reading one calendar ----------------------------------------------------------------


async def _sync_owner(db: AsyncSession, deps: MeetingDeps, owner: _Owner, now: datetime) -> int:
    connection = owner.connection
    try:
        credentials = load_credentials(deps.calendar.secrets, connection)
    except SecretError:
        log.info("meeting changes of user %s not read: credentials unreadable", connection.user_id)
        return 0
    provider = deps.calendar.registry.get(connection.provider)
    horizon = timedelta(days=deps.calendar.horizon_days)
    start, end = now - LOOKBEHIND, now + horizon
    token = connection.changes_token
    # Graph's delta follows the window of its first listing only: list again before the
    # window runs short, or meetings booked further out would never be seen.
    renew = connection.changes_until is None or connection.changes_until < now + horizon / 2
    changed = 0
    try:
        # Several nodes: the newest token, refreshed under the connection's lock first.
        await refresh_lock.prepare(db, deps.calendar, connection.id, credentials)
        if token is not None:
            try:
                batch = await _recheck_removals(
                    provider,
                    credentials,
                    owner,
                    await provider.read_changes(credentials, token, start, end),
                )
            except (SyncTokenExpired, ProviderError) as exc:
                if not isinstance(exc, SyncTokenExpired) and not _token_gave_up(connection, exc):
                    raise
                log.info("change token of user %s given up; listing again", connection.user_id)
                if not await _store_token(db, deps, owner, credentials, token, None):
                    return 0
                token = None
            else:
                applied = await _apply_batch(db, deps, owner, credentials, token, batch, None, now)
                if applied is None:
                    return 0  # another worker applied this batch
                changed += applied
                token = batch.sync_token
                if token is not None and not renew:
                    return changed
        batch = await _recheck_removals(
            provider, credentials, owner, await provider.read_changes(credentials, None, start, end)
        )
        applied = await _apply_batch(db, deps, owner, credentials, token, batch, end, now)
        return changed + (applied or 0)
    except (ProviderError, TimeoutError) as exc:
        log.info("meeting changes of user %s not read: %s", connection.user_id, type(exc).__name__)
        with_token = token is not None and token == connection.changes_token
        counts = not isinstance(exc, AuthExpired | InvalidCredentials | RateLimited)
        await _note_failure(db, deps, owner, credentials, now, token_failed=with_token and counts)
        return changed


def _token_gave_up(connection: CalendarConnection, exc: ProviderError) -> bool:
    """Whether this failed read with the change token is one too many in a row.

    Lost grants and rate limits say nothing about the token; anything else counts.
    """
    if isinstance(exc, AuthExpired | InvalidCredentials | RateLimited):
        return False
    return connection.changes_failures + 1 >= TOKEN_FAILURES_BEFORE_RELIST


async def _claim(
    db: AsyncSession,
    connection_id: uuid.UUID,
    expected: str | None,
    values: Mapping[str, object],
) -> bool:
    """Move the token from ``expected`` on; False when another worker moved it first."""
    condition = (
        col(CalendarConnection.changes_token).is_(None)
        if expected is None
        else col(CalendarConnection.changes_token) == expected
    )
    result = await db.exec(
        update(CalendarConnection)
        .where(col(CalendarConnection.id) == connection_id, condition)
        .values(**values)
    )
    return bool(result.rowcount == 1)


async def _store_token(
    db: AsyncSession,
    deps: MeetingDeps,
    owner: _Owner,
    credentials: Credentials,
    expected: str | None,
    token: str | None,
) -> bool:
    values = {"changes_token": token, "changes_failures": 0}
    claimed = await _claim(db, owner.connection.id, expected, values)
    _keep_credentials(db, deps, owner.connection, credentials)
    await db.commit()
    return claimed


async def _note_failure(
    db: AsyncSession,
    deps: MeetingDeps,
    owner: _Owner,
    credentials: Credentials,
    now: datetime,
    *,
    token_failed: bool = False,
) -> None:
    """A failed read waits for the next due time instead of hammering the provider; a
    failed read with the change token is counted (see ``TOKEN_FAILURES_BEFORE_RELIST``)."""
    values: dict[str, object] = {"changes_read_at": now}
    if token_failed:
        values["changes_failures"] = CalendarConnection.changes_failures + 1
    await db.exec(
        update(CalendarConnection)
        .where(col(CalendarConnection.id) == owner.connection.id)
        .values(**values)
    )
    _keep_credentials(db, deps, owner.connection, credentials)
    await db.commit()


def _keep_credentials(
    db: AsyncSession, deps: MeetingDeps, connection: CalendarConnection, credentials: Credentials
) -> None:
    if credentials.changed:
        save_refreshed_credentials(deps.calendar.secrets, connection, credentials)
        db.add(connection)


async def _recheck_removals(
    provider: object, credentials: Credentials, owner: _Owner, batch: ChangeBatch
) -> ChangeBatch:
    """Some change feeds (Graph's delta) report a meeting moved outside the feed's window as
    removed; before cancelling one of the owner's meetings over that, look at the event."""
    if not isinstance(provider, RemovalRechecking):
        return batch
    changes = [
        await provider.recheck_removed(credentials, change.provider_event_id)
        if change.deleted and change.provider_event_id in owner.seen
        else change
        for change in batch.changes
    ]
    return ChangeBatch(changes=changes, sync_token=batch.sync_token)


# --- applying a batch ----------------------------------------------------------------------


async def _apply_batch(
    db: AsyncSession,
    deps: MeetingDeps,
    owner: _Owner,
    credentials: Credentials,
    expected: str | None,
    batch: ChangeBatch,
    listed_until: datetime | None,
    now: datetime,
) -> int | None:
    """Claim the token and apply the batch in one transaction, then send the emails.
    None when another worker claimed the token first (its batch is the same)."""
    values: dict[str, object] = {
        "changes_token": batch.sync_token,
        "changes_read_at": now,
        "changes_failures": 0,
    }
    if listed_until is not None:
        values["changes_until"] = listed_until
    if not await _claim(db, owner.connection.id, expected, values):
        _keep_credentials(db, deps, owner.connection, credentials)
        await db.commit()
        return None
    outcomes = await _apply_changes(db, owner, batch.changes, now)
    _keep_credentials(db, deps, owner.connection, credentials)
    await db.commit()
    for outcome in outcomes:
        if outcome.kind is not None:
            await deliver(db, deps, outcome.meeting, outcome.kind, write_calendar=False)
    return len(outcomes)


async def _apply_changes(
    db: AsyncSession, owner: _Owner, changes: Iterable[EventChange], now: datetime
) -> list[_Outcome]:
    latest: dict[str, EventChange] = {}
    for change in changes:
        if change.provider_event_id in owner.seen:
            latest[change.provider_event_id] = change  # the last word on an event wins
    if not latest:
        return []
    owner_id = owner.connection.user_id
    ids = [owner.seen[event_id].meeting_id for event_id in latest]
    meetings = (
        await db.exec(
            select(Meeting)
            .where(col(Meeting.id).in_(ids), Meeting.owner_id == owner_id)
            .execution_options(populate_existing=True)
        )
    ).all()
    attendees = await _attendees(db, [m.id for m in meetings])
    outcomes = []
    for meeting in meetings:
        event_id = meeting.provider_event_id
        if event_id is None or event_id not in latest:
            continue
        if not _still_as_seen(meeting, owner.seen[event_id], now):
            continue
        outcome = _apply(
            db, meeting, attendees.get(meeting.id, []), latest[event_id], owner.connection, now
        )
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def _still_as_seen(meeting: Meeting, seen: _Seen, now: datetime) -> bool:
    """The calendar's copy is current only when Tandem's last write had landed before the
    read and nothing changed in Tandem since (every change raises the SEQUENCE)."""
    return (
        meeting.status == MeetingStatus.SCHEDULED
        and meeting.end_at > now
        and seen.state == STATE_SYNCED
        and meeting.calendar_sync_state == STATE_SYNCED
        and meeting.sequence == seen.sequence
    )


def _apply(
    db: AsyncSession,
    meeting: Meeting,
    attendees: Sequence[MeetingAttendee],
    change: EventChange,
    connection: CalendarConnection,
    now: datetime,
) -> _Outcome | None:
    if change.deleted:
        meeting.status = MeetingStatus.CANCELLED
        _bump(db, meeting, now)
        _audit(db, meeting, edited=[], moved=False, cancelled=True, answers=0)
        return _Outcome(meeting, "cancel")
    edited, moved = _owner_edits(meeting, change)
    if moved:
        for attendee in attendees:
            if attendee.user_id != meeting.owner_id:
                attendee.response = AttendeeResponse.NEEDS_ACTION
                attendee.responded_at = None
                db.add(attendee)
    answers = _answers(db, meeting, attendees, change, connection, moved, now)
    if not edited and not answers:
        return None
    if edited:
        _bump(db, meeting, now)
    _audit(db, meeting, edited=edited, moved=moved, cancelled=False, answers=answers)
    return _Outcome(meeting, "update" if edited else None)


def _owner_edits(meeting: Meeting, change: EventChange) -> tuple[list[str], bool]:
    """Apply what the owner changed; returns the names of the changed fields and whether
    the meeting moved. Values Tandem cannot hold (an empty title, an end before the start)
    are left as Tandem has them."""
    edited: list[str] = []
    title = clean_line(change.title or "")[:MAX_TITLE]
    if title and title != meeting.title:
        meeting.title = title
        edited.append("title")
    # A missing description (CalDAV omits an empty DESCRIPTION) means an empty one.
    # Only a change of the text counts, not of its markup or spacing.
    description = clean_text(change.description or "", field="description")[:MAX_DESCRIPTION]
    if _plain(description) != _plain(meeting.description):
        meeting.description = description
        edited.append("description")
    start, end = change.start, change.end
    moved = False
    if (
        start is not None
        and end is not None
        and start.tzinfo is not None
        and end.tzinfo is not None
        and end > start
        and _in_range(start)
        and _in_range(end)
        and (start, end) != (meeting.start_at, meeting.end_at)
    ):
        meeting.start_at, meeting.end_at = start, end
        edited.append("time")
        moved = True
    return edited, moved


def _plain(text: str) -> str:
    """Descriptions compared the way calendars round-trip them: line endings, white space
    at the edges of lines and runs of spaces inside them (HTML collapses those, so a
    description Google's editor re-saved as markup reads back with single spaces); and
    without control or bidi characters, as any text Tandem accepts."""
    lines = clean_text(text, field="description").split("\n")
    return "\n".join(" ".join(line.split()) for line in lines).strip()


def _in_range(moment: datetime) -> bool:
    """A time moved in a calendar is taken only within the range Tandem accepts itself."""
    try:
        check_moment(moment, field="start")
    except ValidationFailed:
        return False
    return True


def _answers(
    db: AsyncSession,
    meeting: Meeting,
    attendees: Sequence[MeetingAttendee],
    change: EventChange,
    connection: CalendarConnection,
    moved: bool,
    now: datetime,
) -> int:
    """Take the answers the calendar shows for the meeting's invited attendees.

    Only an answer that changed in the calendar since Tandem last looked is news (a
    stale copy must not override an answer given in Tandem), a calendar never takes an
    answer back to "needs action", and answers seen together with a move were given for
    the old time. The owner's own row is never touched.
    """
    responses = {email.casefold(): value for email, value in change.attendee_responses.items()}
    owner_address = connection.account_email.casefold()
    taken = 0
    for attendee in attendees:
        address = attendee.email.casefold()
        if attendee.user_id == meeting.owner_id or address == owner_address:
            continue
        shown = responses.get(address)
        if shown not in _RESPONSES or shown == attendee.calendar_response:
            continue
        attendee.calendar_response = shown
        db.add(attendee)
        answer = AttendeeResponse(shown)
        if moved or answer == AttendeeResponse.NEEDS_ACTION or answer == attendee.response:
            continue
        attendee.response = answer
        attendee.responded_at = now
        taken += 1
    return taken


def _bump(db: AsyncSession, meeting: Meeting, now: datetime) -> None:
    meeting.sequence += 1
    meeting.updated_at = now
    db.add(meeting)


def _audit(
    db: AsyncSession,
    meeting: Meeting,
    *,
    edited: list[str],
    moved: bool,
    cancelled: bool,
    answers: int,
) -> None:
    """Field names and counts only: never a title or a description."""
    audit.record(
        db,
        "meeting.updated_from_calendar",
        actor_id=meeting.owner_id if edited or cancelled else None,
        subject_id=meeting.owner_id,
        target_type="meeting",
        target_id=meeting.id,
        provider=meeting.calendar_provider,
        fields=edited,
        moved=moved,
        cancelled=cancelled,
        answers=answers,
    )


async def _attendees(
    db: AsyncSession, meeting_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[MeetingAttendee]]:
    grouped: dict[uuid.UUID, list[MeetingAttendee]] = {}
    if not meeting_ids:
        return grouped
    rows = await db.exec(
        select(MeetingAttendee)
        .where(col(MeetingAttendee.meeting_id).in_(list(meeting_ids)))
        .execution_options(populate_existing=True)
    )
    for row in rows.all():
        grouped.setdefault(row.meeting_id, []).append(row)
    return grouped

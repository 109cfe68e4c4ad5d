"""Meetings booked through Tandem: every rule about booking, changing, cancelling and
answering them, for pages and the API alike.

The owner is the person who books; the attendees are the members of the mentoring
connection (the owner among them, as accepted). Only attendees see a meeting, only the
owner changes or cancels it, only the other attendees answer it, each for themselves.

Booking is race safe: the attendees' time is locked (a PostgreSQL advisory lock per
attendee; on SQLite the database's single write lock, taken before anything is read), the
slot is checked again under the lock, and the meeting is committed before the lock goes.
Two people booking the same partner's last free hour: one wins, the other is told the
time was just taken. Calendars and mail are reached only after the commit
(``delivery``), so a provider outage never loses a meeting.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import Meeting, MeetingAttendee, MentoringConnection, UsedRsvpLink, User
from server.models.base import utcnow
from server.models.enums import AttendeeResponse, MeetingStatus, ProviderName
from server.providers.registry import TANDEM_UID_SUFFIX
from server.services import audit
from server.services.availability import Mode
from server.services.availability.query import AvailabilityRequest, find_availability
from server.services.errors import (
    Conflict,
    DomainError,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from server.services.invites import (
    InvalidLink,
    RsvpClaim,
    build_cancel,
    build_request,
    read_rsvp_token,
)
from server.services.meetings.delivery import (
    INVITES_BY_TANDEM,
    STATE_SYNCED,
    MeetingDeps,
    deliver,
    invitation_for,
    mark_for_calendar,
    plan_calendar_write,
    retry_pending_calendar_writes,
    send_decline_notice,
)
from server.services.people import mentoring
from server.services.people.sessions import Viewer
from server.services.validation import check_moment, clean_line, clean_name, clean_text

__all__ = [
    "InvalidRsvpLink",
    "MeetingDeps",
    "RsvpPreview",
    "SlotNotFree",
    "answer_meeting",
    "attendees_by_meeting",
    "attendees_with_users",
    "cancel_meeting",
    "clean_note_text",
    "get_meeting",
    "meeting_ics",
    "meetings_for",
    "nearest_free_starts",
    "preview_rsvp_link",
    "respond_to_meeting",
    "respond_with_link",
    "retry_pending_calendar_writes",
    "schedule_meeting",
    "update_meeting",
]

MIN_MINUTES = 5
MAX_MINUTES = 8 * 60
MAX_DESCRIPTION = 5000
MAX_LOCATION = 500
MAX_LIST = 200
MAX_NOTE = 1000
ANSWERS = (AttendeeResponse.ACCEPTED, AttendeeResponse.TENTATIVE, AttendeeResponse.DECLINED)
_LOCK_NAMESPACE = 0x54414E  # "TAN": keeps Tandem's advisory locks apart from anyone else's


class SlotNotFree(Conflict):
    """The asked time does not suit everyone (busy, or outside the program's rules);
    ``message`` carries the engine's reason. Pages offer ``nearest_free_starts`` instead."""


class InvalidRsvpLink(DomainError):
    """An RSVP link that cannot be honoured; ``message`` says why in plain words."""

    code = "invalid"


@dataclass(frozen=True, slots=True)
class RsvpPreview:
    """What a valid link would do: answer ``response`` for ``attendee`` of ``meeting``."""

    meeting: Meeting
    attendee: MeetingAttendee
    response: AttendeeResponse
    time_zone: str = "UTC"
    """The attendee's own zone when they have a Tandem account; guests see UTC."""


# --- reading ----------------------------------------------------------------------------


async def get_meeting(db: AsyncSession, user: User, meeting_id: uuid.UUID) -> Meeting:
    """The meeting if ``user`` is among its attendees (the owner is); else ``NotFound``."""
    meeting = await db.get(Meeting, meeting_id)
    if meeting is None or await _attendee_of(db, meeting.id, user.id) is None:
        raise NotFound("meeting")
    return meeting


async def meeting_ics(db: AsyncSession, user: User, meeting_id: uuid.UUID) -> bytes:
    """The meeting as an ``.ics`` file for an attendee to import (REQUEST, or CANCEL once
    cancelled); ``NotFound`` for anyone who is not an attendee."""
    meeting = await get_meeting(db, user, meeting_id)
    owner = await db.get(User, meeting.owner_id)
    if owner is None:
        raise NotFound("meeting")
    people = (await attendees_with_users(db, [meeting.id]))[meeting.id]
    zones = {a.user_id: u.time_zone for a, u in people if a.user_id is not None and u}
    invite = invitation_for(meeting, owner, [a for a, _u in people], zones)
    if meeting.status == MeetingStatus.CANCELLED:
        return build_cancel(invite)
    return build_request(invite)


async def meetings_for(
    db: AsyncSession,
    user: User,
    *,
    upcoming: bool | None = None,
    connection_id: uuid.UUID | None = None,
    now: datetime | None = None,
    limit: int = MAX_LIST,
) -> list[Meeting]:
    """The user's meetings. ``upcoming=True``: not yet ended, soonest first; ``False``:
    ended, latest first; ``None``: all, by start. Cancelled ones are included (shown as
    cancelled)."""
    now = now or utcnow()
    query = (
        select(Meeting)
        .join(MeetingAttendee, col(MeetingAttendee.meeting_id) == col(Meeting.id))
        .where(MeetingAttendee.user_id == user.id)
    )
    if connection_id is not None:
        query = query.where(Meeting.connection_id == connection_id)
    if upcoming is True:
        query = query.where(col(Meeting.end_at) > now).order_by(col(Meeting.start_at))
    elif upcoming is False:
        query = query.where(col(Meeting.end_at) <= now).order_by(col(Meeting.start_at).desc())
    else:
        query = query.order_by(col(Meeting.start_at))
    return list((await db.exec(query.limit(min(max(limit, 1), MAX_LIST)))).all())


async def attendees_by_meeting(
    db: AsyncSession, meeting_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[MeetingAttendee]]:
    """Attendees of many meetings in one query (no N+1), each list ordered by name."""
    grouped: dict[uuid.UUID, list[MeetingAttendee]] = {mid: [] for mid in meeting_ids}
    if not meeting_ids:
        return grouped
    rows = await db.exec(
        select(MeetingAttendee)
        .where(col(MeetingAttendee.meeting_id).in_(list(meeting_ids)))
        .order_by(col(MeetingAttendee.name))
    )
    for row in rows.all():
        grouped.setdefault(row.meeting_id, []).append(row)
    return grouped


async def attendees_with_users(
    db: AsyncSession, meeting_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[MeetingAttendee, User | None]]]:
    """Attendees of many meetings with their accounts, in one query (for DataLoaders)."""
    grouped: dict[uuid.UUID, list[tuple[MeetingAttendee, User | None]]] = {
        mid: [] for mid in meeting_ids
    }
    if not meeting_ids:
        return grouped
    rows = await db.exec(
        select(MeetingAttendee, User)
        .join(User, col(User.id) == col(MeetingAttendee.user_id), isouter=True)
        .where(col(MeetingAttendee.meeting_id).in_(list(meeting_ids)))
        .order_by(col(MeetingAttendee.name))
    )
    for attendee, user in rows.all():
        grouped.setdefault(attendee.meeting_id, []).append((attendee, user))
    return grouped


# --- booking and changing ----------------------------------------------------------------


async def schedule_meeting(
    db: AsyncSession,
    deps: MeetingDeps,
    viewer: Viewer,
    *,
    connection_id: uuid.UUID,
    start: datetime,
    duration_minutes: int,
    title: str,
    description: str = "",
    location: str | None = None,
    attendee_ids: Sequence[uuid.UUID] | None = None,
    check_availability: bool = True,
    note: str | None = None,
    optional_ids: Sequence[uuid.UUID] = (),
) -> Meeting:
    """Book a meeting for the connection's members (or ``attendee_ids`` among them).
    ``note`` is a message for the attendees, carried in the invitation email only.
    ``optional_ids`` are attendees invited as optional (the owner never is).

    Commits the session (the meeting must survive whatever a provider does next), then
    writes the owner's calendar and sends invitations. With ``check_availability`` the
    slot must suit the program's rules and nobody may be busy or already booked; the
    check uses cached busy times (no provider call while the attendees are locked).
    """
    owner = viewer.user
    connection, members = await mentoring.visible_connection_with_members(db, owner, connection_id)
    member_ids = {user.id for user, _role in members}
    if owner.id not in member_ids:
        raise PermissionDenied("Only members of this connection can book its meetings.")
    wanted = member_ids if attendee_ids is None else {*attendee_ids, owner.id}
    if not wanted <= member_ids:
        raise ValidationFailed("Attendees must be members of this connection.", field="attendeeIds")
    people = [user for user, _role in members if user.id in wanted]
    if len(people) < 2:
        raise ValidationFailed("Invite at least one other person.", field="attendeeIds")
    clean_title, clean_description, clean_location = _clean_text(title, description, location)
    start, end = _clean_time(start, duration_minutes)
    clean_note = clean_note_text(note)

    await _lock_time_of(db, [p.id for p in people])
    if check_availability:
        await _ensure_free(db, deps, owner, people, connection, start, end)
    else:  # e.g. a finalized poll: calendars were asked already, but never double-book
        await _ensure_no_clash(db, owner, people, start, end)
    meeting = Meeting(
        connection_id=connection.id,
        owner_id=owner.id,
        title=clean_title,
        description=clean_description,
        location=clean_location,
        start_at=start,
        end_at=end,
        time_zone=owner.time_zone,
        ical_uid=f"{uuid.uuid4()}{TANDEM_UID_SUFFIX}",
    )
    db.add(meeting)
    await db.flush()
    now = utcnow()
    for person in people:
        is_owner = person.id == owner.id
        db.add(
            MeetingAttendee(
                meeting_id=meeting.id,
                user_id=person.id,
                email=person.email,
                name=person.name,
                response=AttendeeResponse.ACCEPTED if is_owner else AttendeeResponse.NEEDS_ACTION,
                responded_at=now if is_owner else None,
                optional=not is_owner and person.id in set(optional_ids),
            )
        )
    await plan_calendar_write(db, meeting, connection.program_id)
    audit.record(
        db,
        "meeting.scheduled",
        actor_id=viewer.actor.id,
        subject_id=owner.id,
        target_type="meeting",
        target_id=meeting.id,
        attendees=len(people),
    )
    await db.commit()
    await deliver(db, deps, meeting, "request", note=clean_note)
    return meeting


async def update_meeting(
    db: AsyncSession,
    deps: MeetingDeps,
    viewer: Viewer,
    meeting_id: uuid.UUID,
    *,
    start: datetime | None = None,
    duration_minutes: int | None = None,
    title: str | None = None,
    description: str | None = None,
    location: str | None = None,
    check_availability: bool = True,
) -> Meeting:
    """Change what is given (``None`` leaves a field alone; ``location=""`` clears it).

    A new time is checked like a booking and asks everyone to answer again. Any change
    raises the SEQUENCE and re-invites (a new REQUEST); no change sends nothing. Commits.
    """
    meeting = await _owned_open_meeting(db, viewer, meeting_id, "change")
    current_minutes = int((meeting.end_at - meeting.start_at).total_seconds() // 60)
    new_title, new_description, new_location = _clean_text(
        meeting.title if title is None else title,
        meeting.description if description is None else description,
        meeting.location if location is None else location,
    )
    new_start, new_end = meeting.start_at, meeting.end_at
    moved = (start is not None and start != meeting.start_at) or (
        duration_minutes is not None and duration_minutes != current_minutes
    )
    if moved:
        new_start, new_end = _clean_time(
            start or meeting.start_at, duration_minutes or current_minutes
        )
    changed = moved or (new_title, new_description, new_location) != (
        meeting.title,
        meeting.description,
        meeting.location,
    )
    if not changed:
        return meeting
    attendees = (await attendees_by_meeting(db, [meeting.id]))[meeting.id]
    if moved:
        ids = [a.user_id for a in attendees if a.user_id is not None]
        await _lock_time_of(db, ids)
        if check_availability:
            users = list((await db.exec(select(User).where(col(User.id).in_(ids)))).all())
            connection = (
                await db.get(MentoringConnection, meeting.connection_id)
                if meeting.connection_id
                else None
            )
            await _ensure_free(
                db, deps, viewer.user, users, connection, new_start, new_end, ignore=meeting.id
            )
        for attendee in attendees:
            if attendee.user_id != meeting.owner_id:
                attendee.response = AttendeeResponse.NEEDS_ACTION
                attendee.responded_at = None
                db.add(attendee)
    meeting.title, meeting.description, meeting.location = new_title, new_description, new_location
    meeting.start_at, meeting.end_at = new_start, new_end
    meeting.sequence += 1
    meeting.updated_at = utcnow()
    mark_for_calendar(meeting)
    db.add(meeting)
    audit.record(
        db,
        "meeting.updated",
        actor_id=viewer.actor.id,
        subject_id=viewer.user.id,
        target_type="meeting",
        target_id=meeting.id,
        moved=moved,
    )
    await db.commit()
    await deliver(db, deps, meeting, "update")
    return meeting


async def cancel_meeting(
    db: AsyncSession,
    deps: MeetingDeps,
    viewer: Viewer,
    meeting_id: uuid.UUID,
    *,
    message: str | None = None,
) -> Meeting:
    """Cancel (owner only): a METHOD:CANCEL with a higher SEQUENCE, and the owner's event
    removed; ``message`` (optional) goes into the cancellation email, never stored.
    Cancelling twice is harmless. Commits."""
    note = clean_note_text(message)
    meeting = await get_meeting(db, viewer.user, meeting_id)
    if meeting.status == MeetingStatus.CANCELLED and meeting.owner_id == viewer.user.id:
        return meeting
    meeting = await _owned_open_meeting(db, viewer, meeting_id, "cancel")
    meeting.status = MeetingStatus.CANCELLED
    meeting.sequence += 1
    meeting.updated_at = utcnow()
    mark_for_calendar(meeting)
    db.add(meeting)
    audit.record(
        db,
        "meeting.cancelled",
        actor_id=viewer.actor.id,
        subject_id=viewer.user.id,
        target_type="meeting",
        target_id=meeting.id,
    )
    await db.commit()
    await deliver(db, deps, meeting, "cancel", note=note)
    return meeting


def clean_note_text(raw: str | None) -> str | None:
    """An organizer's message for the emails: plain text, at most ``MAX_NOTE`` characters."""
    if raw is None:
        return None
    text = clean_text(raw, field="message", what="The message", max_length=MAX_NOTE)
    return text or None


# --- after a refusal -------------------------------------------------------------------------

NEAREST_WINDOW = timedelta(days=3)


async def nearest_free_starts(
    db: AsyncSession,
    deps: MeetingDeps,
    viewer: Viewer,
    *,
    connection_id: uuid.UUID,
    start: datetime,
    duration_minutes: int,
    count: int = 3,
    now: datetime | None = None,
) -> list[datetime]:
    """The ``count`` free starts nearest to ``start`` for everyone in the connection,
    within three days either side (never in the past), in time order: what to offer
    when a booking was refused. Reads the cache only; an empty list when nothing fits."""
    now = now or utcnow()
    connection, members = await mentoring.visible_connection_with_members(
        db, viewer.user, connection_id
    )
    if not MIN_MINUTES <= duration_minutes <= MAX_MINUTES:
        return []
    step = 15 if duration_minutes < 30 else 30
    window_start = max(start - NEAREST_WINDOW, now)
    # Offer round times: start the search on a multiple of the step past the hour.
    spare = window_start.minute % step * 60 + window_start.second + window_start.microsecond / 1e6
    if spare:
        window_start += timedelta(seconds=step * 60 - spare)
    window_end = start + NEAREST_WINDOW
    if window_end <= window_start:
        return []
    answer = await find_availability(
        db,
        deps.calendar,
        viewer.user,
        AvailabilityRequest(
            participant_ids=[user.id for user, _role in members],
            start=window_start,
            end=window_end,
            duration_minutes=duration_minutes,
            step_minutes=step,
            program_id=connection.program_id,
            mode=Mode.PAIR if len(members) == 2 else Mode.GROUP,
        ),
        now=now,
        refresh=False,
    )
    starts = [slot.start for slot in answer.result.slots if slot.start != start]
    nearest = sorted(starts, key=lambda s: (abs(s - start), s))[:count]
    return sorted(nearest)


# --- answering -----------------------------------------------------------------------------


async def respond_to_meeting(
    db: AsyncSession,
    viewer: Viewer,
    meeting_id: uuid.UUID,
    response: AttendeeResponse,
    *,
    now: datetime | None = None,
) -> MeetingAttendee:
    """Record the viewer's own answer. The caller commits."""
    meeting = await get_meeting(db, viewer.user, meeting_id)
    attendee = await _attendee_of(db, meeting.id, viewer.user.id)
    assert attendee is not None
    if meeting.owner_id == viewer.user.id:
        raise PermissionDenied("You organize this meeting; only the people you invited answer.")
    _answerable(meeting, now or utcnow())
    _record_answer(meeting, attendee, response, now or utcnow())
    db.add(attendee)
    db.add(meeting)
    audit.record(
        db,
        "meeting.answered",
        actor_id=viewer.actor.id,
        subject_id=viewer.user.id,
        target_type="meeting",
        target_id=meeting.id,
        response=response.value,
    )
    return attendee


async def answer_meeting(
    db: AsyncSession,
    deps: MeetingDeps,
    viewer: Viewer,
    meeting_id: uuid.UUID,
    response: AttendeeResponse,
    *,
    now: datetime | None = None,
) -> MeetingAttendee:
    """``respond_to_meeting``, committed, then the organizer is told of a new decline."""
    meeting = await get_meeting(db, viewer.user, meeting_id)
    before = await _attendee_of(db, meeting.id, viewer.user.id)
    previous = before.response if before is not None else None
    attendee = await respond_to_meeting(db, viewer, meeting_id, response, now=now)
    await db.commit()
    if response == AttendeeResponse.DECLINED and previous != AttendeeResponse.DECLINED:
        await send_decline_notice(db, deps, meeting, attendee)
    return attendee


async def preview_rsvp_link(
    db: AsyncSession, deps: MeetingDeps, token: str, *, now: datetime | None = None
) -> RsvpPreview:
    """What a link from an invitation email would record, without recording it (a GET
    must change nothing: mail scanners open links)."""
    now = now or utcnow()
    preview = await _check_link(db, deps, token, now)
    if await _link_used(db, token):
        raise InvalidRsvpLink("This link was already used. Your answer is recorded.")
    return preview


async def respond_with_link(
    db: AsyncSession, deps: MeetingDeps, token: str, *, now: datetime | None = None
) -> RsvpPreview:
    """Record the answer a link carries, once. Commits; a used, expired, superseded or
    tampered link raises ``InvalidRsvpLink`` and changes nothing."""
    now = now or utcnow()
    preview = await preview_rsvp_link(db, deps, token, now=now)
    was = preview.attendee.response
    db.add(UsedRsvpLink(token_hash=_token_hash(token), meeting_id=preview.meeting.id, used_at=now))
    _record_answer(preview.meeting, preview.attendee, preview.response, now)
    db.add(preview.attendee)
    db.add(preview.meeting)
    audit.record(
        db,
        "meeting.answered_by_link",
        actor_id=None,
        subject_id=preview.attendee.user_id,
        target_type="meeting",
        target_id=preview.meeting.id,
        response=preview.response.value,
    )
    try:
        await db.commit()
    except IntegrityError:  # the same link clicked twice at once: the first click counts
        await db.rollback()
        raise InvalidRsvpLink("This link was already used. Your answer is recorded.") from None
    if preview.response == AttendeeResponse.DECLINED and was != AttendeeResponse.DECLINED:
        await send_decline_notice(db, deps, preview.meeting, preview.attendee)
    return preview


# --- internals -------------------------------------------------------------------------------


def _clean_text(
    title: str, description: str | None, location: str | None
) -> tuple[str, str, str | None]:
    clean_title = clean_name(title, field="title", what="Title")
    clean_description = clean_text(
        description or "", field="description", what="The description", max_length=MAX_DESCRIPTION
    )
    clean_location = clean_line(location or "") or None
    if clean_location is not None and len(clean_location) > MAX_LOCATION:
        raise ValidationFailed(
            f"The location is longer than {MAX_LOCATION} characters.", field="location"
        )
    return clean_title, clean_description, clean_location


def _clean_time(start: datetime, duration_minutes: int) -> tuple[datetime, datetime]:
    if start.tzinfo is None:
        raise ValidationFailed("The start needs a time zone offset.", field="start")
    if not MIN_MINUTES <= duration_minutes <= MAX_MINUTES or duration_minutes % MIN_MINUTES:
        raise ValidationFailed(
            "Meetings last between 5 minutes and 8 hours, in steps of 5 minutes.",
            field="durationMinutes",
        )
    if start.second or start.microsecond or start.minute % MIN_MINUTES:
        raise ValidationFailed("Meetings start on a multiple of 5 minutes.", field="start")
    if start <= utcnow():
        raise ValidationFailed("That time has already passed.", field="start")
    check_moment(start, field="start", what="The start")  # before any arithmetic on it
    return start, start + timedelta(minutes=duration_minutes)


async def _lock_time_of(db: AsyncSession, user_ids: Sequence[uuid.UUID]) -> None:
    """Serialize bookings that involve any of these people until the transaction ends.

    PostgreSQL: one transaction-scoped advisory lock per person, taken in a fixed order so
    two bookings cannot deadlock. SQLite: a write as the first statement of the
    transaction takes the database's only write lock before the check reads anything
    (what ``BEGIN IMMEDIATE`` would do), so the check and the insert are one step.
    """
    if db.get_bind().dialect.name == "postgresql":
        for key in sorted({int.from_bytes(uid.bytes[:4], "big", signed=True) for uid in user_ids}):
            await db.exec(select(func.pg_advisory_xact_lock(_LOCK_NAMESPACE, key)))
    else:
        first = sorted(user_ids)[0]
        await db.exec(update(User).where(col(User.id) == first).values(is_active=User.is_active))


async def _ensure_free(
    db: AsyncSession,
    deps: MeetingDeps,
    owner: User,
    people: Sequence[User],
    connection: MentoringConnection | None,
    start: datetime,
    end: datetime,
    *,
    ignore: uuid.UUID | None = None,
) -> None:
    """Refuse a time outside the program's rules, when someone is busy, or when someone
    already has a Tandem meeting then (even people whose calendar is not connected)."""
    await _ensure_no_clash(db, owner, people, start, end, ignore=ignore)
    minutes = int((end - start).total_seconds() // 60)
    answer = await find_availability(
        db,
        deps.calendar,
        owner,
        AvailabilityRequest(
            participant_ids=[p.id for p in people],
            start=start,
            end=end,
            duration_minutes=minutes,
            step_minutes=MIN_MINUTES,
            program_id=connection.program_id if connection else None,
            mode=Mode.PAIR if len(people) == 2 else Mode.GROUP,
            limit=1,
        ),
        refresh=False,
        ignore_meeting_id=ignore,
    )
    if not answer.result.slots or answer.result.slots[0].start != start:
        reason = answer.result.empty_reason or "someone is busy then."
        raise SlotNotFree(f"That time is no longer available: {reason}", field="start")


async def _ensure_no_clash(
    db: AsyncSession,
    owner: User,
    people: Sequence[User],
    start: datetime,
    end: datetime,
    *,
    ignore: uuid.UUID | None = None,
) -> None:
    clashes = await _overlapping_attendees(db, [p.id for p in people], start, end, ignore)
    if clashes:
        who = (
            "you already have"
            if any(c.id == owner.id for c in clashes)
            else f"{clashes[0].name} already has"
        )
        raise Conflict(
            f"That time is taken: {who} a meeting then. Pick another time.", field="start"
        )


async def _overlapping_attendees(
    db: AsyncSession,
    user_ids: Sequence[uuid.UUID],
    start: datetime,
    end: datetime,
    ignore: uuid.UUID | None,
) -> list[User]:
    """Attendees who already have a scheduled (not declined) Tandem meeting overlapping."""
    query = (
        select(User)
        .join(MeetingAttendee, col(MeetingAttendee.user_id) == col(User.id))
        .join(Meeting, col(Meeting.id) == col(MeetingAttendee.meeting_id))
        .where(
            col(MeetingAttendee.user_id).in_(list(user_ids)),
            MeetingAttendee.response != AttendeeResponse.DECLINED,
            Meeting.status == MeetingStatus.SCHEDULED,
            col(Meeting.start_at) < end,
            col(Meeting.end_at) > start,
        )
        .order_by(col(User.name))
    )
    if ignore is not None:
        query = query.where(Meeting.id != ignore)
    return list((await db.exec(query.distinct())).all())


async def _owned_open_meeting(
    db: AsyncSession, viewer: Viewer, meeting_id: uuid.UUID, verb: str
) -> Meeting:
    meeting = await get_meeting(db, viewer.user, meeting_id)
    if meeting.owner_id != viewer.user.id:
        raise PermissionDenied(f"Only the organizer can {verb} this meeting.")
    if meeting.status == MeetingStatus.CANCELLED:
        raise ValidationFailed("This meeting was cancelled.")
    if meeting.end_at <= utcnow():
        raise ValidationFailed("This meeting is over.")
    return meeting


def _answerable(meeting: Meeting, now: datetime) -> None:
    if meeting.status == MeetingStatus.CANCELLED:
        raise ValidationFailed("This meeting was cancelled, so there is nothing to answer.")
    if meeting.end_at <= now:
        raise ValidationFailed("This meeting is over.")


def _record_answer(
    meeting: Meeting, attendee: MeetingAttendee, response: AttendeeResponse, now: datetime
) -> None:
    if response not in ANSWERS:
        raise ValidationFailed("Answer accepted, tentative or declined.", field="response")
    attendee.response = response
    attendee.responded_at = now
    # Mirror answers into the owner's event where Tandem, not the provider, invites
    # (Graph would re-send invitations if Tandem rewrote a Microsoft event's attendees).
    if (
        meeting.invitations_by == INVITES_BY_TANDEM
        and meeting.calendar_sync_state == STATE_SYNCED
        and meeting.calendar_provider != ProviderName.MICROSOFT.value
    ):
        mark_for_calendar(meeting)


def _read_with_any_key(deps: MeetingDeps, token: str, now: datetime) -> RsvpClaim:
    """Links signed before a key rotation keep working until they expire."""
    failure: InvalidLink | None = None
    for key in (deps.rsvp_key, *deps.older_rsvp_keys):
        try:
            return read_rsvp_token(key, token, now)
        except InvalidLink as exc:
            if exc.reason != "signature":
                raise
            failure = exc
    assert failure is not None
    raise failure


async def _check_link(
    db: AsyncSession, deps: MeetingDeps, token: str, now: datetime
) -> RsvpPreview:
    try:
        claim = _read_with_any_key(deps, token, now)
    except InvalidLink as exc:
        if exc.reason == "expired":
            raise InvalidRsvpLink(
                "This link has expired. Answer in Tandem instead (sign in, then My meetings)."
            ) from None
        raise InvalidRsvpLink(
            "This link is not valid. Use the buttons in your most recent invitation email."
        ) from None
    meeting = await db.get(Meeting, claim.meeting_id)
    attendee = None
    if meeting is not None:
        attendee = (
            await db.exec(
                select(MeetingAttendee).where(
                    MeetingAttendee.meeting_id == meeting.id,
                    MeetingAttendee.email == claim.attendee_email,
                )
            )
        ).first()
    if meeting is None or attendee is None or attendee.user_id == meeting.owner_id:
        raise InvalidRsvpLink("This link is not valid: the meeting or invitation no longer exists.")
    if claim.sequence is not None and claim.sequence != meeting.sequence:
        raise InvalidRsvpLink(
            "This meeting changed after this email was sent. Use the newest invitation."
        )
    _answerable(meeting, now)
    user = await db.get(User, attendee.user_id) if attendee.user_id else None
    return RsvpPreview(
        meeting=meeting,
        attendee=attendee,
        response=claim.response,
        time_zone=user.time_zone if user is not None else "UTC",
    )


async def _link_used(db: AsyncSession, token: str) -> bool:
    found = await db.exec(
        select(UsedRsvpLink.id).where(UsedRsvpLink.token_hash == _token_hash(token))
    )
    return found.first() is not None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _attendee_of(
    db: AsyncSession, meeting_id: uuid.UUID, user_id: uuid.UUID
) -> MeetingAttendee | None:
    return (
        await db.exec(
            select(MeetingAttendee).where(
                MeetingAttendee.meeting_id == meeting_id, MeetingAttendee.user_id == user_id
            )
        )
    ).first()

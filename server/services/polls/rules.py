"""Group polls: the organizer proposes slots, invitees answer, the organizer picks one.

Every poll rule lives here. Who may see a poll: the members of its group, nobody else
(not even program admins; "not yours" looks like "not there"). Who may create and
finalize one: the group's organizer, and only while an operator has switched group
polls on for the program.

A deadline really closes a poll: past it the poll reads as closed even before the
background job (``close_due_polls``) has written the new status and told the organizer.

Answers are upserted on the unique (slot, user) constraint, so many invitees answering
at the same moment (or one invitee in two tabs) never lose or duplicate a row.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import (
    ConnectionMember,
    Meeting,
    MentoringConnection,
    Poll,
    PollAnswer,
    PollComment,
    PollInvitee,
    PollSlot,
    User,
)
from server.models.base import new_id, utcnow
from server.models.enums import ConnectionKind, PollAnswerValue, PollStatus
from server.services import audit
from server.services.availability.busy import read_busy
from server.services.calendars.deps import CalendarDeps
from server.services.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from server.services.meetings import booking
from server.services.meetings.delivery import MeetingDeps
from server.services.people import programs
from server.services.people.sessions import Viewer
from server.services.polls import mail as poll_mail
from server.services.polls.mail import PollDeps
from server.services.polls.tally import (
    Invitee,
    PollDetails,
    SlotTally,
    best_slot_id,
    connected_ids,
    load_details,
    status_at,
)
from server.services.validation import check_moment, clean_name, clean_text

__all__ = [
    "MAX_COMMENT_LENGTH",
    "MAX_SLOTS",
    "Invitee",
    "PollDeps",
    "PollDetails",
    "SlotTally",
    "add_comment",
    "answer_poll",
    "best_slot_id",
    "close_due_polls",
    "comments",
    "comments_by_poll",
    "connected_ids",
    "create_poll",
    "finalize_poll",
    "get_visible_group",
    "get_visible_poll",
    "group_of",
    "load_details",
    "organized_group",
    "poll_details",
    "polls_enabled",
    "polls_for_group",
    "send_due_reminders",
    "status_at",
    "submit_answers",
]

MAX_SLOTS = 50
MAX_COMMENT_LENGTH = 2000
MIN_DURATION = 5
MAX_DURATION = 8 * 60
REMINDER_LEAD = timedelta(days=1)
_OPEN_OR_CLOSED = (PollStatus.OPEN.value, PollStatus.CLOSED.value)

CLOSED_MESSAGE = "This poll is closed: it no longer accepts answers."
FINALIZED_MESSAGE = (
    "This poll is finalized: a meeting was scheduled and answers are no longer accepted."
)
POLLS_OFF_MESSAGE = (
    "Group polls are switched off for this program. Only an operator can switch them on."
)


# ---- reading ---------------------------------------------------------------------------


async def _is_member(db: AsyncSession, user_id: uuid.UUID, connection_id: uuid.UUID) -> bool:
    result = await db.exec(
        select(ConnectionMember.id).where(
            ConnectionMember.connection_id == connection_id, ConnectionMember.user_id == user_id
        )
    )
    return result.first() is not None


async def get_visible_poll(db: AsyncSession, viewer: User, poll_id: uuid.UUID) -> Poll:
    poll = await db.get(Poll, poll_id)
    if poll is None or not await _is_member(db, viewer.id, poll.connection_id):
        raise NotFound("poll")
    return poll


async def get_visible_group(
    db: AsyncSession, viewer: User, group_id: uuid.UUID
) -> MentoringConnection:
    """A group (not a pair) the viewer belongs to."""
    group = await db.get(MentoringConnection, group_id)
    if (
        group is None
        or group.kind != ConnectionKind.GROUP
        or not await _is_member(db, viewer.id, group.id)
    ):
        raise NotFound("group")
    return group


async def polls_for_group(
    db: AsyncSession,
    viewer: User,
    group_id: uuid.UUID,
    status: PollStatus | None = None,
    *,
    now: datetime | None = None,
) -> list[Poll]:
    """The group's polls, newest first, filtered by status as users see it."""
    group = await get_visible_group(db, viewer, group_id)
    now = now or utcnow()
    query = select(Poll).where(Poll.connection_id == group.id)
    past_deadline = and_(col(Poll.deadline).is_not(None), col(Poll.deadline) <= now)
    if status == PollStatus.OPEN:
        query = query.where(Poll.status == PollStatus.OPEN, ~past_deadline)
    elif status == PollStatus.CLOSED:
        query = query.where(
            or_(
                col(Poll.status) == PollStatus.CLOSED,
                and_(col(Poll.status) == PollStatus.OPEN, past_deadline),
            )
        )
    elif status == PollStatus.FINALIZED:
        query = query.where(Poll.status == PollStatus.FINALIZED)
    result = await db.exec(query.order_by(col(Poll.created_at).desc()))
    return list(result.all())


async def poll_details(
    db: AsyncSession,
    viewer: User,
    poll_id: uuid.UUID,
    *,
    now: datetime | None = None,
    calendar: CalendarDeps | None = None,
) -> PollDetails:
    """One poll; with ``calendar`` its slots' times no cache covers are read first."""
    poll = await get_visible_poll(db, viewer, poll_id)
    return (await load_details(db, [poll], now=now, calendar=calendar))[0]


async def group_of(db: AsyncSession, poll: Poll) -> MentoringConnection:
    group = await db.get(MentoringConnection, poll.connection_id)
    assert group is not None  # the foreign key cascades
    return group


async def comments(db: AsyncSession, poll: Poll) -> list[tuple[PollComment, User]]:
    """Oldest first, each with its author. The caller has checked visibility."""
    return (await comments_by_poll(db, [poll.id])).get(poll.id, [])


async def comments_by_poll(
    db: AsyncSession, poll_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[PollComment, User]]]:
    """Comments of many polls in one query, oldest first. The caller checked visibility."""
    grouped: dict[uuid.UUID, list[tuple[PollComment, User]]] = defaultdict(list)
    if not poll_ids:
        return grouped
    result = await db.exec(
        select(PollComment, User)
        .join(User, col(User.id) == col(PollComment.user_id))
        .where(col(PollComment.poll_id).in_(list(poll_ids)))
        .order_by(col(PollComment.created_at), col(PollComment.id))
    )
    for comment, author in result.all():
        grouped[comment.poll_id].append((comment, author))
    return grouped


# ---- creating --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrganizedGroup:
    group: MentoringConnection
    members: list[User]


async def organized_group(db: AsyncSession, viewer: User, group_id: uuid.UUID) -> OrganizedGroup:
    """The group, checked for everything creating a poll needs: the viewer belongs to it,
    organizes it, and group polls are on for its program."""
    group = await get_visible_group(db, viewer, group_id)
    if group.organizer_id != viewer.id:
        raise PermissionDenied("Only the group's organizer can create polls.")
    if not (await programs.settings_for(db, group.program_id)).group_polls_enabled:
        raise PermissionDenied(POLLS_OFF_MESSAGE)
    result = await db.exec(
        select(User)
        .join(ConnectionMember, col(ConnectionMember.user_id) == col(User.id))
        .where(ConnectionMember.connection_id == group.id)
        .order_by(col(User.name), col(User.id))
    )
    return OrganizedGroup(group, list(result.all()))


async def polls_enabled(db: AsyncSession, group: MentoringConnection) -> bool:
    return (await programs.settings_for(db, group.program_id)).group_polls_enabled


def _check_slots(starts: Sequence[datetime], now: datetime) -> list[datetime]:
    if not starts:
        raise ValidationFailed("Propose at least one slot.", field="slots")
    if len(starts) > MAX_SLOTS:
        raise ValidationFailed(f"Propose at most {MAX_SLOTS} slots.", field="slots")
    for start in starts:
        if start.tzinfo is None:
            raise ValidationFailed("Each slot start needs a time zone offset.", field="slots")
        if start <= now:
            raise ValidationFailed("Every slot must start in the future.", field="slots")
        check_moment(start, field="slots", what="Every slot", now=now)
        if start.second or start.microsecond or start.minute % 5:
            raise ValidationFailed(
                "Slots start on a multiple of 5 minutes (like 10:00 or 10:05).", field="slots"
            )
    cleaned = sorted(set(starts))
    if len(cleaned) != len(starts):
        raise ValidationFailed("Each slot may be proposed only once.", field="slots")
    return cleaned


async def create_poll(
    db: AsyncSession,
    deps: PollDeps,
    viewer: User,
    *,
    group_id: uuid.UUID,
    title: str,
    duration_minutes: int,
    slot_starts: Sequence[datetime],
    deadline: datetime | None = None,
    optional_invitee_ids: Sequence[uuid.UUID] = (),
    now: datetime | None = None,
    actor_id: uuid.UUID | None = None,
) -> Poll:
    """Create the poll with every group member invited, commit, then email the invitees.

    Commits itself before mailing, so a slow mail server never holds a database lock and
    nobody gets a link to a poll that was rolled back.
    """
    now = now or utcnow()
    organized = await organized_group(db, viewer, group_id)
    clean_title = clean_name(title, field="title", what="Title")
    if not MIN_DURATION <= duration_minutes <= MAX_DURATION or duration_minutes % 5:
        raise ValidationFailed(
            "Meetings last between 5 minutes and 8 hours, in steps of 5 minutes.",
            field="durationMinutes",
        )
    starts = _check_slots(slot_starts, now)
    if deadline is not None:
        if deadline.tzinfo is None:
            raise ValidationFailed("The deadline needs a time zone offset.", field="deadline")
        if deadline <= now:
            raise ValidationFailed("The deadline must be in the future.", field="deadline")
        if deadline > starts[-1]:
            raise ValidationFailed(
                "The deadline must come before the last proposed slot starts.", field="deadline"
            )
        check_moment(deadline, field="deadline", what="The deadline", now=now)
    member_ids = {m.id for m in organized.members}
    optional = set(optional_invitee_ids)
    if len(optional) > len(member_ids) or not optional <= member_ids:
        raise ValidationFailed(
            "Optional invitees must be members of the group.", field="optionalInviteeIds"
        )
    poll = Poll(
        connection_id=organized.group.id,
        organizer_id=viewer.id,
        title=clean_title,
        duration_minutes=duration_minutes,
        deadline=deadline,
    )
    db.add(poll)
    await db.flush()
    length = timedelta(minutes=duration_minutes)
    for start in starts:
        db.add(PollSlot(poll_id=poll.id, start_at=start, end_at=start + length))
    for member in organized.members:
        db.add(PollInvitee(poll_id=poll.id, user_id=member.id, optional=member.id in optional))
    audit.record(
        db,
        "poll.created",
        actor_id=actor_id or viewer.id,  # the admin, when working on behalf
        subject_id=viewer.id,
        target_type="poll",
        target_id=poll.id,
        slots=len(starts),
        invitees=len(member_ids),
    )
    await db.commit()
    if deps.calendar is not None:
        # Read the invitees' calendars for the proposed slots now (months ahead, beyond
        # the default horizon), so the busy marks are right from the first view.
        await read_busy(
            db,
            deps.calendar,
            [m.id for m in organized.members],
            [(start, start + length) for start in starts],
            now=now,
            include_meetings=False,
        )
    others = [m for m in organized.members if m.id != viewer.id]
    await poll_mail.send_invitations(deps, poll, viewer, organized.group.name, others)
    return poll


# ---- answering and comments ------------------------------------------------------------


def _refuse_if_not_open(poll: Poll, now: datetime) -> None:
    status = status_at(poll, now)
    if status == PollStatus.FINALIZED:
        raise Conflict(FINALIZED_MESSAGE)
    if status == PollStatus.CLOSED:
        raise Conflict(CLOSED_MESSAGE)


def _insert(db: AsyncSession) -> Any:
    return pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert


async def _locked_poll(db: AsyncSession, viewer: User, poll_id: uuid.UUID) -> Poll:
    """The poll, share-locked on PostgreSQL so finalizing waits for answers in flight."""
    poll = await get_visible_poll(db, viewer, poll_id)
    await db.exec(select(Poll.id).where(Poll.id == poll.id).with_for_update(read=True))
    return poll


async def answer_poll(
    db: AsyncSession,
    viewer: User,
    poll_id: uuid.UUID,
    answers: Sequence[tuple[uuid.UUID, PollAnswerValue]],
    *,
    now: datetime | None = None,
    actor_id: uuid.UUID | None = None,
) -> Poll:
    """Record the viewer's answer to every slot, replacing earlier ones.

    The voter is always ``viewer`` (from the session), never an id from the input; the
    audit trail names ``actor_id`` too, the admin when one works on behalf of the voter.
    """
    now = now or utcnow()
    poll = await _locked_poll(db, viewer, poll_id)
    _refuse_if_not_open(poll, now)
    invitee = (
        await db.exec(
            select(PollInvitee.id).where(
                PollInvitee.poll_id == poll.id, PollInvitee.user_id == viewer.id
            )
        )
    ).first()
    if invitee is None:
        raise PermissionDenied("You are not invited to this poll.")
    if not answers:
        raise ValidationFailed("Answer every slot.", field="answers")
    if len(answers) > MAX_SLOTS:
        raise ValidationFailed(f"At most {MAX_SLOTS} answers.", field="answers")
    chosen = dict(answers)
    if len(chosen) != len(answers):
        raise ValidationFailed("Answer each slot only once.", field="answers")
    slot_ids = set((await db.exec(select(PollSlot.id).where(PollSlot.poll_id == poll.id))).all())
    if not chosen.keys() <= slot_ids:
        raise NotFound("slot", field="answers")
    if chosen.keys() != slot_ids:
        raise ValidationFailed("Answer every slot: yes, if need be, or no.", field="answers")
    insert = _insert(db)
    statement = insert(PollAnswer).values(
        [
            {
                "id": new_id(),
                "poll_id": poll.id,
                "slot_id": slot_id,
                "user_id": viewer.id,
                "answer": value,
                "updated_at": now,
            }
            for slot_id, value in chosen.items()
        ]
    )
    statement = statement.on_conflict_do_update(
        index_elements=["slot_id", "user_id"],
        set_={"answer": statement.excluded.answer, "updated_at": statement.excluded.updated_at},
    )
    await db.exec(statement)
    # Re-read under the write lock (SQLite) so a poll finalized meanwhile refuses the answer.
    status = (await db.exec(select(Poll.status).where(Poll.id == poll.id))).one()
    if PollStatus(status) != PollStatus.OPEN:
        raise Conflict(FINALIZED_MESSAGE if status == PollStatus.FINALIZED else CLOSED_MESSAGE)
    audit.record(
        db,
        "poll.answered",
        actor_id=actor_id or viewer.id,
        subject_id=viewer.id,
        target_type="poll",
        target_id=poll.id,
        slots=len(chosen),
    )
    return poll


async def submit_answers(
    db: AsyncSession,
    deps: PollDeps,
    viewer: User,
    poll_id: uuid.UUID,
    answers: Sequence[tuple[uuid.UUID, PollAnswerValue]],
    *,
    now: datetime | None = None,
    actor_id: uuid.UUID | None = None,
) -> Poll:
    """``answer_poll``, committed; when the invitee now says No to every slot (and did not
    before), the organizer is emailed: nobody has to notice it in the tally."""
    earlier = set(
        (
            await db.exec(
                select(PollAnswer.answer).where(
                    PollAnswer.poll_id == poll_id, PollAnswer.user_id == viewer.id
                )
            )
        ).all()
    )
    poll = await answer_poll(db, viewer, poll_id, answers, now=now, actor_id=actor_id)
    await db.commit()
    all_no = {value for _slot, value in answers} == {PollAnswerValue.NO}
    if all_no and earlier != {PollAnswerValue.NO} and poll.organizer_id != viewer.id:
        organizer = await db.get(User, poll.organizer_id)
        if organizer is not None:
            await poll_mail.send_no_time_fits(deps, poll, organizer, viewer)
    return poll


async def add_comment(
    db: AsyncSession,
    viewer: User,
    poll_id: uuid.UUID,
    body: str,
    *,
    actor_id: uuid.UUID | None = None,
) -> PollComment:
    """Members may comment until the poll is finalized (a closed poll still needs talk).

    The author is ``viewer``; the audit trail names ``actor_id`` too (an admin on behalf).
    """
    poll = await get_visible_poll(db, viewer, poll_id)
    if poll.status == PollStatus.FINALIZED:
        raise Conflict("This poll is finalized: it no longer takes comments.")
    text = clean_text(body, field="body")
    if not text:
        raise ValidationFailed("Write something first.", field="body")
    if len(text) > MAX_COMMENT_LENGTH:
        raise ValidationFailed(
            f"Comments are at most {MAX_COMMENT_LENGTH} characters.", field="body"
        )
    comment = PollComment(poll_id=poll.id, user_id=viewer.id, body=text)
    db.add(comment)
    await db.flush()
    audit.record(
        db,
        "poll.commented",
        actor_id=actor_id or viewer.id,
        subject_id=viewer.id,
        target_type="poll_comment",
        target_id=comment.id,
        poll_id=str(poll.id),
    )
    return comment


# ---- finalizing ------------------------------------------------------------------------


async def finalize_poll(
    db: AsyncSession,
    meeting_deps: MeetingDeps,
    viewer: Viewer,
    poll_id: uuid.UUID,
    slot_id: uuid.UUID,
    *,
    message: str | None = None,
) -> Meeting:
    """Turn one slot into a meeting through the meetings service (invitations, calendar
    events and RSVPs work as for any meeting); ``message`` goes into the invitations. Only the organizer may; the status change
    is one conditional UPDATE, so two clicks never make two booking. The caller commits,
    or rolls back on a ``DomainError`` (which also undoes the status change).

    ``schedule_meeting`` commits the status change together with the new meeting, then
    sends the invitations; the poll's link to the meeting is written just after.
    """
    booking.clean_note_text(message)  # a bad message changes nothing
    poll = await get_visible_poll(db, viewer.user, poll_id)
    if poll.organizer_id != viewer.user.id:
        raise PermissionDenied("Only the poll's organizer can finalize it.")
    if poll.status == PollStatus.FINALIZED:
        raise Conflict("This poll is already finalized.")
    slot = await db.get(PollSlot, slot_id)
    if slot is None or slot.poll_id != poll.id:
        raise NotFound("slot", field="slotId")
    result = await db.exec(
        update(Poll)
        .where(col(Poll.id) == poll.id, col(Poll.status).in_(_OPEN_OR_CLOSED))
        .values(status=PollStatus.FINALIZED, final_slot_id=slot.id)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise Conflict("This poll is already finalized.")
    invitee_rows = list(
        (
            await db.exec(
                select(PollInvitee.user_id, PollInvitee.optional)
                .join(
                    ConnectionMember,
                    and_(
                        col(ConnectionMember.user_id) == col(PollInvitee.user_id),
                        col(ConnectionMember.connection_id) == poll.connection_id,
                    ),
                )
                .where(PollInvitee.poll_id == poll.id, PollInvitee.user_id != poll.organizer_id)
            )
        ).all()
    )
    invitee_ids = [user_id for user_id, _optional in invitee_rows]
    meeting = await booking.schedule_meeting(
        db,
        meeting_deps,
        viewer,
        connection_id=poll.connection_id,
        start=slot.start_at,
        duration_minutes=poll.duration_minutes,
        title=poll.title,
        attendee_ids=invitee_ids,
        check_availability=False,
        note=message,
        optional_ids=[user_id for user_id, optional in invitee_rows if optional],
    )
    await db.exec(
        update(Poll)
        .where(col(Poll.id) == poll.id)
        .values(meeting_id=meeting.id)
        .execution_options(synchronize_session=False)
    )
    await db.refresh(poll)
    audit.record(
        db,
        "poll.finalized",
        actor_id=viewer.actor.id,
        subject_id=viewer.user.id,
        target_type="poll",
        target_id=poll.id,
        meeting=str(meeting.id),
    )
    return meeting


# ---- deadlines and reminders (background jobs) ------------------------------------------


async def close_due_polls(db: AsyncSession, deps: PollDeps, now: datetime | None = None) -> int:
    """Close open polls past their deadline and tell each organizer it is time to pick.

    Each close is a conditional UPDATE, so with several workers exactly one of them
    closes (and emails about) a given poll. Commits before mailing. Returns how many
    polls this call closed.
    """
    now = now or utcnow()
    due = (
        await db.exec(
            select(Poll.id).where(
                Poll.status == PollStatus.OPEN,
                col(Poll.deadline).is_not(None),
                col(Poll.deadline) <= now,
            )
        )
    ).all()
    closed: list[uuid.UUID] = []
    for poll_id in due:
        result = await db.exec(
            update(Poll)
            .where(col(Poll.id) == poll_id, col(Poll.status) == PollStatus.OPEN)
            .values(status=PollStatus.CLOSED)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            closed.append(poll_id)
    await db.commit()
    for poll_id in closed:
        poll = await db.get(Poll, poll_id, populate_existing=True)
        if poll is None:
            continue
        organizer = await db.get(User, poll.organizer_id)
        counts = (await load_details(db, [poll], now=now))[0]
        if organizer is not None:
            await poll_mail.send_time_to_pick(
                deps, poll, organizer, len(counts.answered_ids), counts.invitee_count
            )
    return len(closed)


async def send_due_reminders(db: AsyncSession, deps: PollDeps, now: datetime | None = None) -> int:
    """Remind invitees who have not answered, once per poll, within a day of its deadline.

    ``Poll.reminder_sent_at`` is claimed with a conditional UPDATE before anything is
    sent, so a reminder goes out at most once even with several workers. Returns how
    many emails went out.
    """
    now = now or utcnow()
    due = (
        await db.exec(
            select(Poll.id).where(
                Poll.status == PollStatus.OPEN,
                col(Poll.reminder_sent_at).is_(None),
                col(Poll.deadline) > now,
                col(Poll.deadline) <= now + REMINDER_LEAD,
            )
        )
    ).all()
    claimed: list[uuid.UUID] = []
    for poll_id in due:
        result = await db.exec(
            update(Poll)
            .where(col(Poll.id) == poll_id, col(Poll.reminder_sent_at).is_(None))
            .values(reminder_sent_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            claimed.append(poll_id)
    await db.commit()
    sent = 0
    for poll_id in claimed:
        poll = await db.get(Poll, poll_id, populate_existing=True)
        if poll is None:
            continue
        answered = select(PollAnswer.user_id).where(PollAnswer.poll_id == poll.id)
        silent = (
            await db.exec(
                select(User)
                .join(PollInvitee, col(PollInvitee.user_id) == col(User.id))
                .where(
                    PollInvitee.poll_id == poll.id,
                    col(User.id).not_in(answered),
                    col(User.is_active).is_(True),
                )
                .order_by(col(User.name))
            )
        ).all()
        sent += await poll_mail.send_reminders(deps, poll, list(silent))
    return sent

"""Poll rules: who may create, see, answer, comment and finalize; deadlines and reminders;
the best slot judged on required invitees first."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import delete
from sqlmodel import col, func, select

from server.models import ConnectionMember, Meeting, MeetingAttendee, Poll, PollAnswer
from server.models.base import utcnow
from server.models.enums import PollAnswerValue, PollStatus
from server.services.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from server.services.invites import MemoryMailer
from server.services.people import sessions
from server.services.polls import rules as poll_rules
from server.services.polls import suggestions as poll_suggestions
from server.services.polls.rules import SlotTally
from server.wiring import AppServices
from tests.conftest import use_mailer
from tests.polls_support import (
    Circle,
    connect,
    make_circle,
    make_poll,
    next_monday,
    slot_starts,
    user,
)

YES, MAYBE, NO = PollAnswerValue.YES, PollAnswerValue.IF_NEED_BE, PollAnswerValue.NO


async def _answer(
    services: AppServices,
    user_id: uuid.UUID,
    poll_id: uuid.UUID,
    values: list[PollAnswerValue],
    *,
    now: datetime | None = None,
) -> None:
    voter = await user(services, user_id)
    async with services.db.session() as db:
        details = await poll_rules.poll_details(db, voter, poll_id)
        pairs = [(s.id, v) for s, v in zip(details.slots, values, strict=True)]
        try:
            await poll_rules.answer_poll(db, voter, poll_id, pairs, now=now)
        except Exception:
            await db.rollback()
            raise
        await db.commit()


async def _details(
    services: AppServices, user_id: uuid.UUID, poll_id: uuid.UUID
) -> poll_rules.PollDetails:
    viewer = await user(services, user_id)
    async with services.db.session() as db:
        return await poll_rules.poll_details(db, viewer, poll_id)


def _text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


async def _answer_rows(services: AppServices, poll_id: uuid.UUID) -> int:
    async with services.db.session() as db:
        result = await db.exec(
            select(func.count()).select_from(PollAnswer).where(PollAnswer.poll_id == poll_id)
        )
        return int(result.one())


# ---- creating --------------------------------------------------------------------------


async def test_create_invites_every_member_and_emails_the_others(services: AppServices) -> None:
    circle = await make_circle(services)
    poll = await make_poll(services, circle, optional=[circle.members[3]])
    details = await _details(services, circle.organizer, poll.id)
    assert {i.user.id for i in details.invitees} == set(circle.members)
    assert [i.user.id for i in details.invitees if i.optional] == [circle.members[3]]
    assert len(details.slots) == 3
    assert all(s.end - s.start == timedelta(minutes=60) for s in details.slots)
    sent = {m["To"].addresses[0].addr_spec: m for m in circle.mailer.sent}
    assert set(sent) == {circle.emails[m] for m in circle.others}  # not the organizer
    message = next(iter(sent.values()))
    assert "Circle kickoff" in message["Subject"]
    assert f"http://testserver/polls/{poll.id}" in _text(message)


async def test_only_the_organizer_creates_and_only_when_polls_are_on(
    services: AppServices,
) -> None:
    circle = await make_circle(services)
    with pytest.raises(PermissionDenied, match="organizer"):
        await _create_as(services, circle, circle.members[1])
    with pytest.raises(NotFound):
        await _create_as(services, circle, circle.stranger)
    off = await make_circle(services, polls_on=False)
    with pytest.raises(PermissionDenied, match="switched off"):
        await _create_as(services, off, off.organizer)
    async with services.db.session() as db:
        assert (await db.exec(select(func.count()).select_from(Poll))).one() == 0
    assert circle.mailer.sent == [] and off.mailer.sent == []


async def _create_as(
    services: AppServices, circle: Circle, user_id: uuid.UUID, **overrides: object
) -> Poll:
    actor = await user(services, user_id)
    values: dict[str, object] = {
        "group_id": circle.group,
        "title": "Kickoff",
        "duration_minutes": 60,
        "slot_starts": slot_starts(2),
    }
    values.update(overrides)
    async with services.db.session() as db:
        return await poll_rules.create_poll(db, circle.deps(), actor, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"slot_starts": []}, "slots", "at least one slot"),
        ({"slot_starts": slot_starts(51)}, "slots", "at most 50"),
        ({"slot_starts": [datetime(2001, 1, 1, tzinfo=UTC)]}, "slots", "future"),
        ({"slot_starts": [datetime(2099, 1, 1)]}, "slots", "time zone"),
        ({"slot_starts": slot_starts(1) * 2}, "slots", "only once"),
        ({"title": "   "}, "title", "cannot be empty"),
        ({"duration_minutes": 0}, "durationMinutes", "between"),
        ({"deadline": datetime(2001, 1, 1, tzinfo=UTC)}, "deadline", "future"),
        ({"deadline": datetime(2099, 1, 1, tzinfo=UTC)}, "deadline", "before the last"),
        ({"optional_invitee_ids": [uuid.uuid4()]}, "optionalInviteeIds", "members"),
    ],
)
async def test_invalid_polls_are_refused_with_a_field(
    services: AppServices, overrides: dict[str, object], field: str, message: str
) -> None:
    circle = await make_circle(services, size=2)
    with pytest.raises(ValidationFailed) as caught:
        await _create_as(services, circle, circle.organizer, **overrides)
    assert caught.value.field == field
    assert message.lower() in caught.value.message.lower()
    async with services.db.session() as db:
        assert (await db.exec(select(func.count()).select_from(Poll))).one() == 0


# ---- seeing ----------------------------------------------------------------------------


async def test_only_group_members_see_a_poll(services: AppServices) -> None:
    circle = await make_circle(services)
    poll = await make_poll(services, circle)
    stranger = await user(services, circle.stranger)
    async with services.db.session() as db:
        with pytest.raises(NotFound):
            await poll_rules.get_visible_poll(db, stranger, poll.id)
        with pytest.raises(NotFound):
            await poll_rules.polls_for_group(db, stranger, circle.group)
    member = await user(services, circle.members[2])
    async with services.db.session() as db:
        assert [p.id for p in await poll_rules.polls_for_group(db, member, circle.group)] == [
            poll.id
        ]


async def test_unavailable_marks_busy_invitees_and_counts_connected(
    services: AppServices,
) -> None:
    circle = await make_circle(services)
    first = slot_starts(1)[0]
    ana, bo = circle.members[1], circle.members[2]
    await connect(services, ana, [(first + timedelta(minutes=30), first + timedelta(minutes=90))])
    await connect(services, bo)
    poll = await make_poll(services, circle)
    details = await _details(services, circle.members[3], poll.id)
    assert details.connected_count == 2 and details.invitee_count == 4
    assert [s.unavailable for s in details.slots] == [(ana,), (ana,), ()]


# ---- answering -------------------------------------------------------------------------


async def test_answers_are_replaced_until_the_poll_closes(services: AppServices) -> None:
    circle = await make_circle(services)
    poll = await make_poll(services, circle)
    ana = circle.members[1]
    await _answer(services, ana, poll.id, [YES, NO, MAYBE])
    await _answer(services, ana, poll.id, [NO, YES, YES])
    assert await _answer_rows(services, poll.id) == 3
    details = await _details(services, ana, poll.id)
    assert [(s.yes, s.if_need_be, s.no) for s in details.slots] == [(0, 0, 1), (1, 0, 0), (1, 0, 0)]
    assert list(details.answers_of(ana).values()) == [NO, YES, YES]


async def test_every_slot_must_be_answered_and_only_slots_of_this_poll(
    services: AppServices,
) -> None:
    circle = await make_circle(services)
    poll = await make_poll(services, circle)
    other = await make_poll(services, circle, title="Another")
    ana = await user(services, circle.members[1])
    mine = await _details(services, ana.id, poll.id)
    theirs = await _details(services, ana.id, other.id)
    async with services.db.session() as db:
        with pytest.raises(ValidationFailed, match="every slot"):
            await poll_rules.answer_poll(db, ana, poll.id, [(mine.slots[0].id, YES)])
        with pytest.raises(ValidationFailed, match="every slot"):
            await poll_rules.answer_poll(db, ana, poll.id, [])
        foreign = [(s.id, YES) for s in mine.slots[:2]] + [(theirs.slots[0].id, YES)]
        with pytest.raises(NotFound) as caught:
            await poll_rules.answer_poll(db, ana, poll.id, foreign)
        assert caught.value.field == "answers"
        twice = [(s.id, YES) for s in mine.slots] + [(mine.slots[0].id, NO)]
        with pytest.raises(ValidationFailed, match="once"):
            await poll_rules.answer_poll(db, ana, poll.id, twice)
    assert await _answer_rows(services, poll.id) == 0


async def test_a_non_member_cannot_vote(services: AppServices) -> None:
    circle = await make_circle(services)
    poll = await make_poll(services, circle)
    details = await _details(services, circle.organizer, poll.id)
    stranger = await user(services, circle.stranger)
    async with services.db.session() as db:
        with pytest.raises(NotFound):
            await poll_rules.answer_poll(
                db, stranger, poll.id, [(s.id, YES) for s in details.slots]
            )
    assert await _answer_rows(services, poll.id) == 0


async def test_a_deadline_really_closes_the_poll(services: AppServices) -> None:
    circle = await make_circle(services)
    deadline = utcnow() + timedelta(hours=2)
    poll = await make_poll(services, circle, deadline=deadline)
    ana = circle.members[1]
    await _answer(services, ana, poll.id, [YES, YES, YES])
    later = deadline + timedelta(seconds=1)
    with pytest.raises(Conflict, match="closed"):
        await _answer(services, ana, poll.id, [NO, NO, NO], now=later)
    assert (await _details(services, ana, poll.id)).status == PollStatus.OPEN
    viewer = await user(services, ana)
    async with services.db.session() as db:
        details = await poll_rules.poll_details(db, viewer, poll.id, now=later)
        closed = await poll_rules.polls_for_group(
            db, viewer, circle.group, PollStatus.CLOSED, now=later
        )
        still_open = await poll_rules.polls_for_group(
            db, viewer, circle.group, PollStatus.OPEN, now=later
        )
    assert details.status == PollStatus.CLOSED  # before any job ran
    assert [p.id for p in closed] == [poll.id] and still_open == []
    assert [s.yes for s in details.slots] == [1, 1, 1]


async def test_close_due_polls_closes_once_and_tells_the_organizer(services: AppServices) -> None:
    circle = await make_circle(services)
    deadline = utcnow() + timedelta(hours=2)
    poll = await make_poll(services, circle, deadline=deadline)
    await make_poll(services, circle, title="No deadline")
    circle.mailer.sent.clear()
    later = deadline + timedelta(minutes=1)
    async with services.db.session() as db:
        assert await poll_rules.close_due_polls(db, circle.deps(), utcnow()) == 0
        assert await poll_rules.close_due_polls(db, circle.deps(), later) == 1
        assert await poll_rules.close_due_polls(db, circle.deps(), later) == 0
        row = await db.get(Poll, poll.id, populate_existing=True)
        assert row is not None and row.status == PollStatus.CLOSED
    assert len(circle.mailer.sent) == 1
    message = circle.mailer.sent[0]
    assert message["To"].addresses[0].addr_spec == circle.emails[circle.organizer]
    assert "Time to pick" in message["Subject"]
    assert "0 of 4 invitees answered" in _text(message)
    with pytest.raises(Conflict, match="closed"):
        await _answer(services, circle.members[1], poll.id, [YES, YES, YES])


async def test_reminders_go_once_to_invitees_without_answers(services: AppServices) -> None:
    circle = await make_circle(services)
    now = utcnow()
    soon = await make_poll(services, circle, deadline=now + timedelta(hours=30), title="Soon")
    await make_poll(services, circle, deadline=now + timedelta(days=3), title="Later")
    await _answer(services, circle.members[1], soon.id, [YES, NO, NO])
    circle.mailer.sent.clear()
    async with services.db.session() as db:
        assert await poll_rules.send_due_reminders(db, circle.deps(), now) == 0  # 30 h is too early
        in_a_day = now + timedelta(hours=7)
        assert await poll_rules.send_due_reminders(db, circle.deps(), in_a_day) == 3
        assert await poll_rules.send_due_reminders(db, circle.deps(), in_a_day) == 0
        assert (
            await poll_rules.send_due_reminders(db, circle.deps(), in_a_day + timedelta(hours=1))
            == 0
        )
        row = await db.get(Poll, soon.id, populate_existing=True)
        assert row is not None and row.reminder_sent_at is not None
    reminded = {m["To"].addresses[0].addr_spec for m in circle.mailer.sent}
    assert reminded == {circle.emails[m] for m in circle.members if m != circle.members[1]}
    assert all(m["Subject"] == "Reminder: Soon" for m in circle.mailer.sent)


# ---- the best slot ---------------------------------------------------------------------


async def test_best_slot_is_judged_on_required_invitees_first(services: AppServices) -> None:
    circle = await make_circle(services, size=5)
    olga, ana, bo, cy, dee = circle.members
    poll = await make_poll(services, circle, optional=[ana, bo, dee])
    # Slot 1 suits three optional invitees; slot 2 suits one required invitee.
    await _answer(services, ana, poll.id, [YES, NO, NO])
    await _answer(services, bo, poll.id, [YES, NO, NO])
    await _answer(services, dee, poll.id, [YES, NO, NO])
    await _answer(services, cy, poll.id, [NO, MAYBE, NO])
    await _answer(services, olga, poll.id, [NO, NO, NO])
    details = await _details(services, olga, poll.id)
    assert details.slots[0].yes == 3
    assert details.best_slot_id == details.slots[1].id


def _tally(
    start: int, *, req_yes: int = 0, req_maybe: int = 0, yes: int = 0, maybe: int = 0
) -> SlotTally:
    base = datetime(2030, 1, 7, 9, tzinfo=UTC) + timedelta(hours=start)
    return SlotTally(
        id=uuid.uuid4(),
        start=base,
        end=base + timedelta(hours=1),
        unavailable=(),
        answers=(),
        yes=yes,
        if_need_be=maybe,
        no=0,
        required_yes=req_yes,
        required_if_need_be=req_maybe,
    )


def test_best_slot_prefers_yes_over_if_need_be_then_optional_then_earlier() -> None:
    a = _tally(0, req_maybe=2, maybe=2)
    b = _tally(1, req_yes=1, req_maybe=1, yes=1, maybe=1)
    assert poll_rules.best_slot_id([a, b]) == b.id  # same required count, more required yes
    c = _tally(2, req_yes=1, req_maybe=1, yes=3, maybe=1)
    assert poll_rules.best_slot_id([a, b, c]) == c.id  # optional yes breaks the tie
    d = _tally(3, req_yes=1, req_maybe=1, yes=3, maybe=1)
    assert poll_rules.best_slot_id([d, c]) == c.id  # then the earlier slot
    assert poll_rules.best_slot_id([_tally(0), _tally(1)]) is None  # nobody can come


# ---- comments --------------------------------------------------------------------------


async def test_members_comment_and_strangers_cannot(services: AppServices) -> None:
    circle = await make_circle(services)
    poll = await make_poll(services, circle)
    ana = await user(services, circle.members[1])
    stranger = await user(services, circle.stranger)
    async with services.db.session() as db:
        await poll_rules.add_comment(db, ana, poll.id, "  Tuesday works <b>better</b>  ")
        await db.commit()
        with pytest.raises(ValidationFailed):
            await poll_rules.add_comment(db, ana, poll.id, "   ")
        with pytest.raises(ValidationFailed, match="2000"):
            await poll_rules.add_comment(db, ana, poll.id, "x" * 2001)
        with pytest.raises(NotFound):
            await poll_rules.add_comment(db, stranger, poll.id, "hello")
        talk = await poll_rules.comments(db, poll)
    assert [(c.body, author.id) for c, author in talk] == [("Tuesday works <b>better</b>", ana.id)]


# ---- finalizing ------------------------------------------------------------------------


async def _finalize(
    services: AppServices, user_id: uuid.UUID, poll_id: uuid.UUID, slot_id: uuid.UUID
) -> Meeting:
    actor = await user(services, user_id)
    async with services.db.session() as db:
        try:
            meeting = await poll_rules.finalize_poll(
                db, services.meetings, sessions.Viewer(actor, actor), poll_id, slot_id
            )
        except Exception:
            await db.rollback()
            raise
        await db.commit()
        return meeting


async def test_finalize_makes_one_meeting_with_every_invitee(services: AppServices) -> None:
    use_mailer(services, MemoryMailer())
    circle = await make_circle(services)
    poll = await make_poll(services, circle)
    other = await make_poll(services, circle, title="Other")
    details = await _details(services, circle.organizer, poll.id)
    foreign = (await _details(services, circle.organizer, other.id)).slots[0].id
    chosen = details.slots[1]
    with pytest.raises(PermissionDenied, match="organizer"):
        await _finalize(services, circle.members[1], poll.id, chosen.id)
    with pytest.raises(NotFound):
        await _finalize(services, circle.stranger, poll.id, chosen.id)
    with pytest.raises(NotFound):
        await _finalize(services, circle.organizer, poll.id, foreign)
    meeting = await _finalize(services, circle.organizer, poll.id, chosen.id)
    assert meeting.start_at == chosen.start and meeting.end_at == chosen.end
    assert meeting.title == "Circle kickoff" and meeting.owner_id == circle.organizer
    async with services.db.session() as db:
        row = await db.get(Poll, poll.id)
        attendees = (
            await db.exec(
                select(MeetingAttendee.user_id).where(MeetingAttendee.meeting_id == meeting.id)
            )
        ).all()
        meetings = (await db.exec(select(func.count()).select_from(Meeting))).one()
    assert row is not None
    assert (row.status, row.final_slot_id, row.meeting_id) == (
        PollStatus.FINALIZED,
        chosen.id,
        meeting.id,
    )
    assert set(attendees) == set(circle.members)
    invited = {m["To"].addresses[0].addr_spec for m in services.mailer.sent}
    assert {circle.emails[m] for m in circle.others} <= invited
    with pytest.raises(Conflict, match="already finalized"):
        await _finalize(services, circle.organizer, poll.id, details.slots[0].id)
    with pytest.raises(Conflict, match="finalized"):
        await _answer(services, circle.members[1], poll.id, [YES, YES, YES])
    async with services.db.session() as db:
        assert (await db.exec(select(func.count()).select_from(Meeting))).one() == meetings == 1


async def test_a_closed_poll_can_still_be_finalized(services: AppServices) -> None:
    use_mailer(services, MemoryMailer())
    circle = await make_circle(services, size=2)
    poll = await make_poll(services, circle, deadline=utcnow() + timedelta(hours=1))
    async with services.db.session() as db:
        assert (
            await poll_rules.close_due_polls(db, circle.deps(), utcnow() + timedelta(hours=2)) == 1
        )
    slot = (await _details(services, circle.organizer, poll.id)).slots[0]
    meeting = await _finalize(services, circle.organizer, poll.id, slot.id)
    assert meeting.start_at == slot.start


async def test_a_failed_booking_leaves_the_poll_open(services: AppServices) -> None:
    """If the meetings service refuses, the status change is rolled back with it."""
    use_mailer(services, MemoryMailer())
    circle = await make_circle(services, size=2)
    poll = await make_poll(services, circle)
    slot = (await _details(services, circle.organizer, poll.id)).slots[0]
    async with services.db.session() as db:  # the other member left the group
        await db.exec(
            delete(ConnectionMember).where(col(ConnectionMember.user_id) == circle.members[1])
        )
        await db.commit()
    with pytest.raises(ValidationFailed):
        await _finalize(services, circle.organizer, poll.id, slot.id)
    async with services.db.session() as db:
        row = await db.get(Poll, poll.id)
        assert row is not None and row.status == PollStatus.OPEN and row.final_slot_id is None


# ---- suggestions -----------------------------------------------------------------------


async def test_suggestions_rank_by_free_invitees_and_name_the_busy(services: AppServices) -> None:
    circle = await make_circle(services)
    olga, ana, bo, _cy = circle.members
    day = next_monday(weeks=2)
    await connect(services, olga)
    await connect(services, ana, [(day + timedelta(hours=9), day + timedelta(hours=12))])
    await connect(services, bo, [(day + timedelta(hours=14), day + timedelta(hours=20))])
    organizer = await user(services, olga)
    async with services.db.session() as db:
        organized = await poll_rules.organized_group(db, organizer, circle.group)
        found = await poll_suggestions.suggest(
            db,
            services.calendar,
            organizer,
            organized,
            start=day + timedelta(hours=8),
            end=day + timedelta(hours=20),
            duration_minutes=60,
            limit=50,
        )
    slots = found.slots
    assert slots, found.empty_reason
    free = [len(s.free) for s in slots]
    assert free == sorted(free, reverse=True)
    best = slots[0]
    assert set(best.free) == {olga, ana, bo} and best.unavailable == ()
    assert all(s.unknown == (_cy,) for s in slots)  # no calendar: unknown, never free
    at_nine = next(s for s in slots if s.start == day + timedelta(hours=9))
    assert at_nine.unavailable == (ana,)
    assert set(at_nine.free) == {olga, bo}


async def test_the_organizer_is_never_suggested_a_time_they_are_busy(
    services: AppServices,
) -> None:
    circle = await make_circle(services, size=2)
    day = next_monday(weeks=2)
    await connect(
        services, circle.organizer, [(day + timedelta(hours=8), day + timedelta(hours=18))]
    )
    organizer = await user(services, circle.organizer)
    async with services.db.session() as db:
        organized = await poll_rules.organized_group(db, organizer, circle.group)
        found = await poll_suggestions.suggest(
            db,
            services.calendar,
            organizer,
            organized,
            start=day + timedelta(hours=8),
            end=day + timedelta(hours=20),
            duration_minutes=60,
        )
    starts = sorted(s.start - day for s in found.slots)
    assert starts == [timedelta(hours=18), timedelta(hours=18, minutes=30), timedelta(hours=19)]

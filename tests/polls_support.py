"""Shared set-up for the poll tests: a program with a group, its organizer and members."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from server.models import BusyBlock, CalendarConnection, Poll, User
from server.models.base import utcnow
from server.models.enums import BusyKind, CalendarStatus, ConnectionKind, ProgramRole, ProviderName
from server.services.invites import MemoryMailer
from server.services.people import accounts, mentoring, programs
from server.services.polls import rules as poll_rules
from server.services.polls.mail import PollDeps
from server.wiring import AppServices
from tests.conftest import create_user


@dataclass
class Circle:
    program: uuid.UUID
    group: uuid.UUID
    organizer: uuid.UUID
    members: list[uuid.UUID]  # organizer first
    emails: dict[uuid.UUID, str]
    names: dict[uuid.UUID, str]
    stranger: uuid.UUID
    stranger_email: str
    mailer: MemoryMailer = field(default_factory=MemoryMailer)

    @property
    def others(self) -> list[uuid.UUID]:
        return self.members[1:]

    def deps(self) -> PollDeps:
        return PollDeps(
            mailer=self.mailer, mail_from="Tandem <t@example.org>", base_url="http://testserver"
        )


NAMES = ("Olga Organizer", "Ana", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus")


async def make_circle(
    services: AppServices, *, size: int = 4, polls_on: bool = True, names: Sequence[str] = ()
) -> Circle:
    """An operator-admin, a group of ``size`` (organizer first) and a stranger in the same
    program who is not in the group. Everyone lives in UTC to keep times readable."""
    tag = uuid.uuid4().hex[:6]
    labels = list(names) or [NAMES[i] if i < len(NAMES) else f"Member {i}" for i in range(size)]
    root = await create_user(
        services, f"root-{tag}@example.org", name="Root", global_admin=True, operator=True
    )
    members = []
    emails = {}
    for i, label in enumerate(labels[:size]):
        email = f"m{i}-{tag}@example.org"
        uid = await create_user(services, email, name=label, time_zone="UTC")
        members.append(uid)
        emails[uid] = email
    stranger_email = f"s-{tag}@example.org"
    stranger = await create_user(services, stranger_email, name="Stan Stranger", time_zone="UTC")
    async with services.db.session() as db:
        actor = await accounts.get_user(db, root)
        program = await programs.create_program(db, actor, f"Circles {tag}")
        for uid in [*members, stranger]:
            await programs.add_member(db, actor, program.id, uid, ProgramRole.PARTICIPANT)
        await programs.update_settings(
            db,
            actor,
            program.id,
            programs.SettingsChange(group_polls_enabled=polls_on, allow_weekends=True),
        )
        group = await mentoring.create_connection(
            db,
            actor,
            program_id=program.id,
            member_ids=members,
            kind=ConnectionKind.GROUP,
            name=f"Circle {tag}",
            organizer_id=members[0],
        )
        await db.commit()
    return Circle(
        program=program.id,
        group=group.id,
        organizer=members[0],
        members=members,
        emails=emails,
        names=dict(zip(members, labels, strict=False)),
        stranger=stranger,
        stranger_email=stranger_email,
    )


async def connect(
    services: AppServices, user_id: uuid.UUID, busy: Sequence[tuple[datetime, datetime]] = ()
) -> None:
    """A connected, freshly synced calendar with the given busy blocks (times only)."""
    async with services.db.session() as db:
        db.add(
            CalendarConnection(
                user_id=user_id,
                provider=ProviderName.GOOGLE,
                status=CalendarStatus.CONNECTED,
                label="Google",
                account_email="cal@example.org",
                last_synced_at=utcnow(),
                synced_from=utcnow() - timedelta(days=1),
                synced_until=utcnow() + timedelta(days=60),
            )
        )
        for start, end in busy:
            db.add(BusyBlock(user_id=user_id, start_at=start, end_at=end, kind=BusyKind.BUSY))
        await db.commit()


def next_monday(weeks: int = 1) -> datetime:
    """Midnight UTC of a Monday at least a few days ahead."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=(7 - today.weekday()) % 7 or 7) + timedelta(weeks=weeks - 1)


def slot_starts(count: int = 3, *, day: datetime | None = None) -> list[datetime]:
    """``count`` hourly slots from 09:00 UTC on a future Monday."""
    base = (day or next_monday()) + timedelta(hours=9)
    return [base + timedelta(hours=i) for i in range(count)]


async def user(services: AppServices, user_id: uuid.UUID) -> User:
    async with services.db.session() as db:
        return await accounts.get_user(db, user_id)


async def make_poll(
    services: AppServices,
    circle: Circle,
    *,
    slots: int = 3,
    deadline: datetime | None = None,
    optional: Sequence[uuid.UUID] = (),
    title: str = "Circle kickoff",
    now: datetime | None = None,
) -> Poll:
    organizer = await user(services, circle.organizer)
    async with services.db.session() as db:
        return await poll_rules.create_poll(
            db,
            circle.deps(),
            organizer,
            group_id=circle.group,
            title=title,
            duration_minutes=60,
            slot_starts=slot_starts(slots),
            deadline=deadline,
            optional_invitee_ids=optional,
            now=now,
        )


async def token_for(services: AppServices, user_id: uuid.UUID) -> str:
    """An API token for the user, to call /graphql as them."""
    from server.services.people import api_tokens

    async with services.db.session() as db:
        owner = await accounts.get_user(db, user_id)
        raw, _ = await api_tokens.create_token(db, owner, "test")
        await db.commit()
        return raw

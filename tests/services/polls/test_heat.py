"""The poll heat map: who counts as free, days as columns, times as rows, levels."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from server.models import Poll, User
from server.models.enums import PollAnswerValue, PollStatus
from server.services.polls.heat import heat_map
from server.services.polls.tally import Invitee, PollDetails, SlotTally


def _user(name: str) -> User:
    return User(id=uuid.uuid4(), email=f"{name}@example.org", name=name, time_zone="UTC")


def _slot(
    start: datetime,
    answers: dict[uuid.UUID, PollAnswerValue],
    busy: Sequence[uuid.UUID] = (),
) -> SlotTally:
    return SlotTally(
        id=uuid.uuid4(),
        start=start,
        end=start + timedelta(hours=1),
        unavailable=tuple(busy),
        answers=tuple(answers.items()),
        yes=0,
        if_need_be=0,
        no=0,
        required_yes=0,
        required_if_need_be=0,
    )


def test_free_counts_answers_first_then_connected_calendars() -> None:
    ana, bo, cy, dee = (_user(n) for n in ("Ana", "Bo", "Cy", "Dee"))
    mon = datetime(2026, 12, 7, 9, tzinfo=UTC)
    slots = [
        # Ana yes, Bo if need be, Cy no; Dee has not answered, connected and free: 3 of 4.
        _slot(
            mon,
            {
                ana.id: PollAnswerValue.YES,
                bo.id: PollAnswerValue.IF_NEED_BE,
                cy.id: PollAnswerValue.NO,
            },
        ),
        # Dee busy in her calendar, nobody answered; Ana, Bo, Cy not connected: 0 of 4.
        _slot(mon + timedelta(hours=2), {}, busy=[dee.id]),
        # Tuesday 09:00: everyone said yes.
        _slot(mon + timedelta(days=1), {u.id: PollAnswerValue.YES for u in (ana, bo, cy, dee)}),
    ]
    details = PollDetails(
        poll=Poll(connection_id=uuid.uuid4(), organizer_id=ana.id, title="T", duration_minutes=60),
        status=PollStatus.OPEN,
        invitees=[Invitee(u, False) for u in (ana, bo, cy, dee)],
        connected_ids=frozenset({dee.id}),
        slots=slots,
        best_slot_id=None,
    )
    heat = heat_map(details, "Europe/Paris")
    assert heat.days == (date(2026, 12, 7), date(2026, 12, 8))
    assert heat.times == ("10:00", "12:00")  # Paris wall clock
    first = heat.at(date(2026, 12, 7), "10:00")
    assert first is not None
    assert (first.free, first.total, first.level) == (3, 4, 3)
    assert first.free_names == ("Ana", "Bo", "Dee") and first.label == "3 of 4 free"
    nobody = heat.at(date(2026, 12, 7), "12:00")
    assert nobody is not None and (nobody.free, nobody.level) == (0, 0)
    everyone = heat.at(date(2026, 12, 8), "10:00")
    assert everyone is not None and everyone.level == 4
    assert heat.at(date(2026, 12, 8), "12:00") is None  # not proposed

"""Calendar health: the hints read from busy kinds (in the person's own zone, across DST)
and the grouped gathering for a whole program."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from server.models import BusyBlock, CalendarConnection
from server.models.enums import BusyKind, CalendarStatus, ProgramRole, ProviderName
from server.services.calendars import health, sync
from server.services.calendars.health import Action, Block, HealthState
from server.services.people import accounts, programs
from server.wiring import AppServices
from tests.conftest import create_user, statements_run


def _local(zone: str, y: int, m: int, d: int, hour: int = 0) -> datetime:
    return datetime.combine(datetime(y, m, d).date(), time(hour), ZoneInfo(zone)).astimezone(UTC)


def _all_day(zone: str, y: int, m: int, d: int) -> Block:
    return Block(_local(zone, y, m, d), _local(zone, y, m, d) + timedelta(days=1), BusyKind.ALL_DAY)


def _busy(start: datetime) -> Block:
    return Block(start, start + timedelta(hours=1), BusyKind.BUSY)


def _codes(reasons: list[health.Reason]) -> list[str]:
    return [r.code for r in reasons]


def test_all_day_events_count_the_persons_own_weekdays() -> None:
    zone = "Europe/Berlin"
    now = _local(zone, 2027, 3, 1, 9)  # a Monday
    # Six weekday all-day events, plus two on the weekend that must not count.
    days = [(3, 1), (3, 2), (3, 3), (3, 6), (3, 7), (3, 8), (3, 9), (3, 10)]
    blocks = [_all_day(zone, 2027, 3, d) for _m, d in days] + [_busy(now)]
    reasons = health.hints(blocks, zone, now)
    assert _codes(reasons) == ["all_day_blocking"]
    assert reasons[0].message == "All-day events block 6 of the next 10 weekdays."
    assert reasons[0].action == Action.CHECK_ALL_DAY_EVENTS


def test_a_few_all_day_events_are_ordinary() -> None:
    zone = "Europe/Berlin"
    now = _local(zone, 2027, 3, 1, 9)
    blocks = [_all_day(zone, 2027, 3, 1), _all_day(zone, 2027, 3, 2), _busy(now)]
    assert health.hints(blocks, zone, now) == []


def test_all_day_events_across_a_dst_change_still_cover_the_local_day() -> None:
    # New York moves its clocks on Sunday 14 March 2027: the days around it are 23 and 24
    # hours long in UTC; each event is the person's own local day.
    zone = "America/New_York"
    now = _local(zone, 2027, 3, 12, 8)  # Friday
    blocks = [_all_day(zone, 2027, 3, d) for d in (12, 15, 16, 17)] + [_busy(now)]
    reasons = health.hints(blocks, zone, now)
    assert reasons[0].message == "All-day events block 4 of the next 10 weekdays."


def test_weekdays_are_the_persons_not_utc() -> None:
    # Friday 20:00 in Los Angeles is already Saturday in UTC: the person's coming weekdays
    # start with that Friday, UTC's would start on Monday.
    zone = "America/Los_Angeles"
    now = _local(zone, 2027, 6, 4, 20)  # Friday evening there
    friday_monday_tuesday = [_all_day(zone, 2027, 6, d) for d in (4, 7, 8)]
    reasons = health.hints([*friday_monday_tuesday, _busy(now)], zone, now)
    assert reasons[0].message == "All-day events block 3 of the next 10 weekdays."
    assert health.hints([*friday_monday_tuesday, _busy(now)], "UTC", now) == []


def test_out_of_office_names_the_last_day_in_the_persons_zone() -> None:
    zone = "Asia/Tokyo"
    now = _local(zone, 2027, 3, 1, 10)
    absence = Block(_local(zone, 2027, 2, 26), _local(zone, 2027, 3, 13), BusyKind.OUT_OF_OFFICE)
    reasons = health.hints([absence, _busy(now)], zone, now)
    assert _codes(reasons) == ["out_of_office"]
    assert reasons[0].message == "Out of office until 12 March."
    assert reasons[0].attention is False


def test_back_to_back_absences_read_as_one() -> None:
    zone = "UTC"
    now = datetime(2027, 3, 1, 9, tzinfo=UTC)
    first = Block(
        datetime(2027, 2, 27, tzinfo=UTC), datetime(2027, 3, 6, tzinfo=UTC), BusyKind.OUT_OF_OFFICE
    )
    second = Block(
        datetime(2027, 3, 6, tzinfo=UTC), datetime(2027, 3, 20, tzinfo=UTC), BusyKind.OUT_OF_OFFICE
    )
    reasons = health.hints([second, first, _busy(now)], zone, now)
    assert reasons[0].message == "Out of office until 19 March."


def test_a_future_absence_is_not_out_of_office_now() -> None:
    now = datetime(2027, 3, 1, 9, tzinfo=UTC)
    later = Block(now + timedelta(days=3), now + timedelta(days=5), BusyKind.OUT_OF_OFFICE)
    assert health.hints([later], "UTC", now) == []


def test_no_busy_time_at_all_asks_whether_the_right_calendar_is_connected() -> None:
    now = datetime(2027, 3, 1, 9, tzinfo=UTC)
    reasons = health.hints([], "Europe/Paris", now)
    assert _codes(reasons) == ["no_busy_time"]
    assert reasons[0].message == (
        "No busy time at all in 60 days (is the right calendar connected?)"
    )
    assert reasons[0].action == Action.CHECK_CALENDAR
    far = _busy(now + timedelta(days=61))
    assert _codes(health.hints([far], "Europe/Paris", now)) == ["no_busy_time"]


def test_age_in_words() -> None:
    assert health.age_words(timedelta(seconds=20)) == "just now"
    assert health.age_words(timedelta(minutes=1, seconds=5)) == "1 minute ago"
    assert health.age_words(timedelta(hours=5)) == "5 hours ago"
    assert health.age_words(timedelta(days=2, hours=3)) == "2 days ago"


def _connection(user_id: object, **values: object) -> CalendarConnection:
    fields: dict[str, object] = {
        "provider": ProviderName.GOOGLE,
        "status": CalendarStatus.CONNECTED,
        "label": "Google",
        "account_email": "someone@example.org",
    }
    fields.update(values)
    return CalendarConnection(user_id=user_id, **fields)  # type: ignore[arg-type]


async def test_health_of_many_people_in_a_few_queries(services: AppServices) -> None:
    now = datetime.now(UTC)
    fine, stale, lost, policy, absent, unreadable = [
        await create_user(services, password="") for _ in range(6)
    ]
    nobody = await create_user(services, password="")
    async with services.db.session() as db:
        for user, values in (
            (fine, {}),
            (stale, {"last_synced_at": now - timedelta(days=2)}),
            (lost, {"status": CalendarStatus.NEEDS_REAUTH, "error_code": sync.PROBLEM_AUTH_LOST}),
            (
                policy,
                {
                    "status": CalendarStatus.ERROR,
                    "error_code": sync.PROBLEM_ACCESS_POLICY,
                    "last_error": "Your organization's policy blocks Tandem.",
                },
            ),
            (absent, {}),
            (
                unreadable,
                {"status": CalendarStatus.ERROR, "error_code": sync.PROBLEM_UNREADABLE},
            ),
        ):
            defaults = {
                "last_synced_at": now - timedelta(minutes=5),
                "synced_from": now - timedelta(days=1),
                "synced_until": now + timedelta(days=60),
            }
            defaults.update(values)  # type: ignore[arg-type]
            db.add(_connection(user, **defaults))
        for user in (fine, stale, lost, policy):
            db.add(
                BusyBlock(
                    user_id=user,
                    start_at=now + timedelta(hours=3),
                    end_at=now + timedelta(hours=4),
                    kind=BusyKind.BUSY,
                )
            )
        db.add(
            BusyBlock(
                user_id=absent,
                start_at=now - timedelta(days=1),
                end_at=now + timedelta(days=4),
                kind=BusyKind.OUT_OF_OFFICE,
            )
        )
        await db.commit()
    async with services.db.session() as db:
        with statements_run(services) as seen:
            found = await health.health_of(
                db, [fine, stale, lost, policy, absent, unreadable, nobody], now=now
            )
    assert len(seen) <= 4
    assert found[fine].state == HealthState.CONNECTED and found[fine].reasons == ()
    assert found[fine].through == "Google" and found[fine].horizon_covered
    assert found[stale].codes == ("sync_stale",)
    assert found[stale].state == HealthState.NEEDS_ATTENTION
    assert found[lost].codes == ("auth_lost",)
    assert found[lost].reasons[0].action == Action.RECONNECT
    assert found[policy].codes == ("access_policy",)
    assert found[policy].reasons[0].action == Action.ASK_IT
    assert found[policy].reasons[0].message == "Your organization's policy blocks Tandem."
    assert found[absent].codes == ("out_of_office",)
    assert found[absent].state == HealthState.CONNECTED
    # Its cache was emptied when it became unreadable: no "no busy time" hint on top.
    assert found[unreadable].codes == ("unreadable",)
    assert found[unreadable].reasons[0].message == "Tandem could not read the calendar."
    assert found[nobody].state == HealthState.NOT_CONNECTED
    assert found[nobody].codes == ("not_connected",)
    assert found[nobody].reasons[0].action == Action.CONNECT


async def test_a_short_horizon_is_reported(services: AppServices) -> None:
    now = datetime.now(UTC)
    user = await create_user(services)
    async with services.db.session() as db:
        db.add(
            _connection(
                user,
                last_synced_at=now - timedelta(minutes=1),
                synced_until=now + timedelta(days=20),
            )
        )
        db.add(
            BusyBlock(
                user_id=user,
                start_at=now + timedelta(hours=1),
                end_at=now + timedelta(hours=2),
                kind=BusyKind.BUSY,
            )
        )
        await db.commit()
    async with services.db.session() as db:
        found = (await health.health_of(db, [user], now=now))[user]
    assert found.codes == ("horizon_short",)
    assert not found.horizon_covered


async def test_a_programs_summary_costs_the_same_queries_for_ten_times_the_people(
    services: AppServices,
) -> None:
    root = await create_user(services, global_admin=True, password="")
    async with services.db.session() as db:
        admin = await accounts.get_user(db, root)
        small = await programs.create_program(db, admin, "Small")
        large = await programs.create_program(db, admin, "Large")
        await db.commit()
    now = datetime.now(UTC)
    for program, size in ((small, 3), (large, 30)):
        for _ in range(size):
            person = await create_user(services, password="")
            async with services.db.session() as db:
                await programs.add_member(db, admin, program.id, person, ProgramRole.MENTEE)
                db.add(
                    _connection(person, last_synced_at=now, synced_until=now + timedelta(days=60))
                )
                await db.commit()
    counts = []
    for program in (small, large):
        async with services.db.session() as db:
            with statements_run(services) as seen:
                summary = await health.program_health(db, services.calendar, admin, program.id)
            counts.append(len(seen))
            assert len(summary.members) in (3, 30)
    assert counts[0] == counts[1] <= 8
    assert summary.by_reason == (("no_busy_time", "No busy time at all", 30),)

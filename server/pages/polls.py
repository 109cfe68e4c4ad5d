"""Poll pages: creating a poll from suggested slots, answering it, talking about it, and
the organizer turning the best slot into a meeting.

Live updates use htmx polling, not server-sent events: the tally region on ``/polls/{id}``
asks ``/polls/{id}/tally`` every 5 seconds (``hx-trigger="every 5s"``). It needs no
long-lived connection per open page, works through every proxy, and a missed beat costs
nothing; a poll's answers change at human speed, so 5 seconds is live enough.

Every form is a plain form first (answers, comments, finalize post and redirect); the
suggestions on the new-poll page refresh in place with htmx when the range or length
changes. Invalid forms come back re-rendered with 422.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from server.models.base import utcnow
from server.models.enums import PollAnswerValue, PollStatus
from server.pages.common import is_htmx, redirect, render, services, viewer
from server.pages.groups import path_id
from server.services.errors import DomainError, NotFound, ValidationFailed
from server.services.meetings.booking import MAX_NOTE
from server.services.polls import heat as poll_heat
from server.services.polls import rules as poll_rules
from server.services.polls import suggestions as poll_suggestions
from server.services.validation import day_in_range, wall_clock_to_utc
from server.web.templating import local_time

DURATIONS = (15, 30, 45, 60, 90, 120)
DEFAULT_DURATION = 60
DEFAULT_RANGE_DAYS = 14
EXTRA_SLOT_FIELDS = 3
ANSWER_LABELS = (
    (PollAnswerValue.YES, "Yes"),
    (PollAnswerValue.IF_NEED_BE, "If need be"),
    (PollAnswerValue.NO, "No"),
)
_STATUS_FOR_CODE = {"not_found": 404, "forbidden": 403, "conflict": 409}


def _status(exc: DomainError) -> int:
    return _STATUS_FOR_CODE.get(exc.code, 422)


# ---- new poll --------------------------------------------------------------------------


def _day(raw: str | None, fallback: date) -> date:
    try:
        value = date.fromisoformat(raw) if raw else fallback
    except ValueError:
        return fallback
    return value if day_in_range(value, fallback) else fallback


def _duration(raw: object) -> int:
    try:
        value = int(str(raw))
    except ValueError:
        return DEFAULT_DURATION
    return value if value in DURATIONS else DEFAULT_DURATION


def _local(raw: str, zone: str) -> datetime | None:
    """A ``datetime-local`` value on the viewer's wall clock, or an ISO time with offset."""
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    if value.tzinfo is None:
        value = wall_clock_to_utc(value, zone, field="slots")
    return value


async def _new_poll_context(
    request: Request, group_id: uuid.UUID, params: dict[str, str], **extra: Any
) -> tuple[dict[str, Any], int]:
    """Everything the new-poll page shows; raises HTTPException for no-access cases."""
    current = viewer(request)
    svc = services(request)
    zone = current.user.time_zone
    now = utcnow()
    today = now.astimezone(ZoneInfo(zone)).date()
    first = _day(params.get("from"), today + timedelta(days=1))
    last = _day(params.get("to"), first + timedelta(days=DEFAULT_RANGE_DAYS - 1))
    duration = _duration(params.get("duration", DEFAULT_DURATION))
    context: dict[str, Any] = {
        "first": first.isoformat(),
        "last": last.isoformat(),
        "duration": duration,
        "durations": DURATIONS,
        "extra_slots": range(EXTRA_SLOT_FIELDS),
        "form": {},
        "chosen": set(),
        "optional_ids": set(),
        "kept": [],
        "marks": {},
    }
    async with svc.db.session() as db:
        try:
            group = await poll_rules.get_visible_group(db, current.user, group_id)
        except NotFound:
            raise HTTPException(404) from None
        context["group"] = group
        try:
            organized = await poll_rules.organized_group(db, current.user, group_id)
        except DomainError as exc:
            context["blocked"] = exc.message
            return context, 403
        statuses = await poll_rules.connected_ids(db, [m.id for m in organized.members])
        context.update(
            members=organized.members,
            names={m.id: m.name for m in organized.members},
            invitee_count=len(organized.members),
            connected_count=len(statuses),
        )
        try:
            start, end = poll_suggestions.local_range(first, last, zone)
            found = await poll_suggestions.suggest(
                db,
                svc.calendar,
                current.user,
                organized,
                start=start,
                end=end,
                duration_minutes=duration,
                now=now,
            )
            await db.commit()  # an on-demand refresh may have stored fresh busy times
            context.update(
                suggestions=found.slots, empty_reason=found.empty_reason, notes=found.notes
            )
            context["marks"] = {
                s.start.isoformat(): poll_suggestions.unsocial_hours(
                    s.start, s.end, organized.members
                )
                for s in found.slots
            }
        except DomainError as exc:
            context.update(suggestions=[], empty_reason=None, notes=[], range_error=exc.message)
    context.update(extra)
    # Ticked slots survive a change of From, To or Length: those no longer suggested are
    # listed, still ticked, above the suggestions.
    shown = {s.start.isoformat() for s in context.get("suggestions", [])}
    length = timedelta(minutes=duration)
    kept = sorted(
        start
        for start in (datetime.fromisoformat(v) for v in context["chosen"] if v not in shown)
        if start < datetime.max.replace(tzinfo=UTC) - length - timedelta(days=2)
    )
    context["kept"] = [
        {
            "value": start.isoformat(),
            "start": start,
            "end": start + length,
            "marks": poll_suggestions.unsocial_hours(
                start, start + length, context.get("members", [])
            ),
        }
        for start in kept
    ]
    return context, 200


def _ticked(values: list[str]) -> set[str]:
    """Ticked slot starts carried by a filter change (``slot=`` ISO 8601 with an offset),
    normalized to UTC; anything else is dropped."""
    found: set[str] = set()
    for raw in values[: poll_rules.MAX_SLOTS]:
        try:
            value = datetime.fromisoformat(raw.strip().replace(" ", "+"))
        except ValueError:
            continue
        if value.tzinfo is not None:
            found.add(value.astimezone(ZoneInfo("UTC")).isoformat())
    return found


async def new_poll(request: Request) -> Response:
    group_id = path_id(request, "group_id")
    context, status = await _new_poll_context(
        request,
        group_id,
        dict(request.query_params),
        chosen=_ticked(request.query_params.getlist("slot")),
    )
    if is_htmx(request) and status == 200 and request.headers.get("hx-request-type") != "full":
        return render(request, "partials/poll_suggestions.html", context)
    return render(request, "pages/poll_new.html", context, status_code=status)


def _form_starts(form: FormData, zone: str) -> tuple[list[datetime], str | None]:
    try:
        return _form_starts_or_raise(form, zone)
    except DomainError as exc:  # a wall-clock time skipped by a DST change
        return [], exc.message


def _form_starts_or_raise(form: FormData, zone: str) -> tuple[list[datetime], str | None]:
    starts: list[datetime] = []
    for raw in form.getlist("slot")[: poll_rules.MAX_SLOTS + 1]:
        value = _local(str(raw), zone)
        if value is None:
            return [], "A proposed slot is not a valid time."
        starts.append(value)
    for raw in form.getlist("extra_slot")[:EXTRA_SLOT_FIELDS]:
        text = str(raw).strip()
        if not text:
            continue
        value = _local(text, zone)
        if value is None:
            return [], f"'{text[:40]}' is not a valid date and time."
        starts.append(value)
    return starts, None


async def create_poll(request: Request) -> Response:
    current = viewer(request)
    svc = services(request)
    group_id = path_id(request, "group_id")
    form = await request.form()
    zone = current.user.time_zone
    fields = {k: str(form.get(k, ""))[:300] for k in ("title", "deadline", "from", "to")}
    duration = _duration(form.get("duration", DEFAULT_DURATION))
    starts, error = _form_starts(form, zone)
    optional: list[uuid.UUID] = []
    for raw in form.getlist("optional")[:100]:
        try:
            optional.append(uuid.UUID(str(raw)))
        except ValueError:
            error = error or "An optional invitee is not a member of the group."
    deadline = None
    if fields["deadline"].strip():
        try:
            deadline = _local(fields["deadline"], zone)
        except DomainError as exc:
            error = error or exc.message
        else:
            if deadline is None:
                error = error or "The deadline is not a valid date and time."
    poll_id: uuid.UUID | None = None
    if error is None:
        async with svc.db.session() as db:
            try:
                poll = await poll_rules.create_poll(
                    db,
                    svc.polls,
                    current.user,
                    group_id=group_id,
                    title=fields["title"],
                    duration_minutes=duration,
                    slot_starts=starts,
                    deadline=deadline,
                    actor_id=current.actor.id,
                    optional_invitee_ids=optional,
                )
                poll_id = poll.id
            except NotFound as exc:
                if exc.field is None:
                    raise HTTPException(404) from None
                error = exc.message
            except DomainError as exc:
                error = exc.message
    if poll_id is not None:
        return redirect(f"/polls/{poll_id}?notice=poll_created", request=request)
    params = {"from": fields["from"], "to": fields["to"], "duration": str(duration)}
    context, status = await _new_poll_context(
        request,
        group_id,
        params,
        error=error,
        form=fields,
        chosen={s.astimezone(ZoneInfo("UTC")).isoformat() for s in starts},
        optional_ids={str(o) for o in optional},
    )
    return render(
        request, "pages/poll_new.html", context, status_code=422 if status == 200 else status
    )


# ---- one poll --------------------------------------------------------------------------


async def _poll_context(request: Request, poll_id: uuid.UUID) -> dict[str, Any]:
    current = viewer(request)
    svc = services(request)
    async with svc.db.session() as db:
        try:
            details = await poll_rules.poll_details(
                db, current.user, poll_id, calendar=svc.calendar
            )
        except NotFound:
            raise HTTPException(404) from None
        group = await poll_rules.group_of(db, details.poll)
        talk = await poll_rules.comments(db, details.poll)
    me = current.user.id
    names = {i.user.id: i.user.name for i in details.invitees}
    organizer_name = names.get(details.poll.organizer_id, "The organizer")
    final = next((s for s in details.slots if s.id == details.poll.final_slot_id), None)
    return {
        "details": details,
        "poll": details.poll,
        "group": group,
        "names": names,
        "organizer_name": organizer_name,
        "is_organizer": details.poll.organizer_id == me,
        "is_invitee": details.is_invitee(me),
        "mine": details.answers_of(me),
        "comments": talk,
        "final": final,
        "labels": ANSWER_LABELS,
        "open": details.status == PollStatus.OPEN,
        "closed": details.status == PollStatus.CLOSED,
        "finalized": details.status == PollStatus.FINALIZED,
        "optional_ids": {i.user.id for i in details.invitees if i.optional},
        "max_comment": poll_rules.MAX_COMMENT_LENGTH,
        "heat": poll_heat.heat_map(details, current.user.time_zone),
    }


async def poll_page(
    request: Request, *, error: str | None = None, status_code: int = 200, **extra: Any
) -> Response:
    poll_id = path_id(request, "poll_id")
    context = await _poll_context(request, poll_id)
    context.update(error=error, **extra)
    return render(request, "pages/poll.html", context, status_code=status_code)


async def tally(request: Request) -> Response:
    """The live region of the poll page, fetched by htmx every 5 seconds."""
    context = await _poll_context(request, path_id(request, "poll_id"))
    return render(request, "partials/poll_tally.html", context)


async def comment_list(request: Request) -> Response:
    """The poll's comments, fetched by htmx every 5 seconds so new ones arrive live."""
    context = await _poll_context(request, path_id(request, "poll_id"))
    return render(request, "partials/poll_comments.html", context)


def _answers_from(form: FormData) -> list[tuple[uuid.UUID, PollAnswerValue]]:
    answers = []
    for key, value in form.multi_items():
        if not key.startswith("answer-"):
            continue
        try:
            answers.append((uuid.UUID(key.removeprefix("answer-")), PollAnswerValue(str(value))))
        except ValueError:
            continue
        if len(answers) > poll_rules.MAX_SLOTS:
            break
    return answers


async def answer(request: Request) -> Response:
    current = viewer(request)
    svc = services(request)
    poll_id = path_id(request, "poll_id")
    form = await request.form()
    answers = _answers_from(form)
    async with svc.db.session() as db:
        try:
            await poll_rules.submit_answers(
                db, svc.polls, current.user, poll_id, answers, actor_id=current.actor.id
            )
        except NotFound as exc:
            await db.rollback()
            if exc.field is None:
                raise HTTPException(404) from None
            return await poll_page(request, error=exc.message, status_code=422)
        except DomainError as exc:
            await db.rollback()
            submitted = {slot_id: value for slot_id, value in answers}
            return await poll_page(
                request, error=exc.message, status_code=_status(exc), submitted=submitted
            )
    return redirect(f"/polls/{poll_id}?notice=poll_answered", request=request)


async def comment(request: Request) -> Response:
    current = viewer(request)
    svc = services(request)
    poll_id = path_id(request, "poll_id")
    form = await request.form()
    body = str(form.get("body", ""))[: poll_rules.MAX_COMMENT_LENGTH + 1]
    async with svc.db.session() as db:
        try:
            await poll_rules.add_comment(db, current.user, poll_id, body, actor_id=current.actor.id)
            await db.commit()
        except NotFound:
            raise HTTPException(404) from None
        except DomainError as exc:
            await db.rollback()
            return await poll_page(
                request, error=exc.message, status_code=_status(exc), comment_body=body
            )
    return redirect(f"/polls/{poll_id}?notice=comment_added#comments", request=request)


async def confirm_finalize(request: Request) -> Response:
    """The confirmation step before finalizing: a dialog for htmx, a page without JS."""
    poll_id = path_id(request, "poll_id")
    try:
        slot_id = uuid.UUID(request.query_params.get("slot_id", ""))
    except ValueError:
        return await poll_page(request, error="Choose a slot to finalize.", status_code=422)
    return await _finalize_confirm(request, poll_id, slot_id)


async def _finalize_confirm(
    request: Request,
    poll_id: uuid.UUID,
    slot_id: uuid.UUID,
    *,
    message: str = "",
    error: str | None = None,
) -> Response:
    context = await _poll_context(request, poll_id)
    slot = next((s for s in context["details"].slots if s.id == slot_id), None)
    if not context["is_organizer"] or context["finalized"]:
        raise HTTPException(404)
    if slot is None:
        return await poll_page(request, error="Choose a slot to finalize.", status_code=422)
    poll = context["poll"]
    zone = viewer(request).user.time_zone
    count = len(context["details"].invitees) - 1
    confirm = {
        "title": poll.title,
        "heading": "Finalize the poll?",
        "what": f"The poll closes and {poll.title} is scheduled on "
        f"{local_time(slot.start, zone)} ({zone}); {count} invitee"
        f"{'s get' if count != 1 else ' gets'} an invitation email.",
        "action": f"/polls/{poll.id}/finalize",
        "hidden": [("slot_id", str(slot.id))],
        "button": "Yes, finalize and schedule",
        "button_class": "",
        "keep": "Not yet",
        "back": f"/polls/{poll.id}",
        "message": message,
        "max_message": MAX_NOTE,
        "error": error,
    }
    as_dialog = is_htmx(request) and error is None
    template = "partials/confirm.html" if as_dialog else "pages/confirm.html"
    response = render(
        request,
        template,
        {"confirm": confirm, "as_dialog": as_dialog},
        status_code=422 if error else 200,
    )
    response.headers["Vary"] = "HX-Request, Cookie"
    return response


async def finalize(request: Request) -> Response:
    current = viewer(request)
    svc = services(request)
    poll_id = path_id(request, "poll_id")
    form = await request.form()
    message = str(form.get("message", "") or "")
    try:
        slot_id = uuid.UUID(str(form.get("slot_id", "")))
    except ValueError:
        return await poll_page(request, error="Choose a slot to finalize.", status_code=422)
    async with svc.db.session() as db:
        try:
            await poll_rules.finalize_poll(
                db, svc.meetings, current, poll_id, slot_id, message=message
            )
            await db.commit()
        except NotFound as exc:
            await db.rollback()
            if exc.field is None:
                raise HTTPException(404) from None
            return await poll_page(request, error=exc.message, status_code=422)
        except ValidationFailed as exc:
            await db.rollback()
            return await _finalize_confirm(
                request, poll_id, slot_id, message=message, error=exc.message
            )
        except DomainError as exc:
            await db.rollback()
            return await poll_page(request, error=exc.message, status_code=_status(exc))
    return redirect(f"/polls/{poll_id}?notice=poll_finalized", request=request)

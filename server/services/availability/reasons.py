"""The sentences that explain a slot, or why there is none.

They name people and settings only, never anything about anyone's events. Empty
reasons say what the user could change (the window, weekends, hours, who is optional).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import islice

_NAMED = 3  # more names than this become "and N others"


def names(people: Iterable[str], count: int | None = None) -> str:
    """ "Ana", "Ana and Ben", "Ana, Ben and Cy", "Ana, Ben, Cy and 4 others".

    Only the first few of ``people`` are read when ``count`` gives the total, so a
    lazy iterable over many names costs no more than three.
    """
    shown = list(islice(people, _NAMED if count is not None else None))
    total = len(shown) if count is None else count
    if total > _NAMED:
        rest = total - _NAMED
        shown = [*shown[:_NAMED], f"{rest} other" if rest == 1 else f"{rest} others"]
    if len(shown) == 1:
        return shown[0]
    return f"{', '.join(shown[:-1])} and {shown[-1]}"


def slot_reason(
    total: int,
    free: int,
    busy: Iterable[str],
    busy_count: int,
    outside: Iterable[str],
    outside_count: int,
    unknown_part: str,
) -> str:
    """ "all 6 free", "5 of 6 free: Sam is busy", "4 of 6 free: Sam is busy; Lee is
    outside their allowed hours; Kim has no calendar connected".

    ``busy`` and ``outside`` are read lazily (first names only) with their true counts
    beside them; ``unknown_part`` is the same for every slot, so it is built once.
    """
    if free == total:
        return "both free" if total == 2 else f"all {total} free"
    text = f"{free} of {total} free"
    sep = ": "
    if busy_count:
        text += f"{sep}{names(busy, busy_count)} {'is' if busy_count == 1 else 'are'} busy"
        sep = "; "
    if outside_count:
        verb = "is" if outside_count == 1 else "are"
        text += f"{sep}{names(outside, outside_count)} {verb} outside their allowed hours"
        sep = "; "
    if unknown_part:
        text += sep + unknown_part
    return text


def unknown_part(unknown: Sequence[str], unread: Sequence[str] = ()) -> str:
    """Why people are unknown: no calendar at all, or a calendar Tandem could not read
    for this time (it never guesses them free)."""
    parts = []
    if unknown:
        verb = "has" if len(unknown) == 1 else "have"
        parts.append(f"{names(unknown)} {verb} no calendar connected")
    if unread:
        verb = "is" if len(unread) == 1 else "are"
        parts.append(f"{names(unread)} {verb} unknown (calendar not read for this time)")
    return "; ".join(parts)


def window_too_short(window_minutes: float, duration_minutes: float) -> str:
    return (
        f"The window ({_minutes(window_minutes)}) is shorter than the meeting "
        f"({_minutes(duration_minutes)}): choose a longer window or a shorter meeting."
    )


def window_in_past(notice_minutes: int) -> str:
    if notice_minutes:
        return (
            "Every possible start in the window is in the past or inside the minimum "
            f"notice of {_minutes(notice_minutes)}: choose a later window."
        )
    return "The window is in the past: choose a later window."


def weekends_only() -> str:
    return (
        "Weekends are off and the window holds only weekend days (in someone's time zone): "
        "choose a window with weekdays or allow weekends."
    )


def hours_label(earliest: int, latest: int) -> str:
    return f"{earliest:02d}:00-{latest:02d}:00 local"


def outside_own_hours(people: Sequence[tuple[str, str]], earliest: int, latest: int) -> str:
    """Some required participants have no allowed time in the window at all."""
    who = names([f"{name} ({zone})" for name, zone in people])
    return (
        f"No time in the window is inside the allowed hours ({hours_label(earliest, latest)}) "
        f"of {who}: choose a window that covers their day."
    )


def no_overlap(people: Sequence[tuple[str, str]], earliest: int, latest: int) -> str:
    """The allowed hours of these required participants never meet in the window."""
    who = names([f"{name} ({zone})" for name, zone in people])
    verb = "has" if len(people) == 1 else "have"
    return (
        f"No time is inside everyone's allowed hours ({hours_label(earliest, latest)}): "
        f"{who} {verb} no overlap. Widen the allowed hours, choose a longer window, "
        "or make someone optional."
    )


def too_few_free(minimum_free: int, total: int, best: int) -> str:
    return (
        f"No time has at least {minimum_free} of {total} free (at most {best} at once): "
        "lower the minimum or choose a longer window."
    )


def blocked(blockers: Sequence[tuple[str, int]], eligible: int, everyone: bool) -> str:
    """Required people are busy at every allowed time; ``blockers`` are the worst few
    with how many of the ``eligible`` times they are busy, worst first."""
    if everyone and len(blockers) > 1:
        return (
            "Everyone is busy at every allowed time in the window: choose a longer or later window."
        )
    always = [name for name, count in blockers if count == eligible]
    if always:
        verb = "is" if len(always) == 1 else "are"
        return (
            f"{names(always)} {verb} busy at every allowed time in the window: "
            "choose a longer or later window, or make them optional."
        )
    counts = ", ".join(f"{name} at {count} of {eligible}" for name, count in blockers)
    return (
        f"Someone required is busy at every allowed time in the window (busy most: {counts}): "
        "choose a longer window or make them optional."
    )


def _minutes(minutes: float) -> str:
    whole = int(minutes)
    if whole != minutes:
        return f"{minutes:g} min"
    hours, rest = divmod(whole, 60)
    if hours and not rest:
        return f"{hours} h"
    if hours:
        return f"{hours} h {rest} min"
    return f"{rest} min"

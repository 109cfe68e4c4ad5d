"""Small validators shared by services: emails, time zones, text, and the range of times.

Every service that accepts a name, a title, a comment or a moment from a user passes it
through here, so pages and the API accept and refuse exactly the same input.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from server.services.errors import ValidationFailed

_EMAIL = re.compile(
    r"^[^@\s<>\"'(),;:\\\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)


def normalize_email(raw: str, *, field: str = "email") -> str:
    email = raw.strip().lower()
    if len(email) > 320 or strip_controls(email) != email or not _EMAIL.match(email):
        raise ValidationFailed(
            f"'{clean_line(raw)[:80]}' is not a valid email address.", field=field
        )
    return email


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def validate_time_zone(name: str, *, field: str = "time_zone") -> str:
    """An IANA zone name that zoneinfo knows ("Europe/Paris"), else a clear error."""
    candidate = name.strip()
    if candidate not in _zone_names():
        raise ValidationFailed(
            f"Unknown time zone '{clean_line(candidate)[:64]}'. Use an IANA name such as "
            "Europe/Paris.",
            field=field,
        )
    try:
        ZoneInfo(candidate)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(
            f"Unknown time zone '{clean_line(candidate)[:64]}'.", field=field
        ) from exc
    return candidate


def time_zone_names() -> list[str]:
    return sorted(name for name in _zone_names() if "/" in name or name == "UTC")


# Bidirectional embeddings, overrides and isolates, and the invisible direction marks:
# they let "evil.exe\u202eFDP.doc" read as something else, so no user text keeps them.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def _keep(char: str, allowed: frozenset[str]) -> bool:
    """Everything but control characters (C0, DEL, C1), lone surrogates and bidi controls.

    Ordinary Unicode stays: accents, CJK, emoji (with their joiners and variation selectors).
    """
    if char in allowed:
        return True
    if char in _BIDI:
        return False
    return unicodedata.category(char) not in ("Cc", "Cs")


def strip_controls(raw: str, *, keep: str = "") -> str:
    """``raw`` without control, surrogate and bidi characters (``keep`` lists exceptions).

    NUL in particular must never reach PostgreSQL, which refuses it in text columns.
    """
    allowed = frozenset(keep)
    return "".join(char for char in raw if _keep(char, allowed))


def clean_line(raw: str) -> str:
    """One line of text: controls dropped, runs of whitespace (tabs, newlines) made one space."""
    return " ".join(strip_controls(raw, keep="\t\n").split())


def clean_name(raw: str, *, field: str = "name", what: str = "Name", max_length: int = 200) -> str:
    name = clean_line(raw)
    if not name:
        raise ValidationFailed(f"{what} cannot be empty.", field=field)
    if len(name) > max_length:
        raise ValidationFailed(f"{what} is longer than {max_length} characters.", field=field)
    return name


def clean_text(
    raw: str, *, field: str, what: str = "The text", max_length: int | None = None
) -> str:
    """Multi-line text (descriptions, comments): line breaks and tabs stay, every other
    control and bidi character goes; may be empty (the caller decides if that is allowed)."""
    text = strip_controls(raw.replace("\r\n", "\n").replace("\r", "\n"), keep="\t\n").strip()
    if max_length is not None and len(text) > max_length:
        raise ValidationFailed(f"{what} is longer than {max_length} characters.", field=field)
    return text


# ---- the range of times ----------------------------------------------------------------

HORIZON = timedelta(days=2 * 366)
"""How far back or ahead any moment a user gives may be: about two years either way.

Well inside what ``datetime`` can shift by a day or a time zone, so year 1 and year 9999
are refused with a field error instead of overflowing somewhere later.
"""


def _range_message(what: str) -> str:
    return f"{what} must be within two years of today."


def check_moment(
    value: datetime,
    *,
    field: str,
    what: str = "The time",
    now: datetime | None = None,
    past: timedelta = HORIZON,
    ahead: timedelta = HORIZON,
) -> datetime:
    """``value`` in UTC when it has an offset and lies within ``past``/``ahead`` of now."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationFailed(f"{what} needs a time zone offset.", field=field)
    try:
        moment = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValidationFailed(_range_message(what), field=field) from None
    now = now or datetime.now(UTC)
    if not now - past <= moment <= now + ahead:
        raise ValidationFailed(_range_message(what), field=field)
    return moment


def day_in_range(day: date, today: date, *, span_days: int = 0) -> bool:
    """Whether the days from ``day`` to ``span_days`` later (a week to show, a range to
    search) lie within the horizon of ``today``."""
    return -HORIZON.days < (day - today).days and (day - today).days + span_days < HORIZON.days


def wall_clock_to_utc(local: datetime, zone: str, *, field: str = "start") -> datetime:
    """A time typed on someone's wall clock, as UTC.

    A time that does not exist that day (the hour skipped when clocks go forward) is
    refused rather than silently shifted; a time that happens twice (clocks going back)
    means its first occurrence.
    """
    tz = ZoneInfo(zone)
    naive = local.replace(tzinfo=None)
    aware = naive.replace(tzinfo=tz, fold=0)
    try:
        round_trip = aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    except (OverflowError, ValueError):  # year 1 east of UTC, year 9999 west of it
        raise ValidationFailed(_range_message("The time"), field=field) from None
    if round_trip != naive:
        raise ValidationFailed(
            f"{naive:%H:%M} does not exist on {naive:%d %b %Y} in {zone} (the clocks move "
            "forward then). Pick another time.",
            field=field,
        )
    return aware.astimezone(UTC)

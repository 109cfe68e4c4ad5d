"""Small validators shared by services: emails, time zones, names."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from server.services.errors import ValidationFailed

_EMAIL = re.compile(
    r"^[^@\s<>\"'(),;:\\\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)


def normalize_email(raw: str, *, field: str = "email") -> str:
    email = raw.strip().lower()
    if len(email) > 320 or not _EMAIL.match(email):
        raise ValidationFailed(f"'{raw.strip()[:80]}' is not a valid email address.", field=field)
    return email


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def validate_time_zone(name: str, *, field: str = "time_zone") -> str:
    """An IANA zone name that zoneinfo knows ("Europe/Paris"), else a clear error."""
    candidate = name.strip()
    if candidate not in _zone_names():
        raise ValidationFailed(
            f"Unknown time zone '{candidate[:64]}'. Use an IANA name such as Europe/Paris.",
            field=field,
        )
    try:
        ZoneInfo(candidate)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(f"Unknown time zone '{candidate[:64]}'.", field=field) from exc
    return candidate


def time_zone_names() -> list[str]:
    return sorted(name for name in _zone_names() if "/" in name or name == "UTC")


def clean_name(raw: str, *, field: str = "name", what: str = "Name", max_length: int = 200) -> str:
    name = " ".join(raw.split())
    if not name:
        raise ValidationFailed(f"{what} cannot be empty.", field=field)
    if len(name) > max_length:
        raise ValidationFailed(f"{what} is longer than {max_length} characters.", field=field)
    return name


def wall_clock_to_utc(local: datetime, zone: str, *, field: str = "start") -> datetime:
    """A time typed on someone's wall clock, as UTC.

    A time that does not exist that day (the hour skipped when clocks go forward) is
    refused rather than silently shifted; a time that happens twice (clocks going back)
    means its first occurrence.
    """
    from datetime import UTC

    tz = ZoneInfo(zone)
    naive = local.replace(tzinfo=None)
    aware = naive.replace(tzinfo=tz, fold=0)
    if aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
        raise ValidationFailed(
            f"{naive:%H:%M} does not exist on {naive:%d %b %Y} in {zone} (the clocks move "
            "forward then). Pick another time.",
            field=field,
        )
    return aware.astimezone(UTC)

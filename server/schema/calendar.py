"""Calendar connection mutations' payloads. No field ever carries a token or password."""

from __future__ import annotations

import strawberry

from server.schema.common import UserError
from server.schema.users import CalendarConnection


@strawberry.type
class StartCalendarConnectionPayload:
    authorization_url: str | None = strawberry.field(
        description="Send the user's browser here; they finish consent signed in to Tandem."
    )
    errors: list[UserError]


@strawberry.type
class CalendarConnectionPayload:
    calendar: CalendarConnection | None
    errors: list[UserError]

"""Expected failures of the domain. Pages show them; the API returns them as typed errors."""

from __future__ import annotations


class DomainError(Exception):
    """A failure the user can understand and act on. ``message`` is safe to show."""

    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    """Also raised for objects that exist but are not the caller's: the two look the same."""

    code = "not_found"

    def __init__(self, what: str = "object", *, field: str | None = None) -> None:
        super().__init__(f"{what.capitalize()} not found.", field=field)


class PermissionDenied(DomainError):
    code = "forbidden"


class ValidationFailed(DomainError):
    code = "invalid"


class Conflict(DomainError):
    code = "conflict"


class TooManyAttempts(DomainError):
    code = "rate_limited"

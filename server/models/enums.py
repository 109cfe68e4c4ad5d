"""The closed vocabularies of the domain, shared by models, services and the API."""

from __future__ import annotations

from enum import StrEnum

from server.providers.base import BusyKind, ProviderName

__all__ = [
    "AttendeeResponse",
    "BusyKind",
    "CalendarStatus",
    "ConnectionKind",
    "IntegrationKind",
    "MeetingStatus",
    "PollAnswerValue",
    "PollStatus",
    "ProgramRole",
    "ProviderName",
]


class ProgramRole(StrEnum):
    PARTICIPANT = "participant"
    MENTOR = "mentor"
    MENTEE = "mentee"
    ADMIN = "admin"


class ConnectionKind(StrEnum):
    PAIR = "pair"
    GROUP = "group"


class CalendarStatus(StrEnum):
    CONNECTED = "connected"
    NEEDS_REAUTH = "needs_reauth"
    ERROR = "error"
    DISCONNECTED = "disconnected"


class MeetingStatus(StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


class AttendeeResponse(StrEnum):
    NEEDS_ACTION = "needs_action"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    TENTATIVE = "tentative"


class PollStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    FINALIZED = "finalized"


class PollAnswerValue(StrEnum):
    YES = "yes"
    IF_NEED_BE = "if_need_be"
    NO = "no"


class IntegrationKind(StrEnum):
    EXCHANGE_ONLINE = "exchange_online"
    EXCHANGE_ONPREM = "exchange_onprem"
    GOOGLE_WORKSPACE = "google_workspace"

"""Tables, one module per domain. Importing this package registers them all on the metadata."""

from sqlmodel import SQLModel

# Registers the session events that raise busy versions wherever busy blocks are written.
from server.models import busy_version
from server.models.audit import AuditEvent
from server.models.calendar import (
    BusyBlock,
    BusyCoverage,
    BusyVersion,
    CalendarConnection,
    OAuthFlow,
    PushSubscription,
)
from server.models.integration import (
    IntegrationConsent,
    OrganizationIntegration,
    OrganizationOAuthApp,
)
from server.models.mail import QueuedMail
from server.models.meeting import Meeting, MeetingAttendee, UsedRsvpLink
from server.models.mentoring import ConnectionMember, MentoringConnection
from server.models.organization import Organization, Program, ProgramMembership
from server.models.poll import Poll, PollAnswer, PollComment, PollInvitee, PollSlot
from server.models.user import ApiToken, LoginAttempt, User, UserSession

metadata = SQLModel.metadata

__all__ = [
    "ApiToken",
    "AuditEvent",
    "BusyBlock",
    "BusyCoverage",
    "BusyVersion",
    "CalendarConnection",
    "ConnectionMember",
    "IntegrationConsent",
    "LoginAttempt",
    "Meeting",
    "MeetingAttendee",
    "MentoringConnection",
    "OAuthFlow",
    "Organization",
    "OrganizationIntegration",
    "OrganizationOAuthApp",
    "Poll",
    "PollAnswer",
    "PollComment",
    "PollInvitee",
    "PollSlot",
    "Program",
    "ProgramMembership",
    "PushSubscription",
    "QueuedMail",
    "UsedRsvpLink",
    "User",
    "UserSession",
    "busy_version",
    "metadata",
]

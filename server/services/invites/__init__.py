"""Meeting invitations by email: iTIP calendars, the emails carrying them, signed RSVP
links and the mailers that deliver them. Pure of web frameworks and the database."""

from server.services.invites.ical import build_cancel, build_request
from server.services.invites.links import (
    InvalidLink,
    RsvpClaim,
    derive_key,
    make_rsvp_token,
    read_rsvp_token,
    rsvp_links,
    rsvp_url,
)
from server.services.invites.mailer import (
    Mailer,
    MailError,
    MemoryMailer,
    OutboxMailer,
    SmtpMailer,
    mailer_from_settings,
)
from server.services.invites.messages import invitation_message, notification_message
from server.services.invites.types import Invitation, InviteKind, Person

__all__ = [
    "InvalidLink",
    "Invitation",
    "InviteKind",
    "MailError",
    "Mailer",
    "MemoryMailer",
    "OutboxMailer",
    "Person",
    "RsvpClaim",
    "SmtpMailer",
    "build_cancel",
    "build_request",
    "derive_key",
    "invitation_message",
    "mailer_from_settings",
    "make_rsvp_token",
    "notification_message",
    "read_rsvp_token",
    "rsvp_links",
    "rsvp_url",
]

"""Assembles the GraphQL schema from the domain modules, with its safety limits."""

from __future__ import annotations

import logging
import re
from typing import Any

import strawberry
from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from graphql.validation.rules.max_introspection_depth_rule import MaxIntrospectionDepthRule
from strawberry.extensions import AddValidationRules, MaskErrors, SchemaExtension
from strawberry.permission import BasePermission
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from server.resolvers import availability, calendar, programs, users
from server.resolvers import integrations as integration_resolvers
from server.resolvers import meetings as meeting_resolvers
from server.resolvers import polls as poll_resolvers
from server.schema.availability import Availability
from server.schema.calendar import CalendarConnectionPayload, StartCalendarConnectionPayload
from server.schema.fast_lists import FastListsExecutionContext
from server.schema.integrations import (
    DisableIntegrationPayload,
    IntegrationPayload,
    Organization,
    OrganizationPayload,
    StartIntegrationPayload,
)
from server.schema.limits import BoundedDocuments
from server.schema.meetings import (
    CancelMeetingPayload,
    Meeting,
    RespondToMeetingPayload,
    ScheduleMeetingPayload,
    UpdateMeetingPayload,
)
from server.schema.permissions import IsAuthenticated, NotActingOnBehalf
from server.schema.polls import (
    AddPollCommentPayload,
    AnswerPollPayload,
    CreatePollPayload,
    FinalizePollPayload,
    Poll,
)
from server.schema.programs import (
    AddProgramMemberPayload,
    ConnectionMemberPayload,
    CreateMentoringConnectionPayload,
    CreateProgramPayload,
    Program,
    RemoveProgramMemberPayload,
    SetUserActivePayload,
    UpdateProgramSettingsPayload,
)
from server.schema.users import User
from server.web.quiet_log import bad_requests, exception_summary

log = logging.getLogger("tandem.graphql")

AUTH: list[type[BasePermission]] = [IsAuthenticated]
ADMIN_AS_SELF: list[type[BasePermission]] = [IsAuthenticated, NotActingOnBehalf]


@strawberry.type
class Query:
    me: User = strawberry.field(resolver=users.me, permission_classes=AUTH)
    user: User | None = strawberry.field(resolver=users.user, permission_classes=AUTH)
    program: Program | None = strawberry.field(resolver=programs.program, permission_classes=AUTH)
    programs: list[Program] = strawberry.field(
        resolver=programs.all_programs, permission_classes=AUTH
    )
    availability: Availability = strawberry.field(
        resolver=availability.availability, permission_classes=AUTH
    )
    meeting: Meeting | None = strawberry.field(
        resolver=meeting_resolvers.meeting, permission_classes=AUTH
    )
    meetings: list[Meeting] = strawberry.field(
        resolver=meeting_resolvers.all_meetings, permission_classes=AUTH
    )
    poll: Poll | None = strawberry.field(resolver=poll_resolvers.poll, permission_classes=AUTH)
    polls: list[Poll] = strawberry.field(resolver=poll_resolvers.all_polls, permission_classes=AUTH)
    organization: Organization = strawberry.field(
        resolver=integration_resolvers.organization, permission_classes=AUTH
    )


@strawberry.type
class Mutation:
    create_program: CreateProgramPayload = strawberry.mutation(
        resolver=programs.create_program, permission_classes=ADMIN_AS_SELF
    )
    add_program_member: AddProgramMemberPayload = strawberry.mutation(
        resolver=programs.add_program_member, permission_classes=ADMIN_AS_SELF
    )
    create_mentoring_connection: CreateMentoringConnectionPayload = strawberry.mutation(
        resolver=programs.create_mentoring_connection, permission_classes=ADMIN_AS_SELF
    )
    update_program_settings: UpdateProgramSettingsPayload = strawberry.mutation(
        resolver=programs.update_program_settings, permission_classes=ADMIN_AS_SELF
    )
    remove_program_member: RemoveProgramMemberPayload = strawberry.mutation(
        resolver=programs.remove_program_member, permission_classes=ADMIN_AS_SELF
    )
    set_user_active: SetUserActivePayload = strawberry.mutation(
        resolver=programs.set_user_active, permission_classes=ADMIN_AS_SELF
    )
    add_connection_member: ConnectionMemberPayload = strawberry.mutation(
        resolver=programs.add_connection_member, permission_classes=ADMIN_AS_SELF
    )
    remove_connection_member: ConnectionMemberPayload = strawberry.mutation(
        resolver=programs.remove_connection_member, permission_classes=ADMIN_AS_SELF
    )
    start_calendar_connection: StartCalendarConnectionPayload = strawberry.mutation(
        resolver=calendar.start_calendar_connection, permission_classes=AUTH
    )
    connect_caldav_calendar: CalendarConnectionPayload = strawberry.mutation(
        resolver=calendar.connect_caldav_calendar, permission_classes=AUTH
    )
    disconnect_calendar: CalendarConnectionPayload = strawberry.mutation(
        resolver=calendar.disconnect_calendar, permission_classes=AUTH
    )
    schedule_meeting: ScheduleMeetingPayload = strawberry.mutation(
        resolver=meeting_resolvers.schedule_meeting, permission_classes=AUTH
    )
    update_meeting: UpdateMeetingPayload = strawberry.mutation(
        resolver=meeting_resolvers.update_meeting, permission_classes=AUTH
    )
    cancel_meeting: CancelMeetingPayload = strawberry.mutation(
        resolver=meeting_resolvers.cancel_meeting, permission_classes=AUTH
    )
    respond_to_meeting: RespondToMeetingPayload = strawberry.mutation(
        resolver=meeting_resolvers.respond_to_meeting, permission_classes=AUTH
    )
    create_poll: CreatePollPayload = strawberry.mutation(
        resolver=poll_resolvers.create_poll, permission_classes=AUTH
    )
    answer_poll: AnswerPollPayload = strawberry.mutation(
        resolver=poll_resolvers.answer_poll, permission_classes=AUTH
    )
    add_poll_comment: AddPollCommentPayload = strawberry.mutation(
        resolver=poll_resolvers.add_poll_comment, permission_classes=AUTH
    )
    finalize_poll: FinalizePollPayload = strawberry.mutation(
        resolver=poll_resolvers.finalize_poll, permission_classes=AUTH
    )
    set_organization_calendar_authorization: OrganizationPayload = strawberry.mutation(
        resolver=integration_resolvers.set_organization_calendar_authorization,
        permission_classes=ADMIN_AS_SELF,
    )
    start_microsoft_integration: StartIntegrationPayload = strawberry.mutation(
        resolver=integration_resolvers.start_microsoft_integration,
        permission_classes=ADMIN_AS_SELF,
    )
    finish_microsoft_integration: IntegrationPayload = strawberry.mutation(
        resolver=integration_resolvers.finish_microsoft_integration,
        permission_classes=ADMIN_AS_SELF,
    )
    start_google_integration: StartIntegrationPayload = strawberry.mutation(
        resolver=integration_resolvers.start_google_integration,
        permission_classes=ADMIN_AS_SELF,
    )
    finish_google_integration: IntegrationPayload = strawberry.mutation(
        resolver=integration_resolvers.finish_google_integration,
        permission_classes=ADMIN_AS_SELF,
    )
    configure_exchange_on_premises: IntegrationPayload = strawberry.mutation(
        resolver=integration_resolvers.configure_exchange_on_premises,
        permission_classes=ADMIN_AS_SELF,
        description="Operators: the EWS URL, the service account's user name, password "
        "(omit to keep the stored one), auth type (ntlm, basic, digest), its mailbox and the "
        "covered domains; verified with a real call before the integration is on.",
    )
    disable_integration: DisableIntegrationPayload = strawberry.mutation(
        resolver=integration_resolvers.disable_integration, permission_classes=ADMIN_AS_SELF
    )


class IntrospectionForSignedInOnly(SchemaExtension):
    """Anonymous callers may not introspect; integrators read ``schema.graphql`` instead."""

    def on_operation(self) -> Any:
        context = self.execution_context.context
        if getattr(context, "viewer", None) is None:
            self.execution_context.validation_rules = (
                *self.execution_context.validation_rules,
                NoSchemaIntrospectionCustomRule,
            )
        yield


def _should_mask(error: GraphQLError) -> bool:
    """Mask every unexpected exception; validation and permission messages pass."""
    original = error.original_error
    if original is None:
        return False
    return not isinstance(original, GraphQLError)


EXTENSIONS: list[Any] = [
    IntrospectionForSignedInOnly,
    # The schema has no cycles, so ordinary fields stay shallow; introspection types nest
    # without end (ofType { ofType { ... } }), which this rule bounds.
    lambda: AddValidationRules([MaxIntrospectionDepthRule]),
    # Tokens, depth, aliases, expanded size and repeated fields are measured (and the
    # document cached) before graphql-core validates it: see server/schema/limits.py.
    BoundedDocuments,
    lambda: MaskErrors(should_mask_error=_should_mask),
]


class TandemSchema(strawberry.Schema):
    """Logs errors without the document or variables: either may carry a secret (an app
    password written inline, a token in a variable). One line per request: the operation
    name, the error codes and the request id; unexpected exceptions add their type and
    where they were raised, never their message."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        codes = [_error_code(error) for error in errors]
        unexpected = [e.original_error for e in errors if _should_mask(e)]
        request = getattr(getattr(execution_context, "context", None), "request", None)
        request_id = getattr(getattr(request, "state", None), "request_id", "-")
        name = getattr(execution_context, "operation_name", None)
        operation = name if isinstance(name, str) and SAFE_NAME.fullmatch(name) else "-"
        if unexpected:
            log.error(
                "graphql request %s operation %s failed: %s",
                request_id,
                operation,
                ", ".join(exception_summary(exc) for exc in unexpected if exc is not None),
            )
        else:
            bad_requests.info(
                "graphql request %s operation %s refused: %s",
                request_id,
                operation,
                ", ".join(sorted(set(codes))),
            )


SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _error_code(error: GraphQLError) -> str:
    code = (error.extensions or {}).get("code")
    if isinstance(code, str):
        return code
    return "INTERNAL" if _should_mask(error) else "INVALID"


schema = TandemSchema(
    query=Query,
    mutation=Mutation,
    config=StrawberryConfig(disable_field_suggestions=True),
    extensions=EXTENSIONS,
    execution_context_class=FastListsExecutionContext,
)

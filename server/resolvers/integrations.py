"""The organization, its integrations, and integrating, disabling and the operator switch.

Thin: every rule lives in ``services.integrations.setup``."""

from __future__ import annotations

from urllib.parse import parse_qsl

import strawberry

from server.models import OrganizationIntegration
from server.schema.common import run_mutation
from server.schema.context import Context
from server.schema.integrations import (
    DisableIntegrationPayload,
    GoogleDelegation,
    Integration,
    IntegrationPayload,
    IntegrationStatus,
    Organization,
    OrganizationPayload,
    StartIntegrationPayload,
    UncoveredPerson,
    UncoveredReason,
)
from server.schema.users import IntegrationKind, User
from server.services.integrations import cover, onprem, setup
from server.services.integrations.directory import REASON_TEXT
from server.services.people import programs
from server.services.people.sessions import Viewer


def _viewer(info: strawberry.Info[Context, None]) -> Viewer:
    assert info.context.viewer is not None
    return info.context.viewer


async def _integration(
    info: strawberry.Info[Context, None], row: OrganizationIntegration
) -> Integration:
    report = await cover.report(info.context.db, row)
    service_user = await onprem.service_user(info.context.db, row)
    return Integration(
        id=strawberry.ID(str(row.id)),
        kind=IntegrationKind(row.kind.value),
        status=IntegrationStatus(row.status),
        enabled=row.enabled,
        tenant=row.tenant,
        service_account=row.service_account,
        service_account_user=User.from_row(service_user) if service_user else None,
        domains=report.domains,
        covered_count=report.covered_count,
        participant_count=report.participant_count,
        last_synced_at=report.last_synced_at,
        last_error=row.last_error,
        uncovered=[
            UncoveredPerson(
                user=User.from_row(item.user),
                reason=UncoveredReason(item.reason.value),
                explanation=REASON_TEXT[item.reason],
            )
            for item in report.uncovered
        ],
    )


async def _organization(info: strawberry.Info[Context, None]) -> Organization:
    db = info.context.db
    org = await programs.organization(db)
    rows = await setup.integrations(db) if setup.may_manage(_viewer(info)) else []
    return Organization(
        id=strawberry.ID(str(org.id)),
        name=org.name,
        org_calendars_enabled=org.org_calendars_enabled,
        integrations=[await _integration(info, row) for row in rows],
    )


async def organization(info: strawberry.Info[Context, None]) -> Organization:
    return await _organization(info)


async def set_organization_calendar_authorization(
    info: strawberry.Info[Context, None], enabled: bool
) -> OrganizationPayload:
    """Operators only."""
    ctx = info.context

    async def action() -> Organization:
        await setup.set_switch(ctx.db, ctx.services.calendar, _viewer(info), enabled)
        return await _organization(info)

    result, errors = await run_mutation(info, action)
    return OrganizationPayload(organization=result, errors=errors)


async def start_microsoft_integration(
    info: strawberry.Info[Context, None],
    service_account: str,
    tenant: str | None = None,
    domains: str | None = None,
) -> StartIntegrationPayload:
    """The admin-consent URL; Microsoft redirects back to Tandem's callback page, or the
    integrator passes the redirect's query string to ``finishMicrosoftIntegration``."""
    ctx = info.context

    async def action() -> str:
        return await setup.start_microsoft(
            ctx.db,
            ctx.services.calendar,
            _viewer(info),
            service_account=service_account[:320],
            tenant=(tenant or "")[:255],
            extra_domains=(domains or "")[:2000],
            redirect_uri=f"{ctx.services.settings.base_url.rstrip('/')}"
            "/admin/integrations/microsoft/callback",
        )

    url, errors = await run_mutation(info, action)
    return StartIntegrationPayload(authorization_url=url, google_delegation=None, errors=errors)


async def finish_microsoft_integration(
    info: strawberry.Info[Context, None], redirect_query: str
) -> IntegrationPayload:
    """``redirect_query``: the query string Microsoft's redirect carried."""
    ctx = info.context
    params = dict(parse_qsl(redirect_query[:4000].lstrip("?")))

    async def action() -> Integration:
        row = await setup.finish_microsoft(ctx.db, ctx.services.calendar, _viewer(info), params)
        return await _integration(info, row)

    result, errors = await run_mutation(info, action)
    return IntegrationPayload(integration=result, errors=errors)


async def start_google_integration(
    info: strawberry.Info[Context, None],
    service_account_key: str,
    domain: str,
    act_as: str,
    domains: str | None = None,
) -> StartIntegrationPayload:
    ctx = info.context

    async def action() -> GoogleDelegation:
        delegation = await setup.start_google(
            ctx.db,
            ctx.services.calendar,
            _viewer(info),
            key_text=service_account_key[:20_001],
            domain=domain[:253],
            act_as=act_as[:320],
            extra_domains=(domains or "")[:2000],
        )
        return GoogleDelegation(client_id=delegation.client_id, scopes=delegation.scopes)

    result, errors = await run_mutation(info, action)
    return StartIntegrationPayload(authorization_url=None, google_delegation=result, errors=errors)


async def finish_google_integration(info: strawberry.Info[Context, None]) -> IntegrationPayload:
    """Verifies the delegation with a real call before the integration is on."""
    ctx = info.context

    async def action() -> Integration:
        row = await setup.verify_google(ctx.db, ctx.services.calendar, _viewer(info))
        return await _integration(info, row)

    result, errors = await run_mutation(info, action)
    return IntegrationPayload(integration=result, errors=errors)


async def configure_exchange_on_premises(
    info: strawberry.Info[Context, None],
    ews_url: str,
    username: str,
    auth_type: str,
    service_account_email: str,
    password: str | None = None,
    domains: str | None = None,
) -> IntegrationPayload:
    """Operators only; verified with a real call before it is on. ``password`` left out
    keeps the stored one."""
    ctx = info.context

    async def action() -> Integration:
        row = await onprem.configure(
            ctx.db,
            ctx.services.calendar,
            _viewer(info),
            ews_url=ews_url[:2001],
            username=username[:257],
            password=(password or "")[:257],
            auth_type=auth_type[:17],
            service_account_email=service_account_email[:321],
            domains=(domains or "")[:2000],
        )
        return await _integration(info, row)

    result, errors = await run_mutation(info, action)
    return IntegrationPayload(integration=result, errors=errors)


async def disable_integration(
    info: strawberry.Info[Context, None], kind: IntegrationKind
) -> DisableIntegrationPayload:
    ctx = info.context

    async def action() -> bool:
        return await setup.disable(
            ctx.db, ctx.services.calendar, _viewer(info), setup.parse_kind(kind.value)
        )

    done, errors = await run_mutation(info, action)
    return DisableIntegrationPayload(disabled=bool(done), errors=errors)

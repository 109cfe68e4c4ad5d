"""``tandem demo``'s Google Workspace: the demo admin integrates Fabrikam's domain with
the key file the demo writes, and the Fabrikam people are covered (one hidden by policy)."""

from __future__ import annotations

import stat
from pathlib import Path

from emulators.google import RunningGoogle
from server.demo_runtime import seed_google_workspace
from server.models.enums import IntegrationKind
from server.providers.org_base import UncoveredReason
from server.services import demo
from server.services.integrations import cover, setup, sync
from server.services.people import accounts
from server.services.people.sessions import Viewer
from server.wiring import build_services, close_services
from tests.calendar_fixtures import provider_overrides
from tests.conftest import make_settings


async def test_the_demo_admin_integrates_fabrikam(
    tmp_path: Path, sqlite_url: str, google: RunningGoogle
) -> None:
    key_path = seed_google_workspace(google.state, tmp_path)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    services = build_services(make_settings(tmp_path, sqlite_url, **provider_overrides(google)))
    try:
        async with services.db.session() as db:
            await demo.seed(db)
            admin = await accounts.get_by_email(db, demo.PEOPLE[0][0])
            assert admin is not None
            viewer = Viewer(user=admin, actor=admin)
            await setup.start_google(
                db,
                services.calendar,
                viewer,
                key_text=key_path.read_text(),
                domain=demo.FABRIKAM_DOMAIN,
                act_as=demo.FABRIKAM_ACT_AS,
            )
            integration = await setup.verify_google(db, services.calendar, viewer)
            assert integration.kind == IntegrationKind.GOOGLE_WORKSPACE and integration.enabled
            report = await sync.sync_integration(db, services.calendar, integration)
            assert report.people == 3 and report.problems == 1 and report.complete
            coverage = await cover.report(db, integration)
        assert coverage.covered_count == 2
        denied = [
            u.user.email for u in coverage.uncovered if u.reason is UncoveredReason.ACCESS_DENIED
        ]
        assert denied == [demo.FABRIKAM_DENIED]
    finally:
        await close_services(services)

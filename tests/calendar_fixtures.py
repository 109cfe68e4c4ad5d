"""Real local calendar services for integration tests: the Google and Microsoft emulators
and a Radicale CalDAV server, started once per test session on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from emulators.google import RunningGoogle, start_google_emulator
from emulators.microsoft import RunningMicrosoft, start_microsoft_emulator
from emulators.microsoft import consent as ms_consent
from emulators.radicale import RunningRadicale, start_radicale

CALDAV_USER = "caluser"
CALDAV_PASSWORD = "app-specific-pass"


@pytest.fixture(scope="session")
def google() -> Iterator[RunningGoogle]:
    running = start_google_emulator(redirect_uris=["http://testserver/calendar/callback/google"])
    yield running
    running.stop()


@pytest.fixture(scope="session")
def microsoft(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMicrosoft]:
    running = start_microsoft_emulator(tmp_path_factory.mktemp("ms"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRadicale]:
    running = start_radicale(
        tmp_path_factory.mktemp("radicale"),
        users={CALDAV_USER: CALDAV_PASSWORD, "other": "other-pass"},
    )
    yield running
    running.stop()


def provider_overrides(*running: Any) -> dict[str, Any]:
    """Settings field values (not env names) pointing Tandem at the given emulators."""
    values: dict[str, Any] = {"caldav_allow_private_hosts": True}
    for item in running:
        for env_name, value in item.settings_overrides().items():
            values[env_name.removeprefix("TANDEM_").lower()] = value
    return values


microsoft_consent = ms_consent


@pytest.fixture(autouse=True)
def _clear_emulator_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """Faults a test injected into a shared emulator must not leak into the next test."""
    yield
    for name in ("google", "microsoft"):
        running = getattr(request.node, "funcargs", {}).get(name)
        faults = getattr(getattr(running, "state", None), "faults", None)
        if isinstance(faults, list):
            faults.clear()

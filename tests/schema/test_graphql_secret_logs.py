"""No secret reaches a log or the data folder: every GraphQL operation that takes one is
sent inline and as variables, valid and invalid (including validation and syntax errors),
and the log at DEBUG for every logger, plus every file Tandem wrote, is searched for it."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from emulators.google import RunningGoogle
from emulators.radicale import RunningRadicale
from server.app import create_app
from server.schema.limits import DOCUMENTS
from server.web.quiet_log import bad_requests
from server.wiring import AppServices, build_services, close_services
from tests.calendar_fixtures import CALDAV_PASSWORD, CALDAV_USER, provider_overrides
from tests.conftest import create_user, login, make_settings
from tests.schema.test_graphql_programs import token_for

CALDAV_VARS = """mutation Connect($u: String!, $p: String!, $s: String) {
  connectCaldavCalendar(username: $u, appPassword: $p, serverUrl: $s) {
    calendar { status } errors { field code message } } }"""


def inline(password: str, server: str, extra: str = "") -> str:
    return (
        f'mutation Connect {{ connectCaldavCalendar(username: "{CALDAV_USER}", '
        f'appPassword: "{password}", serverUrl: "{server}") '
        f"{{ calendar {{ status {extra} }} errors {{ code }} }} }}"
    )


@pytest.fixture
async def cal(
    tmp_path: Path, sqlite_url: str, google: RunningGoogle
) -> AsyncIterator[tuple[httpx.AsyncClient, AppServices]]:
    svc = build_services(make_settings(tmp_path, sqlite_url, **provider_overrides(google)))
    app = create_app(services=svc)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        yield c, svc
    await close_services(svc)


def data_files_text(root: Path) -> str:
    chunks = []
    for path in root.rglob("*"):
        if path.is_file():
            chunks.append(path.read_bytes().decode("latin-1"))
    return "\n".join(chunks)


async def test_no_secret_in_logs_or_data_folder(
    cal: tuple[httpx.AsyncClient, AppServices],
    radicale: RunningRadicale,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, svc = cal
    DOCUMENTS.clear()
    bad_requests.reset()
    caplog.set_level(logging.DEBUG)
    for name in ("strawberry", "strawberry.execution", "tandem", "graphql", "httpx"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    token = await token_for(svc, await create_user(svc, "secret@example.org"))
    headers = {"Authorization": f"Bearer {token}"}
    radicale.make_calendar(CALDAV_USER, CALDAV_PASSWORD, "secret-cal")

    wrong = [f"wrong-{secrets.token_hex(8)}" for _ in range(12)]
    unreachable = "https://caldav.invalid/"

    async def send(query: str, variables: dict[str, object] | None = None) -> httpx.Response:
        body = {"query": query, "variables": variables or {}, "operationName": "Connect"}
        return await client.post("/graphql", json=body, headers=headers)

    cases = [
        # wrong app password, inline and as a variable
        (inline(wrong[0], radicale.url), None),
        (CALDAV_VARS, {"u": CALDAV_USER, "p": wrong[1], "s": radicale.url}),
        # a server that cannot be reached
        (inline(wrong[2], unreachable), None),
        (CALDAV_VARS, {"u": CALDAV_USER, "p": wrong[3], "s": unreachable}),
        # a validation error in the same document (strawberry logged the document here)
        (inline(wrong[4], radicale.url, extra="noSuchField"), None),
        (CALDAV_VARS.replace("status", "status noSuchField"), {"u": "x", "p": wrong[5]}),
        # a syntax error, and a variable of the wrong type
        (inline(wrong[6], radicale.url) + " }}}", None),
        (CALDAV_VARS, {"u": CALDAV_USER, "p": {"nested": wrong[7]}, "s": radicale.url}),
        # a document over a limit
        (
            "query Connect { "
            + " ".join(f'a{i}: user(id: "{wrong[9]}") {{ id }}' for i in range(40))
            + " }",
            None,
        ),
        # missing variables
        (CALDAV_VARS, {"p": wrong[10]}),
        # the right password, once inline and once as a variable
        (inline(CALDAV_PASSWORD, radicale.url), None),
        (CALDAV_VARS, {"u": CALDAV_USER, "p": CALDAV_PASSWORD, "s": radicale.url}),
    ]
    for query, variables in cases:
        response = await send(query, variables)
        assert response.status_code in (200, 400)

    # An invalid API token, and an anonymous call carrying an app password.
    bogus = f"tdm_{secrets.token_urlsafe(32)}"
    await client.post(
        "/graphql",
        json={"query": inline(wrong[11], radicale.url)},
        headers={"Authorization": f"Bearer {bogus}"},
    )
    # An OAuth callback with a code and a state that match nothing.
    oauth_code = f"code-{secrets.token_hex(8)}"
    await login(client, "secret@example.org")
    callback = await client.get(f"/calendar/callback/google?code={oauth_code}&state=nope")
    assert callback.status_code in (303, 400, 403)

    # The test's own client logs the URLs it requests; everything else is the server's.
    server_records = [
        r
        for r in caplog.records
        if not (r.name == "httpx" and "http://testserver/" in r.getMessage())
    ]
    logged = "\n".join(
        caplog.handler.format(r) + json.dumps(r.args, default=str) for r in server_records
    )
    stored = data_files_text(svc.settings.data_dir)
    for secret in [*wrong, CALDAV_PASSWORD, token, bogus, oauth_code]:
        assert secret not in logged, f"{secret} in the log"
        assert secret not in stored, f"{secret} in the data folder"
    # The log still says which requests failed, by operation and code.
    assert "operation Connect" in caplog.text
    assert "GRAPHQL_VALIDATION_FAILED" in caplog.text or "INVALID" in caplog.text


ONPREM_VARS = """mutation Connect($url: String!, $u: String!, $p: String, $sa: String!) {
  configureExchangeOnPremises(ewsUrl: $url, username: $u, password: $p, authType: "basic",
    serviceAccountEmail: $sa) { integration { status } errors { code message } } }"""


def onprem_inline(url: str, user: str, password: str, sa: str, extra: str = "") -> str:
    escaped = user.replace("\\", "\\\\")
    return (
        f'mutation Connect {{ configureExchangeOnPremises(ewsUrl: "{url}", '
        f'username: "{escaped}", password: "{password}", authType: "basic", '
        f'serviceAccountEmail: "{sa}") {{ integration {{ status {extra} }} errors {{ code message }} }} }}'
    )


async def test_no_exchange_on_premises_password_in_logs_or_data_folder(
    tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from emulators.ews import start_ews_emulator
    from server.services.people import programs

    ews = start_ews_emulator(tmp_path)
    svc = build_services(make_settings(tmp_path, sqlite_url, ews_ca_bundle=ews.ca_path))
    app = create_app(services=svc)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    try:
        DOCUMENTS.clear()
        bad_requests.reset()
        caplog.set_level(logging.DEBUG)
        for name in ("strawberry", "strawberry.execution", "tandem", "graphql", "httpx"):
            logging.getLogger(name).setLevel(logging.DEBUG)
        operator = await create_user(svc, "op@vendor.example", operator=True)
        await create_user(svc, ews.state.service_account, name="Tandem", global_admin=True)
        async with svc.db.session() as db:
            org = await programs.organization(db)
            org.org_calendars_enabled = True
            db.add(org)
            await db.commit()
        headers = {"Authorization": f"Bearer {await token_for(svc, operator)}"}
        url, user, sa = ews.ews_url, ews.state.username, ews.state.service_account
        wrong = [f"wrong-{secrets.token_hex(8)}" for _ in range(6)]
        cases: list[tuple[str, dict[str, object] | None]] = [
            (onprem_inline(url, user, wrong[0], sa), None),
            (ONPREM_VARS, {"url": url, "u": user, "p": wrong[1], "sa": sa}),
            (onprem_inline("https://ews.invalid/EWS/Exchange.asmx", user, wrong[2], sa), None),
            (onprem_inline(url, user, wrong[3], sa, extra="noSuchField"), None),
            (onprem_inline(url, user, wrong[4], sa) + " }}}", None),
            (ONPREM_VARS, {"url": url, "p": wrong[5]}),
            (onprem_inline(url, user, ews.state.password, sa), None),
            (ONPREM_VARS, {"url": url, "u": user, "p": ews.state.password, "sa": sa}),
        ]
        answers = []
        for query, variables in cases:
            body = {"query": query, "variables": variables or {}, "operationName": "Connect"}
            response = await client.post("/graphql", json=body, headers=headers)
            assert response.status_code in (200, 400)
            answers.append(response.text)
        assert '"status":"ACTIVE"' in answers[-1], answers[-1]
        assert "user name or password" in answers[0]
        logged = "\n".join(
            caplog.handler.format(r) + json.dumps(r.args, default=str)
            for r in caplog.records
            if not (r.name == "httpx" and "http://testserver/" in r.getMessage())
        )
        stored = data_files_text(svc.settings.data_dir)
        for secret in [*wrong, ews.state.password]:
            assert secret not in logged, f"{secret} in the log"
            assert secret not in stored, f"{secret} in the data folder"
            assert all(secret not in answer for answer in answers)
        assert "operation Connect" in caplog.text
    finally:
        await client.aclose()
        await close_services(svc)
        ews.stop()

"""The ``tandem`` command. Bad input exits non-zero with one line, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn

from server.config import Settings


class CommandError(Exception):
    """A failure to report as one line and exit status 1."""


def _fail(message: str) -> NoReturn:
    print(f"tandem: {message}", file=sys.stderr)
    raise SystemExit(1)


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except Exception as exc:  # pydantic's error text names the bad setting
        raise CommandError(f"invalid settings: {exc}".splitlines()[0]) from exc


async def _with_db(settings: Settings, work: Callable[[Any], Awaitable[Any]]) -> Any:
    from sqlalchemy.exc import DBAPIError, OperationalError

    from server.db import Database, migrate
    from server.jobs.worker import prepare_queue

    database = Database.from_url(
        settings.resolved_database_url, pool_size=settings.database_pool_size
    )
    try:
        await migrate(database.engine)
        await prepare_queue(settings)
        async with database.session() as session:
            return await work(session)
    except (OperationalError, DBAPIError, OSError) as exc:
        raise CommandError(f"cannot reach the database: {type(exc).__name__}") from exc
    finally:
        await database.dispose()


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = _settings()

    async def nothing(_session: Any) -> None:
        return None

    asyncio.run(_with_db(settings, nothing))
    print("migrations applied")


def cmd_user_create(args: argparse.Namespace) -> None:
    from server.services.errors import DomainError
    from server.services.people import accounts

    settings = _settings()

    async def create(session: Any) -> str:
        try:
            user = await accounts.create_user(
                session,
                email=args.email,
                name=args.name,
                password=args.password,
                time_zone=args.time_zone,
                global_admin=args.global_admin,
                operator=args.operator,
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        await session.commit()
        return str(user.id)

    print(asyncio.run(_with_db(settings, create)))


def cmd_user_setup_link(args: argparse.Namespace) -> None:
    from server.providers.secrets import SecretBox, SecretError
    from server.services.people import accounts, setup

    settings = _settings()
    try:
        box = SecretBox.from_config(
            settings.secret_keys.get_secret_value() if settings.secret_keys else None,
            settings.data_dir,
        )
    except SecretError as exc:
        raise CommandError(str(exc)) from exc

    async def link(session: Any) -> str:
        user = await accounts.get_by_email(session, args.email)
        if user is None:
            raise CommandError(f"no user with email {args.email.strip()[:200]}")
        if not user.is_active:
            raise CommandError("this account is deactivated")
        if user.password_hash is not None:
            raise CommandError("this person already has a password; they sign in with it")
        return setup.make_setup_link(setup.setup_key(box.master_key()), settings.base_url, user)

    print(asyncio.run(_with_db(settings, link)))


def cmd_token_create(args: argparse.Namespace) -> None:
    from server.services.errors import DomainError
    from server.services.people import accounts, api_tokens

    settings = _settings()

    async def create(session: Any) -> str:
        user = await accounts.get_by_email(session, args.email)
        if user is None:
            raise CommandError(f"no user with email {args.email.strip()[:200]}")
        try:
            raw, _token = await api_tokens.create_token(session, user, args.name)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        await session.commit()
        return raw

    print(asyncio.run(_with_db(settings, create)))


def cmd_secrets_rotate(args: argparse.Namespace) -> None:
    from server.providers.secrets import SecretBox, SecretError
    from server.services.key_rotation import rotate_all

    settings = _settings()
    try:
        box = SecretBox.from_config(
            settings.secret_keys.get_secret_value() if settings.secret_keys else None,
            settings.data_dir,
        )
    except SecretError as exc:
        raise CommandError(str(exc)) from exc

    async def rotate(session: Any) -> int:
        try:
            return await rotate_all(session, box)
        except SecretError as exc:
            raise CommandError(
                "a stored secret opens with none of the configured keys; keep the old key in "
                "TANDEM_SECRET_KEYS (after the new one) until rotation is done"
            ) from exc

    print(f"re-encrypted {asyncio.run(_with_db(settings, rotate))} secrets with the newest key")


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from server.app import create_app
    from server.web.http_server import uvicorn_options

    async def nothing(_session: Any) -> None:
        return None

    asyncio.run(_with_db(settings, nothing))
    uvicorn.run(create_app(settings), host=host, port=port, **uvicorn_options(settings))


def cmd_serve(args: argparse.Namespace) -> None:
    _serve(_settings(), args.host, args.port)


def cmd_demo(args: argparse.Namespace) -> None:
    from server.demo_runtime import run_demo

    run_demo(host=args.host, port=args.port)


def cmd_worker(args: argparse.Namespace) -> None:
    from server.jobs.worker import run_worker

    run_worker(_settings())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tandem", description="Tandem scheduling assistant")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="apply migrations and serve pages, /graphql and webhooks")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="run everything locally with demo data and emulators")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.set_defaults(func=cmd_demo)

    sub.add_parser("migrate", help="apply migrations to TANDEM_DATABASE_URL").set_defaults(
        func=cmd_migrate
    )
    sub.add_parser(
        "worker", help="run background tasks (procrastinate workers on PostgreSQL)"
    ).set_defaults(func=cmd_worker)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    create = user.add_parser("create", help="create a user and print its id")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--password")
    create.add_argument("--time-zone", default="UTC")
    create.add_argument("--global-admin", action="store_true")
    create.add_argument("--operator", action="store_true")
    create.set_defaults(func=cmd_user_create)
    setup_link = user.add_parser(
        "setup-link", help="print a one-time link for a user without a password to choose one"
    )
    setup_link.add_argument("--email", required=True)
    setup_link.set_defaults(func=cmd_user_setup_link)

    secrets_cmd = sub.add_parser("secrets", help="manage encryption of stored secrets")
    secrets_cmd.add_subparsers(dest="action", required=True).add_parser(
        "rotate", help="re-encrypt every stored secret with the newest key"
    ).set_defaults(func=cmd_secrets_rotate)

    token = sub.add_parser("token", help="manage API tokens").add_subparsers(
        dest="action", required=True
    )
    token_create = token.add_parser("create", help="print a new API token (shown once)")
    token_create.add_argument("--email", required=True)
    token_create.add_argument("--name", default="API token")
    token_create.set_defaults(func=cmd_token_create)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=os.environ.get("TANDEM_LOG_LEVEL", "WARNING"))
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CommandError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()

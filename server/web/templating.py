"""Jinja2 set-up: autoescape everywhere, a few filters for times in the viewer's zone."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from jinja2.filters import do_urlencode
from jinja2.utils import url_quote
from starlette.templating import Jinja2Templates

TEMPLATES_DIR = Path(__file__).resolve().parent.parent.parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent.parent.parent / "static"


def local_time(value: datetime | None, zone: str, fmt: str = "%a %d %b %Y, %H:%M") -> str:
    """``value`` on the viewer's wall clock; in UTC (and said so) when that clock cannot show
    it, e.g. a stored year-9999 time seen from a zone east of UTC, rather than a 500."""
    if value is None:
        return "never"
    try:
        return value.astimezone(ZoneInfo(zone)).strftime(fmt)
    except (OverflowError, ValueError):
        return value.strftime(fmt) + " UTC"


_quoted = lru_cache(maxsize=4096)(url_quote)


def urlencode(value: Any) -> str:
    """Jinja's ``urlencode``, remembering strings: the week page quotes the same few
    hundred booking times (twice each) request after request."""
    if type(value) is str:
        return _quoted(value)
    return do_urlencode(value)


def build_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        # Templates change only with a deploy, which restarts the process: no stat of
        # every template file on every render.
        auto_reload=False,
    )
    env.filters["local_time"] = local_time
    env.filters["urlencode"] = urlencode
    return env


def build_templates(env: Environment) -> Jinja2Templates:
    return Jinja2Templates(env=env)

"""A real Radicale CalDAV server on a free loopback port, for tests and ``tandem demo``.

Radicale runs in a child process (``python -m radicale --config FILE``) rather than in a
thread: it installs its own logging setup and patches the ``Logger`` class, which must
not leak into Tandem's process. Its output goes to ``/dev/null`` and its log level is
``warning``, so event contents never reach our logs.

With ``users`` given, Radicale checks passwords against a ``plain`` htpasswd file, so a
wrong password is really refused (401); without it any user name and password pass.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
from caldav.collection import Calendar
from caldav.davclient import DAVClient

from emulators.runner import free_port

_HOST = "127.0.0.1"


@dataclass
class RunningRadicale:
    """A started Radicale process; ``stop()`` ends it (also usable as a context manager)."""

    url: str
    storage_dir: Path
    _process: subprocess.Popen[bytes] = field(repr=False)

    def stop(self, timeout: float = 5.0) -> None:
        if self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=timeout)

    def __enter__(self) -> RunningRadicale:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def calendar_url(self, user: str, calendar_name: str) -> str:
        return f"{self.url}/{user}/{calendar_name}/"

    def make_calendar(
        self,
        user: str,
        password: str,
        calendar_name: str,
        *,
        components: tuple[str, ...] = ("VEVENT",),
    ) -> str:
        """Create a calendar; ``components=("VTODO",)`` makes a to-do list. Returns its URL."""
        with self._client(user, password) as client:
            principal = client.get_principal()
            calendar = principal.make_calendar(
                name=calendar_name,
                cal_id=calendar_name,
                supported_calendar_component_set=list(components),
            )
            return _url_of(calendar)

    def put_calendar(self, user: str, password: str, calendar_name: str, ics_text: str) -> str:
        """Create or replace a whole calendar from one VCALENDAR of many events, in one
        request: Radicale splits an upload to a collection URL into one item per UID
        (much faster than one PUT per event, each synced to disk). Returns its URL."""
        url = self.calendar_url(user, calendar_name)
        response = httpx.put(
            url,
            content=ics_text.encode(),
            auth=(user, password),
            headers={"Content-Type": "text/calendar; charset=utf-8"},
            timeout=30,
        )
        response.raise_for_status()
        return url

    def add_event(self, user: str, password: str, calendar_name: str, ics_text: str) -> str:
        """Store one VCALENDAR object in ``calendar_name``; returns the object's URL."""
        with self._client(user, password) as client:
            calendar = Calendar(client=client, url=self.calendar_url(user, calendar_name))
            return _url_of(calendar.add_event(ics_text))

    def add_todo(self, user: str, password: str, calendar_name: str, ics_text: str) -> str:
        """Store one VTODO object; returns the object's URL."""
        with self._client(user, password) as client:
            calendar = Calendar(client=client, url=self.calendar_url(user, calendar_name))
            return _url_of(calendar.add_todo(ics_text))

    def _client(self, user: str, password: str) -> DAVClient:
        return DAVClient(url=self.url, username=user, password=password, timeout=10)


def _url_of(resource: object) -> str:
    """The URL of a caldav object (the sync client's methods are typed as maybe-async)."""
    url = getattr(resource, "url", None)
    if url is None:
        raise TypeError("expected a caldav resource with a URL")
    return str(url)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"radicale exited with code {process.returncode} on start")
        try:
            with socket.create_connection((_HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    process.kill()
    process.wait()
    raise TimeoutError(f"radicale did not listen on port {port} within {timeout}s")


def _write_config(storage_dir: Path, port: int, users: dict[str, str] | None) -> Path:
    if users is None:
        auth = "[auth]\ntype = none\n"
    else:
        htpasswd = storage_dir / "users"
        htpasswd.write_text("".join(f"{name}:{secret}\n" for name, secret in users.items()))
        htpasswd.chmod(0o600)
        auth = (
            "[auth]\ntype = htpasswd\n"
            f"htpasswd_filename = {htpasswd}\n"
            "htpasswd_encryption = plain\n"
            "delay = 0\n"
        )
    config = storage_dir / "radicale.conf"
    config.write_text(
        f"[server]\nhosts = {_HOST}:{port}\ndelay_on_error = 0\n"
        f"{auth}"
        "[rights]\ntype = owner_only\n"
        f"[storage]\nfilesystem_folder = {storage_dir / 'collections'}\n"
        "[web]\ntype = none\n"
        "[logging]\nlevel = warning\nmask_passwords = True\n"
    )
    return config


def start_radicale(
    storage_dir: Path, *, users: dict[str, str] | None = None, timeout: float = 15.0
) -> RunningRadicale:
    """Start Radicale on a free loopback port with its data in ``storage_dir``.

    ``users`` maps user names to passwords (htpasswd, ``plain``); ``None`` accepts anyone.
    """
    storage_dir.mkdir(parents=True, exist_ok=True)
    port = free_port(_HOST)
    config = _write_config(storage_dir, port, users)
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and a fixed module
        [sys.executable, "-m", "radicale", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_port(port, process, timeout)
    return RunningRadicale(url=f"http://{_HOST}:{port}", storage_dir=storage_dir, _process=process)

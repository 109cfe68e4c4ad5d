"""Serve an ASGI app on a free loopback port in a background thread (tests and demo)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """A server certificate chain and key (PEM files) for serving HTTPS."""

    cert_chain: Path
    private_key: Path


class BackgroundServer:
    """uvicorn in a daemon thread; ``start()`` returns once the port accepts connections."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        tls: TLSFiles | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.tls = tls
        config = uvicorn.Config(
            app,
            host=host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ssl_certfile=str(tls.cert_chain) if tls else None,
            ssl_keyfile=str(tls.private_key) if tls else None,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = "localhost" if self.tls else self.host
        return f"{scheme}://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"server on port {self.port} failed to start")
            if time.monotonic() > deadline:
                raise TimeoutError(f"server on port {self.port} did not start in {timeout}s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def make_test_ca(directory: Path) -> tuple[Path, TLSFiles]:
    """A throwaway certificate authority and a ``localhost``/``127.0.0.1`` server certificate.

    Returns the CA certificate (PEM) to trust, and the server's TLS files. msal accepts
    only https authorities, so the Microsoft identity emulator is served with these.
    """
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ca_path = directory / "emulator-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    chain = directory / "emulator-server.pem"
    key = directory / "emulator-server.key"
    cert.private_key_pem.write_to_path(str(key))
    with chain.open("wb") as out:
        for blob in cert.cert_chain_pems:
            out.write(blob.bytes())
    return ca_path, TLSFiles(chain, key)


def client_ssl_context(ca_path: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_path))

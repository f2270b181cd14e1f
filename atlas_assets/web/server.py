"""Running the map server: uvicorn with limits for slow or hostile clients, in the foreground
(`atlas serve`) or on a thread (`BackgroundServer`: tests, benchmarks, notebooks).

Limits (docs/security.md): a request head (request line + headers) of at most `MAX_HEAD_BYTES`
(h11's incomplete-event limit; 431/400 beyond it), which must arrive complete within
`REQUEST_HEAD_SECONDS` of the connection opening or of the previous response (a socket that trickles
bytes or sends nothing is closed), idle keep-alive connections closed after `KEEP_ALIVE_SECONDS`, and
at most `MAX_CONNECTIONS` open connections (503 beyond). The HTTP parser is h11 (pure Python, with
a header size limit), not httptools, which accepts headers of any size.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
MAX_HEAD_BYTES = 64 * 1024
REQUEST_HEAD_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5
MAX_CONNECTIONS = 256


def is_loopback(host: str) -> bool:
    """Whether `host` (a bind address or a name) only reaches this machine."""
    host = host.strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on every request head.

    uvicorn closes idle keep-alive connections, but any byte cancels that timer and a connection
    that never completes its first request is held for ever: 300 of them pin 300 sockets. Here the
    head must be complete within REQUEST_HEAD_SECONDS, however the bytes trickle in.
    """

    _head_timer: asyncio.TimerHandle | None = None

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(REQUEST_HEAD_SECONDS, self._head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _waiting_for_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self._waiting_for_head() and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._waiting_for_head():
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._waiting_for_head() and not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)


def server_config(app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> Any:
    """The uvicorn configuration of the map server, limits included."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        http=GuardedH11Protocol,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        limit_concurrency=MAX_CONNECTIONS,
        server_header=False,
    )


def run_server(app: Any, host: str, port: int, log_level: str = "warning") -> None:
    """Serve `app` in the foreground until interrupted."""
    import uvicorn

    uvicorn.Server(server_config(app, host=host, port=port, log_level=log_level)).run()


class BackgroundServer:
    """A uvicorn server on its own thread (tests, benchmarks, notebooks); `stop()` ends it."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host = host
        self.port = int(self._socket.getsockname()[1])
        self._server = uvicorn.Server(server_config(app))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the map server did not start")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

"""A real S3-protocol server on loopback for the object-store tests, and a proxy that breaks it.

`MotoServer` runs moto's server mode (`moto_server`, from the `moto[server]` extra of `dev`) as a
process of its own on 127.0.0.1 and a free port. Clients reach it exactly as they would reach S3:
s3fs reads the endpoint and the credentials from the environment (`client_env`), and the URIs are
the `s3://bucket/prefix` a user gives for S3.

`RefusingProxy` is a small HTTP proxy on loopback in front of it. While `refusing` is set it answers
every write (PUT and POST: PutObject, the multipart calls, DeleteObjects) with 503 SlowDown, as S3
does when it throttles or a region is unwell; reads pass through. With `refuse_only` set it refuses
only the writes whose path holds that text (the record's PUT alone, say). It stands for "the object store
refuses writes for a while" (moto has no fault injection of its own for S3).
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Read by botocore (so by aiobotocore and s3fs) from the environment: the endpoint of an
# S3-compatible store (AWS_ENDPOINT_URL_S3 would set it for S3 alone) and the credentials.
ACCESS_KEY, SECRET_KEY, REGION = "atlas-test-key", "atlas-test-secret", "us-east-1"
SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
# Headers that belong to one hop, not to the message (RFC 9110 7.6.1)
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def client_env(endpoint_url: str) -> dict[str, str]:
    """The environment that points s3fs (and boto3, the AWS CLI) at `endpoint_url`."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }


def forget_s3_clients() -> None:
    """fsspec caches one S3FileSystem per set of arguments, not per environment: drop them, so the
    next client reads the endpoint now in the environment."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@dataclass
class MotoServer:
    """`moto_server` on 127.0.0.1, in a process (and session) of its own."""

    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> MotoServer:
        command = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/moto-api/")
                connection.getresponse().read()
                connection.close()
                return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"moto_server did not answer on port {self.port} within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def create_bucket(self, name: str) -> None:
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=ACCESS_KEY,
                              aws_secret_access_key=SECRET_KEY, region_name=REGION)
        client.create_bucket(Bucket=name)


class RefusingProxy:
    """A forwarding HTTP proxy on 127.0.0.1 to `upstream_port`; `refusing = True` makes it answer
    writes with 503 SlowDown (counted in `refused`) without passing them on."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.refusing = False
        self.refuse_only: str | None = None  # refuse only the writes whose path contains this (e.g. "/dataset.json")
        self.refused: list[str] = []  # "PUT /bucket/key" of every refused request
        self.forwarded_writes: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="refusing-proxy", daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> RefusingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @contextmanager
    def refusing_writes(self, only: str | None = None) -> Iterator[None]:
        """Writes (those whose path contains `only`, when given) are refused inside the block."""
        self.refuse_only, self.refusing = only, True
        try:
            yield
        finally:
            self.refusing, self.refuse_only = False, None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, and 100-continue for clients that ask

            def log_message(self, format: str, *args: object) -> None:  # requests are counted, not logged
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _relay(self) -> None:
                body = self._body()
                request = f"{self.command} {self.path}"
                writes = self.command in ("PUT", "POST")
                if writes and proxy.refusing and (proxy.refuse_only is None or proxy.refuse_only in self.path):
                    proxy.refused.append(request)
                    self.send_response(503, "Slow Down")
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOW_DOWN)))
                    self.end_headers()
                    self.wfile.write(SLOW_DOWN)
                    return
                if writes:
                    proxy.forwarded_writes.append(request)
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                try:
                    # the Host header goes through unchanged: the client signed it
                    upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for name, value in self.headers.items():
                        if name.lower() not in _HOP_HEADERS and name.lower() != "content-length":
                            upstream.putheader(name, value)
                    upstream.putheader("Content-Length", str(len(body)))
                    upstream.endheaders(body)
                    response = upstream.getresponse()
                    payload = response.read()
                    self.send_response(response.status, response.reason)
                    for name, value in response.getheaders():
                        if name.lower() not in _HOP_HEADERS and name.lower() != "content-length":
                            self.send_header(name, value)
                    # HEAD answers carry the object's length but no body
                    length = response.getheader("Content-Length") if self.command == "HEAD" else str(len(payload))
                    if length is not None:
                        self.send_header("Content-Length", length)
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay

        return Handler


def environment_for(endpoint_url: str) -> dict[str, str]:
    """os.environ with the S3 client variables pointing at `endpoint_url` (for subprocesses)."""
    return {**os.environ, **client_env(endpoint_url)}

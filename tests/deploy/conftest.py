"""The servers of the scaled-out tests: a private PostgreSQL server started from Debian's binaries,
and an S3-protocol server (moto's server mode) with a proxy that can refuse writes (object_store.py).

The server runs in a temporary folder on a free port on 127.0.0.1, as the `postgres` user when the
tests run as root (PostgreSQL refuses to run as root), and is stopped at the end of the session.
Each test gets its own database. The binaries come from `scripts/install-system-deps.sh` (run by
`make test`); without them the tests fail in CI and are skipped, with the fix, elsewhere.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.deploy.object_store import (
    MotoServer,
    RefusingProxy,
    client_env,
    forget_s3_clients,
)


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; dagster-postgres ships psycopg2
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg2

        connection = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()
        return self.url(name)


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *command]
    return ["su", "postgres", "-c", " ".join(command)]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    binaries = _binaries()
    if binaries is None:
        message = "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin); run scripts/install-system-deps.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = Path(tempfile.mkdtemp(prefix="atlas-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    port = _free_port()
    run = lambda command: subprocess.run(_as_server_user(command), check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run([str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
        run([
            str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "120",
            "-o", f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=200",
            "start",
        ])
    except subprocess.CalledProcessError as error:
        log = (folder / "server.log").read_text() if (folder / "server.log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {error.stderr or error.stdout}\n{log}")
    try:
        yield PostgresServer("127.0.0.1", port, "postgres")
    finally:
        subprocess.run(_as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server."""
    return postgres_server.create_database(f"atlas_{uuid.uuid4().hex[:12]}")


# ------------------------------------------------------------------------------------ object store

@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto's S3 server on 127.0.0.1 (a process of its own) for the whole session."""
    if shutil.which("moto_server", path=str(Path(sys.executable).parent)) is None:
        message = "moto_server not found next to this Python; install the dev extra (pip install -e '.[dev]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log").start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class ObjectStore:
    """A fresh bucket on the session's moto server, reached through a proxy that can refuse writes."""

    server: MotoServer
    proxy: RefusingProxy
    bucket: str
    prefix: str = "atlas"
    env: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def objects(self) -> dict[str, bytes]:
        """Every object of the bucket (read straight from the server, past the proxy): key -> bytes."""
        import boto3

        from tests.deploy.object_store import ACCESS_KEY, REGION, SECRET_KEY

        client = boto3.client("s3", endpoint_url=self.server.endpoint_url, aws_access_key_id=ACCESS_KEY,
                              aws_secret_access_key=SECRET_KEY, region_name=REGION)
        found = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for item in page.get("Contents", []):
                found[item["Key"]] = client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
        return found


@pytest.fixture
def object_store(moto_server: MotoServer, atlas_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ObjectStore]:
    """A new bucket; this test's index outputs go to s3://<bucket>/atlas through the refusing proxy,
    with the endpoint and credentials in the environment, as a user configures S3."""
    bucket = f"atlas-{uuid.uuid4().hex[:12]}"
    moto_server.create_bucket(bucket)
    proxy = RefusingProxy(moto_server.port).start()
    store = ObjectStore(moto_server, proxy, bucket, env=client_env(proxy.endpoint_url))
    for name, value in store.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ATLAS_OUTPUTS_URI", store.uri)
    forget_s3_clients()
    try:
        yield store
    finally:
        proxy.stop()
        forget_s3_clients()

"""A dask.distributed cluster on loopback for the steps-over-workers tests and benchmark: a real
`dask scheduler` and `dask worker` processes (each under its nanny, as `dask worker` runs by default),
started on free ports of 127.0.0.1 with the environment of the test (ATLAS_HOME, DAGSTER_HOME,
DAGSTER_POSTGRES_URL) and one thread each (one Dask thread, one onnxruntime thread, OMP 1), so that
two workers share the machine's two cores.

Worker identity: each worker process reports its pid and name to the scheduler; Dagster records the
pid of the process that wrote each step event, so a step's worker is the worker whose pid wrote its
STEP_START.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from tests.conftest import REPO_ROOT
from tests.deploy.miniature import wait_for

DASK_DEFINITIONS = REPO_ROOT / "deploy" / "dask" / "definitions.py"

DASK_WORKSPACE_YAML = f"""\
load_from:
  - python_file:
      relative_path: {DASK_DEFINITIONS}
      working_directory: {REPO_ROOT}
      location_name: atlas
"""

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "ATLAS_EMBED_THREADS": "1"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _dask() -> str:
    return str(Path(sys.executable).parent / "dask")


@dataclass
class DaskCluster:
    """`dask scheduler` and its `dask worker` processes, each in a session of its own, with the
    environment of this process when each starts."""

    folder: Path
    port: int = 0
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _start(self, name: str, command: list[str]) -> None:
        with open(self.folder / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(
                command, cwd=REPO_ROOT, env={**os.environ, **ONE_THREAD}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_scheduler(self) -> DaskCluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self._start("scheduler", [
            _dask(), "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard",
        ])
        wait_for(lambda: self._answers(), "the Dask scheduler accepting connections", 60, lambda: self.log("scheduler"))
        return self

    def _answers(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def add_workers(self, *names: str) -> None:
        """Start a worker per name (1 thread, under a nanny) and wait until the scheduler has them all."""
        for name in names:
            self._start(name, [
                _dask(), "worker", self.address, "--name", name, "--nthreads", "1", "--nworkers", "1",
                "--host", "127.0.0.1", "--no-dashboard", "--memory-limit", "0",
                "--local-directory", str(self.folder / name),
            ])
        wanted = set(names)
        wait_for(lambda: wanted <= set(self.workers().values()), f"workers {sorted(wanted)} joining the scheduler",
                 120, lambda: "\n".join(self.log(name) for name in names))

    def workers(self) -> dict[int, str]:
        """pid -> name of every worker process the scheduler knows now."""
        from dask.distributed import Client

        with Client(self.address, timeout=30) as client:
            names = {address: worker["name"] for address, worker in client.scheduler_info(n_workers=-1)["workers"].items()}
            pids = client.run(os.getpid)  # worker address -> the pid of its process
        return {int(pid): str(names[address]) for address, pid in pids.items() if address in names}

    def kill_worker_process(self, pid: int) -> None:
        """SIGKILL to one worker process (its nanny starts a fresh one)."""
        os.kill(pid, signal.SIGKILL)

    def log(self, name: str, chars: int = 3000) -> str:
        path = self.folder / f"{name}.log"
        return f"--- {name}\n" + path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(self.log(name) for name in self.processes)

    def stop(self) -> None:
        # workers first (SIGTERM lets a nanny close its worker), then the scheduler
        for name in [n for n in self.processes if n != "scheduler"] + ["scheduler"]:
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if process.poll() is None:
                process.wait(10)


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[DaskCluster]:
    """A scheduler on loopback without workers yet (the test adds them, after setting its environment)."""
    cluster = DaskCluster(tmp_path / "dask")
    try:
        yield cluster
    finally:
        cluster.stop()


def step_workers(instance: dg.DagsterInstance, run_id: str, step_suffix: str) -> list[int]:
    """The pid of every STEP_START of the run's steps whose key ends with step_suffix, in order."""
    return [
        entry.dagster_event.pid
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
        if entry.dagster_event.step_key.endswith(step_suffix)
    ]

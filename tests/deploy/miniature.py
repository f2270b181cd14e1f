"""The miniature scaled-out deployment the tests/deploy tests start: an instance on PostgreSQL with the
queued run coordinator, a run limit and an `atlas_embedding` pool limit, run monitoring and run
retries (`instance_yaml`), the code location through workspace.yaml, and a real `dagster-daemon run`
(`Daemon`) that launches every run in its own process with the default run launcher (through the code
server it starts), as a cluster launches a pod per run.

Helpers read the outcome back from the instance: when each run started and ended, how many ran at
once, the process of each run, the windows of the embedding steps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import yaml

from tests.conftest import REPO_ROOT

WORKSPACE_YAML = """\
load_from:
  - python_module:
      module_name: atlas_assets.definitions
      location_name: atlas
"""


def instance_yaml(max_concurrent_runs: int, embedding_pool_limit: int, max_runtime_seconds: int = 0) -> str:
    """deploy/dagster.yaml (PostgreSQL from DAGSTER_POSTGRES_URL, the queued run coordinator) with the
    limits of the test and the daemon settings that recover from faults:

    - run_monitoring: a run stuck STARTING is failed after start_timeout_seconds; a run whose worker
      died with the daemon's machine is failed after its max runtime (the default run launcher cannot
      ask a worker's health, so the runtime limit, global or the run's `dagster/max_runtime` tag, is
      what ends an orphan); pool slots of finished runs are freed after free_slots_after_run_end_seconds.
    - run_retries: a failed run is re-executed from its failure (max_retries times).
    """
    config = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.yaml").read_text())
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    config["run_coordinator"]["config"] = {"dequeue_interval_seconds": 1}
    config["concurrency"] = {
        "runs": {"max_concurrent_runs": max_concurrent_runs},
        "pools": {"default_limit": embedding_pool_limit},
    }
    monitoring = {
        "enabled": True,
        "poll_interval_seconds": 3,
        "start_timeout_seconds": 180,
        "free_slots_after_run_end_seconds": 5,
    }
    if max_runtime_seconds:
        monitoring["max_runtime_seconds"] = max_runtime_seconds
    config["run_monitoring"] = monitoring
    config["run_retries"] = {"enabled": True, "max_retries": 2}
    config["nux"] = {"enabled": False}
    return yaml.safe_dump(config, sort_keys=False)


def write_deployment(home: Path, workspace_yaml: str = WORKSPACE_YAML, **limits: int) -> Path:
    """$ATLAS_HOME/dagster/dagster.yaml and $ATLAS_HOME/workspace.yaml (default: the code location
    atlas_assets.definitions); returns the workspace file."""
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(instance_yaml(**limits))
    workspace = home / "workspace.yaml"
    workspace.write_text(workspace_yaml)
    return workspace


@dataclass
class Daemon:
    """`dagster-daemon run` in a session of its own: its code server, run workers and step processes
    are in its process group, so `kill_group` takes them all down, as a lost node would."""

    workspace: Path
    log_path: Path
    process: subprocess.Popen | None = None

    def start(self) -> Daemon:
        command = [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(self.workspace)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=self.workspace.parent, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL to the daemon process alone (its code server and the runs it launched live on)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def kill_group(self) -> None:
        """SIGKILL to the daemon and every process it started (code server, run workers, steps)."""
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(45)
            except subprocess.TimeoutExpired:
                pass
        # whatever of its group is left (a code server waiting on a run) goes too
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.process.poll() is None:
            self.process.wait(10)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


def wait_for(condition: Callable[[], bool], what: str, timeout: float, log: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s\n{log()}")


def most_at_once(windows: Iterable[tuple[float, float]]) -> int:
    """The largest number of (start, end) windows open at one moment."""
    windows = list(windows)
    edges = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows], key=lambda e: (e[0], e[1]))
    open_now = peak = 0
    for _, step in edges:
        open_now += step
        peak = max(peak, open_now)
    return peak


def run_events(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType) -> list[dg.EventLogEntry]:
    return [entry for entry in instance.all_logs(run_id, of_type=kind)]


def run_pid(instance: dg.DagsterInstance, run_id: str) -> int:
    """The process that ran the run: the one that reported RUN_START."""
    (start,) = run_events(instance, run_id, dg.DagsterEventType.RUN_START)
    return start.dagster_event.pid


def step_windows(instance: dg.DagsterInstance, run_ids: Iterable[str], step_suffix: str) -> list[tuple[float, float]]:
    """(start, end) of every step whose key ends with step_suffix, from STEP_START to its last event."""
    windows = []
    for run_id in run_ids:
        starts: dict[str, float] = {}
        ends: dict[str, float] = {}
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None or not event.step_key or not event.step_key.endswith(step_suffix):
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                starts[event.step_key] = entry.timestamp
            if event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
                ends[event.step_key] = entry.timestamp
        windows.extend((starts[key], ends[key]) for key in starts if key in ends)
    return windows

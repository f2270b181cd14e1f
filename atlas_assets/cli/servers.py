"""Starting the Dagster UI (`dagster dev`: webserver + daemon) and the map server as child processes.

Both run on the store's own Dagster instance (DAGSTER_HOME from `ensure_dagster_home`) and a
workspace file written into ATLAS_HOME, so they work from any folder, not only inside the repo.
Children are started in their own session and stopped by their process id (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from atlas_assets.config import atlas_home
from atlas_assets.errors import ConfigurationError

DEFAULT_UI_PORT = 3000
STOP_TIMEOUT_SECONDS = 45.0
"""How long a child gets to stop on SIGTERM before it is killed. dagster dev shuts its webserver,
daemon and code server down in 13-14 s on this 2-core machine under load (8 runnable processes);
the old 20 s left too little margin and ended in the force-kill."""
WORKSPACE_LOCATION = "atlas"
WORKSPACE_YAML = f"""\
# Written by atlas-assets: the code location of every dataset in this ATLAS_HOME.
load_from:
  - python_module:
      module_name: atlas_assets.definitions
      location_name: {WORKSPACE_LOCATION}
"""


def write_workspace(home: Path | None = None) -> Path:
    """$ATLAS_HOME/workspace.yaml pointing at the installed `atlas_assets.definitions` module."""
    home = home or atlas_home()
    home.mkdir(parents=True, exist_ok=True)
    path = home / "workspace.yaml"
    if not path.exists() or path.read_text() != WORKSPACE_YAML:
        path.write_text(WORKSPACE_YAML)
    return path


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (closed connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def require_free_port(host: str, port: int, what: str, option: str) -> None:
    if not port_is_free(host, port):
        raise ConfigurationError(
            f"port {port} on {host} is taken, so the {what} cannot start there; stop what uses it or pass {option} <port>"
        )


def answers(url: str, timeout: float = 2.0) -> bool:
    """True when an HTTP GET of `url` gets any response below 500."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback URL we built
            return response.status < 500
    except urllib.error.HTTPError as error:
        return error.code < 500
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class ChildServer:
    """A server we started: its process, the URL it answers on and where its output goes."""

    name: str
    process: subprocess.Popen
    url: str
    log_path: Path | None = None

    def wait_until_up(self, timeout: float, probe_path: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ConfigurationError(f"the {self.name} exited (code {self.process.returncode}); {self._log_hint()}")
            if answers(self.url.rstrip("/") + probe_path):
                return
            time.sleep(0.5)
        raise ConfigurationError(f"the {self.name} did not answer on {self.url} within {timeout:.0f} s; {self._log_hint()}")

    def _log_hint(self) -> str:
        return f"its output is in {self.log_path}" if self.log_path else "run it alone to see its output"

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM to the child (dagster dev stops its webserver and daemon), SIGKILL to its group after."""
        if self.process.poll() is not None:
            return
        try:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # the group of the session we created
            except ProcessLookupError:
                pass
            self.process.wait(timeout=5)


def _start(name: str, command: Sequence[str], url: str, log_path: Path | None, env: dict[str, str]) -> ChildServer:
    output = open(log_path, "ab") if log_path else None  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        list(command),
        env=env,
        stdout=output if output else None,
        stderr=subprocess.STDOUT if output else None,
        start_new_session=True,
    )
    if output:
        output.close()
    return ChildServer(name, process, url, log_path)


def start_dagster_ui(host: str = "127.0.0.1", port: int = DEFAULT_UI_PORT, log_path: Path | None = None) -> ChildServer:
    """`dagster dev` (webserver + daemon) on the store's instance and workspace."""
    from resources.instance import ensure_dagster_home

    require_free_port(host, port, "Dagster UI", "--ui-port")
    dagster_home = ensure_dagster_home()
    workspace = write_workspace()
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "ATLAS_HOME": str(atlas_home())}
    command = [sys.executable, "-m", "dagster", "dev", "-w", str(workspace), "-h", host, "-p", str(port)]
    shown = f"[{host}]" if ":" in host else host
    return _start("Dagster UI", command, f"http://{shown}:{port}", log_path, env)


def require_loopback_map_host(host: str) -> None:
    """The map server started for someone binds to this machine only."""
    from atlas_assets.web.server import is_loopback

    if not is_loopback(host):
        raise ConfigurationError(
            f"the map server started here binds to this machine only (127.0.0.1), not {host}: maps and "
            "tokens would travel in clear text; use `atlas serve --allow-remote` behind a TLS reverse proxy "
            "(docs/security.md)"
        )


def start_map_server(host: str = "127.0.0.1", port: int = 8765, log_path: Path | None = None) -> ChildServer:
    """`atlas serve` in a child process (on a loopback address: `atlas serve --allow-remote` is the
    deliberate way to serve beyond this machine)."""
    require_loopback_map_host(host)
    require_free_port(host, port, "map server", "--map-port")
    env = {**os.environ, "ATLAS_HOME": str(atlas_home())}
    command = [sys.executable, "-m", "atlas_assets.cli", "serve", "--host", host, "--port", str(port)]
    shown = f"[{host}]" if ":" in host else host
    return _start("map server", command, f"http://{shown}:{port}", log_path, env)


def _stop_on_signals() -> None:
    """Ctrl-C (SIGINT) and SIGTERM both end the wait, so the children are always stopped.

    Explicit because a process started in the background by a shell without job control inherits
    SIGINT as ignored, and Python then installs no KeyboardInterrupt for it; and SIGTERM would
    otherwise end this process and leave the children (in sessions of their own) running.
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers; it also gets the signals
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)


def wait_for_children(children: Sequence[ChildServer]) -> int:
    """Block until Ctrl-C, SIGTERM or until a child exits; then stop every child. Returns an exit code."""
    code = 0
    _stop_on_signals()
    try:
        while True:
            for child in children:
                if child.process.poll() is not None:
                    print(f"atlas: the {child.name} stopped (code {child.process.returncode})", file=sys.stderr)
                    code = 1
                    raise StopIteration
            time.sleep(0.5)
    except (KeyboardInterrupt, StopIteration):
        pass
    finally:
        for child in children:
            child.stop()
    return code

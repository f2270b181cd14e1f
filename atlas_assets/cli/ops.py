"""`atlas ui` (the Dagster UI on the store's instance) and `atlas demo` (the first run)."""

from __future__ import annotations

import argparse
from typing import Any


def _ui(args: argparse.Namespace) -> int:
    from atlas_assets.cli import servers
    from atlas_assets.cli.ui_reload import RegistryWatcher

    ui = servers.start_dagster_ui(args.host, args.port)
    try:
        ui.wait_until_up(240, probe_path="/server_info")
    except BaseException:
        ui.stop()
        raise
    print(f"Dagster UI: {ui.url}/assets  (Ctrl-C stops it)", flush=True)
    watcher = RegistryWatcher(ui.url).start()
    try:
        return servers.wait_for_children([ui])
    finally:
        watcher.stop()


def _demo(args: argparse.Namespace) -> int:
    from atlas_assets.cli.demo import run_demo

    return run_demo(
        limit=args.limit, serve=not args.no_serve, host=args.host, ui_port=args.ui_port, map_port=args.map_port
    )


def add_ops_commands(commands: Any) -> None:
    from atlas_assets.cli.demo import DEFAULT_LIMIT
    from atlas_assets.cli.servers import DEFAULT_UI_PORT

    ui = commands.add_parser(
        "ui",
        help="run the Dagster UI and daemon (dagster dev) on the store's instance",
        description="dagster dev (webserver + daemon: sensors, schedules, automation) with DAGSTER_HOME set "
        "to the store's instance and a workspace written into ATLAS_HOME.",
    )
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=DEFAULT_UI_PORT, help=f"port (default {DEFAULT_UI_PORT})")
    ui.set_defaults(handler=_ui)

    demo = commands.add_parser(
        "demo",
        help="build a real map of Python docstrings, then start the Dagster UI and the map server",
        description="First run: collect docstrings of the standard library and installed packages, build their "
        "map, serve it. Later runs reuse the dataset and map (updating what is stale) and start in seconds.",
    )
    demo.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help=f"how many docstrings (default {DEFAULT_LIMIT:,})")
    demo.add_argument("--no-serve", action="store_true", help="build or update the map, start no servers")
    demo.add_argument("--host", default="127.0.0.1", help="address both servers bind (default 127.0.0.1)")
    demo.add_argument("--ui-port", type=int, default=DEFAULT_UI_PORT, help=f"Dagster UI port (default {DEFAULT_UI_PORT})")
    demo.add_argument("--map-port", type=int, default=8765, help="map server port (default 8765)")
    demo.set_defaults(handler=_demo)

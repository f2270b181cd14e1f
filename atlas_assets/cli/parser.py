"""The `atlas` command line: the argparse tree and the error handling around every command.

Errors a user can cause print one line with the fix and exit 2; `--verbose` shows the trace.
Commands live in the sibling modules: `models` (models install, models list), `data` (ingest,
status, delete), `maps` (index, update, search, export), `serve` (serve, token), `ops` (ui, demo).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence

from atlas_assets.cli.messages import in_cli_terms
from atlas_assets.errors import AtlasError

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atlas", description="A self-hosted Nomic Atlas on Dagster.")
    parser.add_argument("--verbose", "-v", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # Imported here, not at the top: `atlas_assets.cli` itself stays cheap to import.
    from atlas_assets.cli.data import add_data_commands
    from atlas_assets.cli.maps import add_map_commands
    from atlas_assets.cli.models import add_models_commands
    from atlas_assets.cli.ops import add_ops_commands
    from atlas_assets.cli.serve import add_serve_commands

    add_models_commands(commands)
    add_data_commands(commands)
    add_map_commands(commands)
    add_serve_commands(commands)
    add_ops_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `atlas` command; user errors print one line and return 2, Ctrl-C returns 130."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if not args.verbose:
        # Dagster logs every step event at INFO; the CLI's own progress lines are enough.
        for noisy in ("dagster", "alembic", "numba", "httpx"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    handler: Handler = args.handler
    try:
        return handler(args)
    except AtlasError as error:
        if args.verbose:
            traceback.print_exc()
        message = in_cli_terms(" ".join(str(error).split()))
        print(f"atlas: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("atlas: interrupted", file=sys.stderr)
        return 130

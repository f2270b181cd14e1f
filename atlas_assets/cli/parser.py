"""The `atlas` command line.

Errors a user can cause print one line with the fix and exit 2; `--verbose` shows the trace.
Commands live in small modules: `atlas_assets.commands.data` (ingest, status, delete),
`.maps` (index, update, search, export), `.ops` (ui, demo), `atlas_assets.web.commands` (serve, token).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence

from atlas_assets.errors import AtlasError

Handler = Callable[[argparse.Namespace], int]


def _models_install(args: argparse.Namespace) -> int:
    from resources.model_store import DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL, install_model

    # No name: both offline defaults, so a fresh machine can then embed text and images offline.
    for name in [args.name] if args.name else [DEFAULT_TEXT_MODEL, DEFAULT_IMAGE_MODEL]:
        path = install_model(name)
        print(f"model ready: {path}")
    return 0


def _models_list(args: argparse.Namespace) -> int:
    from resources.model_store import available_models, is_installed, resolve_model

    print(f"{'name':<28} {'kind':<6} {'dim':>5} {'max len':>7}  {'installed':<9}  source")
    for name in available_models():
        spec = resolve_model(name)
        installed = "yes" if is_installed(name) else "no"
        print(f"{spec.name:<28} {spec.kind:<6} {spec.dimension:>5} {spec.max_length:>7}  {installed:<9}  {spec.source.describe()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atlas", description="A self-hosted Nomic Atlas on Dagster.")
    parser.add_argument("--verbose", "-v", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = commands.add_parser("models", help="install and list embedding models")
    models_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    install = models_commands.add_parser("install", help="build a model into the local cache")
    install.add_argument("name", nargs="?", default=None, help="model name (default: the default text and image models)")
    install.set_defaults(handler=_models_install)
    listing = models_commands.add_parser("list", help="show the known models and whether they are installed")
    listing.set_defaults(handler=_models_list)

    from atlas_assets.commands.data import add_data_commands
    from atlas_assets.commands.maps import add_map_commands
    from atlas_assets.commands.ops import add_ops_commands
    from atlas_assets.web.commands import add_web_commands

    add_data_commands(commands)
    add_map_commands(commands)
    add_web_commands(commands)
    add_ops_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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
        message = " ".join(str(error).split())
        print(f"atlas: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("atlas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

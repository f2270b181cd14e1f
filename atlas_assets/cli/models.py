"""`atlas models install` and `atlas models list`: the embedding models in the local cache."""

from __future__ import annotations

import argparse
from typing import Any


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


def add_models_commands(commands: Any) -> None:
    """Add `models` (with its `install` and `list` actions) to the CLI's subcommands."""
    models = commands.add_parser("models", help="install and list embedding models")
    models_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    install = models_commands.add_parser("install", help="build a model into the local cache")
    install.add_argument("name", nargs="?", default=None, help="model name (default: the default text and image models)")
    install.set_defaults(handler=_models_install)
    listing = models_commands.add_parser("list", help="show the known models and whether they are installed")
    listing.set_defaults(handler=_models_list)

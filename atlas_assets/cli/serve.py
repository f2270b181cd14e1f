"""`atlas serve` (the map server) and `atlas token` (a private dataset's map token)."""

from __future__ import annotations

import argparse
from typing import Any

from atlas_assets.web.app import DEFAULT_PORT


def _serve(args: argparse.Namespace) -> int:
    from atlas_assets.web.app import serve

    serve(host=args.host, port=args.port, allow_remote=args.allow_remote)
    return 0


def _token(args: argparse.Namespace) -> int:
    from atlas_assets.client.dataset import AtlasDataset, parse_identifier
    from atlas_assets.errors import DatasetNotFoundError
    from atlas_assets.web.auth import dataset_token
    from resources.storage import DatasetStore

    organisation, slug, _ = parse_identifier(args.dataset)
    if DatasetStore().find_dataset(organisation, slug) is None:
        raise DatasetNotFoundError(f"no dataset {organisation}/{slug}; list maps with `atlas serve`")
    dataset = AtlasDataset(f"{organisation}/{slug}")
    token = dataset_token(dataset.id)
    if dataset.is_public:
        print(f"{dataset.identifier} is public: its map needs no token (this one is kept for later): {token}")
    else:
        print(token)
    return 0


def add_serve_commands(commands: Any) -> None:
    """Add `serve` and `token` to the CLI's subcommands."""
    serve = commands.add_parser("serve", help="serve the interactive maps (http://127.0.0.1:%d/)" % DEFAULT_PORT)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1: only this machine can connect); any other "
                            "address needs --allow-remote")
    serve.add_argument("--allow-remote", action="store_true",
                       help="people on other machines reach this server: directly (a non-loopback --host such "
                            "as 0.0.0.0, ::, a LAN address: plain HTTP, tokens in clear text) or through a TLS "
                            "reverse proxy (recommended, docs/security.md); pages then carry no write token")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    serve.set_defaults(handler=_serve)
    token = commands.add_parser("token", help="print the access token of a private dataset's maps")
    token.add_argument("dataset", help="dataset identifier, 'org/name' or 'name'")
    token.set_defaults(handler=_token)

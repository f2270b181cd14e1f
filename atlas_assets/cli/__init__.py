"""The `atlas` command line (console script `atlas = "atlas_assets.cli:main"`).

One module per job: `parser` (the argparse tree and error handling, `main`), `models`, `data`,
`maps`, `serve` and `ops` (the commands), `servers` (the child processes of `atlas ui` and
`atlas demo`) and `demo` (building the demo map).
"""

from atlas_assets.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]

"""Subcommands of the `atlas` CLI, one small module per area (data, maps, operations)."""

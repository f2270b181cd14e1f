"""Dagster resources: everything that touches the outside world (store, models, IO manager)."""

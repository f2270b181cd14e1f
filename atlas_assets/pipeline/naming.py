"""Dagster names for a dataset's assets: keys, group, partitions, sensor and job names.

Dagster names must match ^[A-Za-z0-9_]+$, so slugs (which may hold '-') are sanitised; the
mapping is one-way, and the store's record stays the source of truth for the real names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import dagster as dg

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_]")

STAGES = ("embeddings", "neighbour_graph", "projection", "topics", "duplicates")


def sanitise(name: str) -> str:
    cleaned = _NOT_ALLOWED.sub("_", name)
    return cleaned if cleaned and not cleaned[0].isdigit() else f"_{cleaned}"


@dataclass(frozen=True)
class DatasetNames:
    organisation: str
    slug: str

    @property
    def prefix(self) -> list[str]:
        return [sanitise(self.organisation), sanitise(self.slug)]

    @property
    def group(self) -> str:
        return "__".join(self.prefix)

    @property
    def partitions(self) -> str:
        return f"{self.group}__batches"

    @property
    def raw_data(self) -> dg.AssetKey:
        return dg.AssetKey([*self.prefix, "raw_data"])

    @property
    def deletions(self) -> dg.AssetKey:
        return dg.AssetKey([*self.prefix, "deletions"])

    @property
    def inbox(self) -> dg.AssetKey:
        return dg.AssetKey([*self.prefix, "inbox"])

    @property
    def inbox_sensor(self) -> str:
        return f"{self.group}__inbox"

    @property
    def embed_job(self) -> str:
        """The job of the per-batch stages (raw_data and every index's embeddings of one batch)."""
        return f"{self.group}__embed_batch"

    @property
    def build_job(self) -> str:
        """The job of the stages over all batches (graph, map, topics, duplicates of every index)."""
        return f"{self.group}__build_maps"

    def stage(self, index_asset_name: str, stage: str) -> dg.AssetKey:
        return dg.AssetKey([*self.prefix, sanitise(index_asset_name), stage])

    def index_prefix(self, index_asset_name: str) -> list[str]:
        return [*self.prefix, sanitise(index_asset_name)]

"""The IO manager of every index asset: Arrow tables as Parquet on a UPath (local or fsspec URI).

Assets declare where their outputs go with the definition metadata key `atlas/output_dir` (see
`resources.index_outputs`); partitioned outputs get one file per batch. A value may be a
`pa.Table` or a `StageOutput` (a table plus JSON side data kept in the same file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pyarrow as pa
from upath import UPath

from resources.index_outputs import (
    outputs_base,
    read_side_data,
    read_table,
    strip_side_data,
    write_table,
)

OUTPUT_DIR_KEY = "atlas/output_dir"


@dataclass(frozen=True)
class StageOutput:
    """A stage's table plus small JSON side data (parameters, topic metadata) stored with it."""

    table: pa.Table
    side_data: dict[str, Any] = field(default_factory=dict)


class ArrowParquetIOManager(dg.UPathIOManager):
    extension = ".parquet"

    def get_asset_relative_path(self, context: dg.InputContext | dg.OutputContext) -> UPath:
        output_context = context.upstream_output if isinstance(context, dg.InputContext) else context
        metadata = output_context.definition_metadata if output_context is not None else {}
        relative_dir = metadata.get(OUTPUT_DIR_KEY)
        if relative_dir is None:
            return UPath(*context.asset_key.path)
        stage = context.asset_key.path[-1]
        return UPath(*str(relative_dir).split("/"), stage)

    def load_partitions(self, context: dg.InputContext) -> Any:
        """A stage over all batches always gets a dict {batch_id: output}, even for one batch."""
        if context.has_partition_key:
            return super().load_partitions(context)
        paths = self._get_paths_for_partitions(context)
        return {key: self.load_from_path(context, paths[key]) for key in context.asset_partition_keys}

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        if isinstance(obj, StageOutput):
            write_table(path, obj.table, obj.side_data)
        elif isinstance(obj, pa.Table):
            write_table(path, obj)
        else:
            raise TypeError(f"{context.asset_key.to_user_string()} returned {type(obj).__name__}, not a table")

    def load_from_path(self, context: dg.InputContext, path: UPath) -> StageOutput:
        return StageOutput(strip_side_data(read_table(path)), read_side_data(path))


class ArrowIOManager(dg.ConfigurableIOManagerFactory):
    """Parquet outputs under `base_uri` (empty: $ATLAS_OUTPUTS_URI, else ATLAS_HOME)."""

    base_uri: str = ""

    def create_io_manager(self, context: dg.InitResourceContext) -> ArrowParquetIOManager:
        return ArrowParquetIOManager(base_path=outputs_base(self.base_uri or None))

"""The IO manager of every index asset: Arrow tables as Parquet on a UPath (local or fsspec URI).

Assets declare where their outputs go with the definition metadata key `atlas/output_dir`
(`IndexOutputs.relative_dir`); partitioned outputs get one file per batch. A value may be a
`pa.Table` or a `StageOutput` (a table plus JSON side data kept in the same file). Reading and
writing go through `resources.index_outputs`, the one owner of the file format.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pyarrow as pa
from upath import UPath

from resources.index_outputs import StageOutput, outputs_base, read_output, write_output

OUTPUT_DIR_KEY = "atlas/output_dir"

__all__ = ["OUTPUT_DIR_KEY", "ArrowIOManager", "ArrowParquetIOManager", "StageOutput"]


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
        if isinstance(obj, pa.Table):
            obj = StageOutput(obj)
        if not isinstance(obj, StageOutput):
            raise TypeError(f"{context.asset_key.to_user_string()} returned {type(obj).__name__}, not a table")
        write_output(path, obj)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> StageOutput:
        return read_output(path)


class ArrowIOManager(dg.ConfigurableIOManagerFactory):
    """Parquet outputs under `base_uri` (empty: $ATLAS_OUTPUTS_URI, else ATLAS_HOME)."""

    base_uri: str = ""

    def create_io_manager(self, context: dg.InitResourceContext) -> ArrowParquetIOManager:
        return ArrowParquetIOManager(base_path=outputs_base(self.base_uri or None))

"""The asset family of a dataset: `raw_data` per batch, and per index `embeddings` (per batch),
`neighbour_graph`, `projection`, `topics` and `duplicates` (over all batches).

`build_dataset_definitions(record)` is called for every dataset in the store's registry when the code
location loads (see `atlas_assets.definitions`) and by the client API for in-process runs.
"""


from typing import Any

import dagster as dg
import numpy as np

from atlas_assets.config import map_link
from atlas_assets.compute.arrays import arrow_to_matrix, positions_of
from atlas_assets.pipeline import stages
from atlas_assets.pipeline.naming import DatasetNames
from atlas_assets.pipeline.pictures import map_thumbnail, png_markdown
from atlas_assets.pipeline.spec import REBUILD_LAYOUT_TAG, REBUILD_TOPICS_TAG, IndexSpec
from resources.embedder import EmbedderResource
from resources.index_outputs import outputs_base, read_side_data, read_table, stage_path, strip_side_data
from resources.io_manager import OUTPUT_DIR_KEY, StageOutput
from resources.records import DatasetRecord, IndexRecord
from resources.store import DatasetStore

FOLLOW_UPSTREAM = dg.AutomationCondition.eager()


def batches_partitions(record: DatasetRecord) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=DatasetNames(record.organisation, record.slug).partitions)


def build_dataset_definitions(record: DatasetRecord) -> dg.Definitions:
    """Every asset (with its checks) of one dataset and all of its indices."""
    names = DatasetNames(record.organisation, record.slug)
    batches = batches_partitions(record)
    assets: list[dg.AssetsDefinition] = [_raw_data_asset(record, names, batches)]
    for index in record.indices:
        assets.extend(_index_assets(record, index, batches))
    return dg.Definitions(assets=assets)


def _common(names: DatasetNames) -> dict[str, Any]:
    organisation, slug = names.prefix
    return {"group_name": names.group, "tags": {"atlas/organisation": organisation[:63], "atlas/dataset": slug[:63]}}


# --- raw data ----------------------------------------------------------------------------------


def _raw_data_asset(
    record: DatasetRecord, names: DatasetNames, batches: dg.DynamicPartitionsDefinition
) -> dg.AssetsDefinition:
    organisation, slug = record.organisation, record.slug

    @dg.asset(
        key=names.raw_data,
        partitions_def=batches,
        kinds={"parquet"},
        description=f"Rows of {organisation}/{slug} as uploaded, one partition per add_data call.",
        **_common(names),
    )
    def raw_data(context: dg.AssetExecutionContext, store: DatasetStore) -> dg.MaterializeResult:
        batch = store.read_batch(organisation, slug, context.partition_key)
        preview = batch.slice(0, 5).drop_columns([c for c in batch.column_names if c.startswith("_")])
        preview_rows = [{k: str(v)[:120] for k, v in row.items()} for row in preview.to_pylist()]
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": batch.num_rows,
                "columns": dg.MetadataValue.json(
                    {field.name: str(field.type) for field in batch.schema if not field.name.startswith("_")}
                ),
                "preview": dg.MetadataValue.json(preview_rows),
            }
        )

    return raw_data


# --- one index ---------------------------------------------------------------------------------


def _previous(spec: IndexSpec, stage: str) -> StageOutput | None:
    """The stage's own last output, for incremental updates (None on the first build)."""
    path = stage_path(outputs_base(), spec.output_dir, stage)
    if not path.exists():
        return None
    return StageOutput(strip_side_data(read_table(path)), read_side_data(path))


def _index_assets(
    record: DatasetRecord, index: IndexRecord, batches: dg.DynamicPartitionsDefinition
) -> list[dg.AssetsDefinition]:
    spec = IndexSpec.of(record, index)
    names = spec.names
    key = lambda stage: names.stage(index.asset_name, stage)  # noqa: E731
    common = {
        **_common(names),
        "metadata": {OUTPUT_DIR_KEY: spec.output_dir, "atlas/index_id": index.id, "atlas/index_name": index.name},
    }
    assets = [_embeddings_asset(spec, record, batches, key, common)]
    assets.append(_graph_asset(spec, key, common))
    if index.projection is not None or index.topic_model is not None:
        assets.append(_projection_asset(spec, key, common))
    if spec.topic_params is not None:
        assets.append(_topics_asset(spec, key, common))
    if spec.duplicate_cutoff is not None:
        assets.append(_duplicates_asset(spec, key, common))
    return assets


def _embeddings_asset(spec, record, batches, key, common) -> dg.AssetsDefinition:
    index = spec.index
    check = dg.AssetCheckSpec("rows_match_raw_and_finite", asset=key("embeddings"), blocking=True)
    model = index.embedding_model or "user vectors"
    reused = index.reuse_embeddings_from_index
    source_index = next((i for i in record.indices if i.name == reused or i.id == reused), None) if reused else None

    def finish(store: DatasetStore, partition_key: str, table, timer: stages.Timer):
        raw_rows = store.read_batch(spec.organisation, spec.slug, partition_key, columns=["_row_id"]).num_rows
        vectors = arrow_to_matrix(table["embedding"])
        finite = bool(np.isfinite(vectors).all())
        seconds = timer.seconds
        yield dg.Output(
            table,
            metadata={
                "dagster/row_count": table.num_rows,
                "dimensions": int(vectors.shape[1]) if vectors.size else 0,
                "model": model,
                "seconds": seconds,
                "rows_per_second": round(table.num_rows / seconds, 1) if seconds else 0.0,
            },
        )
        yield dg.AssetCheckResult(
            check_name="rows_match_raw_and_finite",
            passed=finite and raw_rows == table.num_rows,
            metadata={"raw_rows": raw_rows, "embedded_rows": table.num_rows, "all_finite": finite},
        )

    decorator = dg.asset(
        key=key("embeddings"),
        partitions_def=batches,
        deps=[] if source_index else [spec.names.raw_data],
        ins={"source": dg.AssetIn(key=spec.names.stage(source_index.asset_name, "embeddings"))} if source_index else None,
        kinds={"onnx" if index.modality != "embedding" else "numpy"},
        description=f"One vector per row of the batch ({model}).",
        check_specs=[check],
        automation_condition=FOLLOW_UPSTREAM,
        pool="atlas_embedding",
        **common,
    )
    if source_index is not None:

        @decorator
        def embeddings(context: dg.AssetExecutionContext, store: DatasetStore, source: StageOutput):
            timer = stages.Timer()
            yield from finish(store, context.partition_key, stages.copy_embeddings(source), timer)

    else:

        @decorator
        def embeddings(context: dg.AssetExecutionContext, store: DatasetStore, embedder: EmbedderResource):
            timer = stages.Timer()
            table = stages.embed_batch(store, embedder, spec, context.partition_key)
            yield from finish(store, context.partition_key, table, timer)

    return embeddings


def _graph_asset(spec, key, common) -> dg.AssetsDefinition:
    @dg.asset(
        key=key("neighbour_graph"),
        ins={"embeddings": dg.AssetIn(key=key("embeddings"))},
        kinds={"pynndescent"},
        description="k nearest neighbours of every live row (deleted rows excluded), shared by every later stage.",
        automation_condition=FOLLOW_UPSTREAM,
        **common,
    )
    def neighbour_graph(context: dg.AssetExecutionContext, store: DatasetStore, embeddings: dict[str, StageOutput]):
        output, metadata = stages.build_neighbour_graph(store, spec, embeddings, _previous(spec, "neighbour_graph"))
        return dg.Output(output, metadata={"dagster/row_count": metadata.pop("rows"), **metadata})

    return neighbour_graph


def _projection_asset(spec, key, common) -> dg.AssetsDefinition:
    check = dg.AssetCheckSpec("every_live_row_placed", asset=key("projection"), blocking=True)
    link = map_link(spec.organisation, spec.slug, spec.index.id)

    @dg.asset(
        key=key("projection"),
        ins={
            "neighbour_graph": dg.AssetIn(key=key("neighbour_graph")),
            "embeddings": dg.AssetIn(key=key("embeddings")),
        },
        kinds={"numba"},
        description="2-D map position of every live row (old rows keep their places on updates).",
        check_specs=[check],
        automation_condition=FOLLOW_UPSTREAM,
        **common,
    )
    def projection(
        context: dg.AssetExecutionContext,
        store: DatasetStore,
        neighbour_graph: StageOutput,
        embeddings: dict[str, StageOutput],
    ):
        rebuild = context.run.tags.get(REBUILD_LAYOUT_TAG) == "true"
        output, metadata = stages.build_projection(
            spec, neighbour_graph, embeddings, _previous(spec, "projection"), rebuild
        )
        xy = np.column_stack([output.table["x"].to_numpy(), output.table["y"].to_numpy()])
        topics = _previous(spec, "topics")
        codes = _depth_one_codes(topics, output.table["_row_id"].to_numpy()) if topics else None
        # Rows added or deleted while this run worked are the next update's business: the check
        # covers the live rows committed before the graph's newest row.
        placed_ids = output.table["_row_id"].to_numpy()
        live_ids = stages.live_row_ids(store, spec)
        if len(placed_ids):
            live_ids = live_ids[live_ids <= placed_ids.max()]
        live = len(live_ids)
        yield dg.Output(
            output,
            metadata={
                "dagster/row_count": metadata.pop("rows"),
                **metadata,
                "map": dg.MetadataValue.md(png_markdown(map_thumbnail(xy, codes), "map thumbnail")),
                "map_link": dg.MetadataValue.url(link),
            },
        )
        placed = int(np.isin(live_ids, placed_ids[np.isfinite(xy).all(axis=1)]).sum())
        yield dg.AssetCheckResult(
            check_name="every_live_row_placed",
            passed=placed == live,
            metadata={"live_rows": live, "placed_rows": placed},
        )

    return projection


def _depth_one_codes(topics: StageOutput, row_ids: np.ndarray) -> np.ndarray:
    positions = positions_of(topics.table["_row_id"].to_numpy(), row_ids)
    topic_ids = topics.table["topic_id_depth_1"].to_numpy()
    return np.where(positions >= 0, topic_ids[np.maximum(positions, 0)], -1)


def _topics_asset(spec, key, common) -> dg.AssetsDefinition:
    check = dg.AssetCheckSpec("every_row_has_a_topic_at_each_depth", asset=key("topics"), blocking=True)

    @dg.asset(
        key=key("topics"),
        ins={
            "neighbour_graph": dg.AssetIn(key=key("neighbour_graph")),
            "projection": dg.AssetIn(key=key("projection")),
            "embeddings": dg.AssetIn(key=key("embeddings")),
        },
        kinds={"scikitlearn"},
        description="Topic of every row at each depth, named from the label field; topic metadata rides along.",
        check_specs=[check],
        automation_condition=FOLLOW_UPSTREAM,
        **common,
    )
    def topics(
        context: dg.AssetExecutionContext,
        store: DatasetStore,
        neighbour_graph: StageOutput,
        projection: StageOutput,
        embeddings: dict[str, StageOutput],
    ):
        rebuild = context.run.tags.get(REBUILD_TOPICS_TAG) == "true"
        output, metadata = stages.build_topics(
            store, spec, neighbour_graph, projection, embeddings, _previous(spec, "topics"), rebuild
        )
        row_ids = output.table["_row_id"].to_numpy()
        xy = stages.xy_from_output(projection, row_ids)
        codes = output.table["topic_id_depth_1"].to_numpy()
        depth_one = [t for t in output.side_data["topics"] if t["depth"] == 1]
        yield dg.Output(
            output,
            metadata={
                "dagster/row_count": metadata.pop("rows"),
                **metadata,
                "map": dg.MetadataValue.md(png_markdown(map_thumbnail(xy, codes), "map by depth-1 topic")),
                "depth_1_topics": dg.MetadataValue.md(
                    "\n".join(f"- **{t['short_description']}** ({t['size']} rows): {', '.join(t['keywords'][:6])}" for t in depth_one)
                ),
            },
        )
        depths = int(output.side_data["depths"])
        assigned = all(
            (output.table[f"topic_id_depth_{d}"].to_numpy() >= 0).all() for d in range(1, depths + 1)
        )
        yield dg.AssetCheckResult(
            check_name="every_row_has_a_topic_at_each_depth",
            passed=bool(assigned) and output.table.num_rows == len(row_ids),
            metadata={"depths": depths, "rows": output.table.num_rows},
        )

    return topics


def _duplicates_asset(spec, key, common) -> dg.AssetsDefinition:
    check = dg.AssetCheckSpec("duplicate_clusters_consistent", asset=key("duplicates"), blocking=True)

    @dg.asset(
        key=key("duplicates"),
        ins={
            "neighbour_graph": dg.AssetIn(key=key("neighbour_graph")),
            "embeddings": dg.AssetIn(key=key("embeddings")),
        },
        kinds={"numpy"},
        description="Semantic near-duplicate clusters: one retention candidate each, the rest deletion candidates.",
        check_specs=[check],
        automation_condition=FOLLOW_UPSTREAM,
        **common,
    )
    def duplicates(context: dg.AssetExecutionContext, neighbour_graph: StageOutput, embeddings: dict[str, StageOutput]):
        output, metadata = stages.build_duplicates(spec, neighbour_graph, embeddings)
        yield dg.Output(output, metadata={"dagster/row_count": metadata.pop("rows"), **metadata})
        consistent, problems = _clusters_consistent(output)
        yield dg.AssetCheckResult(
            check_name="duplicate_clusters_consistent", passed=consistent, metadata={"problems": problems}
        )

    return duplicates


def _clusters_consistent(output: StageOutput) -> tuple[bool, int]:
    """Each cluster has exactly one retention candidate and at least one deletion candidate."""
    frame = output.table.to_pandas()
    clustered = frame[frame["duplicate_class"] != "singleton"]
    problems = int((frame.loc[frame["duplicate_class"] == "singleton", "cluster_id"] >= 0).sum())
    for _, members in clustered.groupby("cluster_id"):
        retained = int((members["duplicate_class"] == "retention candidate").sum())
        problems += int(retained != 1 or len(members) < 2)
    return problems == 0, problems

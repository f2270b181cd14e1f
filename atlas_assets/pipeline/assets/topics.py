"""`topics`: the topic of every live row at each depth, named from the label field; the topics'
metadata (names, keywords, sizes, parents) rides along as side data. Where the rows' vectors come
from a text model, names are phrases ranked by meaning with that model (compute/topic_phrases.py);
otherwise (images, the user's own vectors) the first keywords.

On an update new rows join the existing topics (`topics.assign_new_rows`); the model is built afresh
on the first build and when a rebuild is asked for (run config `rebuild: true`, see RebuildConfig:
`update_indices(rebuild_topic_models=True)` and the nightly schedule set it).

Check `every_row_has_a_topic_at_each_depth` (blocking).
"""

from collections.abc import MutableMapping
from dataclasses import asdict

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from atlas_assets.compute import topics as topics_compute
from atlas_assets.compute.arrays import positions_of
from atlas_assets.compute.topic_phrases import PhraseEmbedder
from atlas_assets.pipeline.assets.common import (
    FOLLOW_UPSTREAM,
    ROW_ID,
    DatasetStore,
    RebuildConfig,
    StageOutput,
    Timer,
    free_memory_of_earlier_steps,
    graph_from_output,
    index_args,
    live_vectors,
    plain,
    xy_from_output,
)
from atlas_assets.pipeline.assets.static_table import index_embedder
from atlas_assets.pipeline.pictures import map_thumbnail, png_markdown
from atlas_assets.pipeline.spec import IndexSpec
from resources.embedder_resource import EmbedderResource

CHECK = "every_row_has_a_topic_at_each_depth"


def topics_asset(spec: IndexSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=spec.key("topics"),
        ins={
            "neighbour_graph": dg.AssetIn(key=spec.key("neighbour_graph")),
            "projection": dg.AssetIn(key=spec.key("projection")),
            "embeddings": dg.AssetIn(key=spec.key("embeddings")),
        },
        kinds={"scikitlearn"},
        description="Topic of every row at each depth, named from the label field; topic metadata rides along.",
        check_specs=[dg.AssetCheckSpec(CHECK, asset=spec.key("topics"), blocking=True)],
        automation_condition=FOLLOW_UPSTREAM,
        **index_args(spec),
    )
    def topics(
        context: dg.AssetExecutionContext,
        config: RebuildConfig,
        store: dg.ResourceParam[DatasetStore],
        embedder: EmbedderResource,
        neighbour_graph: StageOutput,
        projection: StageOutput,
        embeddings: dict[str, StageOutput],
    ):
        free_memory_of_earlier_steps()
        previous = spec.outputs.read("topics")
        output, metadata = build_topics(
            store, spec, neighbour_graph, projection, embeddings, previous, config.rebuild, phrase_embedder(spec, embedder)
        )
        row_ids = output.table[ROW_ID].to_numpy()
        xy = xy_from_output(projection, row_ids)
        codes = output.table["topic_id_depth_1"].to_numpy()
        depth_one = [t for t in output.side_data["topics"] if t["depth"] == 1]
        shown = {
            "dagster/row_count": metadata.pop("rows"),
            **metadata,
            "map": dg.MetadataValue.md(png_markdown(map_thumbnail(xy, codes), "map by depth-1 topic")),
        }
        if spec.is_public:  # topic names and keywords are words of the rows: never a private dataset's
            shown["depth_1_topics"] = dg.MetadataValue.md(
                "\n".join(f"- **{t['short_description']}** ({t['size']} rows): {', '.join(t['keywords'][:6])}" for t in depth_one)
            )
        yield dg.Output(output, metadata=shown)
        depths = int(output.side_data["depths"])
        assigned = all(
            (output.table[f"topic_id_depth_{d}"].to_numpy() >= 0).all() for d in range(1, depths + 1)
        )
        yield dg.AssetCheckResult(
            check_name=CHECK,
            passed=bool(assigned) and output.table.num_rows == len(row_ids),
            metadata={"depths": depths, "rows": output.table.num_rows},
        )

    return topics


def build_topics(
    store: DatasetStore,
    spec: IndexSpec,
    graph_output: StageOutput,
    projection_output: StageOutput,
    embeddings: MutableMapping[str, StageOutput],
    previous: StageOutput | None,
    rebuild: bool,
    embed_phrases: PhraseEmbedder | None = None,
) -> tuple[StageOutput, dict]:
    """The topics (`embeddings` is emptied as the vectors are gathered: see live_vectors)."""
    timer = Timer()
    row_ids, graph = graph_from_output(graph_output)
    xy = xy_from_output(projection_output, row_ids)
    texts = label_texts(store, spec, row_ids)
    # The vectors make each topic's representative document the member nearest its mean direction
    # in embedding space, not the one nearest its centre on the map.
    vectors = live_vectors(embeddings, row_ids, consume=True)  # the tables are freed as they are copied
    if previous is not None and not rebuild:
        previous_ids, previous_model = topic_model_from_output(previous)
        mapping = positions_of(previous_ids, row_ids)
        model = topics_compute.assign_new_rows(previous_model, mapping, graph, xy, texts, vectors)
        mode = "new rows joined existing topics"
    else:
        model = topics_compute.build_topics(
            graph, xy, texts, spec.topic_params, vectors=vectors, embed_phrases=embed_phrases
        )
        mode = "full"
    depths = model.assignments.shape[1]
    columns: dict[str, pa.Array] = {ROW_ID: pa.array(row_ids, pa.int64())}
    for depth in range(1, depths + 1):
        columns[f"topic_id_depth_{depth}"] = pa.array(model.assignments[:, depth - 1], pa.int32())
    side = {"depths": depths, "topics": [_topic_dict(topic) for topic in model.topics], "labelled": texts is not None}
    per_depth = {f"topics_at_depth_{d}": sum(1 for t in model.topics if t.depth == d) for d in range(1, depths + 1)}
    naming = "phrases ranked by meaning" if embed_phrases is not None and texts is not None else "keywords"
    metadata = {
        "rows": len(row_ids), "depths": depths, "mode": mode, "names": naming if mode == "full" else "kept",
        **per_depth, "seconds": timer.seconds,
    }
    return StageOutput(pa.table(columns), side), metadata


def phrase_embedder(spec: IndexSpec, embedder: EmbedderResource) -> PhraseEmbedder | None:
    """The model that embedded the rows, for phrases (names ranked by meaning), or None (module doc)."""
    by_meaning, _ = spec.phrase_model
    if not by_meaning or spec.label_field is None:
        return None
    return index_embedder(spec, embedder).embed_documents  # an index's fitted static table included


def label_texts(store: DatasetStore, spec: IndexSpec, row_ids: np.ndarray) -> list[str] | None:
    """The text that names each row's topic (None when the index has no label field)."""
    field = spec.label_field
    if field is None:
        return None
    rows = store.read_rows(spec.organisation, spec.slug, columns=[ROW_ID, field])
    positions = positions_of(rows[ROW_ID].to_numpy(), row_ids)
    texts = pc.fill_null(pc.cast(rows[field], pa.string()), "").to_pylist()
    return [texts[position] if position >= 0 else "" for position in positions]


def topic_model_from_output(output: StageOutput) -> tuple[np.ndarray, topics_compute.TopicModel]:
    """The row ids and the topic model of a `topics` output."""
    depths = int(output.side_data["depths"])
    assignments = np.column_stack(
        [output.table[f"topic_id_depth_{depth}"].to_numpy() for depth in range(1, depths + 1)]
    ).astype(np.int32)
    topic_list = [topics_compute.Topic(**topic) for topic in output.side_data["topics"]]
    return output.table[ROW_ID].to_numpy(), topics_compute.TopicModel(assignments=assignments, topics=topic_list)


def _topic_dict(topic: topics_compute.Topic) -> dict:
    return {key: plain(value) for key, value in asdict(topic).items()}

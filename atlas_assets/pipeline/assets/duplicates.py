"""`duplicates`: semantic near-duplicate clusters over the neighbour graph, one retention candidate
each and the rest deletion candidates (rows within `duplicate_cutoff` cosine distance are joined).

Check `duplicate_clusters_consistent` (blocking): each cluster has exactly one retention candidate
and at least one deletion candidate, and no singleton carries a cluster id.
"""

from collections.abc import MutableMapping

import dagster as dg
import pyarrow as pa

from atlas_assets.compute import duplicates as duplicates_compute
from atlas_assets.pipeline.assets.common import (
    FOLLOW_UPSTREAM,
    ROW_ID,
    StageOutput,
    Timer,
    free_memory_of_earlier_steps,
    graph_from_output,
    index_args,
    live_vectors,
)
from atlas_assets.pipeline.spec import IndexSpec

CHECK = "duplicate_clusters_consistent"


def duplicates_asset(spec: IndexSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=spec.key("duplicates"),
        ins={
            "neighbour_graph": dg.AssetIn(key=spec.key("neighbour_graph")),
            "embeddings": dg.AssetIn(key=spec.key("embeddings")),
        },
        kinds={"numpy"},
        description="Semantic near-duplicate clusters: one retention candidate each, the rest deletion candidates.",
        check_specs=[dg.AssetCheckSpec(CHECK, asset=spec.key("duplicates"), blocking=True)],
        automation_condition=FOLLOW_UPSTREAM,
        **index_args(spec),
    )
    def duplicates(context: dg.AssetExecutionContext, neighbour_graph: StageOutput, embeddings: dict[str, StageOutput]):
        free_memory_of_earlier_steps()
        output, metadata = build_duplicates(spec, neighbour_graph, embeddings)
        yield dg.Output(output, metadata={"dagster/row_count": metadata.pop("rows"), **metadata})
        consistent, problems = clusters_consistent(output)
        yield dg.AssetCheckResult(check_name=CHECK, passed=consistent, metadata={"problems": problems})

    return duplicates


def build_duplicates(
    spec: IndexSpec, graph_output: StageOutput, embeddings: MutableMapping[str, StageOutput]
) -> tuple[StageOutput, dict]:
    timer = Timer()
    cutoff = spec.duplicate_cutoff
    row_ids, graph = graph_from_output(graph_output)
    vectors = live_vectors(embeddings, row_ids, consume=True)
    result = duplicates_compute.find_duplicates(graph, vectors, cutoff=cutoff)
    table = pa.table(
        {
            ROW_ID: pa.array(row_ids, pa.int64()),
            "duplicate_class": pa.array(result.duplicate_class.astype(str), pa.string()),
            "cluster_id": pa.array(result.cluster_id, pa.int64()),
        }
    )
    classes = table["duplicate_class"].value_counts().to_pylist()
    counts = {entry["values"]: int(entry["counts"]) for entry in classes}
    metadata = {
        "rows": len(row_ids),
        "cutoff": cutoff,
        "deletion_candidates": counts.get("deletion candidate", 0),
        "retention_candidates": counts.get("retention candidate", 0),
        "seconds": timer.seconds,
    }
    return StageOutput(table, {"cutoff": cutoff}), metadata


def clusters_consistent(output: StageOutput) -> tuple[bool, int]:
    """Each cluster has exactly one retention candidate and at least one deletion candidate."""
    frame = output.table.to_pandas()
    clustered = frame[frame["duplicate_class"] != "singleton"]
    problems = int((frame.loc[frame["duplicate_class"] == "singleton", "cluster_id"] >= 0).sum())
    for _, members in clustered.groupby("cluster_id"):
        retained = int((members["duplicate_class"] == "retention candidate").sum())
        problems += int(retained != 1 or len(members) < 2)
    return problems == 0, problems

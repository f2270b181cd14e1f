"""`embeddings`: one vector per row of an upload batch (one partition per batch).

Text is embedded with the index's model (a static model with the index's fitted table, see
static_table.py), images from their blobs, and a dataset of the user's own vectors passes them
through. An index that reuses another index's embeddings (`reuse_embeddings_from_index`) copies
that index's partition instead of embedding again.

Check `rows_match_raw_and_finite` (blocking): one finite vector per row of the raw batch.
"""

import logging

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from atlas_assets.compute.arrays import arrow_to_matrix, matrix_to_arrow
from atlas_assets.pipeline.assets.common import (
    FOLLOW_UPSTREAM,
    ROW_ID,
    DatasetStore,
    StageOutput,
    Timer,
    index_args,
)
from atlas_assets.pipeline.assets.static_table import STAGE as STATIC_TABLE
from atlas_assets.pipeline.assets.static_table import (
    ensure_static_table,
    index_embedder,
    static_model_hint,
)
from atlas_assets.pipeline.spec import IndexSpec
from resources.embedder_resource import EmbedderResource

CHECK = "rows_match_raw_and_finite"
log = logging.getLogger(__name__)


def embeddings_asset(spec: IndexSpec, batches: dg.DynamicPartitionsDefinition) -> dg.AssetsDefinition:
    index, source = spec.index, spec.source_index
    model = index.embedding_model or "user vectors"
    decorator = dg.asset(
        key=spec.key("embeddings"),
        partitions_def=batches,
        deps=[] if source else [spec.names.raw_data, *([spec.key(STATIC_TABLE)] if spec.fits_static_table else [])],
        ins={"source": dg.AssetIn(key=spec.names.stage(source.asset_name, "embeddings"))} if source else None,
        kinds={"onnx" if index.modality != "embedding" else "numpy"},
        description=f"One vector per row of the batch ({model}).",
        check_specs=[dg.AssetCheckSpec(CHECK, asset=spec.key("embeddings"), blocking=True)],
        automation_condition=FOLLOW_UPSTREAM,
        pool="atlas_embedding",
        **index_args(spec),
    )

    if source is not None:

        @decorator
        def embeddings(context: dg.AssetExecutionContext, store: dg.ResourceParam[DatasetStore], source: StageOutput):
            timer = Timer()
            yield from _results(spec, store, context.partition_key, copy_embeddings(source), timer)

    else:

        @decorator
        def embeddings(
            context: dg.AssetExecutionContext, store: dg.ResourceParam[DatasetStore], embedder: EmbedderResource
        ):
            timer = Timer()
            table = embed_batch(store, embedder, spec, context.partition_key)
            yield from _results(spec, store, context.partition_key, table, timer, _table_fingerprint(spec, embedder))

    return embeddings


def embed_batch(store: DatasetStore, embedder: EmbedderResource, spec: IndexSpec, batch_id: str) -> pa.Table:
    """The embedding of every row of one upload batch, as `_row_id` + `embedding`."""
    index = spec.index
    if index.modality == "embedding":
        batch = store.read_batch(spec.organisation, spec.slug, batch_id, columns=[ROW_ID, "_embedding"])
        vectors = arrow_to_matrix(batch["_embedding"])
    elif index.modality == "image":
        batch = store.read_batch(spec.organisation, spec.slug, batch_id, columns=[ROW_ID, "_blob"])
        images = store.blob_images(spec.organisation, spec.slug, batch["_blob"].to_pylist())
        vectors = embedder.image_embedder(index.embedding_model).embed_images(images, progress=True)
    else:
        field = index.indexed_field
        if spec.fits_static_table:  # normally fitted by its own asset first; a sensor's run may come first
            ensure_static_table(store, embedder, spec)
        else:
            hint = static_model_hint(store.read_record(spec.organisation, spec.slug).total_datums, index.embedding_model)
            if hint:
                log.info(hint)
        batch = store.read_batch(spec.organisation, spec.slug, batch_id, columns=[ROW_ID, field])
        texts = pc.fill_null(pc.cast(batch[field], pa.string()), "").to_pylist()
        vectors = index_embedder(spec, embedder).embed_documents(texts, progress=True)
    return pa.table({ROW_ID: batch[ROW_ID], "embedding": matrix_to_arrow(vectors.astype(np.float32, copy=False))})


def copy_embeddings(source: StageOutput) -> pa.Table:
    """An index that reuses another index's embeddings keeps its own copy of each batch."""
    return source.table.select([ROW_ID, "embedding"])


def _table_fingerprint(spec: IndexSpec, embedder: EmbedderResource) -> str | None:
    """The fitted static table a batch was embedded with (its metadata shows it), None for other models."""
    if not spec.fits_static_table:
        return None
    return getattr(index_embedder(spec, embedder), "fingerprint", None)


def _results(spec: IndexSpec, store: DatasetStore, batch_id: str, table: pa.Table, timer: Timer, fitted: str | None = None):
    """The output with what a person reads in the UI, then the check against the raw batch."""
    raw_rows = store.read_batch(spec.organisation, spec.slug, batch_id, columns=[ROW_ID]).num_rows
    vectors = arrow_to_matrix(table["embedding"])
    finite = bool(np.isfinite(vectors).all())
    seconds = timer.seconds
    yield dg.Output(
        table,
        metadata={
            "dagster/row_count": table.num_rows,
            "dimensions": int(vectors.shape[1]) if vectors.size else 0,
            "model": spec.index.embedding_model or "user vectors",
            "seconds": seconds,
            "rows_per_second": round(table.num_rows / seconds, 1) if seconds else 0.0,
            **({"static_table": fitted} if fitted else {}),
        },
    )
    yield dg.AssetCheckResult(
        check_name=CHECK,
        passed=finite and raw_rows == table.num_rows,
        metadata={"raw_rows": raw_rows, "embedded_rows": table.num_rows, "all_finite": finite},
    )

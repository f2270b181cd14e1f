"""`static_table`: an index's static token table fitted to its own data (only for indices whose text
model is static, e.g. all-MiniLM-L6-v2-static).

A seeded sample of the dataset's rows (SAMPLE_ROWS) is embedded with the model the static one was
distilled from; the token table is fitted toward those vectors (compute/static_fit.py) and the changed
rows are written once as the index output `static_table` (resources/static_table.py). Every batch's
`embeddings` and every search of the index use that one table, so all its vectors share one space
(and one dimension: the static model's).

Fitted once per index, on the rows there when it is first needed, and kept: later batches reuse it
and are never refitted, because a new table would put the batches embedded before it in another
space. An index wanting a table fitted to today's data is created anew (create_index).

Also here: `index_embedder` (the embedder of an index's text, fitted table included) for the
embeddings, topic naming and search, and the hint that a big dataset would be faster with the static
model (`static_model_hint`).
"""


import logging

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from atlas_assets.errors import ModelError
from atlas_assets.pipeline.assets.common import ROW_ID, DatasetStore, Timer, index_args
from atlas_assets.pipeline.spec import IndexSpec
from resources.embedder_resource import EmbedderResource
from resources.index_outputs import IndexOutputs
from resources.model_registry import STATIC_TEXT_MODEL, resolve_model
from resources.static_table import (
    STAGE,
    fit_lock,
    index_text_embedder,
    read_fitted_table,
    summary,
    write_fitted_table,
)

SAMPLE_ROWS = 2000  # rows embedded with the full model to fit on (~25 s of the default model on 2 cores)
SAMPLE_SEED = 0
BIG_TEXT_DATASET_ROWS = 100_000  # above this, the default model takes hours: say the static model exists

log = logging.getLogger(__name__)


def static_table_asset(spec: IndexSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=spec.key(STAGE),
        deps=[spec.names.raw_data],
        kinds={"numpy"},
        description=f"{spec.index.embedding_model}'s token table fitted to a sample of this dataset (once per index).",
        automation_condition=dg.AutomationCondition.on_missing(),
        pool="atlas_embedding",
        **index_args(spec),
    )
    def static_table(
        context: dg.AssetExecutionContext, store: dg.ResourceParam[DatasetStore], embedder: EmbedderResource
    ) -> dg.MaterializeResult:
        details = ensure_static_table(store, embedder, spec)
        context.log.info(f"static table of {spec.index.name}: {details}")
        return dg.MaterializeResult(metadata={key: value for key, value in details.items() if not isinstance(value, dict)})

    return static_table


def embedding_outputs(spec: IndexSpec) -> IndexOutputs:
    """The outputs of the index whose model made this index's vectors (the reused index's, if any)."""
    embedded_by = spec.source_index or spec.index
    return IndexOutputs(spec.organisation, spec.slug, embedded_by.id)


def index_embedder(spec: IndexSpec, embedder: EmbedderResource):
    """The text embedder of an index: its model, with the index's fitted table when it has one."""
    _, model = spec.phrase_model
    return index_text_embedder(model, embedding_outputs(spec), base=embedder.text_embedder(model))


def ensure_static_table(store: DatasetStore, embedder: EmbedderResource, spec: IndexSpec) -> dict:
    """Fits and writes the index's table unless it exists (under a lock: concurrent batch runs fit it
    once); returns its side data, components counted (`kept`: it already existed)."""
    outputs = spec.outputs
    with fit_lock(outputs):
        found = read_fitted_table(outputs)
        if found is not None:
            return {**summary(found[2]), "kept": True}
        timer = Timer()
        model = spec.index.embedding_model
        base_name = resolve_model(model, kind="text").source.base  # type: ignore[union-attr]
        field = spec.index.indexed_field
        rows = store.read_rows(spec.organisation, spec.slug, columns=[ROW_ID, field])
        chosen = sample_positions(rows.num_rows, SAMPLE_ROWS, SAMPLE_SEED)
        texts = pc.fill_null(pc.cast(rows[field].take(pa.array(chosen)), pa.string()), "").to_pylist()
        del rows
        targets = embedder.text_embedder(base_name).embed_documents(texts)
        embedded = timer.seconds
        fitted = embedder.text_embedder(model).fit_rows(texts, targets)
        details = {
            "model": resolve_model(model, kind="text").name, "fitted_toward": base_name, "sample_rows": len(texts),
            "sample_seed": SAMPLE_SEED, "rows_changed": len(fitted.token_ids),
            "seconds_embedding_sample": embedded, "seconds": 0.0,
        }
        details["seconds"] = timer.seconds
        details["fingerprint"] = write_fitted_table(outputs, fitted.token_ids, fitted.rows, details, fitted.components)
        details["common_components_removed"] = 0 if fitted.components is None else len(fitted.components)
        log.info(f"{spec.organisation}/{spec.slug} {spec.index.name}: fitted {details['rows_changed']} token rows on "
                 f"{len(texts)} sampled rows in {details['seconds']} s")
        return {**details, "kept": False}


def sample_positions(rows: int, wanted: int, seed: int) -> np.ndarray:
    """Sorted positions of a seeded sample of `wanted` rows (all rows when there are fewer)."""
    if rows <= wanted:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, wanted, replace=False))


def static_model_hint(rows: int, model: str | None) -> str | None:
    """A line for a person when a big text dataset is embedded with a transformer model (never a switch)."""
    if rows <= BIG_TEXT_DATASET_ROWS:
        return None
    try:
        if resolve_model(model, kind="text").runtime == "static":
            return None
    except ModelError:  # an unknown model fails elsewhere with its own message
        return None
    hours = rows / 75 / 3600  # the default model: ~75 short texts/s on 2 cores (benchmarks/static_model.py)
    return (
        f"{rows:,} texts: embedding them with {resolve_model(model, kind='text').name} may take hours "
        f"(~{hours:.1f} h at the default model's ~75 texts/s on 2 cores). The fast static model is ~100x faster "
        f"with a rougher map: create_index(..., embedding_model=\"{STATIC_TEXT_MODEL}\") "
        f"(atlas index --model {STATIC_TEXT_MODEL})."
    )

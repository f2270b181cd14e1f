"""`static_table`: an index on a static model gets one fitted token table, upstream of its embeddings;
other indices get none; a batch run that comes before the table (an inbox sensor's) fits it itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from atlas_assets.compute.arrays import arrow_to_matrix
from resources.model_registry import STATIC_TEXT_MODEL
from resources.static_table import STAGE, index_text_embedder, read_fitted_table


def test_only_static_indices_get_a_table_upstream_of_their_embeddings(atlas_home: Path, shared_data) -> None:
    from atlas_assets import AtlasDataset
    from atlas_assets.pipeline.factory import build_dataset_definitions
    from atlas_assets.pipeline.spec import IndexSpec
    from tests.conftest import news_frame

    dataset = AtlasDataset("tests/static-table", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=120))
    dataset.create_index(name="fast", indexed_field="text", embedding_model=STATIC_TEXT_MODEL, topic_model=False,
                         duplicate_detection=False)
    dataset.create_index(name="full", indexed_field="text", topic_model=False, duplicate_detection=False)
    record = dataset._record()
    fast, full = (IndexSpec.of(record, index) for index in record.indices)
    assert fast.fits_static_table and not full.fits_static_table
    assets = {asset.key: asset for asset in build_dataset_definitions(record).assets}
    assert fast.key(STAGE) in assets and full.key(STAGE) not in assets
    assert assets[fast.key(STAGE)].partitions_def is None  # one table per index, not per batch
    assert fast.key(STAGE) in assets[fast.key("embeddings")].asset_deps[fast.key("embeddings")]
    assert fast.outputs.exists(STAGE) and not full.outputs.exists(STAGE)


def test_a_batch_run_before_the_table_fits_it_once(atlas_home: Path, shared_data) -> None:
    from atlas_assets import AtlasDataset
    from atlas_assets.pipeline.factory import build_dataset_definitions
    from atlas_assets.pipeline.runner import _run, default_resources
    from atlas_assets.pipeline.spec import IndexSpec
    from resources.instance import get_instance
    from tests.conftest import news_frame

    dataset = AtlasDataset("tests/static-sensor", unique_id_field="id")
    frame = news_frame(shared_data, rows=150)
    dataset.add_data(frame)
    dataset.create_index(name="fast", indexed_field="text", embedding_model=STATIC_TEXT_MODEL, topic_model=False,
                         duplicate_detection=False)
    record = dataset._record()
    spec = IndexSpec.of(record, record.indices[0])
    batch_id = record.batches[0].batch_id
    # As if the inbox sensor's run (raw_data + embeddings of the batch) came first: no table yet.
    spec.outputs.path(STAGE).unlink()
    spec.outputs.path("embeddings", batch_id).unlink()
    _run(build_dataset_definitions(record), spec.names.embed_job, [spec.names.raw_data, spec.key("embeddings")],
         default_resources(), get_instance(), batch_id)
    found = read_fitted_table(spec.outputs)
    assert found is not None and found[2]["sample_rows"] == 150
    vectors = arrow_to_matrix(spec.outputs.read("embeddings", batch_id=batch_id).table["embedding"])
    fitted = index_text_embedder(STATIC_TEXT_MODEL, spec.outputs)
    np.testing.assert_allclose(vectors, fitted.embed_documents(frame["text"].tolist()), atol=1e-5)

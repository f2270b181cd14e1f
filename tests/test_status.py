"""`atlas_assets.client.status`: what a dataset holds and what of it its maps do not show yet.

Built on the handwritten digits bundled with scikit-learn, as the user's own 64-d vectors, so the
whole pipeline runs for real in seconds (no text model).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from atlas_assets import AtlasDataset
from atlas_assets.client.status import all_statuses, dataset_status, format_status


def digits(start: int, rows: int) -> tuple[pd.DataFrame, np.ndarray]:
    data = load_digits()
    vectors = (data.data[start : start + rows] / 16.0).astype(np.float32)
    frame = pd.DataFrame(
        {"id": [f"d{i}" for i in range(start, start + rows)], "digit": [str(t) for t in data.target[start : start + rows]]}
    )
    return frame, vectors


@pytest.fixture
def digits_map(atlas_home):
    dataset = AtlasDataset("tests/digits", unique_id_field="id")
    dataset.add_data(*digits(0, 150))
    dataset.create_index(name="digits", topic_model=False, duplicate_detection=False)
    return dataset


def status_of(dataset: AtlasDataset):
    return dataset_status(dataset.store, dataset.organisation, dataset.slug)


def test_a_freshly_built_map_is_up_to_date(digits_map):
    status = status_of(digits_map)
    assert (status.rows, status.batches, status.rows_deleted, status.modality) == (150, 1, 0, "embedding")
    assert status.fields == ["id", "digit"]
    (index,) = status.indices
    assert index.rows_in_map == 150 and not index.is_stale and index.problems() == []
    assert index.stages_enabled == ["embeddings", "neighbour_graph", "projection"]
    assert index.map_link.endswith(f"/maps/tests/digits/{index.index_id}")


def test_new_batches_and_deletions_show_as_stale_until_updated(digits_map):
    digits_map.add_data(*digits(150, 20))
    digits_map.delete_data(["d0", "d1", "d2"])
    status = status_of(digits_map)
    (index,) = status.indices
    assert status.rows == 167 and status.batches == 2 and status.rows_deleted == 3
    assert len(index.batches_not_embedded) == 1
    assert index.rows_not_in_map == 20
    assert index.deleted_rows_still_in_map == 3
    assert index.rows_in_map == 147
    assert status.is_stale
    text = format_status(status)
    assert "1 batch(es) not embedded" in text and "3 deletion(s) not applied" in text
    assert "fix: atlas update tests/digits" in text

    digits_map.update_indices()
    after = status_of(digits_map)
    assert not after.is_stale and after.indices[0].rows_in_map == 167
    assert "up to date" in format_status(after)


def test_an_index_whose_outputs_are_missing_is_reported_not_built(digits_map):
    # The store names the index, but its layout output is gone (e.g. an outputs bucket was wiped).
    record = digits_map._record()
    folder = digits_map.store.index_dir(record.organisation, record.slug, record.indices[0].id)
    (folder / "projection.parquet").unlink()
    index = status_of(digits_map).indices[0]
    assert index.stages_missing == ["projection"] and index.is_stale


def test_every_dataset_is_listed_with_or_without_maps(digits_map):
    AtlasDataset("tests/empty", unique_id_field="id")
    statuses = {s.identifier: s for s in all_statuses()}
    assert set(statuses) == {"tests/digits", "tests/empty"}
    assert statuses["tests/empty"].rows == 0 and statuses["tests/empty"].indices == []
    assert "no data yet" in format_status(statuses["tests/empty"])

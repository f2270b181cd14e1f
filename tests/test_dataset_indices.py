"""create_index options, several indices, vector and image datasets, and the indexing lock."""

import threading
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from atlas_assets import AtlasDataset, NomicTopicOptions
from atlas_assets.errors import IndexNotFoundError, InvalidOptionError, ModelError
from tests.conftest import news_frame


@pytest.fixture
def news(atlas_home, shared_data):
    dataset = AtlasDataset("acme/options", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=90))
    return dataset


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "needs indexed_field"),
        ({"indexed_field": "nope"}, "'nope' is not a field"),
        ({"indexed_field": "text", "modality": "image"}, "cannot be built"),
        ({"indexed_field": "text", "reuse_embeddings_from_index": "ghost"}, "names no index"),
        ({"indexed_field": "text", "projection": {"n_neighbors": 1}}, "n_neighbors"),
        ({"indexed_field": "text", "topic_model": {"topic_label_field": "missing"}}, "'missing' is not a field"),
        ({"indexed_field": "text", "duplicate_detection": {"duplicate_cutoff": 2}}, "duplicate_cutoff"),
    ],
)
def test_bad_options_are_refused_before_anything_is_written(news, arguments, message):
    with pytest.raises(InvalidOptionError, match=message):
        news.create_index(**arguments)
    assert news.indices == []


def test_an_unknown_model_lists_the_known_ones(news):
    with pytest.raises(ModelError, match="all-MiniLM-L6-v2"):
        news.create_index(indexed_field="text", embedding_model="no-such-model")
    assert news.indices == []


def test_a_text_index_on_a_number_field_is_refused(atlas_home):
    dataset = AtlasDataset("acme/numbers", unique_id_field="id")
    dataset.add_data([{"id": str(i), "value": i} for i in range(10)])
    with pytest.raises(InvalidOptionError, match="not a text field"):
        dataset.create_index(indexed_field="value")


@pytest.mark.slow
def test_two_indices_one_reusing_the_others_embeddings(news):
    first = news.create_index(name="first", indexed_field="text", topic_model=False, duplicate_detection=False)
    second = news.create_index(
        name="second", indexed_field="text", reuse_embeddings_from_index="first",
        projection={"n_neighbors": 10, "n_epochs": 100}, topic_model=False, duplicate_detection=False,
    )
    np.testing.assert_array_equal(first.embeddings.latent, second.embeddings.latent)
    assert {m.name for m in news.maps} == {"first", "second"}
    with pytest.raises(IndexNotFoundError, match="2 maps"):
        news.get_map()
    with pytest.raises(InvalidOptionError, match="already has an index named"):
        news.create_index(name="first", indexed_field="text")


@pytest.mark.slow
def test_a_dataset_of_user_vectors_gets_topics_named_from_a_label_field(atlas_home):
    digits = load_digits()
    dataset = AtlasDataset("acme/digits", unique_id_field="id")
    # A word per digit class (number words are stop words, and never make a label).
    words = ["oval", "pencil", "swan", "trident", "sailboat", "hook", "cherry", "cliff", "snowman", "balloon"]
    frame = pd.DataFrame({"id": [str(i) for i in range(600)], "digit": [f"shape {words[d]}" for d in digits.target[:600]]})
    dataset.add_data(frame, embeddings=digits.data[:600].astype(np.float32))
    atlas_map = dataset.create_index(topic_model=NomicTopicOptions(topic_label_field="digit"))
    assert atlas_map.embeddings.latent.shape == (600, 64)
    topics = atlas_map.topics.df
    deepest = topics[[c for c in topics.columns if c.startswith("topic_depth_")][-1]]
    assert topics["topic_depth_1"].notna().all()
    # The finest topics are named by the shape words of the rows they hold.
    assert deepest.str.lower().str.contains("|".join(words)).mean() > 0.9


@pytest.mark.slow
def test_vectors_without_a_label_field_get_positional_topic_names_and_a_warning(atlas_home):
    digits = load_digits()
    dataset = AtlasDataset("acme/digits-plain", unique_id_field="id")
    dataset.add_data(pd.DataFrame({"id": [str(i) for i in range(300)]}), embeddings=digits.data[:300])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        atlas_map = dataset.create_index()
    assert any("topic_label_field" in str(w.message) for w in caught)
    assert atlas_map.topics.df["topic_depth_1"].notna().all()


@pytest.mark.slow
def test_the_dataset_refuses_writers_while_it_is_indexed(news):
    started = threading.Event()
    errors = []

    def build():
        started.set()
        try:
            news.create_index(indexed_field="text", topic_model=False, duplicate_detection=False)
        except Exception as error:  # surfaced below
            errors.append(error)

    worker = threading.Thread(target=build)
    worker.start()
    started.wait()
    deadline = time.monotonic() + 30
    while news.is_accepting_data and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not news.is_accepting_data and news.is_locked
    with news.wait_for_dataset_lock(timeout=600):
        assert not worker.is_alive() or news.is_accepting_data
    worker.join(timeout=600)
    assert not errors and news.is_accepting_data and len(news.maps) == 1


def test_delete_removes_the_dataset_its_outputs_and_its_partitions(news):
    from atlas_assets.pipeline.factory import batches_partitions
    from resources.instance import get_instance

    news.create_index(indexed_field="text", topic_model=False, duplicate_detection=False)
    record = news._record()
    partitions = batches_partitions(record).name
    assert get_instance().get_dynamic_partitions(partitions)
    folder = news._store.dataset_dir("acme", "options")
    news.delete()
    assert not folder.exists()
    assert get_instance().get_dynamic_partitions(partitions) == []
    assert AtlasDataset("acme/options", unique_id_field="id").total_datums == 0

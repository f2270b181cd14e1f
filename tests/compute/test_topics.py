"""build_topics / assign_new_rows: the hierarchy's rules, names, incremental updates, quality floors."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import adjusted_mutual_info_score
from sklearn.neighbors import NearestNeighbors, kneighbors_graph
from sklearn.preprocessing import normalize

from atlas_assets.compute.graph import NeighbourGraph
from atlas_assets.compute.topics import (
    TopicModel,
    TopicParams,
    assign_new_rows,
    build_topics,
    depth_rule,
    topic_counts,
)
from atlas_assets.errors import InvalidOptionError
from benchmarks import data

FAST = TopicParams(cluster_method="fast")
ACCURATE = TopicParams(cluster_method="accurate")


@dataclass(frozen=True)
class MapInputs:
    texts: list[str]
    labels: np.ndarray
    vectors: np.ndarray
    graph: NeighbourGraph
    xy: np.ndarray


def knn_graph(vectors: np.ndarray, k: int = 15) -> NeighbourGraph:
    distances, indices = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(vectors).kneighbors(vectors)
    return NeighbourGraph(indices[:, 1:].astype(np.int64), distances[:, 1:].astype(np.float32), "cosine")


def tfidf_map(texts: list[str], labels: np.ndarray) -> MapInputs:
    """Real texts, TF-IDF + SVD vectors (fast, deterministic), the project's kNN graph and layout."""
    tfidf = TfidfVectorizer(sublinear_tf=True, min_df=2, stop_words="english").fit_transform(texts)
    vectors = normalize(TruncatedSVD(100, random_state=0).fit_transform(tfidf)).astype(np.float32)
    return pipeline_map(texts, labels, vectors)


def pipeline_map(texts: list[str], labels: np.ndarray, vectors: np.ndarray) -> MapInputs:
    """The project's kNN graph and layout of the vectors, as the pipeline makes them."""
    from atlas_assets.compute.knn import build_graph
    from atlas_assets.compute.layout import compute_layout, resolve_layout_params

    graph = build_graph(vectors, k=15, metric="cosine", seed=0)
    xy = compute_layout(graph, resolve_layout_params(None, len(vectors)), seed=0, vectors=vectors)
    return MapInputs(texts, labels, vectors, graph, np.asarray(xy, dtype=np.float64))


@pytest.fixture(scope="module")
def banking(shared_data) -> MapInputs:
    """banking77 test: 3,080 real customer queries in 77 intents."""
    dataset = data.banking77()
    return tfidf_map(dataset.texts, dataset.labels)


@pytest.fixture(scope="module")
def banking_model(banking: MapInputs) -> TopicModel:
    return build_topics(banking.graph, banking.xy, banking.texts, FAST, vectors=banking.vectors)


def test_depth_rule_two_depths_below_2000_rows_three_from_2000() -> None:
    assert depth_rule(10) == 2 and depth_rule(1_999) == 2
    assert depth_rule(2_000) == 3 and depth_rule(1_000_000) == 3


def test_topic_counts_grow_with_depth_and_data() -> None:
    assert topic_counts(3_080, 3) == [4, 11, 55]
    assert topic_counts(1_000_000, 3) == [12, 63, 1000]
    for n_rows in (1, 5, 50, 500, 5_000, 50_000):
        counts = topic_counts(n_rows, depth_rule(n_rows))
        assert counts == sorted(counts) and 1 <= counts[0] and counts[-1] <= n_rows


def check_hierarchy(model: TopicModel, n_rows: int) -> None:
    assignments = model.assignments
    assert assignments.shape == (n_rows, model.n_depths) and assignments.dtype == np.int32
    by_id = {topic.topic_id: topic for topic in model.topics}
    assert len(by_id) == len(model.topics), "topic ids are unique across depths"
    for depth in range(1, model.n_depths + 1):
        column = assignments[:, depth - 1]
        assert all(by_id[int(t)].depth == depth for t in np.unique(column))
        sizes = np.bincount(column)
        assert all(sizes[topic.topic_id] == topic.size for topic in model.topics if topic.depth == depth)
        if depth > 1:
            parent_column = assignments[:, depth - 2]
            for topic_id in np.unique(column):
                parents = np.unique(parent_column[column == topic_id])
                assert list(parents) == [by_id[int(topic_id)].parent], "a child lies inside one parent"
        else:
            assert all(topic.parent is None for topic in model.topics if topic.depth == 1)


@pytest.mark.parametrize("enforce", [False, True])
@pytest.mark.parametrize("method", ["fast", "accurate"])
def test_every_row_has_a_topic_at_every_depth_nested_in_its_parent(
    banking: MapInputs, method: str, enforce: bool
) -> None:
    options = TopicParams(cluster_method=method, enforce_topic_hierarchy=enforce)
    model = build_topics(banking.graph, banking.xy, banking.texts, options, vectors=banking.vectors)
    check_hierarchy(model, len(banking.texts))
    assert model.n_depths == 3
    counts = [len(np.unique(model.assignments[:, d])) for d in range(3)]
    targets = topic_counts(len(banking.texts), 3)
    for count, target in zip(counts, targets, strict=True):
        assert 0.7 * target <= count <= 1.3 * target
    if enforce:
        # Every topic that holds more than one community is split (a single community cannot be).
        parents = [topic for topic in model.topics if topic.depth < 3]
        split = [sum(child.parent == topic.topic_id for child in model.topics) >= 2 for topic in parents]
        assert np.mean(split) >= 0.8


def test_fast_topics_are_contiguous_regions_of_the_map(banking: MapInputs, banking_model: TopicModel) -> None:
    """A topic is at most one connected part of a region of the map, plus possibly whole islands
    (groups the layout put apart, joined to their nearest topic); it never holds two separate parts."""
    neighbours_2d = kneighbors_graph(banking.xy, 15, include_self=False)
    _, island = connected_components(neighbours_2d, directed=False)
    for depth in (1, 2, 3):
        column = banking_model.assignments[:, depth - 1]
        for topic_id in np.unique(column):
            members = np.nonzero(column == topic_id)[0]
            _, piece = connected_components(neighbours_2d[members][:, members], directed=False)
            partial_sizes = [
                int((piece == p).sum())
                for p in range(piece.max() + 1)
                if not np.all(column[np.isin(island, island[members[piece == p]])] == topic_id)
            ]
            stray = sum(partial_sizes) - max(partial_sizes, default=0)
            assert stray <= 0.05 * len(members), (depth, topic_id, partial_sizes)


def test_labels_are_short_distinct_among_siblings_and_described(
    banking: MapInputs, banking_model: TopicModel
) -> None:
    for depth in range(1, banking_model.n_depths + 1):
        names = [t.short_description for t in banking_model.topics if t.depth == depth]
        assert len(set(names)) == len(names), f"duplicate labels at depth {depth}"
        labels = banking_model.labels(depth)
        assert labels.shape == (len(banking.texts),) and all(isinstance(label, str) for label in labels)
    for topic in banking_model.topics:
        assert 1 <= len(re.sub(r" \(\d+\)$", "", topic.short_description).replace(",", "").split()) <= 3
        assert 1 <= len(topic.keywords) <= 10
        assert topic.description.startswith("Keywords: " + ", ".join(topic.keywords[:3]))
        assert " ".join(banking.texts[topic.representative_row].split())[:40] in topic.description
        assert banking_model.assignments[topic.representative_row, topic.depth - 1] == topic.topic_id
        members = banking_model.assignments[:, topic.depth - 1] == topic.topic_id
        assert topic.centroid_x == pytest.approx(banking.xy[members, 0].mean())


def test_keywords_come_from_the_topic_texts(banking: MapInputs, banking_model: TopicModel) -> None:
    for topic in banking_model.topics:
        members = np.nonzero(banking_model.assignments[:, topic.depth - 1] == topic.topic_id)[0]
        text = " ".join(banking.texts[row].lower() for row in members)
        words = set(re.findall(r"[a-z]+", text))
        assert all(word in words for keyword in topic.keywords[:3] for word in keyword.split())


def test_without_texts_topics_are_named_by_number_and_position(banking: MapInputs) -> None:
    model = build_topics(banking.graph, banking.xy, None, FAST)
    check_hierarchy(model, len(banking.texts))
    for topic in model.topics:
        assert re.fullmatch(r"Topic \d+ \((centre|(north|south)(-(east|west))?|east|west)\)", topic.short_description)
        assert topic.keywords == []


def test_small_data_gets_two_depths_and_tiny_data_still_works(banking: MapInputs) -> None:
    rows = np.arange(300)
    model = build_topics(knn_graph(banking.vectors[rows]), banking.xy[rows], [banking.texts[r] for r in rows], FAST)
    check_hierarchy(model, 300)
    assert model.n_depths == 2
    for n_rows in (1, 2, 5):
        graph = NeighbourGraph(
            np.full((n_rows, 2), -1, np.int64), np.full((n_rows, 2), np.inf, np.float32), "cosine"
        )
        tiny = build_topics(graph, banking.xy[:n_rows], banking.texts[:n_rows], FAST)
        check_hierarchy(tiny, n_rows)


def test_same_seed_same_topics(banking: MapInputs, banking_model: TopicModel) -> None:
    again = build_topics(banking.graph, banking.xy, banking.texts, FAST, vectors=banking.vectors)
    np.testing.assert_array_equal(again.assignments, banking_model.assignments)
    assert [t.short_description for t in again.topics] == [t.short_description for t in banking_model.topics]


def test_labels_rejects_a_depth_that_does_not_exist(banking_model: TopicModel) -> None:
    with pytest.raises(InvalidOptionError, match="depth"):
        banking_model.labels(4)


def test_new_rows_join_the_topic_of_their_neighbours_and_labels_stay(banking: MapInputs) -> None:
    n_rows = len(banking.texts)
    new = np.random.default_rng(0).choice(n_rows, 150, replace=False)
    old = np.setdiff1d(np.arange(n_rows), new)
    before = build_topics(
        knn_graph(banking.vectors[old]), banking.xy[old], [banking.texts[r] for r in old], ACCURATE
    )
    previous_row = np.full(n_rows, -1)
    previous_row[old] = np.arange(len(old))
    after = assign_new_rows(before, previous_row, banking.graph, banking.xy, banking.texts)
    check_hierarchy(after, n_rows)
    np.testing.assert_array_equal(after.assignments[old], before.assignments)
    assert {t.topic_id: t.short_description for t in after.topics} == {
        t.topic_id: t.short_description for t in before.topics
    }
    # A new row lands in the topic most common among its placed neighbours.
    deepest = after.assignments[:, -1]
    old_set = set(old)
    joined_majority = []
    for row in new:
        votes = deepest[[n for n in banking.graph.neighbour_indices[row] if n in old_set]]
        if len(votes):
            joined_majority.append(np.sum(votes == deepest[row]) == np.bincount(votes).max())
    assert np.mean(joined_majority) >= 0.9
    # And new rows share their topic's main intent about as often as old rows do.
    main_intent = {
        topic: np.bincount(banking.labels[old][deepest[old] == topic]).argmax() for topic in np.unique(deepest[old])
    }
    purity = lambda rows: np.mean([main_intent[deepest[row]] == banking.labels[row] for row in rows])
    assert purity(new) >= 0.8 * purity(old)


def test_deleted_rows_drop_out_and_empty_topics_disappear(banking: MapInputs, banking_model: TopicModel) -> None:
    deepest = banking_model.assignments[:, -1]
    gone_topic = int(deepest[0])
    keep = np.nonzero(deepest != gone_topic)[0]
    previous_row = keep  # current row i is previous row keep[i]
    graph = knn_graph(banking.vectors[keep])
    after = assign_new_rows(banking_model, previous_row, graph, banking.xy[keep], [banking.texts[r] for r in keep])
    check_hierarchy(after, len(keep))
    assert gone_topic not in {t.topic_id for t in after.topics}
    np.testing.assert_array_equal(after.assignments, banking_model.assignments[keep])


def test_a_deleted_representative_is_replaced_by_the_member_nearest_the_mean_direction(
    banking: MapInputs, banking_model: TopicModel
) -> None:
    gone = {t.representative_row for t in banking_model.topics}
    keep = np.setdiff1d(np.arange(len(banking.texts)), sorted(gone))
    vectors = banking.vectors[keep]
    after = assign_new_rows(
        banking_model, keep, knn_graph(vectors), banking.xy[keep], [banking.texts[r] for r in keep], vectors
    )
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)  # a few texts are all stop words
    centre_rows = 0
    for topic in after.topics:
        members = np.nonzero(after.assignments[:, topic.depth - 1] == topic.topic_id)[0]
        assert topic.representative_row == members[np.argmax(unit[members] @ unit[members].mean(axis=0))]
        centre = banking.xy[keep][members].mean(axis=0)
        nearest_centre = members[np.argmin(((banking.xy[keep][members] - centre) ** 2).sum(axis=1))]
        centre_rows += int(topic.representative_row == nearest_centre)
    # The two rules pick different rows for most topics, so the check above tells them apart.
    assert centre_rows < 0.5 * len(after.topics)


def test_vectors_must_have_a_row_per_map_point(banking: MapInputs, banking_model: TopicModel) -> None:
    with pytest.raises(ValueError, match="vectors has 10 rows"):
        assign_new_rows(
            banking_model, np.arange(len(banking.texts)), banking.graph, banking.xy, banking.texts, banking.vectors[:10]
        )


def test_no_few_fine_topics_swallow_the_rest(banking: MapInputs) -> None:
    """Fine topics (the deepest of three depths) come out of even size: measured here, the five
    largest of 55 hold 16% of the rows; merged at modularity's own resolution (1) they held 24%
    ("fast") and 22% ("accurate")."""
    for options in (FAST, ACCURATE):
        model = build_topics(banking.graph, banking.xy, None, options)
        sizes = np.sort(np.unique(model.assignments[:, -1], return_counts=True)[1])
        assert sizes[-5:].sum() <= 0.19 * len(banking.texts), (options.cluster_method, sizes[-5:])


def test_topics_agree_with_banking77_intents(banking: MapInputs) -> None:
    """Quality floor on TF-IDF vectors (benchmarks/topics.py measures the real embeddings): the best
    depth scores AMI 0.506 ("fast") and 0.528 ("accurate") here, k-means with the true 77 classes on
    the same vectors 0.494; "fast" scored 0.500 before its merges used the embedding graph."""
    for options, floor in ((FAST, 0.49), (ACCURATE, 0.50)):
        model = build_topics(banking.graph, banking.xy, banking.texts, options, vectors=banking.vectors)
        best = max(adjusted_mutual_info_score(banking.labels, model.assignments[:, d]) for d in range(3))
        assert best >= floor, (options.cluster_method, best)


@pytest.fixture(scope="module")
def banking_embedded(shared_data) -> MapInputs:
    """banking77 embedded with the default model (all-MiniLM-L6-v2 on onnxruntime)."""
    from resources.embedder import load_text_embedder

    dataset = data.banking77()
    return pipeline_map(dataset.texts, dataset.labels, load_text_embedder().embed_documents(dataset.texts))


@pytest.mark.slow
def test_on_real_embeddings_topics_beat_kmeans_and_umap_hdbscan(banking_embedded: MapInputs) -> None:
    """The benchmark's goals as floors on banking77 (3,080 rows, 77 intents). Measured here: best
    depth AMI 0.782 "fast", 0.785 "accurate"; k-means with the true 77 classes 0.732; UMAP+HDBSCAN
    0.805 on the 91% of rows it clusters, ours on as many of our most confident rows 0.818 / 0.820
    (0.802 / 0.798 before the merges used a resolution per depth). The HDBSCAN floor leaves 0.01
    because other layout seeds put "fast" 0.003 below to 0.012 above HDBSCAN."""
    from sklearn.cluster import HDBSCAN, KMeans
    from umap import UMAP

    from benchmarks.topics import most_confident_rows

    inputs = banking_embedded
    kmeans = KMeans(77, n_init=3, random_state=0).fit_predict(inputs.vectors)
    kmeans_ami = adjusted_mutual_info_score(inputs.labels, kmeans)
    reduced = UMAP(n_components=5, n_neighbors=16, min_dist=0.0, metric="cosine", random_state=0).fit_transform(
        inputs.vectors
    )
    hdbscan = HDBSCAN(min_cluster_size=15).fit_predict(reduced)
    clustered = hdbscan >= 0
    hdbscan_ami = adjusted_mutual_info_score(inputs.labels[clustered], hdbscan[clustered])
    for options in (FAST, ACCURATE):
        model = build_topics(inputs.graph, inputs.xy, inputs.texts, options, vectors=inputs.vectors)
        best = max(adjusted_mutual_info_score(inputs.labels, column) for column in model.assignments.T)
        assert best >= kmeans_ami + 0.03, (options.cluster_method, best, kmeans_ami)
        deepest = model.assignments[:, -1]
        confident = most_confident_rows(inputs.graph, deepest, int(clustered.sum()))
        ours = adjusted_mutual_info_score(inputs.labels[confident], deepest[confident])
        assert ours >= hdbscan_ami - 0.01, (options.cluster_method, ours, hdbscan_ami)

"""The 2-D map: faithful to the neighbour graph, deterministic, stable when rows are added."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from atlas_assets.compute.graph import NeighbourGraph
from atlas_assets.compute.knn import build_graph
from atlas_assets.compute.layout import (
    LayoutOptions,
    LayoutParams,
    compute_layout,
    resolve_layout_params,
    update_layout,
    vector_start,
)
from atlas_assets.compute.quality import (
    map_neighbour_overlap,
    mean_displacement,
    neighbourhood_preservation,
    random_triplet_accuracy,
    trustworthiness_score,
)
from atlas_assets.errors import InvalidOptionError


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_digits().data.astype(np.float32)


@pytest.fixture(scope="module")
def digits_graph(digits: np.ndarray) -> NeighbourGraph:
    return build_graph(digits, k=15, metric="euclidean")


@pytest.fixture(scope="module")
def digits_map(digits: np.ndarray, digits_graph: NeighbourGraph) -> np.ndarray:
    """The pipeline's path: the vectors are given, so the map starts from their principal axes."""
    return compute_layout(digits_graph, resolve_layout_params(None, digits_graph.n_rows), seed=0, vectors=digits)


def test_the_map_is_a_finite_float32_point_per_row(digits_map: np.ndarray, digits: np.ndarray) -> None:
    assert digits_map.shape == (len(digits), 2)
    assert digits_map.dtype == np.float32
    assert np.isfinite(digits_map).all()


def test_digits_map_quality_floors(digits: np.ndarray, digits_map: np.ndarray) -> None:
    # seed 0 measures NP@10 0.489, NP@15 0.529, T(15) 0.987, triplet accuracy 0.685; umap-learn on
    # the same graph about 0.488 / 0.532 / 0.987 / 0.62 (its triplet accuracy moves by +-0.02
    # between runs); from the spectral start (no vectors) triplet accuracy is about 0.615
    assert neighbourhood_preservation(digits, digits_map, 10, "euclidean") >= 0.48
    assert neighbourhood_preservation(digits, digits_map, 15, "euclidean") >= 0.52
    assert trustworthiness_score(digits, digits_map, 15, "euclidean") >= 0.985
    assert random_triplet_accuracy(digits, digits_map, metric="euclidean") >= 0.66


def test_digits_triplet_accuracy_from_the_spectral_start_over_five_seeds(
    digits: np.ndarray, digits_graph: NeighbourGraph
) -> None:
    # guards the SGD kernel without the PCA start's help; one seed moves by +-0.01, so the mean of
    # seeds 0-4: 0.615 now, umap-learn about 0.62; taking all of an edge's attraction from the row's
    # live position (layout_kernels) gave 0.606
    params = resolve_layout_params(None, digits_graph.n_rows)
    maps = [compute_layout(digits_graph, params, seed=seed) for seed in range(5)]
    accuracies = [random_triplet_accuracy(digits, xy, metric="euclidean") for xy in maps]
    assert np.mean(accuracies) >= 0.611


def test_the_same_seed_gives_the_same_map_and_another_seed_another(
    digits: np.ndarray, digits_graph: NeighbourGraph, digits_map: np.ndarray
) -> None:
    params = resolve_layout_params(None, digits_graph.n_rows)
    assert np.array_equal(compute_layout(digits_graph, params, seed=0, vectors=digits), digits_map)
    assert not np.array_equal(compute_layout(digits_graph, params, seed=1, vectors=digits), digits_map)


def test_a_start_made_from_the_vectors_gives_the_map_of_the_vectors(
    digits: np.ndarray, digits_graph: NeighbourGraph, digits_map: np.ndarray
) -> None:
    """The pipeline gives the start and drops the vectors before the SGD: the same map."""
    params = resolve_layout_params(None, digits_graph.n_rows)
    start = vector_start(digits, params, 0, cosine=digits_graph.metric == "cosine")
    assert start is not None
    assert np.array_equal(compute_layout(digits_graph, params, seed=0, start=start), digits_map)
    with pytest.raises(InvalidOptionError, match="start must be"):
        compute_layout(digits_graph, params, seed=0, start=start[:-1])


def test_the_map_does_not_depend_on_how_many_threads_ran_it(
    digits: np.ndarray, digits_graph: NeighbourGraph, digits_map: np.ndarray
) -> None:
    import numba

    params = resolve_layout_params(None, digits_graph.n_rows)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = compute_layout(digits_graph, params, seed=0, vectors=digits)
    finally:
        numba.set_num_threads(threads)
    assert np.array_equal(single, digits_map)


def test_new_rows_far_from_every_old_row_are_still_placed() -> None:
    rng = np.random.default_rng(0)
    old = rng.normal(size=(300, 6)).astype(np.float32)
    island = (rng.normal(size=(20, 6)) + 50).astype(np.float32)  # neighbours only of each other
    vectors = np.concatenate([old, island])
    graph = build_graph(vectors, k=10, metric="euclidean")
    params = resolve_layout_params(LayoutOptions(n_neighbors=10), len(vectors))
    previous = np.full((len(vectors), 2), np.nan)
    previous[:300] = compute_layout(build_graph(old, k=10, metric="euclidean"), params)
    updated = update_layout(graph, previous, params)
    assert np.isfinite(updated).all()
    assert np.array_equal(updated[:300], previous[:300].astype(np.float32))


def test_update_holds_old_points_and_places_new_ones_among_their_neighbours(digits: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    order = rng.permutation(len(digits))
    vectors = digits[order]
    n_old = int(len(vectors) / 1.05)
    old_graph = build_graph(vectors[:n_old], k=15, metric="euclidean")
    params = resolve_layout_params(None, len(vectors))
    old_map = compute_layout(old_graph, params, seed=0)
    graph = build_graph(vectors, k=15, metric="euclidean")
    previous = np.full((len(vectors), 2), np.nan)
    previous[:n_old] = old_map
    updated = update_layout(graph, previous, params, seed=0)
    assert mean_displacement(old_map, updated[:n_old]) < 0.02
    rebuilt = compute_layout(graph, params, seed=0)
    assert neighbourhood_preservation(vectors, updated, 15, "euclidean") >= (
        neighbourhood_preservation(vectors, rebuilt, 15, "euclidean") - 0.01
    )
    assert np.isfinite(updated).all()


def test_resolved_parameters_follow_the_data_size_and_the_options() -> None:
    small = resolve_layout_params(None, 5_000)
    large = resolve_layout_params(None, 500_000)
    assert small.model == "nomic-project-v1" and large.model == "nomic-project-v2"
    assert small.n_epochs > large.n_epochs
    assert small.n_neighbors == 15
    custom = resolve_layout_params(LayoutOptions(n_neighbors=30, n_epochs=50, spread=2.0, min_dist=0.5), 1000)
    assert (custom.n_neighbors, custom.n_epochs, custom.spread, custom.min_dist) == (30, 50, 2.0, 0.5)
    assert custom.a != small.a
    v2 = resolve_layout_params(LayoutOptions(local_neighborhood_size=8, rho=2.0), 1000)
    assert v2.model == "nomic-project-v2" and v2.attraction_neighbors == 8 and v2.repulsion_strength == 2.0


def test_invalid_options_and_graph_mismatches_raise_clear_errors(digits_graph: NeighbourGraph) -> None:
    with pytest.raises(InvalidOptionError, match="nomic-project-v2"):
        resolve_layout_params(LayoutOptions(model="nomic-project-v1", rho=1.0), 1000)
    with pytest.raises(InvalidOptionError, match="must not exceed n_neighbors"):
        resolve_layout_params(LayoutOptions(n_neighbors=10, local_neighborhood_size=20), 1000)
    with pytest.raises(InvalidOptionError, match="spread"):
        resolve_layout_params(LayoutOptions(spread=0.0), 1000)
    too_many = resolve_layout_params(LayoutOptions(n_neighbors=30), 1000)
    with pytest.raises(InvalidOptionError, match="k >= 30"):
        compute_layout(digits_graph, too_many)
    params = resolve_layout_params(None, digits_graph.n_rows)
    with pytest.raises(InvalidOptionError, match="previous_xy"):
        update_layout(digits_graph, np.zeros((10, 2)), params)
    broken = NeighbourGraph(digits_graph.neighbour_indices + 5, digits_graph.neighbour_distances, "euclidean")
    with pytest.raises(InvalidOptionError, match="outside"):
        compute_layout(broken, params)
    with pytest.raises(InvalidOptionError, match="n_epochs"):
        LayoutParams(model="nomic-project-v1", n_neighbors=15, n_epochs=0, spread=1.0, min_dist=0.1, a=1.6, b=0.9)


def test_tiny_and_disconnected_inputs_still_give_a_map() -> None:
    for n in (0, 1, 2, 5):
        vectors = np.random.default_rng(n).normal(size=(n, 8)).astype(np.float32)
        graph = build_graph(vectors, k=15, metric="euclidean")
        xy = compute_layout(graph, resolve_layout_params(None, n))
        assert xy.shape == (n, 2) and np.isfinite(xy).all()
    # two far-apart blobs: a graph with two components (no spectral init possible)
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(size=(200, 5)), rng.normal(size=(200, 5)) + 100]).astype(np.float32)
    xy = compute_layout(build_graph(blobs, k=10, metric="euclidean"), resolve_layout_params(LayoutOptions(n_neighbors=10), 400))
    assert np.isfinite(xy).all()
    assert map_neighbour_overlap(xy, xy) == 1.0


def test_a_graph_listing_every_other_row_serves_a_larger_n_neighbors() -> None:
    vectors = np.random.default_rng(0).normal(size=(9, 4)).astype(np.float32)
    graph = build_graph(vectors, k=8, metric="euclidean")  # all 8 other rows
    xy = compute_layout(graph, resolve_layout_params(None, 9))  # n_neighbors 15 > k 8
    assert xy.shape == (9, 2) and np.isfinite(xy).all()


def test_disconnected_parts_are_placed_by_their_centroids_when_vectors_are_given() -> None:
    # three well separated blobs on a line: A near B, C far away; the graph has three components
    rng = np.random.default_rng(0)
    centres = np.array([[0.0] * 5, [30.0] + [0.0] * 4, [300.0] + [0.0] * 4])
    vectors = np.concatenate([rng.normal(size=(150, 5)) + centre for centre in centres]).astype(np.float32)
    graph = build_graph(vectors, k=10, metric="euclidean")
    params = resolve_layout_params(LayoutOptions(n_neighbors=10), len(vectors))
    xy = compute_layout(graph, params, vectors=vectors)
    a, b, c = (xy[i * 150 : (i + 1) * 150].mean(axis=0) for i in range(3))
    assert np.linalg.norm(a - b) < np.linalg.norm(a - c)
    assert random_triplet_accuracy(vectors, xy, metric="euclidean") > 0.8

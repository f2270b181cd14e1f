"""Quality figures: each is 1 for a perfect map / graph and drops for a scrambled one."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from atlas_assets.compute.graph import NeighbourGraph
from atlas_assets.compute.knn import build_graph
from atlas_assets.compute.quality import (
    graph_recall,
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


def test_a_map_of_2d_data_onto_itself_scores_one() -> None:
    points = np.random.default_rng(0).normal(size=(500, 2))
    assert neighbourhood_preservation(points, points, 10, "euclidean") == 1.0
    assert trustworthiness_score(points, points, 15, "euclidean") == pytest.approx(1.0)
    assert random_triplet_accuracy(points, points, metric="euclidean") == 1.0
    assert map_neighbour_overlap(points, points) == 1.0
    assert mean_displacement(points, points) == 0.0


def test_a_scrambled_map_scores_near_chance(digits: np.ndarray) -> None:
    scrambled = np.random.default_rng(0).normal(size=(len(digits), 2))
    assert neighbourhood_preservation(digits, scrambled, 15, "euclidean") < 0.05
    assert random_triplet_accuracy(digits, scrambled, metric="euclidean") == pytest.approx(0.5, abs=0.03)
    pca = PCA(2, random_state=0).fit_transform(digits)
    assert random_triplet_accuracy(digits, pca, metric="euclidean") > 0.6


def test_graph_recall_counts_the_share_of_true_neighbours_listed(digits: np.ndarray) -> None:
    graph = build_graph(digits, k=10, metric="cosine")
    assert graph_recall(graph, digits, sample=300) == 1.0
    half = graph.neighbour_indices.copy()
    half[:, 5:] = (half[:, 5:] + 7) % len(digits)  # the 5 farthest replaced by unrelated rows
    damaged = NeighbourGraph(half, graph.neighbour_distances, "cosine")
    assert graph_recall(damaged, digits, sample=300) == pytest.approx(0.5, abs=0.02)


def test_displacement_is_relative_to_the_map_extent() -> None:
    before = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 5.0]])
    assert mean_displacement(before, before + [1.0, 0.0]) == pytest.approx(0.1)


def test_misaligned_inputs_are_rejected(digits: np.ndarray) -> None:
    with pytest.raises(InvalidOptionError, match="differ in rows"):
        neighbourhood_preservation(digits, np.zeros((5, 2)))

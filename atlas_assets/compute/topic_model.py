"""What a topic hierarchy is: its parameters, its topics, every row's topic at every depth, and how
many topics each depth has (compute/topics.py builds it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from atlas_assets.errors import InvalidOptionError

THREE_DEPTHS_FROM = 2_000
_DEPTH_EXPONENTS = {1: (0.18,), 2: (0.18, 0.4), 3: (0.18, 0.3, 0.5)}
_DEPTH_CAPS = (20, 200, 1_000)


@dataclass(frozen=True)
class TopicParams:
    """How topics are built (create_index's `topic_model=` settings that reach compute).

    cluster_method: "fast" only merges regions that touch on the 2-D map (each topic is one region);
    "accurate" merges whatever is most alike in embedding space. enforce_topic_hierarchy: False cuts
    each depth at its topic count; True splits every topic into subtopics in proportion to its size.
    """

    cluster_method: Literal["fast", "accurate"] = "fast"
    enforce_topic_hierarchy: bool = False

    def __post_init__(self) -> None:
        if self.cluster_method not in ("fast", "accurate"):
            raise InvalidOptionError(f"cluster_method must be 'fast' or 'accurate', got {self.cluster_method!r}")


@dataclass(frozen=True)
class Topic:
    """One topic. topic_id is unique across depths; parent is the topic_id one depth up (None at 1)."""

    topic_id: int
    depth: int
    parent: int | None
    short_description: str
    description: str
    keywords: list[str]
    size: int
    centroid_x: float
    centroid_y: float
    representative_row: int


@dataclass(frozen=True)
class TopicModel:
    """assignments: (n_rows, n_depths) int32 topic_id of every row at depths 1..n_depths."""

    assignments: np.ndarray
    topics: list[Topic]

    @property
    def n_depths(self) -> int:
        return int(self.assignments.shape[1])

    def topic(self, topic_id: int) -> Topic:
        return self._by_id()[topic_id]

    def _by_id(self) -> dict[int, Topic]:
        return {topic.topic_id: topic for topic in self.topics}

    def labels(self, depth: int) -> np.ndarray:
        """The short description of every row's topic at `depth` (1-based), as an object array."""
        if not 1 <= depth <= self.n_depths:
            raise InvalidOptionError(f"topic depth must be from 1 to {self.n_depths}, not {depth}")
        ids = self.assignments[:, depth - 1]
        names = {topic.topic_id: topic.short_description for topic in self.topics}
        lookup = np.empty(int(ids.max()) + 1 if len(ids) else 0, dtype=object)
        for topic_id, name in names.items():
            if topic_id < len(lookup):
                lookup[topic_id] = name
        return lookup[ids] if len(ids) else np.empty(0, dtype=object)


def depth_rule(n_rows: int) -> int:
    """Two depths below 2,000 rows, three from 2,000 rows on."""
    return 3 if n_rows >= THREE_DEPTHS_FROM else 2


def topic_counts(n_rows: int, n_depths: int) -> list[int]:
    """Number of topics per depth: about n^0.18, n^0.3, n^0.5 (capped at 20, 200, 1000).

    A handful of broad regions, a few dozen themes, about a hundred fine topics. Two depths use
    n^0.18 and n^0.4. E.g. 3,080 rows: 4 / 11 / 55; 20,000: 6 / 20 / 141; 1M: 12 / 63 / 1000.
    Never more topics than rows, never fewer than at the depth above.
    """
    counts: list[int] = []
    for depth, exponent in enumerate(_DEPTH_EXPONENTS[n_depths]):
        count = int(round(max(n_rows, 1) ** exponent))
        count = min(count, _DEPTH_CAPS[depth], n_rows)
        count = max(count, counts[-1] if counts else 1, 1 if n_rows else 0)
        counts.append(count)
    return counts


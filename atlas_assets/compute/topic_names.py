"""Step 5 of topic building (compute/topics.py): every topic's name, description, keywords and
representative row; without texts, its number and where it lies on the map."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from atlas_assets.compute import keywords as kw
from atlas_assets.compute.arrays import rows_by_label
from atlas_assets.compute.topic_model import Topic

_COMPASS = ("east", "north-east", "north", "north-west", "west", "south-west", "south", "south-east")


def position_name(point: np.ndarray, low: np.ndarray, high: np.ndarray) -> str:
    """Where a point lies on a map spanning low..high: "centre" or a compass direction from the
    map's middle. The bounds are passed in: computing them per topic cost minutes at 1M rows."""
    middle = (low + high) / 2.0
    extent = max(float((high - low).max()), 1e-12)
    offset = point - middle
    if np.hypot(*offset) < extent / 6.0:
        return "centre"
    angle = np.degrees(np.arctan2(offset[1], offset[0])) % 360.0
    return _COMPASS[int(((angle + 22.5) % 360.0) // 45.0)]


def unique_names(names: list[str], alternatives: list[list[str]], sizes: list[int]) -> list[str]:
    """No two topics of a depth share a name: larger topics keep theirs, others take alternatives."""
    final = list(names)
    taken: set[str] = set()
    for index in sorted(range(len(names)), key=lambda i: (-sizes[i], i)):
        options = [names[index], *alternatives[index]]
        choice = next((option for option in options if option and option.lower() not in taken), None)
        if choice is None:
            number = 2
            while f"{names[index]} ({number})".lower() in taken:
                number += 1
            choice = f"{names[index]} ({number})"
        final[index] = choice
        taken.add(choice.lower())
    return final


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def central_member(members: np.ndarray, xy: np.ndarray, unit_vectors: np.ndarray | None) -> int:
    """Most central member of a topic: nearest to the topic's mean direction (unit_vectors: every
    row's vector scaled to length 1), or without vectors nearest its 2-D centroid."""
    if unit_vectors is not None:
        member_units = unit_vectors[members]
        return int(members[np.argmax(member_units @ member_units.mean(axis=0))])
    centre = xy[members].mean(axis=0)
    return int(members[np.argmin(((xy[members] - centre) ** 2).sum(axis=1))])


def name_topics(
    assignments: np.ndarray,
    parents: dict[int, int | None],
    xy: np.ndarray,
    texts: Sequence[str] | None,
    vectors: np.ndarray | None,
) -> list[Topic]:
    terms = kw.count_terms(texts) if texts is not None else None
    unit_vectors = None if vectors is None else unit_rows(vectors)
    low, high = xy.min(axis=0), xy.max(axis=0)
    topics: list[Topic] = []
    for depth_index in range(assignments.shape[1]):
        column = assignments[:, depth_index]
        topic_ids = np.unique(column)
        sizes = np.bincount(column, minlength=int(topic_ids.max()) + 1)
        members_of = rows_by_label(column)
        keywords_of: dict[int, list[str]] = {int(t): [] for t in topic_ids}
        if terms is not None and terms.counts.shape[1]:
            keywords_of.update(kw.depth_keywords(terms, column, {int(t): parents[int(t)] for t in topic_ids}))
        names, alternatives = [], []
        for number, topic_id in enumerate(topic_ids, start=1):
            centre = xy[members_of[int(topic_id)]].mean(axis=0)
            positional = f"Topic {number} ({position_name(centre, low, high)})"
            words = keywords_of[int(topic_id)]
            if words:
                names.append(kw.short_description(words))
                alternatives.append(
                    [kw.short_description(words[skip:]) for skip in range(1, min(len(words), 4))]
                    + [kw.short_description(words[:1] + words[skip:]) for skip in range(2, min(len(words), 5))]
                )
            else:
                names.append(positional)
                alternatives.append([])
        names = unique_names(names, alternatives, [int(sizes[t]) for t in topic_ids])
        for name, topic_id in zip(names, topic_ids, strict=True):
            members = members_of[int(topic_id)]
            centre = xy[members].mean(axis=0)
            row = central_member(members, xy, unit_vectors)
            words = keywords_of[int(topic_id)]
            topics.append(
                Topic(
                    topic_id=int(topic_id),
                    depth=depth_index + 1,
                    parent=parents[int(topic_id)],
                    short_description=name,
                    description=kw.long_description(words, texts[row] if texts is not None else None)
                    if texts is not None
                    else f"{name}: {len(members)} rows around ({centre[0]:.2f}, {centre[1]:.2f})",
                    keywords=words,
                    size=len(members),
                    centroid_x=float(centre[0]),
                    centroid_y=float(centre[1]),
                    representative_row=row,
                )
            )
    return topics

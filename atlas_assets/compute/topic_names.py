"""Step 5 of topic building (compute/topics.py): every topic's name, description, keywords and
representative row; without texts, its number and where it lies on the map."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from atlas_assets.compute import keywords as kw
from atlas_assets.compute.arrays import rows_by_label, unit_rows
from atlas_assets.compute.topic_model import Topic
from atlas_assets.compute.topic_phrases import (
    DepthContext,
    PhraseEmbedder,
    PhraseVectors,
    pick_phrases,
)

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


def unique_names(
    names: list[str], alternatives: list[list[str]], sizes: list[int], parent_names: list[str | None] | None = None
) -> list[str]:
    """No two topics of a depth share a name, and no topic is named as its parent (same words, in
    any order): larger topics keep theirs, others take alternatives."""
    final = list(names)
    taken: set[str] = set()
    for index in sorted(range(len(names)), key=lambda i: (-sizes[i], i)):
        parent = parent_names[index] if parent_names is not None else None
        options = [names[index], *alternatives[index]]
        choice = next(
            (
                option
                for option in options
                if option and option.lower() not in taken and (parent is None or not _same_words(option, parent))
            ),
            None,
        )
        if choice is None:
            number = 2
            while f"{names[index]} ({number})".lower() in taken:
                number += 1
            choice = f"{names[index]} ({number})"
        final[index] = choice
        taken.add(choice.lower())
    return final


def _same_words(first: str, second: str) -> bool:
    def words(name: str) -> set[str]:
        return {kw.singular(word) for word in name.lower().replace(",", " ").split()}

    return words(first) == words(second)


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
    embed_phrases: PhraseEmbedder | None = None,
) -> list[Topic]:
    """Every topic of every depth, named. With texts, vectors and embed_phrases (the model that made
    the vectors): names from phrases re-ranked by meaning (compute/topic_phrases.py); with texts
    only: the first keywords; without texts: the topic's number and place on the map."""
    terms = kw.count_terms(texts) if texts is not None else None
    unit_vectors = None if vectors is None else unit_rows(vectors)
    phrase_vectors = PhraseVectors(embed_phrases) if embed_phrases is not None and unit_vectors is not None else None
    low, high = xy.min(axis=0), xy.max(axis=0)
    topics: list[Topic] = []
    phrases_of: dict[int, list[str]] = {}
    names_of: dict[int, str] = {}
    directions: dict[int, np.ndarray] = {}
    sums: dict[int, np.ndarray] = {}  # summed unit vectors of each topic's rows
    contexts: dict[int, np.ndarray] = {}
    total = unit_vectors.sum(axis=0) if unit_vectors is not None else None
    for depth_index in range(assignments.shape[1]):
        column = assignments[:, depth_index]
        topic_ids = [int(t) for t in np.unique(column)]
        members_of = rows_by_label(column)
        sizes = {t: len(members_of[t]) for t in topic_ids}
        keywords_of: dict[int, list[str]] = {t: [] for t in topic_ids}
        if terms is not None and terms.counts.shape[1]:
            found = kw.depth_terms(terms, column, {t: parents[t] for t in topic_ids})
            keywords_of.update(found.keywords)
            if phrase_vectors is not None:
                assert unit_vectors is not None
                sums.update({t: unit_vectors[members_of[t]].sum(axis=0) for t in topic_ids})
                directions.update({t: _unit(sums[t]) for t in topic_ids})
                context = DepthContext(
                    directions=directions,
                    contexts={t: _sibling_context(t, parents[t], sums, total, contexts) for t in topic_ids},
                    parent_phrases={t: phrases_of.get(parents[t], []) for t in topic_ids if parents[t] is not None},
                    sibling_group={t: parents[t] for t in topic_ids},
                    sizes=sizes,
                )
                phrases_of.update(pick_phrases(found.candidates, context, phrase_vectors))
                for t in topic_ids:
                    keywords_of[t] = list(dict.fromkeys([*phrases_of[t], *keywords_of[t]]))[: kw.N_KEYWORDS]
        names = _depth_names(topic_ids, keywords_of, phrases_of, members_of, xy, low, high)
        # Positional names ("Topic 1 (centre)") number each depth afresh; only worded names are kept
        # off their parent's.
        parent_names = [
            names_of.get(parents[t]) if parents[t] is not None and keywords_of[t] else None for t in topic_ids
        ]
        names = unique_names(names[0], names[1], [sizes[t] for t in topic_ids], parent_names)
        names_of.update(zip(topic_ids, names, strict=True))
        for name, topic_id in zip(names, topic_ids, strict=True):
            members = members_of[topic_id]
            centre = xy[members].mean(axis=0)
            row = central_member(members, xy, unit_vectors)
            words = _name_first(name, keywords_of[topic_id])
            topics.append(
                Topic(
                    topic_id=topic_id,
                    depth=depth_index + 1,
                    parent=parents[topic_id],
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


def _sibling_context(
    topic: int, parent: int | None, sums: dict[int, np.ndarray], total: np.ndarray, contexts: dict[int, np.ndarray]
) -> np.ndarray:
    """What a topic is named against: the mean direction of its siblings' rows (its parent's rows, or
    at depth 1 the whole map's, without its own). A topic covering most of the map is thus set
    against the rest, not against itself. An only child takes its parent's context."""
    rest = (total if parent is None else sums[parent]) - sums[topic]
    if np.linalg.norm(rest) < 1e-6:
        context = contexts.get(parent, _unit(total)) if parent is not None else _unit(total)
    else:
        context = _unit(rest)
    contexts[topic] = context
    return context


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def _name_first(name: str, keywords: list[str]) -> list[str]:
    """The keywords, those the name is made of first (a name may be an alternative of the first pick)."""
    parts = [part.strip().lower() for part in name.split(",")]
    leading = [keyword for part in parts for keyword in keywords if keyword.lower() == part]
    return list(dict.fromkeys([*leading, *keywords]))


def _depth_names(
    topic_ids: list[int],
    keywords_of: dict[int, list[str]],
    phrases_of: dict[int, list[str]],
    members_of: dict[int, np.ndarray],
    xy: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
) -> tuple[list[str], list[list[str]]]:
    """Each topic's name and the alternatives it takes when a larger topic of its depth has the name."""
    names, alternatives = [], []
    for number, topic_id in enumerate(topic_ids, start=1):
        words = phrases_of.get(topic_id) or keywords_of[topic_id]
        if words:
            names.append(kw.short_description(words))
            alternatives.append(
                [kw.short_description(words[skip:]) for skip in range(1, min(len(words), 4))]
                + [kw.short_description(words[:1] + words[skip:]) for skip in range(2, min(len(words), 5))]
                + [kw.short_description(keywords_of[topic_id])]
            )
        else:
            centre = xy[members_of[topic_id]].mean(axis=0)
            names.append(f"Topic {number} ({position_name(centre, low, high)})")
            alternatives.append([])
    return names, alternatives

"""Topic names from phrases, re-ranked by meaning (the KeyBERT / BERTopic "KeyBERTInspired + MMR" idea,
on the map's own embedding model).

For every topic of a depth, its candidates are the best 1-2 word terms by class-based TF-IDF against
its siblings (compute/keywords.py). Each candidate phrase is embedded with the model that embedded the
rows, and scored by how close it lies to the topic's mean direction, less how close it lies to the
topic's context (the mean direction of its siblings' rows: its parent's other rows, at depth 1 the
rest of the map), plus a little of its c-TF-IDF relevance:

    score = cos(phrase, topic) - CONTEXT_WEIGHT * cos(phrase, context) + RELEVANCE_WEIGHT * relevance

The context term is what keeps filler out: a word like "man", "time" or "return" lies close to every
topic of a corpus about people or code, so it lies close to the context too and scores low, unless it
truly sets the topic apart. The name's phrases are then picked by maximal marginal relevance (each next
phrase trades its score against its similarity to the phrases already picked), with three rules:
- a child does not lead with its parent's first phrase (it would read as its parent: "Card, payment"
  under "Card, payment" becomes "Payment, reverted");
- siblings (all depth-1 topics are siblings) do not share the words of their first phrase, so names
  of one level read apart ("Card payments" and "Card delivery" become "Payment fees" and "Delivery");
- no word twice, nor its plural.
Larger topics pick first. A topic whose candidates are all ruled out keeps its best candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from atlas_assets.compute.keywords import singular

PhraseEmbedder = Callable[[list[str]], np.ndarray]
"""Embeds phrases with the model that embedded the rows: (n, dimension) vectors in input order."""

CANDIDATES = 30  # c-TF-IDF candidates re-ranked per topic
CONTEXT_WEIGHT = 0.75
RELEVANCE_WEIGHT = 0.2
MMR_SCORE_SHARE = 0.6  # each next phrase: this share of its score, the rest against likeness to picked ones
NAME_PHRASES = 4  # phrases picked per topic; the name takes the first 2-3 words of them


@dataclass(frozen=True)
class DepthContext:
    """What one depth's topics are named against: their mean directions, their contexts' directions,
    their parents' chosen phrases and which topics are siblings."""

    directions: Mapping[int, np.ndarray]
    contexts: Mapping[int, np.ndarray]
    parent_phrases: Mapping[int, Sequence[str]]
    sibling_group: Mapping[int, int | None]  # topic -> its parent (None at depth 1): same value, siblings
    sizes: Mapping[int, int]


class PhraseVectors:
    """Unit vectors of phrases, each embedded once (topics and depths share many candidates)."""

    def __init__(self, embed: PhraseEmbedder) -> None:
        self._embed = embed
        self._vectors: dict[str, np.ndarray] = {}

    def of(self, phrases: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(phrase for phrase in phrases if phrase not in self._vectors))
        if missing:
            embedded = np.asarray(self._embed(missing), dtype=np.float32)
            embedded /= np.maximum(np.linalg.norm(embedded, axis=1, keepdims=True), 1e-12)
            self._vectors.update(zip(missing, embedded, strict=True))
        if not phrases:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._vectors[phrase] for phrase in phrases])


def pick_phrases(
    candidates: Mapping[int, Sequence[tuple[str, float]]], context: DepthContext, vectors: PhraseVectors
) -> dict[int, list[str]]:
    """Up to NAME_PHRASES phrases per topic, best first (module rules)."""
    pools = {topic: list(pool[:CANDIDATES]) for topic, pool in candidates.items()}
    vectors.of([phrase for pool in pools.values() for phrase, _ in pool])  # one model call per depth
    first_words_taken: dict[int | None, set[str]] = {}
    chosen: dict[int, list[str]] = {}
    for topic in sorted(pools, key=lambda t: (-context.sizes[t], t)):
        pool = pools[topic]
        if not pool:
            chosen[topic] = []
            continue
        phrases = [phrase for phrase, _ in pool]
        phrase_vectors = vectors.of(phrases)
        scores = (
            phrase_vectors @ context.directions[topic]
            - CONTEXT_WEIGHT * (phrase_vectors @ context.contexts[topic])
            + RELEVANCE_WEIGHT * np.array([relevance for _, relevance in pool])
        )
        parent_first = {_key(phrase) for phrase in context.parent_phrases.get(topic, ())[:1]}
        taken = first_words_taken.setdefault(context.sibling_group[topic], set())
        picked = _mmr(phrases, phrase_vectors, scores, parent_first, taken)
        chosen[topic] = picked
        taken.update(_words(picked[0]))
    return chosen


def _mmr(
    phrases: list[str], phrase_vectors: np.ndarray, scores: np.ndarray, parent_first: set[str], sibling_words: set[str]
) -> list[str]:
    """MMR picks; the first phrase is neither the parent's first phrase nor shares a word with a
    sibling's first phrase, and no phrase repeats a word of one picked before it."""
    used_words: set[str] = set()
    picked: list[int] = []
    not_parent = np.array([_key(phrase) not in parent_first for phrase in phrases])
    for position in range(min(NAME_PHRASES, len(phrases))):
        value = scores.copy()
        if picked:
            likeness = (phrase_vectors @ phrase_vectors[picked].T).max(axis=1)
            value = MMR_SCORE_SHARE * scores - (1.0 - MMR_SCORE_SHARE) * likeness
        banned = used_words | (sibling_words if position == 0 else set())
        allowed = np.array([not (_words(phrase) & banned) for phrase in phrases])
        if position == 0:
            allowed &= not_parent
        allowed[picked] = False
        if not allowed.any():
            if picked:
                break
            allowed = not_parent.copy() if not_parent.any() else np.ones(len(phrases), dtype=bool)
        best = int(np.argmax(np.where(allowed, value, -np.inf)))
        picked.append(best)
        used_words |= _words(phrases[best])
    return [phrases[index] for index in picked]


def _key(phrase: str) -> str:
    return " ".join(sorted(_words(phrase)))


def _words(phrase: str) -> set[str]:
    return {singular(word) for word in phrase.lower().split()}

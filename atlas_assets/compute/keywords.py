"""Topic labels from text: keywords that set a topic apart, occur together and differ across a depth.

Rules (docs/topics_and_duplicates.md):
- Tokens are words of 2+ letters (numbers, e-mail addresses, URLs and file paths are removed first),
  lower-cased; scikit-learn's English stop words plus boilerplate of mail, news and web text
  ("subject", "writes", "article", "http", ...) never count. Unigrams and bigrams are counted; a
  bigram is a candidate only if it occurs in at least a few documents.
- A document weighs a term it holds 1 + ln(occurrences) (sublinear tf): a post that repeats "ax"
  500 times weighs 7, not 500, and a term a post is about still outweighs one it mentions once.
- Distinctive against the siblings (class-based TF-IDF): a term scores w(term, topic) / w(topic) *
  log(1 + mean w per sibling / w of the term over all siblings), w the summed weights above. A term
  frequent in the topic and rare in its siblings scores high; one common to all siblings scores low.
- Bigrams read better than their parts: a unigram is replaced by a bigram containing it (among the
  top candidates) when the bigram holds at least half of the unigram's weight; no word appears
  twice among a topic's keywords ("sharepoint, workflow", not "sharepoint, sharepoint workflow").
- Ten keywords per topic from its 60 best candidates. The first two are the two most distinctive,
  whatever other topics show (the short description is made of the first keywords). The other
  eight are picked in turns, all topics of a depth taking part, larger topics first; each pick
  maximises relevance (score / the topic's best) + coherence (mean NPMI with the keywords picked so
  far, over the topic's own documents) - 1.0 per topic of the depth already showing the term. So
  keywords occur together, and a word that tells a topic from its siblings but is spread over its
  cousins ("card", "python") is not repeated in every list of the depth.
- The short description takes the first keywords up to three words, no word twice nor as its
  plural ("Credit card, refund", not "Card, cards"); the long one lists ten keywords and quotes
  the topic's representative document.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

from atlas_assets.compute.arrays import rows_by_label

BOILERPLATE_WORDS = frozenset(
    """
    subject lines organization organisation writes wrote article re fwd fw from sender reply path
    newsgroups xref nntp posting host message id date edu com org net gov www http https html htm
    mail email e-mail cc bcc dear regards thanks thank hi hello please sincerely university
    ve ll don doesn didn isn wasn aren won wouldn couldn shouldn hasn haven hadn im ive youre dont
    cant wont just like does did got get use used using know think want need way really thing things
    new say said says let make makes good lot
    reuters ap afp upi quot lt gt amp nbsp href img src
    """.split()
)
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) | BOILERPLATE_WORDS

_HEADER_LINES = re.compile(
    r"""^(?:
    (?:from|organi[sz]ation|lines|reply-to|distribution|keywords|summary|nntp-posting-host|x-[\w-]+
      |message-id|date|sender|path|newsgroups|xref|references|article-i\.d\.|expires|followup-to
      |in-reply-to|approved|mime-version|content-[\w-]+)\s*:.*$   # whole mail / news header lines
    | .*\b(?:writes|wrote)\s*:\s*$                               # "In article <...> x writes:"
    )""",
    re.VERBOSE | re.MULTILINE | re.IGNORECASE,
)
_SUBJECT = re.compile(r"^subject\s*:\s*(?:(?:re|fwd?)\s*:\s*)*", re.MULTILINE | re.IGNORECASE)
_BOILERPLATE_PATTERNS = re.compile(
    r"""
    \S+@\S+                      # e-mail addresses and message ids
    | (?:https?://|www\.)\S+     # URLs
    | \b\S+\.(?:com|org|net|edu|gov|html?)\b\S*  # bare host names
    | (?:[/\\][\w.-]+){2,}       # file paths
    | ^[\w-]+:                   # header names at the start of a line ("From:", "Lines:")
    """,
    re.VERBOSE | re.MULTILINE,
)
_HTML_ENTITY = re.compile(r"&(?:[a-z]+|#\d+);?|#\d+;|<[^>]{0,40}>", re.IGNORECASE)
_TOKEN_PATTERN = r"(?u)\b[^\W\d_]{2,}\b"
N_KEYWORDS = 10
N_CANDIDATES = 60  # per topic: the pool its keywords are picked from
LABEL_KEYWORDS = 2  # the most distinctive terms lead whatever other topics show: they make the label
COHERENCE_WEIGHT = 1.0  # NPMI is in [-1, 1], relevance in [0, 1]
REUSE_PENALTY = 1.0  # per topic of the same depth already showing a term


def clean_text(text: str) -> str:
    """The text without addresses, URLs, paths and header names (lower-casing is the vectoriser's)."""
    text = _SUBJECT.sub("", _HEADER_LINES.sub(" ", text))
    return _HTML_ENTITY.sub(" ", _BOILERPLATE_PATTERNS.sub(" ", text))


@dataclass(frozen=True)
class TermCounts:
    """Document-term counts of the label texts: (n_rows, n_terms) CSR and the term of each column."""

    counts: sparse.csr_matrix
    terms: np.ndarray  # str per column; bigrams contain one space

    @cached_property
    def words(self) -> list[list[str]]:
        """The words of every term (a bigram has two)."""
        return [term.split(" ") for term in self.terms]

    @cached_property
    def sublinear(self) -> sparse.csr_matrix:
        """1 + ln(count) where a document holds a term: a post that repeats "ax" 500 times weighs 7."""
        weights = self.counts.copy()
        weights.data = 1.0 + np.log(weights.data)
        return weights

    @cached_property
    def presence(self) -> sparse.csr_matrix:
        """1 where a document holds a term: coherence is co-occurrence in documents."""
        present = self.counts.copy()
        present.data[:] = 1.0
        return present


def count_terms(texts: Sequence[str], max_terms: int = 50_000) -> TermCounts:
    """Unigram and bigram counts of `texts` (stop words and boilerplate removed).

    The matrix scikit-learn's CountVectorizer(min_df, max_features) gives with the same analyser, but
    only the terms that pass min_df are sorted: most bigrams occur once (20 Newsgroups: 2.6M terms),
    and sorting them all was a third of the time.
    """
    n_docs = len(texts)
    min_df = 1 if n_docs < 200 else 2 if n_docs < 5_000 else 3
    analyse = CountVectorizer(
        preprocessor=lambda text: clean_text(text or "").lower(),
        token_pattern=_TOKEN_PATTERN,
        stop_words=sorted(STOP_WORDS),
        ngram_range=(1, 2),
    ).build_analyzer()
    column_of: defaultdict[str, int] = defaultdict()
    column_of.default_factory = column_of.__len__  # a new term gets the next column
    columns: list[int] = []
    row_ends = [0]
    for text in texts:
        columns.extend(map(column_of.__getitem__, analyse(text)))
        row_ends.append(len(columns))
    counts = sparse.csr_matrix(
        (np.ones(len(columns), dtype=np.float32), np.asarray(columns, dtype=np.int64), np.asarray(row_ends)),
        shape=(n_docs, len(column_of)),
    )
    counts.sum_duplicates()
    names = np.array(list(column_of), dtype=object)
    kept = np.flatnonzero(np.bincount(counts.indices, minlength=len(names)) >= min_df)
    kept = kept[np.argsort(names[kept])]
    if len(kept) > max_terms:
        # The most frequent terms, ties as CountVectorizer breaks them (same array, same sort).
        totals = np.asarray(counts.sum(axis=0)).ravel()[kept]
        kept = kept[np.sort((-totals).argsort()[:max_terms])]
    if len(kept) == 0:  # no usable word at all (empty texts, only numbers, min_df too high)
        return TermCounts(sparse.csr_matrix((n_docs, 0), dtype=np.float32), np.array([], dtype=object))
    return TermCounts(counts[:, kept].tocsr(), names[kept])


def _sum_by_topic(matrix: sparse.csr_matrix, assignment: np.ndarray, n_topics: int) -> sparse.csr_matrix:
    """(n_topics, n_terms) sums of the rows of each topic (assignment: 0-based topic per row)."""
    n_rows = matrix.shape[0]
    membership = sparse.csr_matrix(
        (np.ones(n_rows, dtype=np.float32), (assignment, np.arange(n_rows))), shape=(n_topics, n_rows)
    )
    return (membership @ matrix).tocsr()


def class_tfidf(topic_weights: np.ndarray) -> np.ndarray:
    """Class-based TF-IDF of each term (column) per topic (row) against the other topics (rows)."""
    words_per_topic = topic_weights.sum(axis=1, keepdims=True)
    term_frequency = topic_weights / np.maximum(words_per_topic, 1.0)
    frequency_over_all = topic_weights.sum(axis=0)
    mean_words = max(float(words_per_topic.mean()), 1.0)
    inverse = np.log1p(mean_words / np.maximum(frequency_over_all, 1.0))
    return term_frequency * inverse[None, :]


def candidate_columns(scores: np.ndarray, uses: np.ndarray, words: Sequence[list[str]], n: int) -> list[int]:
    """Columns of the top `n` terms by score, bigrams preferred, no word twice (module rules).

    uses: how much the topic uses each term (weighted documents), for the bigram rule; words: the
    words of each term (TermCounts.words)."""
    order = np.flatnonzero((scores > 0) & (uses > 0))
    if len(order) > n * 6:  # a partial sort: a topic has a few hundred candidates of 50,000 terms
        order = order[np.argpartition(-scores[order], n * 6)[: n * 6]]
    order = [int(column) for column in order[np.argsort(-scores[order], kind="stable")]]
    words_of = {column: words[column] for column in order}
    bigrams_with: dict[str, list[int]] = {}  # word -> bigram columns holding it, best first
    for column in order:
        if len(set(words_of[column])) == 2:
            for word in words_of[column]:
                bigrams_with.setdefault(word, []).append(column)
    chosen: list[int] = []
    used_words: set[str] = set()
    for column in order:
        term_words = words_of[column]
        if len(set(term_words)) < len(term_words):  # "ap ap": a repeated word is markup, not a phrase
            continue
        if used_words & set(term_words):  # "card" after "credit card", or "credit card" after "card"
            continue
        if len(term_words) == 1:
            # A bigram further down that carries most of this word's uses reads better.
            better = (
                bigram
                for bigram in bigrams_with.get(term_words[0], [])
                if uses[bigram] >= 0.5 * uses[column] and not used_words & set(words_of[bigram])
            )
            column = next(better, column)
            term_words = words_of[column]
        chosen.append(column)
        used_words.update(term_words)
        if len(chosen) >= n:
            break
    return chosen


@dataclass(frozen=True)
class DepthTerms:
    """The terms of every topic of one depth: its ten keywords (module rules) and its candidate pool,
    the best c-TF-IDF terms against its siblings with their relevance (the topic's best = 1)."""

    keywords: dict[int, list[str]]
    candidates: dict[int, list[tuple[str, float]]]


def depth_keywords(
    terms: TermCounts, assignment: np.ndarray, parent_of: Mapping[int, int | None]
) -> dict[int, list[str]]:
    """Keywords of every topic of one depth (module rules).

    assignment: topic id per row; parent_of: the parent of every topic id in it (None at depth 1).
    """
    return depth_terms(terms, assignment, parent_of).keywords


def depth_terms(terms: TermCounts, assignment: np.ndarray, parent_of: Mapping[int, int | None]) -> DepthTerms:
    """Keywords and candidate pools of every topic of one depth (see depth_keywords)."""
    topic_ids = np.array(sorted(parent_of), dtype=np.int64)
    local = np.searchsorted(topic_ids, assignment)
    weight_in_topic = _sum_by_topic(terms.sublinear, local, len(topic_ids))
    members = rows_by_label(local)
    rows_of = [members.get(i, np.zeros(0, dtype=np.int64)) for i in range(len(topic_ids))]
    pools: list[_Pool] = [_Pool.empty()] * len(topic_ids)
    for siblings in _sibling_groups(topic_ids, parent_of):
        block = np.asarray(weight_in_topic[siblings].todense(), dtype=np.float64)
        if len(siblings) == 1:
            # A topic without siblings is told apart from the rest of the corpus instead.
            rest = np.asarray(terms.sublinear.sum(axis=0), dtype=np.float64) - block
            block = np.vstack([block, rest])
        scores = class_tfidf(block)
        for row, index in enumerate(siblings):
            pools[index] = _Pool.of(terms, scores[row], block[row], rows_of[index])
    larger_first = np.argsort(-np.array([len(rows) for rows in rows_of]), kind="stable")
    picked = _pick_across_depth(pools, larger_first, len(terms.terms))
    ids = [int(topic_id) for topic_id in topic_ids]
    return DepthTerms(
        keywords={topic_id: [terms.terms[c] for c in picked[i]] for i, topic_id in enumerate(ids)},
        candidates={
            topic_id: [(str(terms.terms[c]), float(r)) for c, r in zip(pools[i].columns, pools[i].relevance)]
            for i, topic_id in enumerate(ids)
        },
    )


def _sibling_groups(topic_ids: np.ndarray, parent_of: Mapping[int, int | None]) -> list[list[int]]:
    """Positions in topic_ids of the topics that share a parent (all depth-1 topics are siblings)."""
    groups: dict[int | None, list[int]] = {}
    for index, topic_id in enumerate(topic_ids):
        groups.setdefault(parent_of[int(topic_id)], []).append(index)
    return list(groups.values())


@dataclass(frozen=True)
class _Pool:
    """A topic's candidate keywords: term columns, relevance (its best = 1) and pairwise NPMI."""

    columns: np.ndarray
    relevance: np.ndarray
    npmi: np.ndarray

    @staticmethod
    def empty() -> "_Pool":
        return _Pool(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros((0, 0)))

    @staticmethod
    def of(terms: TermCounts, scores: np.ndarray, uses: np.ndarray, rows: np.ndarray) -> "_Pool":
        columns = np.array(candidate_columns(scores, uses, terms.words, N_CANDIDATES), dtype=np.int64)
        if len(columns) == 0:
            return _Pool.empty()
        relevance = scores[columns] / float(scores[columns].max())
        return _Pool(columns, relevance, _npmi(terms.presence[rows][:, columns]))


def _npmi(presence: sparse.csr_matrix) -> np.ndarray:
    """Normalised PMI of every pair of columns over the rows of `presence` (-1: never together)."""
    together = (presence.T @ presence).toarray().astype(np.float64) / max(presence.shape[0], 1)
    alone = np.maximum(np.diag(together), 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        npmi = np.log(together / np.outer(alone, alone)) / -np.log(together)
    npmi = np.where(together >= 1.0, 1.0, npmi)  # in every document: as coherent as it gets
    return np.where(together > 0, npmi, -1.0)


def _pick_across_depth(pools: list[_Pool], order: np.ndarray, n_terms: int) -> list[list[int]]:
    """N_KEYWORDS term columns per topic (module rules): the label's terms first, then in turns, in
    `order`, the candidate that is relevant, occurs with the keywords so far and few topics show."""
    picked = [list(range(min(LABEL_KEYWORDS, len(pool.columns)))) for pool in pools]  # pool positions
    shown = np.zeros(n_terms, dtype=np.float64)  # topics of this depth showing each term
    for pool, mine in zip(pools, picked, strict=True):
        shown[pool.columns[mine]] += 1
    for _ in range(LABEL_KEYWORDS, N_KEYWORDS):
        for index in order:
            pool, mine = pools[index], picked[index]
            if len(mine) == len(pool.columns):
                continue
            value = pool.relevance - REUSE_PENALTY * shown[pool.columns]
            value += COHERENCE_WEIGHT * pool.npmi[:, mine].mean(axis=1)
            value[mine] = -np.inf
            best = int(np.argmax(value))
            mine.append(best)
            shown[pool.columns[best]] += 1
    return [[int(pool.columns[p]) for p in mine] for pool, mine in zip(pools, picked, strict=True)]


def singular(word: str) -> str:
    """A plural's singular by the regular English endings: enough to see "cards" repeat "card"."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def short_description(keywords: Sequence[str], max_words: int = 3) -> str:
    """2-3 words from the first keywords, no word twice (nor its plural): "Credit card, refund", not
    "Card, cards"; "" without keywords."""
    parts: list[str] = []
    seen: set[str] = set()
    n_words = 0
    for keyword in keywords:
        words = [singular(word) for word in keyword.split(" ")]
        if seen & set(words):
            continue
        if n_words + len(words) > max_words:
            if n_words >= 2:
                break
            continue
        parts.append(keyword)
        seen.update(words)
        n_words += len(words)
        if n_words >= 2 and len(parts) >= 2:
            break
    text = ", ".join(parts)
    return text[:1].upper() + text[1:]


def excerpt(text: str, max_chars: int = 200) -> str:
    """The text on one line, cut at a word boundary near max_chars."""
    flat = " ".join(clean_text(text).split())
    if len(flat) <= max_chars:
        return flat
    cut = flat[:max_chars].rsplit(" ", 1)[0]
    return cut + "..."


def long_description(keywords: Sequence[str], representative_text: str | None) -> str:
    """Keywords plus a quote of the representative document."""
    description = "Keywords: " + ", ".join(keywords) if keywords else "No distinctive keywords"
    if representative_text:
        description += f'. Example: "{excerpt(representative_text)}"'
    return description

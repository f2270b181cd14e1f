"""Topic labels from text: distinctive keywords per topic against its siblings (class-based TF-IDF).

Rules (docs/topics_and_duplicates.md):
- Tokens are words of 2+ letters (numbers, e-mail addresses, URLs and file paths are removed first),
  lower-cased; scikit-learn's English stop words plus boilerplate of mail, news and web text
  ("subject", "writes", "article", "http", ...) never count. Unigrams and bigrams are counted; a
  bigram is a candidate only if it occurs in at least a few documents.
- Class-based TF-IDF against the siblings: a term scores tf(term, topic) / |topic words| *
  log(1 + mean words per sibling / frequency of the term over all siblings). A term frequent in the
  topic and rare in its siblings scores high; a term common to all siblings scores low.
- Bigrams read better than their parts: a unigram is replaced by a bigram containing it (among the
  top candidates) when the bigram holds at least half of the unigram's count; words of a chosen
  bigram are not repeated on their own, and a bigram is not added after one of its words was kept.
- The short description takes the first keywords up to three words ("Credit card, refund"); the
  long one lists ten keywords and quotes the topic's representative document.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

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


def clean_text(text: str) -> str:
    """The text without addresses, URLs, paths and header names (lower-casing is the vectoriser's)."""
    text = _SUBJECT.sub("", _HEADER_LINES.sub(" ", text))
    return _HTML_ENTITY.sub(" ", _BOILERPLATE_PATTERNS.sub(" ", text))


@dataclass(frozen=True)
class TermCounts:
    """Document-term counts of the label texts: (n_rows, n_terms) CSR and the term of each column."""

    counts: sparse.csr_matrix
    terms: np.ndarray  # str per column; bigrams contain one space


def count_terms(texts: Sequence[str], max_terms: int = 50_000) -> TermCounts:
    """Unigram and bigram counts of `texts` (stop words and boilerplate removed)."""
    n_docs = len(texts)
    min_df = 1 if n_docs < 200 else 2 if n_docs < 5_000 else 3
    vectoriser = CountVectorizer(
        preprocessor=lambda text: clean_text(text or "").lower(),
        token_pattern=_TOKEN_PATTERN,
        stop_words=sorted(STOP_WORDS),
        ngram_range=(1, 2),
        min_df=min_df,
        max_features=max_terms,
        dtype=np.float32,
    )
    try:
        counts = vectoriser.fit_transform(texts)
    except ValueError:  # no usable word at all (empty texts, only numbers, min_df too high)
        return TermCounts(sparse.csr_matrix((n_docs, 0), dtype=np.float32), np.array([], dtype=object))
    return TermCounts(counts.tocsr(), np.asarray(vectoriser.get_feature_names_out(), dtype=object))


def topic_term_counts(terms: TermCounts, assignment: np.ndarray, n_topics: int) -> sparse.csr_matrix:
    """(n_topics, n_terms) summed counts of the rows of each topic (assignment = topic per row, 0-based)."""
    n_rows = terms.counts.shape[0]
    membership = sparse.csr_matrix(
        (np.ones(n_rows, dtype=np.float32), (assignment, np.arange(n_rows))), shape=(n_topics, n_rows)
    )
    return (membership @ terms.counts).tocsr()


def class_tfidf(topic_counts: sparse.csr_matrix) -> np.ndarray:
    """Class-based TF-IDF of each term per topic against the other topics of the same matrix."""
    dense = np.asarray(topic_counts.todense(), dtype=np.float64)
    words_per_topic = dense.sum(axis=1, keepdims=True)
    term_frequency = dense / np.maximum(words_per_topic, 1.0)
    frequency_over_all = dense.sum(axis=0)
    mean_words = max(float(words_per_topic.mean()), 1.0)
    inverse = np.log1p(mean_words / np.maximum(frequency_over_all, 1.0))
    return term_frequency * inverse[None, :]


def pick_keywords(scores: np.ndarray, counts: np.ndarray, terms: np.ndarray, n: int = N_KEYWORDS) -> list[str]:
    """Top `n` terms of one topic with bigrams preferred where they read better (module rules)."""
    order = np.argsort(-scores, kind="stable")
    order = order[(scores[order] > 0) & (counts[order] > 0)][: n * 6]
    count_of = {terms[i]: counts[i] for i in order}
    chosen: list[str] = []
    for i in order:
        term = terms[i]
        if term in chosen:
            continue
        words = term.split(" ")
        if len(set(words)) < len(words):  # "ap ap": a repeated word is markup, not a phrase
            continue
        if len(words) == 1:
            # A bigram further down that carries most of this word's uses reads better.
            better = next(
                (
                    other
                    for other in count_of
                    if " " in other and term in other.split(" ") and count_of[other] >= 0.5 * counts[i]
                    and len(set(other.split(" "))) == 2
                    and other not in chosen
                ),
                None,
            )
            if better is not None:
                term, words = better, better.split(" ")
            elif any(term in kept.split(" ") for kept in chosen):
                continue
        elif any(word in kept.split(" ") for word in words for kept in chosen):
            # A word of this bigram was kept on its own (it is more common alone): skip the bigram.
            continue
        chosen.append(term)
        if len(chosen) >= n:
            break
    return chosen


def short_description(keywords: Sequence[str], max_words: int = 3) -> str:
    """2-3 words from the first keywords, no word twice: "Credit card, refund"; "" without keywords."""
    parts: list[str] = []
    seen: set[str] = set()
    n_words = 0
    for keyword in keywords:
        words = keyword.split(" ")
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

"""Topic keywords: boilerplate and stop words removed, distinctive terms first, bigrams preferred."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from atlas_assets.compute import keywords as kw

MAIL = """From: jdoe@cs.university.edu (John Doe)
Subject: Re: orbit insertion of the probe
Organization: Some University
Lines: 12

In article <1993Apr5.123@nasa.gov> jdoe@cs.university.edu writes:
> The probe reached orbit in 1993, see http://www.nasa.gov/missions/probe.html
The space probe reached orbit around Jupiter after 6 years; orbit insertion burn 45 minutes.
"""


def test_mail_headers_addresses_urls_and_numbers_are_not_words() -> None:
    terms = set(kw.count_terms([MAIL, MAIL]).terms)
    assert {"orbit", "probe", "space probe", "orbit insertion", "jupiter"} <= terms
    for junk in ("edu", "jdoe", "nasa", "gov", "http", "www", "html", "1993", "subject", "writes",
                 "organization", "lines", "article", "university", "45", "doe"):
        assert not any(junk in term.split() for term in terms), junk


def test_stop_words_never_count() -> None:
    terms = set(kw.count_terms(["the cat sat on the mat because it was there"] * 3).terms)
    assert terms == {"cat", "sat", "mat", "cat sat", "sat mat"}


def test_class_tfidf_ranks_terms_of_one_topic_above_terms_shared_by_all() -> None:
    # Topic 0: "bank" shared, "loan" its own. Topic 1: "bank" shared, "river" its own.
    counts = sparse.csr_matrix(np.array([[10.0, 8.0, 0.0], [10.0, 0.0, 8.0]]))
    scores = kw.class_tfidf(counts)
    assert scores[0, 1] > scores[0, 0] and scores[1, 2] > scores[1, 0]


def test_a_bigram_replaces_its_own_words_when_it_carries_them() -> None:
    terms = np.array(["credit", "card", "credit card", "refund"], dtype=object)
    scores = np.array([0.9, 0.8, 0.7, 0.5])
    counts = np.array([10.0, 12.0, 9.0, 5.0])
    assert kw.pick_keywords(scores, counts, terms) == ["credit card", "refund"]


def test_a_rare_bigram_does_not_replace_a_common_word() -> None:
    terms = np.array(["card", "refund", "card refund"], dtype=object)
    scores = np.array([0.9, 0.8, 0.3])
    counts = np.array([40.0, 20.0, 3.0])
    assert kw.pick_keywords(scores, counts, terms)[:2] == ["card", "refund"]


def test_short_description_has_two_or_three_words() -> None:
    assert kw.short_description(["credit card", "refund", "fee"]) == "Credit card, refund"
    assert kw.short_description(["orbit", "probe", "jupiter"]) == "Orbit, probe"
    assert kw.short_description(["card"]) == "Card"
    assert kw.short_description([]) == ""


def test_long_description_quotes_the_representative_document_on_one_line() -> None:
    text = kw.long_description(["orbit", "probe"], "The probe\n\nreached   orbit. " + "word " * 100)
    assert text.startswith('Keywords: orbit, probe. Example: "The probe reached orbit.')
    assert len(text) < 260 and text.endswith('..."')

"""Fixtures of the web map tests: a small real map, a running server, a real headless Chromium.

The fixture map is built from 2,000 real AG News items: TF-IDF + truncated SVD vectors, a PCA map,
k-means topics at two depths named by their top terms, near-duplicates by cosine >= 0.9, and text
search in the same vector space. It is a real `MapSource`, so the server and the viewer are exercised
exactly as with a pipeline-built map.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from atlas_assets.web.app import BackgroundServer, create_app
from atlas_assets.web.source import FrameMapSource, MapTables
from resources.tags import TagStore

CHROMIUM = os.environ.get("ATLAS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
]
PRIVATE_TOKEN = "fixture-token-0123456789abcdefghijklmnop"
WRITE_TOKEN = "fixture-write-token-0123456789abcdefghij"  # the map server's tag-writing token
WRITE = {"X-Atlas-Write-Token": WRITE_TOKEN}


@dataclass
class TableMaps:
    """The fixture map and what the tests compare against."""

    public: FrameMapSource
    private: FrameMapSource
    frame: pd.DataFrame
    index_dir: Path
    private_index_dir: Path


def _topic_names(texts: pd.Series, labels: np.ndarray, vectorizer: TfidfVectorizer, matrix) -> dict[int, str]:
    terms = np.asarray(vectorizer.get_feature_names_out())
    names: dict[int, str] = {}
    for label in np.unique(labels):
        weights = np.asarray(matrix[labels == label].mean(axis=0)).ravel()
        top = terms[np.argsort(-weights)[:2]]
        names[int(label)] = " / ".join(top)
    return names


def build_news_tables(shared_data: Path, rows: int = 2000) -> tuple[MapTables, object, pd.DataFrame]:
    """Tables of a real ag_news map, plus a vector search function over the same vectors."""
    frame = pd.read_csv(shared_data / "ag_news" / "test.csv").head(rows)
    frame["id"] = frame["id"].astype(str)
    frame["text"] = frame["title"] + ". " + frame["description"]
    vectorizer = TfidfVectorizer(stop_words="english", min_df=2, max_features=20000, sublinear_tf=True)
    tfidf = vectorizer.fit_transform(frame["text"])
    svd = TruncatedSVD(n_components=64, random_state=0)
    vectors = normalize(svd.fit_transform(tfidf)).astype(np.float32)
    xy = PCA(n_components=2, random_state=0).fit_transform(vectors)
    depth1 = KMeans(n_clusters=6, n_init=4, random_state=0).fit_predict(vectors)
    depth2 = np.zeros(len(frame), dtype=np.int64)
    for cluster in np.unique(depth1):
        members = np.flatnonzero(depth1 == cluster)
        sub = KMeans(n_clusters=3, n_init=2, random_state=0).fit_predict(vectors[members])
        depth2[members] = cluster * 3 + sub
    names1 = _topic_names(frame["text"], depth1, vectorizer, tfidf)
    names2 = _topic_names(frame["text"], depth2, vectorizer, tfidf)
    # depth-2 names must differ from their parents' to be told apart
    names2 = {k: (v if v not in names1.values() else v + " (sub)") for k, v in names2.items()}
    topics = pd.DataFrame({
        "id": frame["id"],
        "topic_depth_1": [names1[c] for c in depth1],
        "topic_depth_2": [names2[c] for c in depth2],
    })
    metadata = pd.DataFrame(
        [{"topic_id": f"1-{k}", "depth": 1, "topic_short_description": v, "topic_description": v,
          "keywords": v.split(" / "), "parent": None} for k, v in names1.items()]
        + [{"topic_id": f"2-{k}", "depth": 2, "topic_short_description": v, "topic_description": v,
            "keywords": v.split(" / "), "parent": f"1-{k // 3}"} for k, v in names2.items()]
    )
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -1)
    best = similarity.argmax(axis=1)
    is_duplicate = similarity[np.arange(len(frame)), best] >= 0.9
    duplicate_class = np.where(is_duplicate, "retention candidate", "singleton").astype(object)
    # of each duplicate pair, the later row is the deletion candidate
    rows_index = np.arange(len(frame))
    duplicate_class[is_duplicate & (best < rows_index)] = "deletion candidate"
    duplicates = pd.DataFrame({
        "id": frame["id"], "duplicate_class": duplicate_class,
        "cluster_id": np.where(is_duplicate, np.minimum(rows_index, best), -1),
    })
    tables = MapTables(
        projected=pd.DataFrame({"id": frame["id"], "x": xy[:, 0], "y": xy[:, 1]}),
        data=frame[["id", "title", "description", "label_name", "label", "text"]],
        id_field="id",
        topics=topics,
        topic_metadata=metadata,
        duplicates=duplicates,
        text_field="text",
    )

    def vector_search(queries, k: int):
        if isinstance(queries, np.ndarray):
            query_vectors = normalize(np.atleast_2d(queries))
        else:
            query_vectors = normalize(svd.transform(vectorizer.transform(list(queries))))
        scores = query_vectors @ vectors.T
        order = np.argsort(-scores, axis=1)[:, :k]
        ids = frame["id"].to_numpy()
        return [list(ids[o]) for o in order], [list(1 - scores[i, o]) for i, o in enumerate(order)]

    return tables, vector_search, frame


@pytest.fixture(scope="session")
def news_tables(shared_data: Path):
    return build_news_tables(shared_data)


@pytest.fixture
def table_map(news_tables, tmp_path: Path) -> TableMaps:
    tables, vector_search, frame = news_tables
    index_dir = tmp_path / "news-index"
    private_dir = tmp_path / "secret-index"
    public = FrameMapSource(
        "local/news/main", "local/news · main", tables,
        tags=TagStore(index_dir), vector_search=vector_search,
    )
    private = FrameMapSource(
        "local/secret/main", "local/secret · main", tables, is_public=False, token=PRIVATE_TOKEN,
        tags=TagStore(private_dir), vector_search=vector_search,
    )
    return TableMaps(public, private, frame, index_dir, private_dir)


@pytest.fixture
def map_server(table_map: TableMaps) -> Iterator[BackgroundServer]:
    server = BackgroundServer(create_app([table_map.public, table_map.private], write_token=WRITE_TOKEN))
    yield server
    server.stop()


def wait_for(page, expression: str, timeout: float = 30_000) -> None:
    """Wait until a JavaScript expression is truthy in the page.

    Polls with `page.evaluate` (DevTools evaluation) rather than `page.wait_for_function`, whose
    in-page `eval` the viewer's Content-Security-Policy rightly forbids.
    """
    deadline = time.monotonic() + timeout / 1000
    while True:
        if page.evaluate(expression):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout / 1000:.0f} s: {expression}")
        page.wait_for_timeout(50)


@pytest.fixture(scope="session")
def chromium():
    """A real headless Chromium (Debian's package) driven by Playwright."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: run scripts/install-system-deps.sh (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright starts every launch with a fresh, empty user-data-dir of its own
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.console_errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()

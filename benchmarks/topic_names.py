"""How well topic names say what a topic is about, on the labelled sets whose classes have names.

For each set: the project's map and topics (as the pipeline builds them: benchmarks.topics.map_inputs,
build_topics with the texts and vectors), the depth whose topic count is nearest the class count, and
for each topic there its name and its majority class. A topic scores when, among the embedded class
names, the one nearest its embedded name is its majority class; the figure is the share of rows in
scoring topics (topics weighted by size). Embeddings are the default text model's.

Three namings are scored on the same topics:
- `names`: the project's names (compute/topic_names.py), as a map shows them;
- `ctfidf_top_words`: plain c-TF-IDF against all topics of the depth, the two top words (BERTopic's
  default representation);
- `keywords`: the first two of the project's ten keywords (c-TF-IDF against siblings, in turns).
Also counted: children named like their parent (a word of the parent's name in the child's) and
depth-1 names sharing their head word.

    python -m benchmarks.topic_names [--sets ag_news,banking77,20newsgroups_test]

Results: benchmarks/results/topic_names.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from atlas_assets.compute import keywords as kw
from atlas_assets.compute.topics import TopicModel, TopicParams, build_topics
from benchmarks import data
from benchmarks.topics import map_inputs

RESULTS = Path(__file__).resolve().parent / "results" / "topic_names.json"

# 20 Newsgroups' group names in words (the dotted names abbreviate: comp, sci, rec, soc, talk, misc).
NEWSGROUP_NAMES = {
    "alt.atheism": "atheism",
    "comp.graphics": "computer graphics",
    "comp.os.ms-windows.misc": "microsoft windows",
    "comp.sys.ibm.pc.hardware": "ibm pc hardware",
    "comp.sys.mac.hardware": "mac hardware",
    "comp.windows.x": "x window system",
    "misc.forsale": "for sale",
    "rec.autos": "cars",
    "rec.motorcycles": "motorcycles",
    "rec.sport.baseball": "baseball",
    "rec.sport.hockey": "hockey",
    "sci.crypt": "cryptography",
    "sci.electronics": "electronics",
    "sci.med": "medicine",
    "sci.space": "space",
    "soc.religion.christian": "christianity",
    "talk.politics.guns": "gun politics",
    "talk.politics.mideast": "middle east politics",
    "talk.politics.misc": "politics",
    "talk.religion.misc": "religion",
}


def named_sets() -> dict[str, Callable[[], tuple[data.LabelledTexts, list[str]]]]:
    """Each set with the name of every class, in the order of its label codes."""
    import pandas as pd

    def ag_news() -> tuple[data.LabelledTexts, list[str]]:
        frame = pd.read_csv(data.SHARED_DATA / "ag_news" / "test.csv")
        names = frame.drop_duplicates("label").sort_values("label")["label_name"].tolist()
        return data.ag_news(), [{"Sci/Tech": "Science and technology"}.get(name, name) for name in names]

    def banking77() -> tuple[data.LabelledTexts, list[str]]:
        frame = pd.read_csv(data.SHARED_DATA / "banking77" / "test.csv")
        return data.banking77(), [name.replace("_", " ") for name in sorted(frame["category"].unique())]

    def newsgroups_test() -> tuple[data.LabelledTexts, list[str]]:
        frame = pd.read_csv(data.SHARED_DATA / "20newsgroups" / "test.csv")
        texts = (frame["subject"].fillna("") + "\n\n" + frame["body"].fillna("")).tolist()
        names = frame.drop_duplicates("label").sort_values("label")["label_name"].tolist()
        labelled = data.LabelledTexts("20newsgroups_test", texts, frame["label"].to_numpy().astype(np.int64))
        return labelled, [NEWSGROUP_NAMES[name] for name in names]

    return {"ag_news": ag_news, "banking77": banking77, "20newsgroups_test": newsgroups_test}


def nearest_class_depth(model: TopicModel, n_classes: int) -> int:
    counts = [len(np.unique(model.assignments[:, d])) for d in range(model.n_depths)]
    return int(np.argmin([abs(count - n_classes) for count in counts])) + 1


def name_score(
    names: Sequence[str], sizes: np.ndarray, majority: np.ndarray, class_vectors: np.ndarray, embed
) -> float:
    """Share of rows in topics whose name is nearest (cosine) their majority class's name."""
    name_vectors = embed(list(names))
    nearest = np.argmax(name_vectors @ class_vectors.T, axis=1)
    return float(sizes[nearest == majority].sum() / max(sizes.sum(), 1))


def ctfidf_top_words(texts: Sequence[str], column: np.ndarray, topic_ids: np.ndarray) -> list[str]:
    """BERTopic's default name: the top two c-TF-IDF words of each topic against all topics."""
    terms = kw.count_terms(texts)
    local = np.searchsorted(topic_ids, column)
    membership = np.zeros((len(topic_ids), len(texts)), dtype=np.float32)
    membership[local, np.arange(len(texts))] = 1.0
    weights = np.asarray((terms.counts.T @ membership.T).T, dtype=np.float64)
    scores = kw.class_tfidf(weights)
    return [", ".join(terms.terms[np.argsort(-row)[:2]]) for row in scores]


def parent_echoes(model: TopicModel) -> tuple[int, int, int]:
    """(children named as their parent, children sharing a word with their parent's name, pairs)."""
    by_id = {topic.topic_id: topic for topic in model.topics}
    same = shared = pairs = 0
    for topic in model.topics:
        if topic.parent is None:
            continue
        pairs += 1
        parent_name = by_id[topic.parent].short_description
        same += _words(parent_name) == _words(topic.short_description)
        shared += bool(_words(parent_name) & _words(topic.short_description))
    return same, shared, pairs


def shared_head_words(model: TopicModel) -> int:
    heads = [topic.short_description.split(",")[0].split()[0].lower() for topic in model.topics if topic.depth == 1]
    return len(heads) - len(set(heads))


def _words(name: str) -> set[str]:
    return {kw.singular(word) for word in name.lower().replace(",", " ").split()}


def evaluate(name: str, loader, embedder) -> dict:
    dataset, class_names = loader()
    vectors = data.cached_embeddings(name, dataset.texts)
    graph, xy = map_inputs(name, vectors)
    started = time.perf_counter()
    model = build_topics(
        graph, xy, dataset.texts, TopicParams(), vectors=vectors, embed_phrases=embedder.embed_documents
    )
    seconds = time.perf_counter() - started
    depth = nearest_class_depth(model, len(class_names))
    column = model.assignments[:, depth - 1]
    topics = sorted((t for t in model.topics if t.depth == depth), key=lambda t: t.topic_id)
    topic_ids = np.array([t.topic_id for t in topics])
    sizes = np.array([t.size for t in topics], dtype=np.float64)
    local = np.searchsorted(topic_ids, column)
    majority = np.array(
        [np.bincount(dataset.labels[local == i], minlength=len(class_names)).argmax() for i in range(len(topics))]
    )
    class_vectors = embedder.embed_documents(class_names)

    def score(names: Sequence[str]) -> float:
        return round(name_score(names, sizes, majority, class_vectors, embedder.embed_documents), 3)

    same, shared, pairs = parent_echoes(model)
    result = {
        "rows": len(dataset.texts),
        "classes": len(class_names),
        "depth": depth,
        "topics": len(topics),
        "names": score([t.short_description for t in topics]),
        "ctfidf_top_words": score(ctfidf_top_words(dataset.texts, column, topic_ids)),
        "keywords": score([", ".join(t.keywords[:2]) for t in topics]),
        "children_named_as_parent": same,
        "children_sharing_a_word_with_parent": shared,
        "parent_child_pairs": pairs,
        "depth_1_shared_head_words": shared_head_words(model),
        "depth_1_names": [t.short_description for t in model.topics if t.depth == 1],
        "sample_names": [t.short_description for t in sorted(topics, key=lambda t: -t.size)[:12]],
        "topics_seconds": round(seconds, 1),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="ag_news,banking77,20newsgroups_test")
    args = parser.parse_args()
    from resources.embedder import load_text_embedder

    embedder = load_text_embedder(None)
    sets = named_sets()
    report = {"sets": {}}
    if RESULTS.exists():
        report = json.loads(RESULTS.read_text())
        report.setdefault("sets", {})
    print(f"{'set':20} {'depth':>5} {'topics':>6} {'names':>6} {'c-TF-IDF':>8} {'keywords':>8} {'as parent':>9} {'a word':>7} {'heads':>5}")
    for name in args.sets.split(","):
        result = evaluate(name, sets[name], embedder)
        same, pairs = result["children_named_as_parent"], result["parent_child_pairs"]
        previous = report["sets"].get(name, {})
        if "before" in previous:
            result["before"] = previous["before"]
        report["sets"][name] = result
        print(
            f"{name:20} {result['depth']:5} {result['topics']:6} {result['names']:6.3f} "
            f"{result['ctfidf_top_words']:8.3f} {result['keywords']:8.3f} "
            f"{same:5}/{pairs:<3} {result['children_sharing_a_word_with_parent']:3}/{pairs:<3} "
            f"{result['depth_1_shared_head_words']:5}",
            flush=True,
        )
        print("   depth 1:", "; ".join(result["depth_1_names"]))
        print("   largest:", "; ".join(result["sample_names"]))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

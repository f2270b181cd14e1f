"""Topics against labelled data, keyword quality, and speed.

For each labelled set (ag_news, 20newsgroups, stackoverflow_titles, banking77), on the project's
embeddings, kNN graph (compute.knn.build_graph, k=15) and layout (compute.layout):
- build_topics with cluster_method fast / accurate: topics per depth, AMI and ARI against the labels
  (coverage 100%: every row has a topic), NPMI of each topic's top-10 keywords (document
  co-occurrence in the corpus itself) and topic diversity (unique keywords / all keywords shown);
- k-means with the true class count on the same embeddings (scikit-learn, n_init=3);
- UMAP (umap-learn, 5-d, on the same graph) + HDBSCAN (scikit-learn, min_cluster_size 15): AMI / ARI
  on the rows it clusters and its coverage. "Equal coverage" is compared two ways: our AMI on the
  rows HDBSCAN clusters, and our AMI on as many of our own most confident rows (most_confident_rows);
  HDBSCAN is also scored at 100% coverage with its noise rows joined to their neighbours' cluster.
- The spread over seeds (--seeds, default 0-3): the headline figures again with the graph, layout,
  k-means and UMAP each run with that seed, as mean (min-max): one layout's luck moves a best-depth
  AMI by up to 0.05, more than some of the differences compared here. Also against HDBSCAN at its
  own cluster count (our deepest depth cut there) as well as its coverage.
Speed: build_topics given the graph and layout on synthetic data (Gaussian mixture, 2-D layout
points) at 100k and 1M rows, without texts and (100k) with ag_news texts repeated.

Run: .venv/bin/python -m benchmarks.topics [--sets a,b] [--seeds 0,1,2,3] [--skip-speed] [--speed-only]
Writes benchmarks/results/topics.json. Inputs and reference results are cached in the bench cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from itertools import combinations
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

from atlas_assets.compute import keywords as kw
from atlas_assets.compute.graph import NeighbourGraph
from atlas_assets.compute.topics import TopicModel, TopicParams, build_topics
from benchmarks import data

RESULTS = data.REPO_ROOT / "benchmarks" / "results"
K_NEIGHBOURS = 15


def _map_code_version() -> str:
    """A digest of the graph and layout code: a cached map is reused only while that code is unchanged."""
    from atlas_assets.compute import knn, layout, layout_kernels

    sources = b"".join(Path(module.__file__).read_bytes() for module in (knn, layout, layout_kernels))
    return hashlib.sha256(sources).hexdigest()[:12]


def _seed_suffix(seed: int) -> str:
    """Cache names of seed 0 carry no suffix, so caches made before seeds were varied stay valid."""
    return f"-seed{seed}" if seed else ""


def map_inputs(name: str, vectors: np.ndarray, seed: int = 0) -> tuple[NeighbourGraph, np.ndarray]:
    """The project's kNN graph and 2-D layout of a set as the pipeline makes them (with `seed`),
    computed once and cached."""
    from atlas_assets.compute.knn import build_graph
    from atlas_assets.compute.layout import compute_layout, resolve_layout_params

    path = data.CACHE / f"map-{name}-{len(vectors)}{_seed_suffix(seed)}-{_map_code_version()}.npz"
    if path.exists():
        stored = np.load(path)
        return NeighbourGraph(stored["indices"], stored["distances"], "cosine"), stored["xy"]
    graph = build_graph(vectors, k=K_NEIGHBOURS, metric="cosine", seed=seed)
    xy = compute_layout(graph, resolve_layout_params(None, len(vectors)), seed=seed, vectors=vectors)
    data.CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, indices=graph.neighbour_indices, distances=graph.neighbour_distances, xy=xy)
    return graph, xy


def npmi_and_diversity(model: TopicModel, depth: int, terms: kw.TermCounts) -> tuple[float, float]:
    """Mean NPMI of the top-10 keyword pairs per topic, and unique / total keywords at a depth."""
    present = (terms.counts > 0).astype(np.float32).tocsc()
    column_of = {term: i for i, term in enumerate(terms.terms)}
    n_docs = present.shape[0]
    topic_scores, all_words = [], []
    for topic in (t for t in model.topics if t.depth == depth):
        words = [w for w in topic.keywords[:10] if w in column_of]
        all_words.extend(topic.keywords[:10])
        if len(words) < 2:
            continue
        columns = present[:, [column_of[w] for w in words]]
        together = (columns.T @ columns).toarray() / n_docs
        single = np.diag(together)
        pair_scores = []
        for i, j in combinations(range(len(words)), 2):
            joint = together[i, j]
            if joint <= 0:
                pair_scores.append(-1.0)
                continue
            pmi = np.log(joint / (single[i] * single[j]))
            pair_scores.append(float(pmi / -np.log(joint)) if joint < 1 else 1.0)
        topic_scores.append(float(np.mean(pair_scores)))
    diversity = len(set(all_words)) / len(all_words) if all_words else 0.0
    return (float(np.mean(topic_scores)) if topic_scores else float("nan")), diversity


def reference_clusterings(
    name: str, vectors: np.ndarray, graph: NeighbourGraph, n_classes: int, seed: int = 0
) -> dict:
    """k-means (true class count) and UMAP+HDBSCAN labels with `seed`, computed once and cached."""
    path = data.CACHE / f"topic-references-{name}-{len(vectors)}{_seed_suffix(seed)}.npz"
    if path.exists():
        stored = np.load(path)
        return {key: stored[key] for key in stored.files}
    from sklearn.cluster import HDBSCAN, KMeans

    started = time.perf_counter()
    kmeans = KMeans(n_classes, n_init=3, random_state=seed).fit_predict(vectors)
    kmeans_seconds = time.perf_counter() - started
    import umap

    started = time.perf_counter()
    knn_indices = np.column_stack([np.arange(len(vectors)), graph.neighbour_indices])
    knn_distances = np.column_stack([np.zeros(len(vectors)), graph.neighbour_distances])
    reduced = umap.UMAP(
        n_components=5, n_neighbors=K_NEIGHBOURS + 1, min_dist=0.0, metric="cosine", random_state=seed,
        precomputed_knn=(knn_indices, knn_distances),
    ).fit_transform(vectors)
    hdbscan = HDBSCAN(min_cluster_size=15).fit_predict(reduced)
    hdbscan_seconds = time.perf_counter() - started
    result = {
        "kmeans": kmeans, "hdbscan": hdbscan,
        "kmeans_seconds": np.array(kmeans_seconds), "hdbscan_seconds": np.array(hdbscan_seconds),
    }
    data.CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **result)
    return result


def most_confident_rows(graph: NeighbourGraph, topic: np.ndarray, n_keep: int) -> np.ndarray:
    """The n_keep rows most firmly inside their topic: by the share of their neighbour-graph edge
    weight (as topics.py weighs it) that stays inside the topic. Our side of "equal coverage"."""
    from atlas_assets.compute.topic_graphs import embedding_graph as _embedding_graph

    edges = _embedding_graph(graph).tocoo()
    inside = np.bincount(edges.row, edges.data * (topic[edges.row] == topic[edges.col]), minlength=len(topic))
    total = np.bincount(edges.row, edges.data, minlength=len(topic))
    return np.argsort(-inside / np.maximum(total, 1e-12), kind="stable")[:n_keep]


def filled(clusters: np.ndarray, graph: NeighbourGraph) -> np.ndarray:
    """HDBSCAN's noise rows (-1) joined to the cluster most common among their graph neighbours,
    repeatedly (rows left without any clustered neighbour go to cluster 0): 100% coverage."""
    clusters = clusters.copy()
    for _ in range(50):
        noise = np.nonzero(clusters < 0)[0]
        if not len(noise):
            break
        votes = clusters[graph.neighbour_indices[noise]]
        joined = [np.bincount(v[v >= 0]).argmax() if (v >= 0).any() else -1 for v in votes]
        if all(j < 0 for j in joined):
            break
        clusters[noise] = joined
    return np.where(clusters < 0, 0, clusters)


def _agreement(labels: np.ndarray, found: np.ndarray) -> dict:
    return {
        "ami": round(float(adjusted_mutual_info_score(labels, found)), 4),
        "ari": round(float(adjusted_rand_score(labels, found)), 4),
    }


def _method_key(options: TopicParams) -> str:
    return options.cluster_method + ("+enforce" if options.enforce_topic_hierarchy else "")


_SPREAD_FIGURES = (
    "best_ami", "kmeans_at_our_count", "on_its_rows", "own_rows", "on_its_rows_at_its_count", "own_rows_at_its_count"
)


def seed_spread(
    dataset: data.LabelledTexts, vectors: np.ndarray, options_list: list[TopicParams], seeds: list[int]
) -> dict:
    """The headline figures once per seed: our map (graph and layout) and the references (k-means,
    UMAP) all get that seed, so a difference that one seed's luck makes shows up as a spread.
    Per method, per seed: best-depth AMI, and k-means's with as many clusters as that depth has
    topics; best AMI on HDBSCAN's rows and on as many own rows, and the same two with as many
    topics at the deepest depth as HDBSCAN found clusters ("at its count": equal coverage and an
    equal number of groups)."""
    from sklearn.cluster import KMeans

    from atlas_assets.compute.topics import cluster_rows, depth_rule, topic_counts

    labels = dataset.labels
    n_classes = len(np.unique(labels))
    spread: dict = {"seeds": seeds, "kmeans_ami": [], "hdbscan_ami": [], "hdbscan_coverage": [], "methods": {}}
    for seed in seeds:
        graph, xy = map_inputs(dataset.name, vectors, seed)
        references = reference_clusterings(dataset.name, vectors, graph, n_classes, seed)
        clustered = references["hdbscan"] >= 0
        spread["kmeans_ami"].append(_agreement(labels, references["kmeans"])["ami"])
        spread["hdbscan_ami"].append(_agreement(labels[clustered], references["hdbscan"][clustered])["ami"])
        spread["hdbscan_coverage"].append(round(float(clustered.mean()), 4))
        counts = topic_counts(len(xy), depth_rule(len(xy)))
        its_count = max(int(references["hdbscan"].max()) + 1, counts[-2])
        n_clustered = int(clustered.sum())
        xy = np.asarray(xy, dtype=np.float64)

        def ami(rows: np.ndarray | slice, level: np.ndarray) -> float:
            return _agreement(labels[rows], level[rows])["ami"]

        for options in options_list:
            levels = cluster_rows(graph, xy, counts, options)
            at_its_count = cluster_rows(graph, xy, [*counts[:-1], its_count], options)[-1]
            figures = spread["methods"].setdefault(_method_key(options), {key: [] for key in _SPREAD_FIGURES})
            best = max(levels, key=lambda level: ami(slice(None), level))
            figures["best_ami"].append(ami(slice(None), best))
            same_count = KMeans(len(np.unique(best)), n_init=3, random_state=seed).fit_predict(vectors)
            figures["kmeans_at_our_count"].append(ami(slice(None), same_count))
            figures["on_its_rows"].append(max(ami(clustered, level) for level in levels))
            figures["own_rows"].append(
                max(ami(most_confident_rows(graph, level, n_clustered), level) for level in levels)
            )
            figures["on_its_rows_at_its_count"].append(ami(clustered, at_its_count))
            figures["own_rows_at_its_count"].append(
                ami(most_confident_rows(graph, at_its_count, n_clustered), at_its_count)
            )
    for figures in spread["methods"].values():
        figures["beats_kmeans_on_mean"] = bool(np.mean(figures["best_ami"]) > np.mean(spread["kmeans_ami"]))
        figures["beats_hdbscan_on_mean"] = bool(
            min(np.mean(figures["on_its_rows"]), np.mean(figures["own_rows"])) > np.mean(spread["hdbscan_ami"])
        )
    return spread


def evaluate_set(name: str, options_list: list[TopicParams], seeds: list[int] | None = None) -> dict:
    dataset = data.LABELLED_SETS[name]()
    vectors = data.cached_embeddings(name, dataset.texts)
    graph, xy = map_inputs(name, vectors)
    labels = dataset.labels
    n_classes = len(np.unique(labels))
    references = reference_clusterings(name, vectors, graph, n_classes)
    clustered = references["hdbscan"] >= 0
    n_clustered = int(clustered.sum())
    result: dict = {
        "rows": len(labels), "classes": n_classes,
        "kmeans_true_k": {**_agreement(labels, references["kmeans"]), "coverage": 1.0,
                          "seconds": round(float(references["kmeans_seconds"]), 1)},
        "umap_hdbscan": {
            **_agreement(labels[clustered], references["hdbscan"][clustered]),
            "coverage": round(float(clustered.mean()), 4),
            "clusters": int(references["hdbscan"].max() + 1),
            "filled_to_full_coverage": _agreement(labels, filled(references["hdbscan"], graph)),
            "seconds": round(float(references["hdbscan_seconds"]), 1),
        },
        "topics": {},
    }
    terms = kw.count_terms(dataset.texts)
    for options in options_list:
        key = _method_key(options)
        started = time.perf_counter()
        model = build_topics(graph, xy, dataset.texts, options, seed=0, vectors=vectors)
        seconds = time.perf_counter() - started
        depths = []
        for depth in range(1, model.n_depths + 1):
            column = model.assignments[:, depth - 1]
            npmi, diversity = npmi_and_diversity(model, depth, terms)
            depths.append({
                "depth": depth, "topics": int(len(np.unique(column))), **_agreement(labels, column),
                "coverage": 1.0,
                "ami_on_hdbscan_rows": round(float(adjusted_mutual_info_score(labels[clustered], column[clustered])), 4),
                "ami_own_rows_at_hdbscan_coverage": _agreement(
                    labels[confident := most_confident_rows(graph, column, n_clustered)], column[confident]
                )["ami"],
                "npmi_top10": round(npmi, 4), "diversity_top10": round(diversity, 4),
                "example_labels": [t.short_description for t in model.topics if t.depth == depth][:6],
            })
        best = max(depths, key=lambda d: d["ami"])
        result["topics"][key] = {
            "seconds": round(seconds, 1), "depths": depths, "best_depth": best["depth"],
            "best_ami": best["ami"],
            "beats_kmeans": best["ami"] > result["kmeans_true_k"]["ami"],
            "beats_hdbscan_on_its_rows": max(d["ami_on_hdbscan_rows"] for d in depths)
            > result["umap_hdbscan"]["ami"],
            "beats_hdbscan_on_own_rows_at_equal_coverage": max(d["ami_own_rows_at_hdbscan_coverage"] for d in depths)
            > result["umap_hdbscan"]["ami"],
            "beats_hdbscan_filled_at_full_coverage": best["ami"]
            > result["umap_hdbscan"]["filled_to_full_coverage"]["ami"],
        }
    if seeds:
        result["seed_spread"] = seed_spread(dataset, vectors, options_list, seeds)
    return result


def synthetic_map(n_rows: int, seed: int = 0) -> tuple[NeighbourGraph, np.ndarray]:
    """A 2-D Gaussian mixture (200 blobs) standing in for a layout, and its exact 2-D kNN graph."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 20, (200, 2))
    xy = (centres[rng.integers(0, 200, n_rows)] + rng.normal(0, 1, (n_rows, 2))).astype(np.float32)
    distances, indices = cKDTree(xy).query(xy, K_NEIGHBOURS + 1)
    return NeighbourGraph(indices[:, 1:].astype(np.int64), distances[:, 1:].astype(np.float32), "euclidean"), xy


def speed(sizes: list[int]) -> list[dict]:
    rows = []
    texts_pool = data.ag_news().texts
    for n_rows in sizes:
        graph, xy = synthetic_map(n_rows)
        for method in ("fast", "accurate"):
            started = time.perf_counter()
            model = build_topics(graph, xy, None, TopicParams(cluster_method=method))
            rows.append({"rows": n_rows, "method": method, "texts": False,
                         "seconds": round(time.perf_counter() - started, 1),
                         "topics_per_depth": [int(len(np.unique(c))) for c in model.assignments.T]})
            print(rows[-1], flush=True)
        if n_rows <= 100_000:
            texts = [texts_pool[i % len(texts_pool)] for i in range(n_rows)]
            started = time.perf_counter()
            build_topics(graph, xy, texts, TopicParams())
            rows.append({"rows": n_rows, "method": "fast", "texts": True,
                         "seconds": round(time.perf_counter() - started, 1)})
            print(rows[-1], flush=True)
    return rows


def _print_spread(name: str, spread: dict) -> None:
    def summary(values: list[float]) -> str:
        return f"{np.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"

    print(f"{name:22} seeds {spread['seeds']}: k-means {summary(spread['kmeans_ami'])}, "
          f"UMAP+HDBSCAN {summary(spread['hdbscan_ami'])}")
    for key, figures in spread["methods"].items():
        print(f"{name:22} {key:16} best {summary(figures['best_ami'])} (k-means at that count "
              f"{summary(figures['kmeans_at_our_count'])})  on its rows "
              f"{summary(figures['on_its_rows'])}  own rows {summary(figures['own_rows'])}  at its count: "
              f"{summary(figures['on_its_rows_at_its_count'])} / {summary(figures['own_rows_at_its_count'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(data.LABELLED_SETS))
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--speed-sizes", default="100000,1000000")
    parser.add_argument("--seeds", default="0,1,2,3",
                        help="seeds of the map and the references for the spread of the headline figures")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "topics.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    report["machine"] = {"cores": 2, "python": platform.python_version(),
                         "note": "shared 2-core machine, other jobs running: times are noisy"}
    options_list = [
        TopicParams(cluster_method="fast"),
        TopicParams(cluster_method="accurate"),
        TopicParams(cluster_method="fast", enforce_topic_hierarchy=True),
    ]
    if not args.speed_only:
        report.setdefault("sets", {})
        print(f"{'set':22} {'method':16} {'depth':>5} {'topics':>6} {'AMI':>6} {'ARI':>6} {'NPMI':>6} {'div':>5}"
              f" {'AMI@HD':>6} {'AMI@own':>7}")
        for name in args.sets.split(","):
            result = evaluate_set(name, options_list, [int(seed) for seed in args.seeds.split(",") if seed])
            report["sets"][name] = result
            for key, value in result["topics"].items():
                for d in value["depths"]:
                    print(f"{name:22} {key:16} {d['depth']:5} {d['topics']:6} {d['ami']:6.3f} {d['ari']:6.3f} "
                          f"{d['npmi_top10']:6.3f} {d['diversity_top10']:5.2f} {d['ami_on_hdbscan_rows']:6.3f}"
                          f" {d['ami_own_rows_at_hdbscan_coverage']:7.3f}")
            km, hd = result["kmeans_true_k"], result["umap_hdbscan"]
            print(f"{name:22} {'k-means true k':16} {'':5} {result['classes']:6} {km['ami']:6.3f} {km['ari']:6.3f}")
            print(f"{name:22} {'umap+hdbscan':16} {'':5} {hd['clusters']:6} {hd['ami']:6.3f} {hd['ari']:6.3f}"
                  f"  coverage {hd['coverage']:.2f}; filled to 100%: AMI {hd['filled_to_full_coverage']['ami']:.3f}")
            if "seed_spread" in result:
                _print_spread(name, result["seed_spread"])
            path.write_text(json.dumps(report, indent=1))
    if not args.skip_speed:
        report["speed"] = speed([int(s) for s in args.speed_sizes.split(",")])
        path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

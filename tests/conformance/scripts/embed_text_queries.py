"""Query vectors from embed.text, then vector search on a map (nomic's "search your map" docs)."""

import os

import numpy as np
import pandas as pd

from atlas_assets import AtlasDataset, embed  # was: from nomic import AtlasDataset, embed

DATA = os.environ.get("ATLAS_SHARED_DATA", "/work/shared/data")

questions = pd.read_csv(f"{DATA}/stackoverflow_titles/stackoverflow_titles.csv")
sample = pd.concat([questions[questions["label_name"] == name].head(50) for name in ["linq", "svn", "excel", "haskell"]])
sample = sample.rename(columns={"line": "id"}).astype({"id": str})

dataset = AtlasDataset("example-org/stackoverflow-search", unique_id_field="id")
dataset.add_data(sample[["id", "title", "label_name"]])
atlas_map = dataset.create_index(indexed_field="title", duplicate_detection=False)

output = embed.text(
    texts=["how do I undo a commit in subversion", "sum a column of cells in a spreadsheet formula"],
    task_type="search_query",
)
print({key: value for key, value in output.items() if key != "embeddings"})
assert set(output) >= {"embeddings", "usage", "model"} and len(output["embeddings"]) == 2
queries = np.array(output["embeddings"])
assert queries.shape[1] == atlas_map.embeddings.latent.shape[1]

neighbors, distances = atlas_map.embeddings.vector_search(queries=queries, k=5)
label_of = dict(zip(sample["id"], sample["label_name"]))
for expected, found in zip(["svn", "excel"], neighbors):
    labels = [label_of[n] for n in found]
    print(expected, labels)
    assert labels.count(expected) >= 4, labels

documents = embed.text(texts=sample["title"].head(3).tolist(), task_type="search_document")
np.testing.assert_allclose(
    np.array(documents["embeddings"]),
    atlas_map.embeddings.latent[:3],
    atol=1e-4,
)

posterior = atlas_map.topics.vector_search_topics(queries, k=32, depth=1)["topics"]
assert len(posterior) == 2 and all(abs(sum(p.values()) - 1) < 1e-6 for p in posterior)

"""Topics and semantic duplicates, as in nomic's "Atlas topics" and "duplicate detection" docs."""

import os

import pandas as pd

from atlas_assets import AtlasDataset  # was: from nomic import AtlasDataset
from atlas_assets.data_inference import NomicDuplicatesOptions, NomicTopicOptions  # was: from nomic.data_inference import ...

DATA = os.environ.get("ATLAS_SHARED_DATA", "/work/shared/data")

questions = pd.read_csv(f"{DATA}/stackoverflow_titles/stackoverflow_titles.csv")
sample = pd.concat([questions[questions["label_name"] == name].head(50) for name in ["linq", "svn", "excel", "haskell"]])
sample = sample.rename(columns={"line": "id"}).astype({"id": str})[["id", "title", "label_name"]]
# three questions asked twice, under new ids: duplicate detection must find them
copies = sample.iloc[[0, 60, 120]].assign(id=lambda frame: "copy-" + frame["id"])
data = pd.concat([sample, copies], ignore_index=True)

dataset = AtlasDataset("example-org/stackoverflow-questions", unique_id_field="id")
dataset.add_data(data)
atlas_map = dataset.create_index(
    indexed_field="title",
    topic_model=NomicTopicOptions(build_topic_model=True, topic_label_field="title"),
    duplicate_detection=NomicDuplicatesOptions(tag_duplicates=True, duplicate_cutoff=0.1),
)

topics = atlas_map.topics
for topic in topics.group_by_topic(topic_depth=1):
    print(topic["topic_short_description"], len(topic["datum_ids"]), topic["subtopics"][:3])
groups = topics.group_by_topic(topic_depth=1)
assert sum(len(topic["datum_ids"]) for topic in groups) == len(data)
assert all({"topic_id", "topic_short_description", "topic_long_description", "subtopics", "subtopic_ids", "datum_ids"} <= set(t) for t in groups)

metadata = topics.metadata
print(metadata[["topic_id", "depth", "topic_short_description"]].head())
assert set(metadata["depth"]) == set(range(1, topics.depth + 1))
assert {"topic_description", "topic_depth_1"} <= set(metadata.columns)
for (label, depth), children in topics.hierarchy.items():
    assert depth < topics.depth and children

duplicates = atlas_map.duplicates.df
print(atlas_map.duplicates)
candidates = atlas_map.duplicates.deletion_candidates()
for copy_id in copies["id"]:
    original_id = copy_id.removeprefix("copy-")
    pair = duplicates.set_index("id").loc[[original_id, copy_id]]
    assert pair["cluster_id"].nunique() == 1, pair
    assert sorted(pair["duplicate_class"]) == ["deletion candidate", "retention candidate"], pair
    assert (original_id in candidates) != (copy_id in candidates)

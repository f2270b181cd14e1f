"""A text map read back into pandas, as in nomic's "Your first map" and "map data" docs."""

import os

import pandas as pd

from atlas_assets import AtlasDataset  # was: from nomic import AtlasDataset

DATA = os.environ.get("ATLAS_SHARED_DATA", "/work/shared/data")

news = pd.read_csv(f"{DATA}/ag_news/test.csv").head(200)
news["id"] = news["id"].astype(str)

dataset = AtlasDataset(
    "example-org/ag-news-sample",
    unique_id_field="id",
    description="200 AG News stories",
)
dataset.add_data(data=news)

atlas_map = dataset.create_index(
    name="news stories",
    indexed_field="description",
    topic_model=True,
    duplicate_detection=True,
)
print(atlas_map)

data = atlas_map.data.df
topics = atlas_map.topics.df
positions = atlas_map.embeddings.projected
merged = data.merge(topics, on="id").merge(positions, on="id")
print(merged.head())

assert len(merged) == 200, len(merged)
assert {"title", "description", "label_name", "topic_depth_1", "x", "y"} <= set(merged.columns)
assert merged["topic_depth_1"].notna().all()
# Topics follow meaning: the largest label in each broad topic covers most of its stories.
purity = merged.groupby("topic_depth_1")["label_name"].agg(lambda s: s.value_counts().iloc[0]).sum() / len(merged)
print(f"topic purity against the AG News labels: {purity:.2f}")
assert purity > 0.5, purity
assert atlas_map.embeddings.latent.shape[0] == 200
assert dataset.total_datums == 200 and dataset.id_field == "id"

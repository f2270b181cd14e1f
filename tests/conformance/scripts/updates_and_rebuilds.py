"""Adding data to a mapped dataset, then updating its maps, as nomic 3.1.3's update docs do."""

import os

import pandas as pd

from atlas_assets import AtlasDataset  # was: from nomic import AtlasDataset

DATA = os.environ.get("ATLAS_SHARED_DATA", "/work/shared/data")

news = pd.read_csv(f"{DATA}/ag_news/test.csv")
news["id"] = news["id"].astype(str)
first, second = news.iloc[:150], news.iloc[150:175]

dataset = AtlasDataset("example-org/growing-news", unique_id_field="id")
dataset.add_data(first)
atlas_map = dataset.create_index(name="news", indexed_field="title")
before = atlas_map.embeddings.projected.set_index("id")

with dataset.wait_for_dataset_lock():
    dataset.add_data(second)
    dataset.delete_data(ids=["3", "4"])

with dataset.wait_for_dataset_lock():
    dataset.update_indices(rebuild_topic_models=True)

with dataset.wait_for_dataset_lock():
    atlas_map = dataset.get_map(name="news")
    projected = atlas_map.embeddings.projected.set_index("id")
    topics = atlas_map.topics.df

print(f"{len(before)} rows before, {len(projected)} after")
assert len(projected) == 173 and {"3", "4"}.isdisjoint(projected.index)
assert set(second["id"]) <= set(projected.index)
assert len(topics) == 173 and topics["topic_depth_1"].notna().all()
assert dataset.total_datums == 173

# update_maps (nomic 3.1.3): add_data + update_indices in one call
dataset.update_maps(data=news.iloc[175:180])
assert len(atlas_map.embeddings.projected) == 178

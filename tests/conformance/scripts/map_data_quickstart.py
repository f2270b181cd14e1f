"""The quickstart: one call from a list of dicts to a map (nomic's atlas.map_data)."""

import os

import pandas as pd

from atlas_assets import atlas  # was: from nomic import atlas

DATA = os.environ.get("ATLAS_SHARED_DATA", "/work/shared/data")

pairs = pd.read_csv(f"{DATA}/sts_benchmark/sts-test.csv").head(150)
documents = [{"text": row.sentence1, "score": float(row.score)} for row in pairs.itertuples()]

dataset = atlas.map_data(
    data=documents,
    indexed_field="text",
    identifier="example-org/sts-sentences",
    description="STS benchmark sentences",
)
print(dataset)
atlas_map = dataset.maps[0]
print(atlas_map)

assert dataset.total_datums == 150
assert dataset.id_field == "id_"  # no id_field given: ids were made, as nomic 3.1.3 makes them
df = atlas_map.topics.df
assert len(df) == 150 and "topic_depth_1" in df.columns
assert atlas_map.map_link.startswith("http")
try:
    atlas.map_data(data=documents, indexed_field="text", identifier="example-org/sts-sentences")
except ValueError as error:  # as nomic: map_data cannot add to an existing dataset
    print("as expected:", error)
else:
    raise AssertionError("map_data should refuse an existing dataset")

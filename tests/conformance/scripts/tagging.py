"""Tags: get_tags, get_datums_in_tag, add and remove, as nomic's AtlasMapTags names them."""

import os

import pandas as pd

from atlas_assets import AtlasDataset  # was: from nomic import AtlasDataset

DATA = os.environ.get("ATLAS_SHARED_DATA", "/work/shared/data")

banking = pd.read_csv(f"{DATA}/banking77/test.csv").head(120)
banking.insert(0, "id", [f"q{i}" for i in range(len(banking))])

dataset = AtlasDataset("example-org/banking-questions", unique_id_field="id")
dataset.add_data(banking)
atlas_map = dataset.create_index(indexed_field="text", topic_model=False, duplicate_detection=False)

tags = atlas_map.tags
card_ids = banking.loc[banking["category"] == "card_arrival", "id"].tolist()
tags.add(ids=card_ids, tags=["card questions", "to review"])
tags.add(ids=["q100", "q101"], tags=["to review"])

all_tags = tags.get_tags()
print(all_tags)
names = [tag["tag_name"] for tag in all_tags]
assert names == ["card questions", "to review"]
assert all(tag["tag_id"] and tag["tag_definition_id"] for tag in all_tags)

assert sorted(tags.get_datums_in_tag("card questions")) == sorted(card_ids)
assert len(tags.get_datums_in_tag("to review", overwrite=True)) == len(card_ids) + 2

tags.remove(ids=["q100"], tags=["to review"])
assert "q100" not in tags.get_datums_in_tag("to review")
tags.remove(ids=[], tags=["to review"], delete_all=True)
assert [tag["tag_name"] for tag in tags.get_tags()] == ["card questions"]

frame = tags.df
assert frame.loc[frame["card questions"], "id"].tolist() == card_ids
try:
    tags.get_datums_in_tag("to review")
except ValueError as error:  # as nomic: an unknown tag is a ValueError
    print("as expected:", error)
else:
    raise AssertionError("a deleted tag should be unknown")

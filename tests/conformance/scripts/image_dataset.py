"""An image map with atlas.map_data(blobs=...), as in nomic's "image datasets" docs."""

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from atlas_assets import atlas  # was: from nomic import atlas

digits = load_digits()
words = ["oval", "pencil", "swan", "trident", "sailboat", "hook", "cherry", "cliff", "snowman", "balloon"]
images = [
    Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8)).resize((64, 64)).convert("RGB")
    for i in range(150)
]
metadata = [{"id": str(i), "label": words[digits.target[i]]} for i in range(150)]

dataset = atlas.map_data(
    blobs=images,
    data=metadata,
    identifier="example-org/digit-images",
    id_field="id",
    topic_model={"topic_label_field": "label"},
)
atlas_map = dataset.maps[0]
print(atlas_map)

assert dataset.modality == "image" and dataset.total_datums == 150
projected = atlas_map.embeddings.projected
assert len(projected) == 150 and projected[["x", "y"]].notna().all().all()
assert len(atlas_map.topics.df) == 150
neighbors, _ = atlas_map.embeddings.vector_search(ids=["0", "1"], k=5)
label_of = {row["id"]: row["label"] for row in metadata}
same = sum(label_of[n] == label_of[i] for i, found in zip(["0", "1"], neighbors) for n in found)
print("neighbours with the same digit:", same, "of 10")
assert same >= 5

"""A dataset of your own vectors, searched by id and by vector, as in nomic's "embeddings" docs."""

import numpy as np
from sklearn.datasets import load_digits

from atlas_assets import AtlasDataset  # was: from nomic import AtlasDataset

digits = load_digits()
embeddings = digits.data[:300].astype(np.float32)
words = ["oval", "pencil", "swan", "trident", "sailboat", "hook", "cherry", "cliff", "snowman", "balloon"]
data = [{"id": f"digit-{i}", "label": words[digits.target[i]]} for i in range(300)]

dataset = AtlasDataset("example-org/handwritten-digits", unique_id_field="id")
dataset.add_data(data=data, embeddings=embeddings)
atlas_map = dataset.create_index(topic_model={"topic_label_field": "label"})

label_of = {row["id"]: row["label"] for row in data}

neighbors, distances = atlas_map.embeddings.vector_search(ids=["digit-0", "digit-1", "digit-2"], k=10)
for datum_id, found, gaps in zip(["digit-0", "digit-1", "digit-2"], neighbors, distances):
    print(datum_id, label_of[datum_id], [label_of[n] for n in found])
    assert len(found) == 10 and gaps == sorted(gaps)
    assert sum(label_of[n] == label_of[datum_id] for n in found) >= 7

neighbors, distances = atlas_map.embeddings.vector_search(queries=embeddings[:5], k=3)
assert [found[0] for found in neighbors] == [f"digit-{i}" for i in range(5)]
assert all(gaps[0] < 1e-4 for gaps in distances)

latent = atlas_map.embeddings.latent
projected = atlas_map.embeddings.projected
assert latent.shape == (300, 64) and len(projected) == 300
# latent rows are in the order of projected
order = [int(datum_id.split("-")[1]) for datum_id in projected["id"]]
np.testing.assert_allclose(latent, embeddings[order], rtol=1e-5, atol=1e-5)
assert dataset.modality == "embedding"

"""One module per stage of a dataset's asset family: its asset definition, its check and its work.

`raw_data` (per dataset, one partition per upload batch), then per index `embeddings` (per batch),
`neighbour_graph`, `projection`, `topics` and `duplicates` (over all batches). `common` holds what
the stages share; `atlas_assets.pipeline.factory` assembles a dataset's family from these.
"""

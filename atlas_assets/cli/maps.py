"""`atlas index`, `atlas update`, `atlas search`, `atlas export`: building maps and using them."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from atlas_assets.cli.data import existing_dataset
from atlas_assets.errors import InvalidOptionError


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _index(args: argparse.Namespace) -> int:
    dataset = existing_dataset(args.dataset)
    projection: dict[str, Any] = {}
    if args.n_neighbors is not None:
        projection["n_neighbors"] = args.n_neighbors
    if args.n_epochs is not None:
        projection["n_epochs"] = args.n_epochs
    topics: bool | dict = False if args.no_topics else ({"topic_label_field": args.topic_label_field} if args.topic_label_field else True)
    duplicates: bool | dict = False if args.no_duplicates else (
        {"duplicate_cutoff": args.duplicate_cutoff} if args.duplicate_cutoff is not None else True
    )
    _say(f"{dataset.identifier}: building a map of {dataset.total_datums:,} rows (embeddings -> graph -> layout -> topics -> duplicates)")
    if args.field:  # a big text dataset hears of the fast model; it is never chosen for the user
        from atlas_assets.pipeline.assets.static_table import static_model_hint

        if hint := static_model_hint(dataset.total_datums, args.model):
            _say(hint)
    started = time.perf_counter()
    atlas_map = dataset.create_index(
        name=args.name,
        indexed_field=args.field,
        projection=projection or True,
        topic_model=topics,
        duplicate_detection=duplicates,
        embedding_model=args.model,
    )
    print(f"map {atlas_map.name!r} ready in {time.perf_counter() - started:.0f} s: {atlas_map.map_link}")
    print("see it with `atlas serve`; the runs are in the Dagster UI (`atlas ui`)")
    return 0


def _update(args: argparse.Namespace) -> int:
    from atlas_assets.client.status import dataset_status

    dataset = existing_dataset(args.dataset)
    if not dataset.indices:
        raise InvalidOptionError(f"{dataset.identifier} has no maps to update; build one with `atlas index {dataset.identifier} --field F`")
    before = dataset_status(dataset.store, dataset.organisation, dataset.slug)
    if not before.is_stale and not args.rebuild_topics:
        print(f"{dataset.identifier}: every map is up to date ({before.rows:,} rows)")
        return 0
    for index in before.indices:
        if index.is_stale:
            _say(f"map {index.name!r}: " + "; ".join(index.problems()))
    started = time.perf_counter()
    dataset.update_indices(rebuild_topic_models=args.rebuild_topics)
    after = dataset_status(dataset.store, dataset.organisation, dataset.slug)
    print(f"{dataset.identifier}: {len(after.indices)} map(s) updated in {time.perf_counter() - started:.0f} s ({after.rows:,} rows)")
    return 0


def _pick_map(dataset: Any, name: str | None):
    return dataset.get_map(name=name)


def _search(args: argparse.Namespace) -> int:
    dataset = existing_dataset(args.dataset)
    atlas_map = _pick_map(dataset, args.map)
    neighbours, distances = atlas_map.embeddings.vector_search(queries=[args.query], k=args.k)
    ids = neighbours[0]
    field = atlas_map.index_record().indexed_field  # the text to show next to each hit
    rows = {str(row[dataset.id_field]): row for row in dataset.get_data(ids)} if ids else {}
    if ids:
        # Python's vector_search returns cosine distances (lower is closer), as Atlas does; people
        # read a similarity more easily, so the CLI prints 1 - distance and says so.
        print(f"  #  similarity  {dataset.id_field}  {field or ''}".rstrip())
    for rank, (identifier, distance) in enumerate(zip(ids, distances[0]), start=1):
        row = rows.get(str(identifier), {})
        shown = str(row.get(field, "")) if field else ""
        shown = " ".join(shown.split())
        if len(shown) > args.width:
            shown = shown[: args.width - 1] + "…"
        print(f"{rank:>3}. {1 - distance:10.3f}  {identifier}  {shown}")
    if not ids:
        print("no results")
    else:
        print("similarity = 1 - cosine distance (1 is identical; Python's vector_search returns the distances)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from atlas_assets.cli.export import export_map

    dataset = existing_dataset(args.dataset)
    atlas_map = _pick_map(dataset, args.map)
    output = Path(args.output) if args.output else Path(f"{dataset.slug}-{atlas_map.name.replace(' ', '-')}.{args.format}")
    path = export_map(atlas_map, args.format, output, size=args.size)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


def add_map_commands(commands: Any) -> None:
    index = commands.add_parser(
        "index",
        help="build a map (embeddings, neighbour graph, layout, topics, duplicates) of a dataset",
        description="Build a map: the whole asset family is materialised in the shared Dagster instance.",
    )
    index.add_argument("dataset", help="dataset identifier, 'org/name' or 'name'")
    index.add_argument("--field", default=None, help="the text field to embed (text datasets)")
    index.add_argument("--name", default=None, help="name of the map (default: '<field> map')")
    index.add_argument("--no-topics", action="store_true", help="skip the topic model")
    index.add_argument("--no-duplicates", action="store_true", help="skip duplicate detection")
    index.add_argument("--topic-label-field", default=None, help="field whose text names topics (default: --field)")
    index.add_argument("--duplicate-cutoff", type=float, default=None, help="cosine distance under which two rows are duplicates (default 0.1)")
    index.add_argument("--n-neighbors", type=int, default=None, help="neighbours per point in the layout (default: from the data size)")
    index.add_argument("--n-epochs", type=int, default=None, help="layout epochs (default: from the data size)")
    index.add_argument("--model", default=None, help="embedding model (see `atlas models list`)")
    index.set_defaults(handler=_index)

    update = commands.add_parser(
        "update",
        help="bring every map of a dataset up to date with added and deleted rows",
        description="Embed new batches only, extend the graph, place new points in the existing layout.",
    )
    update.add_argument("dataset", help="dataset identifier, 'org/name' or 'name'")
    update.add_argument("--rebuild-topics", action="store_true", help="rebuild the topic models from scratch")
    update.set_defaults(handler=_update)

    search = commands.add_parser(
        "search",
        help="find the rows closest in meaning to a query",
        description="Search a map by meaning: the query is embedded with the map's model.",
    )
    search.add_argument("dataset", help="dataset identifier, 'org/name' or 'name'")
    search.add_argument("query", help="the text to search for")
    search.add_argument("-k", type=int, default=10, help="how many results (default 10)")
    search.add_argument("--map", default=None, help="map name (needed when the dataset has several)")
    search.add_argument("--width", type=int, default=100, help="characters of text shown per result")
    search.set_defaults(handler=_search)

    export = commands.add_parser(
        "export",
        help="export a map as Parquet, a PNG picture or a self-contained offline HTML page",
        description="parquet: ids, fields, x, y, topics, duplicates, tags; png: the picture; html: the viewer, offline.",
    )
    export.add_argument("dataset", help="dataset identifier, 'org/name' or 'name'")
    export.add_argument("--format", "-f", choices=["parquet", "png", "html"], required=True, help="what to write")
    export.add_argument("--map", default=None, help="map name (needed when the dataset has several)")
    export.add_argument("--output", "-o", default=None, help="file to write (default: <dataset>-<map>.<format>)")
    export.add_argument("--size", type=int, default=1600, help="picture width and height in pixels (png)")
    export.set_defaults(handler=_export)

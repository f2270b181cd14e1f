"""`map.tags`: named sets of rows, shared with the web map, shaped as the `nomic` client's
`AtlasMapTags` (`get_tags()` -> dicts with tag_name, tag_id, tag_definition_id;
`get_datums_in_tag(tag_name, overwrite=False)`; `add(ids, tags)`; `remove(ids, tags, delete_all=False)`;
`df`). Unlike nomic 3.x (whose add and remove raise NotImplementedError), tags are written from
Python too; a single tag name instead of a list still works."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from atlas_assets.client.accessor_base import MapAccessor
from atlas_assets.errors import InvalidOptionError, UnknownIdsError
from resources.tags import TagStore

if TYPE_CHECKING:
    from atlas_assets.client.map import AtlasProjection

_TAG_NAMESPACE = uuid.UUID("5d1f3b0e-8c1a-4b53-9a57-2f7f0d7c2a11")


class Tag(dict):
    """One tag as nomic's get_tags() gives it (`tag_name`, `tag_id`, `tag_definition_id`, plus
    `count`); it also equals its name, so `"reviewed" in map.tags.get_tags()` keeps working."""

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return self.get("tag_name") == other
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]  # a dict: unhashable, as nomic's


class MapTags(MapAccessor):
    """Tags of the map, stored in the index folder's tags.json (resources/tags.py)."""

    def __init__(self, projection: AtlasProjection, auto_cleanup: bool | None = False) -> None:
        super().__init__(projection)
        dataset = projection.dataset
        self._store = TagStore.for_index(dataset.store, dataset.organisation, dataset.slug, projection.atlas_index_id)
        self.auto_cleanup = auto_cleanup  # accepted as nomic's; there are no downloaded files to clean

    def _tag(self, name: str, count: int) -> Tag:
        tag_id = uuid.uuid5(_TAG_NAMESPACE, f"{self.projection.atlas_index_id}/{name}")
        return Tag(
            tag_name=name,
            tag_id=str(tag_id),
            tag_definition_id=str(uuid.uuid5(tag_id, "definition")),
            count=count,
        )

    def get_tags(self) -> list[Tag]:
        """Every tag holding at least one row, in creation order, as dicts (tag_name, tag_id,
        tag_definition_id, count)."""
        return [self._tag(name, count) for name, count in self._store.counts().items()]

    def get_datums_in_tag(self, tag_name: str, overwrite: bool = False) -> list[Any]:
        """The ids in the tag, in the order they were tagged (as nomic: an unknown tag is a ValueError).
        `overwrite` is accepted for nomic's signature (nothing is downloaded here)."""
        name = _tag_name(tag_name)
        if name not in self._store.counts():
            known = ", ".join(repr(tag) for tag in self._store.counts()) or "none"
            raise InvalidOptionError(f"Tag {name!r} not found in map {self.projection.name!r}; tags: {known}")
        return self._typed_ids(self._store.get_datums_in_tag(name))

    def add(self, ids: Sequence[Any], tags: Sequence[str] | str) -> int:
        """Put rows in one or more tags (created when new); unknown ids are an error and nothing is
        tagged. Returns how many (row, tag) pairs were new."""
        self._check_ids(ids)
        return sum(self._store.add(ids, tag) for tag in _tag_list(tags))

    def remove(self, ids: Sequence[Any] | None, tags: Sequence[str] | str, delete_all: bool = False) -> bool:
        """Take rows out of tags; delete_all=True ignores `ids` and deletes the tags. True on success."""
        for tag in _tag_list(tags):
            if delete_all:
                self._store.delete_tag(tag)
            else:
                if ids is None:
                    raise InvalidOptionError("remove needs the ids to untag (or delete_all=True)")
                self._store.remove(ids, tag)
        return True

    @property
    def df(self) -> pd.DataFrame:
        """id and one boolean column per tag, one row per live datum."""
        ids = self.projection.data.tb[self._id_field].to_pylist()
        frame = pd.DataFrame({self._id_field: ids})
        for tag, column in self._store.tag_columns(ids).items():
            frame[tag] = column
        return frame

    def _typed_ids(self, id_strings: list[str]) -> list[Any]:
        """Tag files keep ids as text; integer id fields get integers back."""
        schema = self.dataset.schema
        if schema is not None and self._id_field in schema.names:
            import pyarrow as pa

            if pa.types.is_integer(schema.field(self._id_field).type):
                return [int(value) for value in id_strings]
        return id_strings

    def _check_ids(self, ids: Sequence[Any]) -> None:
        if isinstance(ids, (str, bytes)):
            raise InvalidOptionError("ids must be a list of ids, not a single string; wrap it in a list")
        live = {str(value) for value in self.projection.data.tb[self._id_field].to_pylist()}
        unknown = [value for value in ids if str(value) not in live]
        if unknown:
            raise UnknownIdsError(f"cannot tag ids that are not in the dataset: {unknown[:10]}")

    def __repr__(self) -> str:
        counts = self._store.counts()
        listed = ", ".join(f"{name!r} ({count})" for name, count in counts.items()) or "none"
        return f"===Atlas Tags for ({self.projection}): {len(counts)} tag(s): {listed}"


def _tag_list(tags: Sequence[str] | str) -> list[str]:
    if isinstance(tags, str):
        return [tags]
    if not isinstance(tags, Sequence) or not tags:
        raise InvalidOptionError("tags must be a tag name or a non-empty list of tag names")
    return [_tag_name(tag) for tag in tags]


def _tag_name(tag: Any) -> str:
    if isinstance(tag, dict) and "tag_name" in tag:
        return str(tag["tag_name"])  # a dict from get_tags() names its tag
    if not isinstance(tag, str):
        raise InvalidOptionError(f"a tag name must be a string, got {type(tag).__name__}")
    return tag.strip()

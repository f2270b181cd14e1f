"""Tags of one map index, shared by the web map and Python (`map.tags`).

A tag is a named set of datum ids. Tags live in one JSON file in the index folder
(`<index_dir>/tags.json`; with the store on an object store, the object `indices/<index_id>/tags.json`
and a local lock file under the store's lock folder), because both the map server (a person lassoing points) and a Python
session (`map.tags.add(...)`) write them, possibly at the same time: every change takes a file lock,
re-reads the file, applies itself and replaces the file atomically (temp file + rename), so
concurrent writers never lose each other's changes and a crash leaves the old or the new file.

A map holds at most MAX_TAGS tags (a flood of tag names would otherwise grow the file, and every
read of it, without bound); the per-tag counts the map shows are read in one pass and kept until the
file changes (its inode, size and mtime), so a page load costs one `stat`.

Ids are kept as strings (the id field may hold integers; `str()` makes them comparable across the
JSON round trip). Order inside a tag is the order ids were first added.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from filelock import FileLock

from atlas_assets.errors import InvalidOptionError
from resources.storage.files import LocalFiles, StoreFiles

if TYPE_CHECKING:
    from resources.storage import DatasetStore

TAGS_FILE = "tags.json"
MAX_TAG_NAME_LENGTH = 100
MAX_TAGS = 200
_FORMAT_VERSION = 1


def validate_tag_name(tag: str) -> str:
    """Return the tag name stripped, or raise when it cannot be a tag (empty, too long, not text)."""
    if not isinstance(tag, str):
        raise InvalidOptionError(f"a tag name must be a string, got {type(tag).__name__}")
    name = tag.strip()
    if not name:
        raise InvalidOptionError("a tag name must not be empty; pass a short name such as 'reviewed'")
    if len(name) > MAX_TAG_NAME_LENGTH:
        raise InvalidOptionError(
            f"tag name is {len(name)} characters long; use at most {MAX_TAG_NAME_LENGTH}"
        )
    if any(ord(char) < 32 for char in name):
        raise InvalidOptionError(f"tag name {name!r} contains control characters; remove them")
    return name


def _as_id_strings(ids: Iterable[object] | np.ndarray) -> list[str]:
    if isinstance(ids, (str, bytes)):
        raise InvalidOptionError("ids must be a list of ids, not a single string; wrap it in a list")
    return [str(item) for item in ids]


class TagStore:
    """The tags of one map index, persisted in `<index_dir>/tags.json`.

    Every method reads the file afresh, so a server and a notebook see each other's tags at once.
    """

    def __init__(
        self,
        index_dir: Path | str | None = None,
        *,
        files: StoreFiles | None = None,
        key: str = "",
        lock_path: Path | None = None,
    ) -> None:
        """`TagStore(index_dir)`: tags.json in a local folder, its lock beside it. Or `files`, `key` (the
        index folder's key) and `lock_path`: tags.json as an object, with a local lock (see `for_index`)."""
        if files is None:
            if index_dir is None:
                raise TypeError("TagStore needs index_dir, or files, key and lock_path")
            files, key = LocalFiles(Path(index_dir)), ""
            lock_path = Path(index_dir) / (TAGS_FILE + ".lock")
        if lock_path is None:
            raise TypeError("TagStore on store files needs lock_path (a local file)")
        self.files = files
        self.key = f"{key}/{TAGS_FILE}" if key else TAGS_FILE
        self._lock_path = lock_path
        self._lock = FileLock(str(lock_path), timeout=60)
        self._counts: tuple[tuple | None, dict[str, int]] | None = None

    @classmethod
    def for_index(cls, store: DatasetStore, organisation: str, slug: str, index_id: str) -> TagStore:
        """The tags of an index of the store: in its index folder locally; on an object store the
        object `indices/<index_id>/tags.json`, its lock under the store's local lock folder."""
        if store.is_local:
            return cls(store.index_dir(organisation, slug, index_id))
        return cls(
            files=store.files,
            key=store.index_key(organisation, slug, index_id),
            lock_path=store.lock_path(organisation, slug, f"tags-{index_id}"),
        )

    # reading -----------------------------------------------------------------------------------
    def _read(self) -> dict[str, list[str]]:
        try:
            text = self.files.read_bytes(self.key).decode("utf-8")
        except FileNotFoundError:
            return {}
        document = json.loads(text)
        return {str(name): [str(i) for i in ids] for name, ids in document.get("tags", {}).items()}

    def get_tags(self) -> list[str]:
        """Names of every tag that holds at least one datum, in creation order."""
        return [name for name, ids in self._read().items() if ids]

    def get_datums_in_tag(self, tag: str) -> list[str]:
        """Ids in the tag (as strings), in the order they were added; unknown tag: empty list."""
        return list(self._read().get(validate_tag_name(tag), []))

    def tag_columns(self, ids: Iterable[object] | np.ndarray) -> dict[str, np.ndarray]:
        """One boolean column per tag, aligned with `ids` (the shape of `map.tags.df`)."""
        id_strings = _as_id_strings(ids)
        position = {value: row for row, value in enumerate(id_strings)}
        columns: dict[str, np.ndarray] = {}
        for name, members in self._read().items():
            if not members:
                continue
            column = np.zeros(len(id_strings), dtype=bool)
            rows = [position[m] for m in members if m in position]
            column[np.asarray(rows, dtype=np.int64)] = True
            columns[name] = column
        return columns

    def _file_key(self) -> tuple | None:
        return self.files.stamp(self.key)

    def counts(self) -> dict[str, int]:
        """Number of datums per non-empty tag (for the map's tag list): one read of the file, and
        none while it is unchanged."""
        key = self._file_key()
        cached = self._counts
        if cached is not None and cached[0] == key:
            return dict(cached[1])
        counts = {name: len(ids) for name, ids in self._read().items() if ids}
        self._counts = (key, counts)
        return dict(counts)

    # writing -----------------------------------------------------------------------------------
    def _write(self, tags: dict[str, list[str]]) -> None:
        document = {"version": _FORMAT_VERSION, "tags": {n: ids for n, ids in tags.items() if ids}}
        self.files.write_bytes(self.key, json.dumps(document, ensure_ascii=False).encode("utf-8"))

    def add(self, ids: Iterable[object] | np.ndarray, tag: str) -> int:
        """Put `ids` in `tag` (creating it); returns how many ids were newly added."""
        name = validate_tag_name(tag)
        new_ids = _as_id_strings(ids)
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            tags = self._read()
            if not tags.get(name) and new_ids and sum(1 for ids in tags.values() if ids) >= MAX_TAGS:
                raise InvalidOptionError(
                    f"this map already has {MAX_TAGS} tags, the most a map may hold; add the rows to an "
                    f"existing tag, or delete a tag before creating {name!r}"
                )
            members = tags.setdefault(name, [])
            present = set(members)
            added = 0
            for value in new_ids:
                if value not in present:
                    present.add(value)
                    members.append(value)
                    added += 1
            if added:
                self._write(tags)
        return added

    def remove(self, ids: Iterable[object] | np.ndarray, tag: str) -> int:
        """Take `ids` out of `tag` (a tag left empty disappears); returns how many were removed."""
        name = validate_tag_name(tag)
        gone = set(_as_id_strings(ids))
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            tags = self._read()
            members = tags.get(name, [])
            kept = [value for value in members if value not in gone]
            removed = len(members) - len(kept)
            if removed:
                tags[name] = kept
                self._write(tags)
        return removed

    def delete_tag(self, tag: str) -> bool:
        """Remove a whole tag; returns whether it existed."""
        name = validate_tag_name(tag)
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            tags = self._read()
            if name not in tags:
                return False
            del tags[name]
            self._write(tags)
        return True

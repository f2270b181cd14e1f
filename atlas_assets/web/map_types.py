"""The map server's vocabulary: the values the browser is sent (points, topics, fields, search
results) and the `MapSource` protocol every map behind the server implements (web/source.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

NO_TOPIC = np.uint16(65535)
MAX_CATEGORIES = 20
MISSING_CATEGORY = "(missing)"
OTHER_CATEGORY = "(other)"
EXCERPT_CHARS = 600
MAX_MEANING_K = 1000  # AtlasProjection.embeddings.vector_search caps k there
MAX_TEXT_MATCHES = 200_000

FieldKind = Literal["categorical", "numeric", "text"]



@dataclass(frozen=True)
class MapPoints:
    """Every point of a map as columns: what the browser draws.

    topic_codes[d - 1][row] is the code of the row's topic at depth d (an index into the topics of
    that depth, see `TopicInfo.code`), `NO_TOPIC` when it has none. duplicate_class holds the index
    into `DUPLICATE_CLASSES`.
    """

    x: np.ndarray  # float32
    y: np.ndarray  # float32
    topic_codes: list[np.ndarray]  # uint16 per depth
    duplicate_class: np.ndarray  # uint8

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class TopicInfo:
    """One topic at one depth, placed on the map where its points are."""

    depth: int
    code: int
    topic_id: str
    label: str
    description: str
    keywords: list[str]
    size: int
    x: float
    y: float
    parent_code: int | None


@dataclass(frozen=True)
class FieldInfo:
    """A column the viewer can colour by (categorical, numeric) or only show (text)."""

    name: str
    kind: FieldKind


@dataclass(frozen=True)
class FieldColumn:
    """Values of one field for every row, in the form the browser colours by.

    categorical: `codes` (uint16) index `categories`; numeric: `values` (float32, NaN = missing).
    """

    name: str
    kind: FieldKind
    codes: np.ndarray | None = None
    categories: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    values: np.ndarray | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class SearchResult:
    """Rows matching a search, best first, with a score per row (distance or 0 for text matches)."""

    rows: np.ndarray  # int64
    scores: np.ndarray  # float32
    mode: str


@runtime_checkable
class MapSource(Protocol):
    """Everything the map server reads from (and writes to) one map."""

    key: str  # "<org>/<slug>/<index>", the map's address on the server
    title: str
    modality: str

    @property
    def is_public(self) -> bool: ...

    def access_token(self) -> str | None: ...

    def points(self) -> MapPoints: ...

    def topics(self) -> list[TopicInfo]: ...

    def fields(self) -> list[FieldInfo]: ...

    def field_column(self, name: str) -> FieldColumn: ...

    def datum(self, row: int) -> dict[str, Any]: ...

    def search(self, query: str | np.ndarray, mode: str = "meaning", k: int = 100) -> SearchResult: ...

    def tag_counts(self) -> dict[str, int]: ...

    def tag_rows(self, tag: str) -> np.ndarray: ...

    def tag_rows_add(self, rows: np.ndarray, tag: str) -> int: ...

    def tag_rows_remove(self, rows: np.ndarray, tag: str) -> int: ...

    def image(self, row: int) -> tuple[bytes, str] | None: ...


class TagsLike(Protocol):
    """A `resources.tags.TagStore` (or anything with its methods)."""

    def add(self, ids: Any, tag: str) -> Any: ...

    def remove(self, ids: Any, tag: str) -> Any: ...

    def get_tags(self) -> list[str]: ...

    def get_datums_in_tag(self, tag: str) -> list[Any]: ...


# (queries, k) -> (row numbers per query, distances per query), nearest first
RowSearch = Callable[[Any, int], tuple[np.ndarray, np.ndarray]]
# (queries, k) -> (datum ids per query, distances per query): the shape of map.embeddings.vector_search
VectorSearch = Callable[[Any, int], tuple[Sequence[Sequence[Any]], Sequence[Sequence[float]]]]
ImageLoader = Callable[[Any, dict[str, Any]], "tuple[bytes, str] | None"]

"""One error hierarchy for everything a user can trigger.

Every message says what was wrong and how to fix it. Catch `AtlasError` to catch them all.

Where the `nomic` client raises `ValueError` (a bad identifier, bad data for add_data, an unknown map
for get_map, a topic depth out of range, an unknown model...), the error here is also a `ValueError`,
so Atlas code written as `except ValueError:` keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class AtlasError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(AtlasError):
    """The environment or configuration (ATLAS_HOME, models, storage) is unusable."""


class DatasetNotFoundError(AtlasError, ValueError):
    """No dataset with the given identifier or id exists."""


class InvalidIdentifierError(AtlasError, ValueError):
    """A dataset, organisation or index name cannot be used."""


class InvalidDataError(AtlasError, ValueError):
    """Data handed to add_data (or dropped in the inbox) breaks a rule: schema, ids, types."""


class SchemaMismatchError(InvalidDataError):
    """A later upload does not fit the schema frozen at the first upload."""


class DuplicateIdError(InvalidDataError):
    """Ids are repeated within an upload or collide with ids already stored."""


class InvalidEmbeddingsError(InvalidDataError):
    """User vectors are not a finite 2-D float array of the dataset's width."""


class InvalidImageError(InvalidDataError):
    """An image blob cannot be read or decoded."""


class UnknownIdsError(AtlasError, ValueError):
    """Ids asked for do not exist in the dataset."""


class InvalidOptionError(AtlasError, ValueError):
    """An option of create_index / a projection, topic, duplicate or embedding option is invalid."""


class ModelError(AtlasError, ValueError):
    """An embedding model cannot be found, downloaded, verified or run."""


class IndexNotFoundError(AtlasError, ValueError):
    """No index or map matches the request."""


class IndexNotReadyError(AtlasError):
    """An index exists but the asset asked for has not been materialised yet."""


class DatasetLockedError(AtlasError):
    """The dataset is being written or indexed and the wait timed out."""


class StoreWriteError(AtlasError):
    """Writing to the store failed (disk full, read-only, permissions); nothing was half written."""


class PipelineError(AtlasError):
    """A Dagster materialisation of a dataset's assets failed."""


SHOWN_IN_MESSAGES = 5
"""How many offending rows, ids or names a message lists before it gives the count."""


def shown(values: Sequence[Any]) -> str:
    """The first few offending values for a message, with the total when there are more."""
    head = ", ".join(repr(value) for value in list(values)[:SHOWN_IN_MESSAGES])
    return head + (f" ... ({len(values)} in all)" if len(values) > SHOWN_IN_MESSAGES else "")

"""Where a dataset's files live under the store's root, and the names that may be used there.

```
<root>/datasets/<org>/<slug>/
  dataset.json                  the DatasetRecord (replaced atomically; the commit point of every change)
  batches/<batch_id>.parquet    one file per add_data call: _row_id, the user fields, [_embedding | _blob]
  blobs/<sha256>.<ext>          image bytes, content-addressed, stored once
  deletions/<id>.parquet        tombstones: _row_id and the user id of deleted rows
  indices/<index_id>/           index outputs (see resources.index_outputs)
<root>/locks/<org>/<slug>.{writer,indexing}.lock   ($ATLAS_HOME/locks/... when <root> is an object store)
```

`<root>` is a local folder (ATLAS_HOME by default) or any fsspec URI (`ATLAS_STORE_URI=s3://bucket/prefix`):
the same keys then name objects (see `resources.storage.files`).

A private dataset (`is_public=False`) keeps its rows from other users of the machine: its folder and
the folders below it are 0700, the files the store writes there (record, batches, blobs, tombstones)
0600. A public dataset's files follow the umask (0644 / 0755 usually): other users may read them.
On an object store objects have no modes: the bucket's policy keeps a private dataset private.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from atlas_assets import config
from atlas_assets.errors import (
    ConfigurationError,
    InvalidDataError,
    InvalidIdentifierError,
)
from resources.storage.files import LocalFiles, StoreFiles, is_local_uri, open_files

RECORD_FILE = "dataset.json"
BATCHES = "batches"
BLOBS = "blobs"
DELETIONS = "deletions"
INDICES = "indices"
_BATCH_ID = re.compile(r"^\d{8}T\d{12}-[0-9a-f]{6}$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_BLOB_REF = re.compile(r"^[0-9a-f]{64}\.[a-z]{3,4}$")
MAX_NAME_LENGTH = 128  # organisation, slug and index id: folder and lock names stay far below 255 bytes
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
PUBLIC_FILE_MODE = 0o644  # before the umask
DATASET_SUBFOLDERS = ("batches", "blobs", "deletions", "indices")


def file_mode(is_public: bool) -> int:
    """The permission of a file the store writes in a dataset's folder."""
    return PUBLIC_FILE_MODE if is_public else PRIVATE_FILE_MODE


def close_private_folder(folder: Path) -> None:
    """Make a private dataset's folder and its subfolders 0700 (only the owner may enter)."""
    for path in (folder, *(folder / sub for sub in DATASET_SUBFOLDERS)):
        if path.is_dir() and (path.stat().st_mode & 0o777) != PRIVATE_DIR_MODE:
            path.chmod(PRIVATE_DIR_MODE)


def new_batch_id(after: str | None = None) -> str:
    """`YYYYmmddTHHMMSSffffff-xxxxxx` (UTC): sorts in upload order, a valid Dagster partition key.

    `after` is the previous id; the new one is made strictly greater even if the clock went back.
    """
    moment = datetime.now(UTC)
    if after and _BATCH_ID.match(after):
        previous = datetime.strptime(after[:21], "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)
        if moment <= previous:
            moment = previous + timedelta(microseconds=1)
    return f"{moment.strftime('%Y%m%dT%H%M%S%f')}-{secrets.token_hex(3)}"


def check_name(value: str, what: str) -> str:
    if not value or not _SAFE_NAME.match(value):
        raise InvalidIdentifierError(
            f"{what} {value!r} is not usable; use letters, digits, '-', '_' or '.' (not starting with "
            "'.' or '-')"
        )
    if len(value) > MAX_NAME_LENGTH:
        # the name becomes a folder and a lock file name (255 bytes at most on common filesystems)
        raise InvalidIdentifierError(
            f"{what} {value[:20]}... is {len(value)} characters long; use at most {MAX_NAME_LENGTH}"
        )
    return value


class StoreLayout:
    """The names of one store root: `root`, else $ATLAS_STORE_URI, else ATLAS_HOME (read at each call
    so changes apply). A root is a local folder or any fsspec URI (`s3://bucket/prefix`).

    Files are named by keys (`record_key`, `batch_key`, ...) and reached through `files`
    (`resources.storage.files`). The `Path` methods (`dataset_dir`, `record_path`, ...) exist for a
    local store only. Locks are local files whatever the root: under the root when it is a folder,
    under `$ATLAS_HOME/locks` when it is an object store.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = str(root) if root else ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={self.location!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoreLayout) and other.location == self.location

    def __hash__(self) -> int:
        return hash(self.location)

    @property
    def uri(self) -> str:
        """The root as configured: `root`, else $ATLAS_STORE_URI, else ATLAS_HOME."""
        return self.root or config.store_uri()

    @property
    def files(self) -> StoreFiles:
        return open_files(self.uri)

    @property
    def is_local(self) -> bool:
        return is_local_uri(self.uri)

    @property
    def location(self) -> str:
        """The root as a path or URI (names the store in messages and cache keys)."""
        return self.files.location()

    @property
    def home(self) -> Path:
        """The local folder of the store: its root when that is a folder, else ATLAS_HOME (the locks)."""
        files = self.files
        return files.root if isinstance(files, LocalFiles) else config.atlas_home()

    @property
    def datasets_root(self) -> str:
        """Where the datasets are (a path or a URI), for messages."""
        return self.files.location("datasets")

    # ---------------------------------------------------------------------------------- keys

    def dataset_key(self, organisation: str, slug: str) -> str:
        check_name(organisation, "organisation")
        check_name(slug, "dataset slug")
        return f"datasets/{organisation}/{slug}"

    def record_key(self, organisation: str, slug: str) -> str:
        return f"{self.dataset_key(organisation, slug)}/{RECORD_FILE}"

    def batch_key(self, organisation: str, slug: str, batch_id: str) -> str:
        return f"{self.dataset_key(organisation, slug)}/{BATCHES}/{batch_id}.parquet"

    def deletion_key(self, organisation: str, slug: str, deletion_id: str) -> str:
        return f"{self.dataset_key(organisation, slug)}/{DELETIONS}/{deletion_id}.parquet"

    def blob_key(self, organisation: str, slug: str, blob_ref: str) -> str:
        """The stored bytes of a `_blob` reference (`<sha256>.<ext>`)."""
        if not isinstance(blob_ref, str) or not _BLOB_REF.match(blob_ref):
            raise InvalidDataError(f"{blob_ref!r} is not a blob reference (<sha256>.<ext>)")
        return f"{self.dataset_key(organisation, slug)}/{BLOBS}/{blob_ref}"

    def index_key(self, organisation: str, slug: str, index_id: str) -> str:
        """`indices/<index_id>/` of the dataset."""
        return f"{self.dataset_key(organisation, slug)}/{INDICES}/{check_name(index_id, 'index id')}"

    # ------------------------------------------------------------------- local paths (local stores)

    def local_path(self, key: str) -> Path:
        files = self.files
        if not isinstance(files, LocalFiles):
            raise ConfigurationError(
                f"the dataset store is on an object store ({files.location()}): {key} has no local path; "
                "read it through the store (store.read_blob, store.read_batch)"
            )
        return files.path(key)

    def dataset_dir(self, organisation: str, slug: str) -> Path:
        return self.local_path(self.dataset_key(organisation, slug))

    def record_path(self, organisation: str, slug: str) -> Path:
        return self.local_path(self.record_key(organisation, slug))

    def batch_path(self, organisation: str, slug: str, batch_id: str) -> Path:
        return self.local_path(self.batch_key(organisation, slug, batch_id))

    def blob_path(self, organisation: str, slug: str, blob_ref: str) -> Path:
        """The stored bytes of a `_blob` reference (`<sha256>.<ext>`), in a local store."""
        return self.local_path(self.blob_key(organisation, slug, blob_ref))

    def index_dir(self, organisation: str, slug: str, index_id: str) -> Path:
        """`indices/<index_id>/` of the dataset (not created here), in a local store."""
        return self.local_path(self.index_key(organisation, slug, index_id))

    # ---------------------------------------------------------------------------------- locks

    def lock_path(self, organisation: str, slug: str, kind: str) -> Path:
        check_name(organisation, "organisation")
        check_name(slug, "dataset slug")
        return self.home / "locks" / organisation / f"{slug}.{kind}.lock"

    def lock_paths(self, organisation: str, slug: str) -> list[Path]:
        return [self.lock_path(organisation, slug, kind) for kind in ("writer", "indexing")]

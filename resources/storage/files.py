"""The store's files, behind one small interface: a local folder (`LocalFiles`) or an object store
reached through fsspec (`ObjectFiles`, e.g. `ATLAS_STORE_URI=s3://bucket/prefix`).

The store, reader, writer and blobs modules name files by *key*, a '/'-separated path below the
store's root (`datasets/acme/news/dataset.json`), and call this interface, never `os` directly.

- `LocalFiles` is the store as it always was: a write goes to a temp file in the same folder, is
  fsynced and renamed over the final name, and the folder is fsynced; files get the mode asked for
  (0600 in a private dataset).
- `ObjectFiles` writes a whole object in one call (`pipe_file`, or `put_file` for a file streamed to
  local disk first): an object store shows an object only once its PUT has succeeded, so a reader
  sees the old object or the new one. Names the store writes once (batches, tombstones, blobs) are
  fresh, so no rename is needed; `dataset.json`, the commit point, is replaced by one PUT. Objects have
  no modes: the bucket's policy is what keeps a private dataset private. Listings ask the store anew
  (fsspec caches a listing for the life of the process, and long-lived processes, `atlas serve` and
  the daemon, must see other processes' writes). Reads hand Arrow memory it owns (see
  `resources.index_outputs.read_output` for why never a Python file object).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

import pyarrow as pa

from atlas_assets.errors import ConfigurationError
from resources.atomic import (
    TEMP_PREFIX,
    fsync_dir,
    remove_tree_atomic,
    temp_path_for,
    write_bytes_atomic,
)
from resources.write_errors import object_write_error

LOCAL_PROTOCOLS = ("", "file", "local")


class StoreFiles(ABC):
    """Bytes under one root, named by '/'-separated keys."""

    is_local: bool = True

    @abstractmethod
    def location(self, key: str = "") -> str:
        """The path or URI of `key`, for messages."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The whole file; FileNotFoundError when it does not exist."""

    @abstractmethod
    def parquet_source(self, key: str) -> str | pa.NativeFile:
        """What `pq.read_table` / `pq.ParquetFile` open: an OS path, or the object's bytes in an
        Arrow-owned buffer (never a Python file object)."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes, mode: int = 0o644) -> None:
        """Replace `key` with `data` atomically (readers see the old file or the new one)."""

    @abstractmethod
    def temp_path(self, key: str) -> Path:
        """A fresh local file name to stream a large file into before `commit_file(temp, key)`."""

    @abstractmethod
    def commit_file(self, temp: Path, key: str) -> None:
        """Make the complete local file `temp` the file `key` (rename, or one upload); `temp` is gone after."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list_files(self, key: str) -> list[str]:
        """Names of the files directly in the folder `key` (temp files included), [] when it has none."""

    @abstractmethod
    def list_folders(self, key: str) -> list[str]:
        """Names of the folders directly in the folder `key`."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove one file; a missing one is fine."""

    @abstractmethod
    def remove_tree(self, key: str) -> None:
        """Remove the folder `key` and everything in it (a missing one is fine)."""

    @abstractmethod
    def stamp(self, key: str) -> tuple | None:
        """Changes whenever the file is rewritten; None when it does not exist."""


class LocalFiles(StoreFiles):
    """A folder on a local (or shared) filesystem: today's store, byte for byte."""

    is_local = True

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalFiles({str(self.root)!r})"

    def path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/")) if key else self.root

    def location(self, key: str = "") -> str:
        return str(self.path(key))

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def parquet_source(self, key: str) -> str:
        return str(self.path(key))

    def write_bytes(self, key: str, data: bytes, mode: int = 0o644) -> None:
        write_bytes_atomic(self.path(key), data, mode)

    def temp_path(self, key: str) -> Path:
        return temp_path_for(self.path(key))

    def commit_file(self, temp: Path, key: str) -> None:
        final = self.path(key)
        os.replace(temp, final)
        fsync_dir(final.parent)

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def list_files(self, key: str) -> list[str]:
        folder = self.path(key)
        if not folder.is_dir():
            return []
        return sorted(path.name for path in folder.iterdir() if path.is_file())

    def list_folders(self, key: str) -> list[str]:
        folder = self.path(key)
        if not folder.is_dir():
            return []
        return sorted(path.name for path in folder.iterdir() if path.is_dir())

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def remove_tree(self, key: str) -> None:
        folder = self.path(key)
        if folder.exists():
            remove_tree_atomic(folder, folder.parent)

    def stamp(self, key: str) -> tuple | None:
        try:
            info = self.path(key).stat()
        except FileNotFoundError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns)


class ObjectFiles(StoreFiles):
    """Objects under `uri` (any fsspec URI: s3://, gs://, az://, memory://), one whole object per write."""

    is_local = False

    def __init__(self, uri: str) -> None:
        import fsspec

        self.uri = uri.rstrip("/")
        try:
            self.fs, root = fsspec.core.url_to_fs(self.uri)
        except ImportError as error:
            protocol = self.uri.split("://", 1)[0]
            package = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}.get(
                protocol, f"the fsspec implementation of {protocol}://"
            )
            raise ConfigurationError(
                f"the dataset store {self.uri} (ATLAS_STORE_URI) needs {package}, which is not installed "
                f"({error}); run `pip install {package}` in this environment, or unset ATLAS_STORE_URI "
                "to keep datasets under ATLAS_HOME"
            ) from None
        self.root = root.rstrip("/")

    def __repr__(self) -> str:
        return f"ObjectFiles({self.uri!r})"

    def path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def location(self, key: str = "") -> str:
        return f"{self.uri}/{key}" if key else self.uri

    def read_bytes(self, key: str) -> bytes:
        return self.fs.cat_file(self.path(key))

    def parquet_source(self, key: str) -> pa.NativeFile:
        sink = pa.BufferOutputStream()  # Arrow-owned memory: Arrow never holds a Python object
        sink.write(self.read_bytes(key))
        return pa.BufferReader(sink.getvalue())

    def write_bytes(self, key: str, data: bytes, mode: int = 0o644) -> None:
        self._write(key, len(data), lambda path: self.fs.pipe_file(path, data))

    def temp_path(self, key: str) -> Path:
        return Path(tempfile.gettempdir()) / f"{TEMP_PREFIX}{secrets.token_hex(6)}-{key.rsplit('/', 1)[-1]}"

    def commit_file(self, temp: Path, key: str) -> None:
        try:
            self._write(key, temp.stat().st_size, lambda path: self.fs.put_file(str(temp), path))
        finally:
            temp.unlink(missing_ok=True)

    def _write(self, key: str, size: int, upload) -> None:
        try:
            upload(self.path(key))
        except Exception as error:  # noqa: BLE001 - each fsspec backend raises its own kinds (OSError, botocore, aiohttp)
            raise object_write_error(
                self.location(key), size, error, "nothing was committed, the dataset is as before", "retry"
            ) from None
        finally:
            self.fs.invalidate_cache(self.path(key).rsplit("/", 1)[0])

    def exists(self, key: str) -> bool:
        path = self.path(key)
        self.fs.invalidate_cache(path)
        return bool(self.fs.exists(path))

    def _listing(self, key: str) -> list[dict]:
        path = self.path(key)
        self.fs.invalidate_cache(path)  # ask the store, not a listing cached earlier in this process
        try:
            return self.fs.ls(path, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []

    def list_files(self, key: str) -> list[str]:
        return sorted(item["name"].rstrip("/").rsplit("/", 1)[-1] for item in self._listing(key) if item["type"] == "file")

    def list_folders(self, key: str) -> list[str]:
        return sorted(
            item["name"].rstrip("/").rsplit("/", 1)[-1] for item in self._listing(key) if item["type"] == "directory"
        )

    def delete(self, key: str) -> None:
        path = self.path(key)
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass
        finally:
            self.fs.invalidate_cache(path.rsplit("/", 1)[0])

    def remove_tree(self, key: str) -> None:
        path = self.path(key)
        self.fs.invalidate_cache(path)
        try:
            self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass
        finally:
            self.fs.invalidate_cache(path)

    def stamp(self, key: str) -> tuple | None:
        path = self.path(key)
        self.fs.invalidate_cache(path)
        try:
            details = self.fs.info(path)
        except FileNotFoundError:
            return None
        return details.get("size"), tuple(str(details.get(name)) for name in ("ETag", "LastModified", "mtime", "created"))


def is_local_uri(uri: str) -> bool:
    """True for a plain path or a file:// URI."""
    return "://" not in uri or uri.split("://", 1)[0] in LOCAL_PROTOCOLS


def open_files(uri: str) -> StoreFiles:
    """The files of the store rooted at `uri` (a folder or an fsspec URI)."""
    if is_local_uri(uri):
        path = uri.split("://", 1)[1] if "://" in uri else uri
        return LocalFiles(Path(path).expanduser().absolute())
    return ObjectFiles(uri)


__all__ = ["LocalFiles", "ObjectFiles", "StoreFiles", "is_local_uri", "open_files"]

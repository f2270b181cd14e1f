"""Per-dataset file locks, shared by every thread and process using one ATLAS_HOME.

Two locks per dataset, both `filelock` locks under `$ATLAS_HOME/locks/<org>/` (outside the dataset
folder, so deleting a dataset never races its own lock file):

- the writer lock serialises every change of the dataset (add_data, delete_data, record updates);
- the indexing lock is held by a materialisation of the dataset's assets.

`is_locked` probes both with a fresh lock object, so it sees holders in this process too.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from atlas_assets.errors import DatasetLockedError, StoreWriteError

_HELD: dict[tuple[int, str], FileLock] = {}
_HELD_GUARD = threading.Lock()


def _shared_lock(path: Path) -> FileLock:
    """One FileLock object per path in this process: re-entrant within a thread.

    Keyed by process id too: a forked child must not reuse its parent's lock objects.
    """
    key = (os.getpid(), str(path))
    with _HELD_GUARD:
        lock = _HELD.get(key)
        if lock is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = _HELD[key] = FileLock(str(path))
        return lock


@contextmanager
def hold(path: Path, timeout: float | None, what: str, identifier: str) -> Iterator[None]:
    """Hold the lock at `path`; wait at most `timeout` seconds (None: wait forever)."""
    try:
        lock = _shared_lock(path)
        lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0))
    except Timeout:
        raise DatasetLockedError(
            f"dataset {identifier} is locked ({what} in progress, lock file {path}); "
            f"waited {timeout:g} s. Wait for it to finish (ds.wait_for_dataset_lock()) or pass a "
            "longer timeout."
        ) from None
    except OSError as error:  # read-only store, disk full, no permission: the lock file cannot be opened
        raise StoreWriteError(
            f"cannot take the lock of dataset {identifier} for {what} ({error.strerror or error}: {path}); "
            "the store is not writable here. Check that ATLAS_HOME is on a writable disk with free space."
        ) from error
    try:
        yield
    finally:
        lock.release()


def is_held(path: Path) -> bool:
    """True while anyone (this process included) holds the lock at `path`."""
    if not path.exists():
        return False
    probe = FileLock(str(path), thread_local=False)
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    except OSError:  # a read-only store: nobody can be writing it through this lock file
        return False
    probe.release()
    return False


def wait_until_free(paths: list[Path], timeout: float | None, identifier: str, poll: float = 0.1) -> None:
    """Block until none of the locks is held, without taking them."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while any(is_held(path) for path in paths):
        if deadline is not None and time.monotonic() >= deadline:
            raise DatasetLockedError(
                f"dataset {identifier} is still locked (being written or indexed) after {timeout:g} s; "
                "retry later or pass a longer timeout."
            )
        time.sleep(poll)

"""Atomic file writes: temp file in the same folder, fsync, os.replace, fsync the folder.

A reader sees the old file or the new one, never a half; a crash leaves at most a `.tmp-*` file that
the next writer removes.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".tmp-"


def temp_path_for(target: Path) -> Path:
    """A unique temp name next to `target` (same filesystem, so the final rename is atomic)."""
    return target.with_name(f"{TEMP_PREFIX}{secrets.token_hex(6)}-{target.name}")


def fsync_dir(folder: Path) -> None:
    """Make a rename inside `folder` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_writer(target: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a binary file; on clean exit it replaces `target` atomically, on error it vanishes.

    `mode` is the new file's permission (0o600 for secrets: it never exists readable by others).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(target)
    try:
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def write_bytes_atomic(target: Path, data: bytes, mode: int = 0o644) -> None:
    with atomic_writer(target, mode) as handle:
        handle.write(data)


def remove_tree_atomic(folder: Path, trash_parent: Path) -> None:
    """Remove a folder so that it disappears at once: rename it aside, then delete the renamed copy."""
    trash_parent.mkdir(parents=True, exist_ok=True)
    aside = trash_parent / f"{TEMP_PREFIX}deleted-{secrets.token_hex(6)}-{folder.name}"
    os.replace(folder, aside)
    fsync_dir(folder.parent)
    shutil.rmtree(aside, ignore_errors=True)

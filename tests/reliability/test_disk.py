"""A full disk and a read-only store: a StoreWriteError naming the problem, nothing half written.

Disk full is real: ATLAS_HOME on a small tmpfs (mounted here, as root) filled to the brim, so writes
fail with ENOSPC where they would on a real disk; and, on any machine, a writer whose file size
limit (RLIMIT_FSIZE) makes writes fail with EFBIG. Read-only is a read-only remount of that tmpfs
(root ignores file modes, so chmod would prove nothing). After every failure each file under
`datasets/` is byte-for-byte what it was, and the same call succeeds once there is room again.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from atlas_assets.dataset import AtlasDataset
from atlas_assets.errors import AtlasError, StoreWriteError
from tests.reliability.support import FORK, fingerprint

FS_SIZE = "4m"


def _mount(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=False)


@pytest.fixture
def small_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """ATLAS_HOME on a 4 MB tmpfs of its own (the Dagster instance stays outside it)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = _mount(["mount", "-t", "tmpfs", "-o", f"size={FS_SIZE}", "tmpfs", str(mount_point)])
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the RLIMIT_FSIZE test covers disk full")
    monkeypatch.setenv("ATLAS_HOME", str(mount_point))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    try:
        yield mount_point
    finally:
        _mount(["umount", "-l", str(mount_point)])


def _news(rows: int, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(start)
    return pd.DataFrame(
        {
            "id": [f"n{i}" for i in range(start, start + rows)],
            # random text does not compress: its size on disk is predictable
            "text": [rng.bytes(300).hex() for _ in range(rows)],
        }
    )


def _fill(home: Path, leave: int) -> Path:
    """Fill the filesystem until only about `leave` bytes are free."""
    filler = home / f"filler-{uuid.uuid4().hex}"
    stats = os.statvfs(home)
    free = stats.f_bavail * stats.f_frsize
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(free - leave, 0))
    return filler


def _assert_refused_cleanly(home: Path, call, *, expected=StoreWriteError) -> AtlasError:
    before = fingerprint(home / "datasets")
    with pytest.raises(AtlasError) as caught:
        call()
    assert isinstance(caught.value, expected), repr(caught.value)
    assert fingerprint(home / "datasets") == before, "a failed write changed the store"
    return caught.value


def test_a_full_disk_refuses_uploads_deletions_and_new_datasets_cleanly(small_home: Path) -> None:
    dataset = AtlasDataset("disk/full", unique_id_field="id")
    dataset.add_data(_news(200))
    filler = _fill(small_home, leave=48_000)

    error = _assert_refused_cleanly(small_home, lambda: dataset.add_data(_news(2000, start=1000)))
    assert "No space left on device" in str(error) and "nothing was committed" in str(error)
    _assert_refused_cleanly(small_home, lambda: dataset.add_data(blobs=None, data=_news(2000, start=5000)))

    filler.unlink()
    small = _fill(small_home, leave=2_000)
    _assert_refused_cleanly(small_home, lambda: dataset.delete_data([f"n{i}" for i in range(150)]))
    _assert_refused_cleanly(small_home, lambda: AtlasDataset("disk/another", unique_id_field="id"))
    assert dataset.total_datums == 200 and len(dataset.get_data(["n0", "n199"])) == 2  # reading still works

    small.unlink()  # room again: the same calls now work
    dataset.add_data(_news(2000, start=1000))
    dataset.delete_data([f"n{i}" for i in range(150)])
    assert dataset.total_datums == 2050
    assert not [p for p in small_home.rglob(".tmp-*")], "temp files left behind"


def test_a_read_only_store_is_readable_and_refuses_writes_with_a_clear_error(small_home: Path) -> None:
    dataset = AtlasDataset("disk/readonly", unique_id_field="id")
    dataset.add_data(_news(100))
    done = _mount(["mount", "-o", "remount,ro", str(small_home)])
    assert done.returncode == 0, done.stderr
    try:
        assert dataset.total_datums == 100
        assert dataset.get_data(["n5"])[0]["id"] == "n5"
        for write in (
            lambda: dataset.add_data(_news(10, start=500)),
            lambda: dataset.delete_data(["n1"]),
            lambda: AtlasDataset("disk/new-one", unique_id_field="id"),
        ):
            error = _assert_refused_cleanly(small_home, write)
            assert "Read-only file system" in str(error), str(error)
    finally:
        _mount(["mount", "-o", "remount,rw", str(small_home)])
    dataset.add_data(_news(10, start=500))
    assert dataset.total_datums == 110


def _write_with_file_size_limit(limit: int, queue) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        AtlasDataset("disk/limit").add_data(_news(3000, start=10_000))
    except AtlasError as error:
        queue.put((type(error).__name__, str(error)))
    except BaseException as error:  # noqa: BLE001 - reported to the parent, which fails the test
        queue.put((type(error).__name__, repr(error)))
    else:
        queue.put(("no error", ""))


def test_a_file_size_limit_makes_a_clear_error_and_writes_nothing(atlas_home: Path) -> None:
    """Works on any machine (no mount needed): writes past RLIMIT_FSIZE fail with EFBIG."""
    dataset = AtlasDataset("disk/limit", unique_id_field="id")
    dataset.add_data(_news(50))
    before = fingerprint(atlas_home / "datasets")
    queue = FORK.Queue()
    writer = FORK.Process(target=_write_with_file_size_limit, args=(200_000, queue))
    writer.start()
    kind, message = queue.get(timeout=120)
    writer.join(60)
    assert kind == "StoreWriteError", f"{kind}: {message}"
    assert "File too large" in message and "nothing was committed" in message
    assert fingerprint(atlas_home / "datasets") == before
    dataset.add_data(_news(3000, start=10_000))  # without the limit it works
    assert dataset.total_datums == 3050


@pytest.mark.slow
def test_a_full_disk_during_update_indices_keeps_the_old_map(small_home: Path) -> None:
    from tests.reliability.support import digits_vectors

    dataset = AtlasDataset("disk/map", unique_id_field="id")
    frame, vectors = digits_vectors(300)
    dataset.add_data(frame, embeddings=vectors)
    dataset.create_index(name="map", projection={"n_neighbors": 10, "n_epochs": 50}, topic_model=False,
                         duplicate_detection=False)
    frame, vectors = digits_vectors(40, start=300)
    dataset.add_data(frame, embeddings=vectors)
    indices = small_home / "datasets" / "disk" / "map" / "indices"
    before = fingerprint(indices)
    filler = _fill(small_home, leave=1_000)
    with pytest.raises(AtlasError, match="No space left on device"):
        dataset.update_indices()
    assert fingerprint(indices) == before, "a failed materialisation changed the map's files"
    assert len(dataset.get_map("map").embeddings.projected) == 300  # the old map still reads
    filler.unlink()
    dataset.update_indices()
    assert len(dataset.get_map("map").embeddings.projected) == 340

"""Data at rest (issue 21): a private dataset's folders are 0700 and its files 0600, whatever the
umask; the Dagster instance folder is 0700; there is one token store (no token in dataset.json)."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from resources.storage import DatasetStore

OPEN_UMASK = 0o000  # the worst case: files created world-writable unless the store says otherwise


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    previous = os.umask(OPEN_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def _fill(store: DatasetStore, organisation: str, *, is_public: bool) -> Path:
    store.create_dataset(organisation, "pictures", unique_id_field="id", is_public=is_public)
    frame = pd.DataFrame({"id": ["a", "b", "c"], "caption": ["secret one", "secret two", "secret three"]})
    store.add_batch(organisation, "pictures", frame, blobs=[_png(10), _png(20), _png(30)])
    store.delete_ids(organisation, "pictures", ["b"])
    return store.dataset_dir(organisation, "pictures")


def test_a_private_datasets_files_are_0600_and_its_folders_0700(atlas_home: Path, open_umask) -> None:
    folder = _fill(DatasetStore(), "closed", is_public=False)
    files = [path for path in folder.rglob("*") if path.is_file()]
    folders = [folder, *(path for path in folder.rglob("*") if path.is_dir())]
    kinds = {path.parent.name for path in files}
    assert {"batches", "blobs", "deletions", "pictures"} <= kinds  # record, batch, blobs, tombstone
    assert {str(path.relative_to(folder)): oct(_mode(path)) for path in files if _mode(path) != 0o600} == {}
    assert {str(path.relative_to(folder)): oct(_mode(path)) for path in folders if _mode(path) != 0o700} == {}
    # and another user cannot even list the folder
    assert _mode(folder) & 0o077 == 0


def test_a_public_dataset_keeps_the_ordinary_permissions(atlas_home: Path) -> None:
    previous = os.umask(0o022)
    try:
        folder = _fill(DatasetStore(), "open", is_public=True)
    finally:
        os.umask(previous)
    assert _mode(folder / "dataset.json") == 0o644
    assert all(_mode(path) == 0o644 for path in (folder / "batches").iterdir())


def test_an_older_private_dataset_is_closed_and_loses_its_stray_token_at_its_next_change(atlas_home: Path) -> None:
    store = DatasetStore()
    store.create_dataset("closed", "older", unique_id_field="id", is_public=False)
    folder = store.dataset_dir("closed", "older")
    # as an older version left it: open folders, a readable record holding an unused access token
    for path in (folder, *(p for p in folder.iterdir() if p.is_dir())):
        path.chmod(0o755)
    record_path = folder / "dataset.json"
    record_path.write_text(json.dumps(json.loads(record_path.read_text()) | {"access_token": "stray-token"}))
    record_path.chmod(0o644)
    store.add_batch("closed", "older", pd.DataFrame({"id": ["a"], "text": ["secret"]}))
    assert "stray-token" not in record_path.read_text()
    assert _mode(record_path) == 0o600
    assert all(_mode(path) == 0o700 for path in (folder, *(p for p in folder.iterdir() if p.is_dir())))


def test_the_dagster_instance_folder_is_not_readable_by_others(atlas_home: Path, open_umask) -> None:
    from resources.instance import ensure_dagster_home, get_instance

    home = ensure_dagster_home()
    assert _mode(home) == 0o700
    instance = get_instance()  # creates the run and event databases (index.db, runs/, schedules/)
    instance.dispose()
    assert _mode(home) == 0o700
    assert any(home.rglob("*.db"))  # what the folder protects
    # an existing default folder left open is closed on next use
    home.chmod(0o755)
    ensure_dagster_home()
    assert _mode(home) == 0o700


def test_tokens_live_only_in_the_0600_token_file(atlas_home: Path, open_umask) -> None:
    from atlas_assets.web.auth import dataset_token

    store = DatasetStore()
    record = store.create_dataset("closed", "tokens", unique_id_field="id", is_public=False)
    token = dataset_token(record.id)
    token_file = atlas_home / "web" / "tokens.json"
    assert _mode(token_file.parent) == 0o700  # nobody else can swap the file for one of theirs
    assert _mode(token_file) == 0o600 and json.loads(token_file.read_text())[record.id] == token
    assert token not in store.record_path("closed", "tokens").read_text()
    assert "access_token" not in store.record_path("closed", "tokens").read_text()

"""Fixtures shared by the whole suite: an isolated ATLAS_HOME per test, the shared evaluation data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ATLAS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def _shared_model_cache() -> None:
    """Every test store shares one model cache, so the default model is built once per machine."""
    os.environ.setdefault("ATLAS_MODELS", str(Path.home() / ".atlas" / "models"))


@pytest.fixture
def atlas_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty ATLAS_HOME (and its Dagster instance folder) for one test."""
    home = tmp_path / "atlas_home"
    home.mkdir()
    monkeypatch.setenv("ATLAS_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    return home


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real evaluation data sets in ../shared/data (read there, never copied)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}; set ATLAS_SHARED_DATA to its folder")
    return SHARED_DATA


NEWS_ROWS = 600


def news_frame(shared_data: Path, start: int = 0, rows: int = NEWS_ROWS):
    """Real AG News items (title + description) with string ids, as a pandas frame."""
    import pandas as pd

    frame = pd.read_csv(shared_data / "ag_news" / "test.csv").iloc[start : start + rows]
    return pd.DataFrame(
        {
            "id": frame["id"].astype(str),
            "text": (frame["title"] + ". " + frame["description"]).tolist(),
            "category": frame["label_name"].tolist(),
        }
    )


@pytest.fixture(scope="session")
def _news_map_home(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """One real map (600 AG News items, indexed on text) built once per test session."""
    home = tmp_path_factory.mktemp("news_map_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ATLAS_HOME", str(home))
        patch.setenv("DAGSTER_HOME", str(home / "dagster"))
        from atlas_assets.dataset import AtlasDataset

        dataset = AtlasDataset("tests/ag-news", unique_id_field="id")
        frame = news_frame(shared_data)
        # A planted exact duplicate (same text under another id) that duplicates must flag.
        copy = frame.iloc[[0]].assign(id="copy-of-0")
        import pandas as pd

        dataset.add_data(pd.concat([frame, copy], ignore_index=True))
        dataset.create_index(name="news", indexed_field="text")
    return home


@pytest.fixture
def news_map(_news_map_home: Path, monkeypatch: pytest.MonkeyPatch):
    """The session's AG News map, with ATLAS_HOME pointing at its store for this test."""
    monkeypatch.setenv("ATLAS_HOME", str(_news_map_home))
    monkeypatch.setenv("DAGSTER_HOME", str(_news_map_home / "dagster"))
    from atlas_assets.dataset import AtlasDataset

    return AtlasDataset("tests/ag-news").get_map("news")

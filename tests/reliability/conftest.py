"""Fixtures of the map server tests: two real pipeline-built maps served as `atlas serve` serves them.

`served_home` is an ATLAS_HOME holding a public map (1,000 sklearn digits vectors, topics named from
the digit field, duplicates) and a private one (`is_public=False`), built once per session by
`create_index`. `map_server` serves that home through `HomeRegistry` on 127.0.0.1 with the loopback
Host check, exactly as `atlas serve` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability.support import digits_vectors

PUBLIC, PRIVATE = "open/digits", "closed/digits"
WRITE_TOKEN = "reliability-write-token"  # the map server's tag-writing token in these tests


@dataclass
class ServedMaps:
    home: Path
    public_key: str  # <org>/<slug>/<index id>
    private_key: str
    private_token: str
    rows: int


@pytest.fixture(scope="session")
def served_home(tmp_path_factory: pytest.TempPathFactory) -> ServedMaps:
    home = tmp_path_factory.mktemp("served_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ATLAS_HOME", str(home))
        patch.setenv("DAGSTER_HOME", str(home / "dagster"))
        from atlas_assets.dataset import AtlasDataset
        from atlas_assets.client.options import NomicTopicOptions
        from atlas_assets.web.auth import dataset_token

        frame, vectors = digits_vectors(1000)
        public = AtlasDataset(PUBLIC, unique_id_field="id")
        public.add_data(frame, embeddings=vectors)
        public_map = public.create_index(
            name="digits", projection={"n_neighbors": 10, "n_epochs": 50},
            topic_model=NomicTopicOptions(topic_label_field="digit"),
        )
        private = AtlasDataset(PRIVATE, unique_id_field="id", is_public=False)
        private.add_data(frame.iloc[:300], embeddings=vectors[:300])
        private_map = private.create_index(
            name="secret", projection={"n_neighbors": 10, "n_epochs": 50}, topic_model=False, duplicate_detection=False
        )
        token = dataset_token(private.id)
        assert token
        return ServedMaps(
            home=home,
            public_key=f"{PUBLIC}/{public_map.id}",
            private_key=f"{PRIVATE}/{private_map.id}",
            private_token=token,
            rows=1000,
        )


@pytest.fixture
def map_server(served_home: ServedMaps, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The base URL of a map server over `served_home` (HomeRegistry, loopback hosts only)."""
    monkeypatch.setenv("ATLAS_HOME", str(served_home.home))
    monkeypatch.setenv("DAGSTER_HOME", str(served_home.home / "dagster"))
    from atlas_assets.web.app import LOOPBACK_HOSTS, BackgroundServer, create_app
    from atlas_assets.web.discovery import HomeRegistry

    server = BackgroundServer(create_app(HomeRegistry(), allowed_hosts=LOOPBACK_HOSTS, write_token=WRITE_TOKEN))
    try:
        yield server.url
    finally:
        server.stop()

"""The storage engine is plain Python; the pipeline gets it through a thin Dagster resource."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg

from resources.storage import DatasetStore
from resources.store import store_resource

REPO = Path(__file__).resolve().parents[2]


def test_the_storage_engine_imports_no_dagster() -> None:
    probe = "import sys, resources.storage; print('dagster' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_assets_get_the_engine_from_the_resource_with_its_root(tmp_path: Path) -> None:
    DatasetStore(root=str(tmp_path)).create_dataset("acme/Some Data", unique_id_field="id")

    @dg.asset
    def count(store: dg.ResourceParam[DatasetStore]) -> int:
        assert isinstance(store, DatasetStore)
        return len(store.list_datasets())

    configured = store_resource.configured({"root": str(tmp_path)})
    result = dg.materialize([count], resources={"store": configured})
    assert result.success and result.output_for_node("count") == 1


def test_in_process_runs_may_pass_the_engine_itself(tmp_path: Path) -> None:
    @dg.asset
    def home(store: dg.ResourceParam[DatasetStore]) -> str:
        return str(store.home)

    result = dg.materialize([home], resources={"store": DatasetStore(root=str(tmp_path))})
    assert result.output_for_node("home") == str(tmp_path)

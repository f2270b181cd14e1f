"""The example configurations in deploy/ are what they claim: the Kubernetes code location loads every
dataset's assets with k8s_job_executor, the Helm values use the chart's keys for the run launcher and
the embedding pool, and the object-store example points the outputs at an fsspec URI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_digits

from atlas_assets import AtlasDataset
from tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"


@pytest.mark.parametrize(("location", "executor"), [("kubernetes", "k8s"), ("dask", "dask")])
def test_each_deploy_code_location_loads_by_file_with_every_datasets_assets(atlas_home, location, executor):
    """Loaded as Dagster loads a `python_file` code location (its own autodiscovery), so a second
    @definitions function in the file's scope, or a missing import, fails here and not on a cluster."""
    from dagster._core.workspace.autodiscovery import loadable_targets_from_python_file

    data = load_digits()
    dataset = AtlasDataset("deploy/digits", unique_id_field="id")
    dataset.add_data(pd.DataFrame({"id": [f"d{i}" for i in range(30)]}), embeddings=(data.data[:30] / 16).astype(np.float32))
    (target,) = loadable_targets_from_python_file(str(DEPLOY / location / "definitions.py"), str(REPO_ROOT))
    definitions = target.target_definition()
    assert definitions.executor.name == executor
    keys = {key.to_user_string() for asset in definitions.assets for key in asset.keys}
    assert "deploy/digits/raw_data" in keys


def test_helm_values_use_the_k8s_run_launcher_and_cap_the_embedding_pool():
    values = yaml.safe_load((DEPLOY / "kubernetes" / "values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["--python-file", "/opt/atlas/definitions.py"]
    env = {item["name"]: item["value"] for item in deployment["env"]}
    assert env["ATLAS_OUTPUTS_URI"].startswith("s3://") and env["ATLAS_HOME"] == "/atlas"
    assert values["concurrency"]["pools"]["defaultLimit"] >= 1
    assert values["postgresql"]["enabled"] is False and values["global"]["postgresqlSecretName"]
    dockerfile = (DEPLOY / "kubernetes" / "Dockerfile").read_text()
    assert "/opt/atlas/definitions.py" in dockerfile and "atlas models install" in dockerfile


def test_the_postgres_instance_example_reads_its_url_from_the_environment():
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}


def test_the_instance_example_is_valid_dagster_config_that_recovers_from_lost_runs(tmp_path, monkeypatch):
    """What tests/deploy/test_daemon_runs.py relies on ships in the example: run monitoring with a
    maximum runtime (the only thing that ends a run whose machine died under the default launcher)
    and run retries."""
    from dagster._core.instance.config import dagster_instance_config

    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", "postgresql+psycopg2://atlas@127.0.0.1:1/atlas")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_monitoring"]["enabled"] and config["run_monitoring"]["max_runtime_seconds"] > 0
    assert config["run_retries"] == {"enabled": True, "max_retries": 2}


def test_index_outputs_follow_an_fsspec_uri(atlas_home, monkeypatch):
    """ATLAS_OUTPUTS_URI moves every index output off the local store (memory:// stands in for s3://)."""
    example = dict(
        line.split("=", 1) for line in (DEPLOY / "outputs-s3.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert example["ATLAS_OUTPUTS_URI"].startswith("s3://")
    monkeypatch.setenv("ATLAS_OUTPUTS_URI", "memory://atlas-outputs")
    from upath import UPath

    data = load_digits()
    dataset = AtlasDataset("remote/digits", unique_id_field="id")
    dataset.add_data(pd.DataFrame({"id": [f"d{i}" for i in range(120)]}), embeddings=(data.data[:120] / 16).astype(np.float32))
    atlas_map = dataset.create_index(topic_model=False)
    assert len(atlas_map.embeddings.projected) == 120
    remote = UPath("memory://atlas-outputs") / "datasets" / "remote" / "digits" / "indices" / atlas_map.atlas_index_id
    assert (remote / "projection.parquet").exists() and (remote / "duplicates.parquet").exists()
    local = atlas_home / "datasets" / "remote" / "digits" / "indices" / atlas_map.atlas_index_id
    assert not (local / "projection.parquet").exists()

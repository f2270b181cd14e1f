"""The atlas code location for Kubernetes: every dataset's assets, each step in its own pod.

Served by the Helm chart's user-code deployment (`--python-file /opt/atlas/definitions.py`). The
assets are exactly those of `atlas_assets.definitions`; only the executor changes, so the same
code runs on a laptop (in-process, multiprocess) and on a cluster (k8s_job_executor).
Per-step resources: the embeddings steps are CPU-heavy, the graph and layout steps memory-heavy
(see docs/scaling.md); tags on the assets could size them separately with `dagster-k8s/config`.
"""

import dagster as dg
from dagster_k8s import k8s_job_executor

import atlas_assets.definitions as atlas_location

STEP_POD = {
    "container_config": {
        "resources": {
            "requests": {"cpu": "4", "memory": "8Gi"},
            "limits": {"memory": "16Gi"},
        }
    }
}


@dg.definitions
def defs() -> dg.Definitions:
    # atlas_location.defs, not imported by name: a second @definitions function in this module's
    # scope makes Dagster refuse to load the file as a code location
    executor = k8s_job_executor.configured({"max_concurrent": 16, "step_k8s_config": STEP_POD})
    return dg.Definitions.merge(atlas_location.defs(), dg.Definitions(executor=executor))

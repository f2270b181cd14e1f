"""The atlas code location for a dask.distributed cluster: every dataset's assets, each step a task on
a Dask worker.

Serve it like any code location (`python_file: deploy/dask/definitions.py` in workspace.yaml). The run
worker (a process per run, started by the daemon's run launcher) orchestrates the run and submits each
step to the scheduler at `ATLAS_DASK_SCHEDULER` (e.g. tcp://dask-scheduler:8786); a Dask worker loads
this code location again, runs the step and writes its events to the instance. Workers need the same
environment as run workers: the package, `DAGSTER_HOME` / `DAGSTER_POSTGRES_URL`, `ATLAS_HOME` (the
dataset store, a shared volume) and `ATLAS_OUTPUTS_URI` if outputs live on an object store.

The executor is dagster-dask's `DaskExecutor` (0.29.27, the release of dagster 1.13.27) with two
changes, without which it does not work here:
- its Dask task key names the run. The stock key is `<job>.<step>`, so two runs of one job at the
  same time (two upload batches' embed_batch runs) submit the same key, Dask computes it once, and the
  second run is reported successful without its step ever running (dagster-io/dagster#21418);
- the step's arguments reach Dask inside a `functools.partial`. Passed as plain arguments, as the
  stock executor does, current dask (2026.8) walks them for futures and Dagster's records refuse to be
  iterated: every run fails before its first step with "Iteration is not allowed on `@record`".

A worker that dies mid-step (kill -9, OOM, a lost node) is handled by Dask, not Dagster: the
scheduler runs the task again on another worker, up to `distributed.scheduler.allowed-failures` times
(default 3); Dagster's own step retries are not available with this executor (RetryMode.DISABLED).
"""

from __future__ import annotations

import functools
import os

import dagster as dg
import dask.distributed
from dagster._core.errors import raise_execution_interrupts
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._utils import iterate_with_context
from dagster_dask.executor import (
    DaskExecutor,
    get_dask_resource_requirements,
    query_on_dask_worker,
)

import atlas_assets.definitions as atlas_location
from resources.embedder_resource import EmbedderResource

SCHEDULER_ENV = "ATLAS_DASK_SCHEDULER"
THREADS_ENV = "ATLAS_EMBED_THREADS"
"""onnxruntime threads of an embedding step, read where the step runs (each worker's environment);
0 or unset: all cores. Set it to the worker's CPUs when several workers share a machine."""


class RunScopedDaskExecutor(DaskExecutor):
    """DaskExecutor on an existing scheduler whose task keys are unique per run."""

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan):
        # DaskExecutor.execute for an existing scheduler, with the run id in each task's key and
        # the step's arguments passed so that current dask accepts them
        assert plan_context.instance.is_persistent, "Dask execution requires a persistent DagsterInstance"
        run_id = plan_context.dagster_run.run_id
        with dask.distributed.Client(self.cluster_configuration["address"]) as client:
            futures: dict[str, dask.distributed.Future] = {}
            for step_level in execution_plan.get_steps_to_execute_by_level():
                for step in step_level:
                    # the upstream futures are passed so that Dask runs a step after its inputs
                    dependencies = [futures[key] for step_input in step.step_inputs for key in step_input.dependency_keys]
                    # Dagster's records go inside a partial: dask (2024.12 and later) walks every
                    # tuple among a task's arguments looking for futures, and Dagster's records are
                    # tuples that refuse iteration ("Iteration is not allowed on `@record`")
                    step_on_worker = functools.partial(
                        query_on_dask_worker,
                        recon_job=plan_context.reconstructable_job,
                        dagster_run=plan_context.dagster_run,
                        run_config=plan_context.run_config,
                        step_keys=[step.key],
                        instance_ref=plan_context.instance.get_ref(),
                        known_state=execution_plan.known_state,
                    )
                    futures[step.key] = client.submit(
                        step_on_worker,
                        dependencies,
                        key=f"{plan_context.job_name}.{step.key}.{run_id}",
                        resources=get_dask_resource_requirements(step.tags),
                    )
            completed = dask.distributed.as_completed(list(futures.values()), with_results=True)
            for _future, events in iterate_with_context(raise_execution_interrupts, completed):
                yield from events


def _create_executor(init_context: dg.InitExecutorContext) -> RunScopedDaskExecutor:
    return RunScopedDaskExecutor("existing", {"address": init_context.executor_config["address"]})


dask_executor = dg.ExecutorDefinition(
    name="dask",
    config_schema={"address": dg.Field(dg.StringSource, description="The Dask scheduler, tcp://host:8786")},
    requirements=dg.multiple_process_executor_requirements(),
    executor_creation_fn=_create_executor,
    description="Each step a task on a dask.distributed cluster (dagster-dask, run-scoped task keys).",
)


@dg.definitions
def defs() -> dg.Definitions:
    # atlas_location.defs, not imported by name: a second @definitions function in this module's
    # scope makes Dagster refuse to load the file as a code location
    atlas = atlas_location.defs()
    embedder = EmbedderResource(threads=int(os.environ.get(THREADS_ENV) or 0))
    return dg.Definitions(
        assets=atlas.assets, asset_checks=atlas.asset_checks, jobs=atlas.jobs, sensors=atlas.sensors,
        schedules=atlas.schedules, resources={**(atlas.resources or {}), "embedder": embedder},
        executor=dask_executor.configured({"address": {"env": SCHEDULER_ENV}}),
    )

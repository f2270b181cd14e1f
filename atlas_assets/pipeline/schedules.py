"""Automation over every dataset: downstream stages follow new embeddings (declarative automation),
and topic models are rebuilt nightly (new rows otherwise only join existing topics)."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from atlas_assets.pipeline.assets.common import rebuild_run_config

NIGHTLY_TOPICS_CRON = "0 3 * * *"


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        "atlas_automation",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=10,
        description="Runs each stage when its inputs changed (AutomationCondition.eager on every index asset).",
    )


def nightly_topic_rebuild(topics_assets: Sequence[dg.AssetsDefinition]) -> dg.ScheduleDefinition:
    """Every `topics` asset given, rebuilt from scratch (run config `rebuild: true` for each)."""
    return dg.ScheduleDefinition(
        name="atlas_nightly_topic_rebuild",
        cron_schedule=NIGHTLY_TOPICS_CRON,
        target=dg.AssetSelection.assets(*topics_assets),
        run_config=rebuild_run_config(list(topics_assets)),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Rebuilds every topic model from scratch, so topics follow the data as it grows.",
    )

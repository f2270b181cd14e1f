"""Automation over every dataset: downstream stages follow new embeddings (declarative automation),
and topic models are rebuilt nightly (new rows otherwise only join existing topics)."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from atlas_assets.pipeline.assets.common import rebuild_run_config
from atlas_assets.pipeline.factory import TRIGGER_TAG

NIGHTLY_TOPICS_CRON = "0 3 * * *"


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        "atlas_automation",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=10,
        description="Runs each stage when its inputs changed (AutomationCondition.eager on every index asset).",
        run_tags={TRIGGER_TAG: "automation"},
    )


def nightly_topic_rebuild(topics_assets: Sequence[dg.AssetsDefinition]) -> dg.ScheduleDefinition:
    """Every `topics` asset given, rebuilt from scratch (run config `rebuild: true` for each).

    Defined even before any map has topics, so a fresh ATLAS_HOME shows it in the UI from the start;
    until then its ticks are skipped with the reason. The code location reloads when datasets change
    (`atlas ui` watches the registry), so new maps join it without a hand reload."""
    target = dg.AssetSelection.assets(*topics_assets) if topics_assets else dg.AssetSelection.all()
    run_config = rebuild_run_config(list(topics_assets))

    @dg.schedule(
        name="atlas_nightly_topic_rebuild",
        cron_schedule=NIGHTLY_TOPICS_CRON,
        target=target,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Rebuilds every topic model from scratch, so topics follow the data as it grows.",
    )
    def nightly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        if not topics_assets:
            return dg.SkipReason("no map has topics yet")
        return dg.RunRequest(run_config=run_config, tags={TRIGGER_TAG: "schedule"})

    return nightly

"""The Dagster code location: every dataset's asset family, read from the store's registry.

Loaded by `dagster dev -w workspace.yaml`, `dagster-daemon` and the webserver; a new dataset shows up
after a code-location reload (`atlas ui` asks the webserver for one when the registry changes; the
daemon reloads every 60 s), new batches need no reload.
"""

import dagster as dg

from atlas_assets.pipeline.factory import batches_partitions, build_dataset_definitions
from atlas_assets.pipeline.runner import default_resources
from atlas_assets.pipeline.schedules import automation_sensor, nightly_topic_rebuild
from atlas_assets.pipeline.sensors import inbox_asset, inbox_check, inbox_sensor
from resources.instance import ensure_dagster_home
from resources.storage import DatasetStore


@dg.definitions
def defs() -> dg.Definitions:
    ensure_dagster_home()
    records = DatasetStore().list_datasets()
    families = [build_dataset_definitions(record) for record in records]
    sensors: list[dg.SensorDefinition] = [inbox_sensor(r, batches_partitions(r)) for r in records]
    # The automation sensor and the nightly schedule exist from the first load, datasets or not.
    sensors.append(automation_sensor())
    topics = [asset for family in families for asset in family.assets or [] if asset.key.path[-1] == "topics"]
    inboxes = dg.Definitions(
        assets=[inbox_asset(r) for r in records], asset_checks=[inbox_check(r) for r in records]
    )
    automation = dg.Definitions(sensors=sensors, schedules=[nightly_topic_rebuild(topics)], resources=default_resources())
    return dg.Definitions.merge(*families, inboxes, automation)

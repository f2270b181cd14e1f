"""The code location the daemon and UI load: every dataset's family, sensors and schedule."""

import dagster as dg

from atlas_assets.definitions import defs


def _load() -> dg.Definitions:
    return defs() if callable(defs) else defs


def test_an_empty_store_loads_an_empty_code_location_with_its_automation_already_on(atlas_home):
    loaded = _load()
    dg.Definitions.validate_loadable(loaded)
    assert not list(loaded.assets or [])
    assert (atlas_home / "dagster" / "dagster.yaml").exists()
    assert {sensor.name for sensor in loaded.sensors} == {"atlas_automation"}
    (schedule,) = loaded.schedules
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    with dg.instance_for_test() as instance:
        tick = schedule.evaluate_tick(dg.build_schedule_context(instance=instance, repository_def=loaded.get_repository_def()))
    assert not tick.run_requests and "no map has topics yet" in tick.skip_message


def test_a_store_with_a_map_loads_its_family_sensors_and_schedule(news_map):
    loaded = _load()
    dg.Definitions.validate_loadable(loaded)
    keys = {key.to_user_string() for asset in loaded.assets for key in asset.keys}
    assert "tests/ag_news/raw_data" in keys and "tests/ag_news/news/topics" in keys
    sensor_names = {sensor.name for sensor in loaded.sensors}
    assert sensor_names == {"tests__ag_news__inbox", "atlas_automation"}
    assert all(sensor.default_status == dg.DefaultSensorStatus.RUNNING for sensor in loaded.sensors)
    assert [schedule.name for schedule in loaded.schedules] == ["atlas_nightly_topic_rebuild"]


def test_the_nightly_schedule_asks_every_topics_asset_to_rebuild(news_map):
    loaded = _load()
    schedule = next(iter(loaded.schedules))
    repository = loaded.get_repository_def()
    job = repository.get_job(schedule.job_name)
    topics_keys = {key for asset in loaded.assets for key in asset.keys if key.path[-1] == "topics"}
    assert set(job.asset_layer.executable_asset_keys) == topics_keys
    with dg.instance_for_test() as instance:
        (request,) = schedule.evaluate_tick(dg.build_schedule_context(instance=instance, repository_def=repository)).run_requests
    assert request.run_config == {"ops": {"tests__ag_news__news__topics": {"config": {"rebuild": True}}}}
    dg.validate_run_config(job, request.run_config)

import dagster as dg

from atlas_assets.pipeline.naming import DatasetNames, sanitise


def test_dagster_names_keep_only_letters_digits_and_underscores():
    assert sanitise("news-2024") == "news_2024"
    assert sanitise("a.b c") == "a_b_c"


def test_a_name_never_starts_with_a_digit():
    assert sanitise("2024") == "_2024"


def test_keys_of_a_dataset_share_its_prefix():
    names = DatasetNames("acme", "ag-news")
    assert names.raw_data == dg.AssetKey(["acme", "ag_news", "raw_data"])
    assert names.stage("news map", "projection") == dg.AssetKey(["acme", "ag_news", "news_map", "projection"])
    assert names.group == "acme__ag_news" and names.partitions == "acme__ag_news__batches"

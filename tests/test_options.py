import pytest

from atlas_assets.errors import InvalidOptionError
from atlas_assets.client.options import (
    NomicDuplicatesOptions,
    NomicProjectOptions,
    NomicTopicOptions,
    coerce_option,
)


def test_true_gives_defaults_and_false_switches_off():
    assert coerce_option(True, NomicTopicOptions, "topic_model") == NomicTopicOptions()
    assert coerce_option(False, NomicTopicOptions, "topic_model") is None


def test_dict_is_validated_into_the_model():
    options = coerce_option({"duplicate_cutoff": 0.05}, NomicDuplicatesOptions, "duplicate_detection")
    assert options.duplicate_cutoff == 0.05


def test_out_of_range_value_names_the_field():
    with pytest.raises(InvalidOptionError, match="n_neighbors"):
        NomicProjectOptions(n_neighbors=1)


def test_unknown_field_is_ignored_with_a_warning_listing_the_valid_ones():
    # nomic's pydantic models ignore fields they do not know; here the same, but said out loud
    with pytest.warns(UserWarning, match="ignores 'cutoff'.*valid fields: .*duplicate_cutoff"):
        options = coerce_option({"cutoff": 0.2}, NomicDuplicatesOptions, "duplicate_detection")
    assert options == NomicDuplicatesOptions()


def test_min_dist_above_spread_is_rejected():
    with pytest.raises(InvalidOptionError, match="min_dist"):
        NomicProjectOptions(min_dist=2.0, spread=1.0)


def test_wrong_type_is_rejected():
    with pytest.raises(InvalidOptionError, match="topic_model must be"):
        coerce_option("yes", NomicTopicOptions, "topic_model")

"""dataset.json records and the slug rule."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from resources.storage.records import (
    BatchRecord,
    DatasetRecord,
    IndexRecord,
    deserialize_schema,
    normalise_slug,
    serialize_schema,
)


def test_slug_examples_from_the_atlas_rules() -> None:
    assert normalise_slug("My News_2") == "my-news-2"
    assert normalise_slug("Café Über") == "cafe-uber"  # NFD splits the accents off, then they drop
    assert normalise_slug("a  __  b") == "a-b"
    assert normalise_slug("Ünïcödé!?") == "unicode"
    assert normalise_slug("日本") == ""


@given(st.text())
def test_slugs_are_lower_case_ascii_without_repeated_dashes_and_stable(name: str) -> None:
    slug = normalise_slug(name)
    assert re.fullmatch(r"[a-z0-9-]*", slug) and "--" not in slug
    assert normalise_slug(slug) == slug


def test_a_record_round_trips_through_json_exactly() -> None:
    schema = pa.schema(
        [("id", pa.string()), ("n", pa.int32()), ("when", pa.timestamp("ms", tz="UTC")),
         ("kind", pa.dictionary(pa.int32(), pa.string()))]
    )
    now = datetime(2026, 11, 25, 2, 15, 1, 123456, tzinfo=UTC)
    record = DatasetRecord(
        organisation="acme",
        slug="news",
        name="News",
        unique_id_field="id",
        modality="text",
        arrow_schema=serialize_schema(schema),
        next_row_id=10,
        batches=[BatchRecord(batch_id="20261125T021501123456-3fa2c1", rows=10, created=now, first_row_id=0)],
        indices=[IndexRecord(id="i1", name="map", asset_name="map", modality="text", created=now)],
    )
    again = DatasetRecord.model_validate_json(record.model_dump_json())
    assert again == record and again.schema == schema and deserialize_schema(record.arrow_schema) == schema
    assert again.identifier == "acme/news" and again.total_datums == 10
    # a record written by an older version, with the access token it used to carry, loads without it
    old = json.loads(record.model_dump_json()) | {"access_token": "left-over"}
    assert "access_token" not in DatasetRecord.model_validate(old).model_dump()


def test_a_newer_record_with_unknown_keys_still_loads() -> None:
    text = DatasetRecord(organisation="a", slug="b", name="b").model_dump_json()
    newer = json.loads(text) | {"some_future_setting": {"x": 1}}
    assert DatasetRecord.model_validate(newer).slug == "b"

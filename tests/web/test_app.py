"""The map server's HTTP API, spoken to over a real socket (urllib), on a real ag_news map."""

from __future__ import annotations

import dataclasses
import json
import struct
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import pytest

from atlas_assets.web.app import BackgroundServer, create_app, map_path
from resources.tags import TagStore
from tests.web.conftest import PRIVATE_TOKEN, WRITE, TableMaps

API = "/api/maps/local/news/main"
PRIVATE_API = "/api/maps/local/secret/main"


def fetch(server: BackgroundServer, path: str, *, data: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(server.url + path, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def fetch_json(server: BackgroundServer, path: str, **options: Any) -> Any:
    status, body, _ = fetch(server, path, **options)
    assert status == 200, body
    return json.loads(body)


def test_points_travel_as_11_bytes_per_point_in_columns(map_server, table_map: TableMaps) -> None:
    meta = fetch_json(map_server, API + "/meta")
    n = meta["count"]
    assert n == 2000 and meta["points_format"]["bytes_per_point"] == 11
    status, body, headers = fetch(map_server, API + "/points.bin")
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    assert len(body) == 11 * n
    x = np.frombuffer(body, "<f4", n, 0)
    y = np.frombuffer(body, "<f4", n, 4 * n)
    topic = np.frombuffer(body, "<u2", n, 8 * n)
    flags = np.frombuffer(body, "<u1", n, 10 * n)
    points = table_map.public.points()
    np.testing.assert_array_equal(x, points.x)
    np.testing.assert_array_equal(y, points.y)
    np.testing.assert_array_equal(topic, points.topic_codes[0])
    assert int((flags & 1).sum()) == meta["duplicates"]["duplicates"]
    assert int(((flags >> 1) & 1).sum()) == meta["duplicates"]["deletion_candidates"]


def test_meta_gives_topics_at_two_depths_with_label_positions_inside_the_map(map_server) -> None:
    meta = fetch_json(map_server, API + "/meta")
    x0, y0, x1, y1 = meta["bounds"]
    assert meta["depths"] == 2
    depth1 = [t for t in meta["topics"] if t["depth"] == 1]
    depth2 = [t for t in meta["topics"] if t["depth"] == 2]
    assert len(depth1) == 6 and len(depth2) == 18
    assert sum(t["size"] for t in depth1) == meta["count"]
    assert all(x0 <= t["x"] <= x1 and y0 <= t["y"] <= y1 for t in meta["topics"])
    # every depth-2 topic sits under a depth-1 topic
    assert all(t["parent"] in {p["code"] for p in depth1} for t in depth2)
    # codes are ordered by size: code 0 is the biggest topic (it gets the first colour)
    assert [t["code"] for t in sorted(depth1, key=lambda t: -t["size"])] == list(range(6))


def test_a_datum_is_fetched_by_row_with_its_text_topics_and_duplicate_class(map_server, table_map: TableMaps) -> None:
    datum = fetch_json(map_server, API + "/datum/7")
    row = table_map.frame.iloc[7]
    assert datum["id"] == str(row["id"])
    assert datum["fields"]["title"] == row["title"]
    assert datum["text_field"] == "text"
    assert len(datum["topics"]) == 2
    assert datum["duplicate_class"] in ("singleton", "retention candidate", "deletion candidate")
    status, _, _ = fetch(map_server, API + "/datum/999999")
    assert status == 404


def test_a_categorical_field_comes_with_its_categories(map_server, table_map: TableMaps) -> None:
    status, body, _ = fetch(map_server, API + "/field/label_name")
    assert status == 200
    (length,) = struct.unpack_from("<I", body)
    header = json.loads(body[4:4 + length])
    offset = 4 + length + (-(4 + length)) % 4
    codes = np.frombuffer(body, "<u2", offset=offset)
    assert header["kind"] == "categorical"
    assert sorted(header["categories"]) == ["Business", "Sci/Tech", "Sports", "World"]
    decoded = np.asarray(header["categories"], dtype=object)[codes]
    assert (decoded == table_map.frame["label_name"].to_numpy()).all()


def test_a_numeric_field_comes_as_float32_with_its_range(map_server) -> None:
    status, body, _ = fetch(map_server, API + "/field/label")
    (length,) = struct.unpack_from("<I", body)
    header = json.loads(body[4:4 + length])
    values = np.frombuffer(body, "<f4", offset=4 + length + (-(4 + length)) % 4)
    assert header["kind"] == "numeric" and (header["min"], header["max"]) == (1.0, 4.0)
    assert len(values) == 2000 and set(np.unique(values)) == {1.0, 2.0, 3.0, 4.0}
    assert fetch(map_server, API + "/field/nope")[0] == 404


def test_text_search_finds_every_row_containing_the_words(map_server, table_map: TableMaps) -> None:
    result = fetch_json(map_server, API + "/search?q=Olympic&mode=text")
    expected = np.flatnonzero(table_map.frame["text"].str.contains("olympic", case=False).to_numpy())
    assert result["mode"] == "text" and result["rows"] == expected.tolist()


def test_meaning_search_ranks_rows_about_the_query_first(map_server, table_map: TableMaps) -> None:
    result = fetch_json(map_server, API + "/search?q=oil%20prices%20crude&mode=meaning&k=20")
    assert result["count"] == 20
    top = table_map.frame.iloc[result["rows"][:10]]
    assert top["text"].str.contains("oil|crude", case=False).mean() >= 0.8
    assert result["scores"] == sorted(result["scores"])  # distances, nearest first


def test_an_empty_or_malformed_search_is_a_400(map_server) -> None:
    assert fetch(map_server, API + "/search?q=")[0] == 400
    assert fetch(map_server, API + "/search?q=x&mode=regex")[0] == 400


def test_rows_posted_as_a_tag_are_visible_from_python(map_server, table_map: TableMaps) -> None:
    rows = np.array([3, 1, 4, 1, 5], dtype="<u4")
    status, body, _ = fetch(map_server, API + "/tags/reviewed", data=rows.tobytes(),
                            headers={"Content-Type": "application/octet-stream", **WRITE})
    assert status == 200, body
    assert json.loads(body)["count"] == 4
    expected = sorted(table_map.frame["id"].iloc[[1, 3, 4, 5]])
    assert sorted(TagStore(table_map.index_dir).get_datums_in_tag("reviewed")) == expected
    # and what Python tags shows on the map
    TagStore(table_map.index_dir).add([table_map.frame["id"].iloc[10]], "from-python")
    listed = fetch_json(map_server, API + "/tags")["tags"]
    assert {"name": "from-python", "count": 1} in listed
    status, body, _ = fetch(map_server, API + "/tags/from-python")
    assert np.frombuffer(body, "<u4").tolist() == [10]


def test_rows_can_be_removed_from_a_tag_with_json(map_server, table_map: TableMaps) -> None:
    post = {"Content-Type": "application/json", **WRITE}
    fetch(map_server, API + "/tags/t", data=json.dumps({"rows": [1, 2, 3]}).encode(), headers=post)
    status, body, _ = fetch(map_server, API + "/tags/t", data=json.dumps({"rows": [2], "action": "remove"}).encode(),
                            headers=post)
    assert status == 200 and json.loads(body)["count"] == 2


def test_a_form_post_from_another_page_cannot_tag(map_server) -> None:
    status, _, _ = fetch(map_server, API + "/tags/evil", data=b"rows=1",
                         headers={"Content-Type": "application/x-www-form-urlencoded", **WRITE})
    assert status == 415


def test_out_of_range_rows_are_refused_and_nothing_is_tagged(map_server, table_map: TableMaps) -> None:
    status, _, _ = fetch(map_server, API + "/tags/bad", data=json.dumps({"rows": [1, 5000]}).encode(),
                         headers={"Content-Type": "application/json", **WRITE})
    assert status == 400
    assert TagStore(table_map.index_dir).get_datums_in_tag("bad") == []


PRIVATE_ROUTES = ["/meta", "/points.bin", "/datum/0", "/search?q=oil&mode=text", "/tags", "/field/label"]


@pytest.mark.parametrize("route", PRIVATE_ROUTES)
def test_a_private_map_answers_401_without_its_token_exactly_like_an_unknown_map(map_server, route: str) -> None:
    private = fetch(map_server, PRIVATE_API + route)
    unknown = fetch(map_server, "/api/maps/local/nothing-here/main" + route)
    wrong = fetch(map_server, PRIVATE_API + route, headers={"Authorization": "Bearer wrong"})
    assert private[0] == unknown[0] == wrong[0] == 401
    assert private[1] == unknown[1] == wrong[1]
    assert b"secret" not in private[1] and b"2000" not in private[1]


def test_a_private_map_opens_with_its_token_as_header_or_query(map_server) -> None:
    by_header = fetch_json(map_server, PRIVATE_API + "/meta", headers={"Authorization": f"Bearer {PRIVATE_TOKEN}"})
    by_query = fetch_json(map_server, PRIVATE_API + f"/meta?token={PRIVATE_TOKEN}")
    assert by_header["count"] == by_query["count"] == 2000


def test_the_private_page_is_refused_without_token_and_not_listed(map_server) -> None:
    assert fetch(map_server, map_path("local/secret/main"))[0] == 401
    assert fetch(map_server, map_path("local/secret/main") + f"?token={PRIVATE_TOKEN}")[0] == 200
    status, body, _ = fetch(map_server, "/")
    assert status == 200 and b"local/news" in body and b"secret" not in body


def test_only_loopback_host_names_are_answered_when_asked(table_map: TableMaps) -> None:
    server = BackgroundServer(create_app([table_map.public], allowed_hosts=["127.0.0.1", "localhost"]))
    try:
        assert fetch(server, API + "/meta")[0] == 200
        assert fetch(server, API + "/meta", headers={"Host": "attacker.example"})[0] == 400
    finally:
        server.stop()


def test_requests_naming_an_older_build_of_the_map_are_refused(table_map: TableMaps) -> None:
    from atlas_assets.web.app import StaticRegistry

    class Rebuilt(StaticRegistry):
        """Serves the first source, then (after `swap`) a rebuilt one under the same key."""

        def __init__(self) -> None:
            super().__init__([table_map.public])

        def swap(self) -> None:
            from atlas_assets.web.source import FrameMapSource

            tables = dataclasses.replace(table_map.public.tables)  # a new build: new tables
            rebuilt = FrameMapSource(table_map.public.key, "rebuilt", tables)
            self._sources[rebuilt.key] = rebuilt

    registry = Rebuilt()
    server = BackgroundServer(create_app(registry, write_token=WRITE["X-Atlas-Write-Token"]))
    try:
        version = fetch_json(server, API + "/meta")["version"]
        assert fetch(server, API + f"/datum/1?v={version}")[0] == 200
        registry.swap()
        status, body, _ = fetch(server, API + f"/datum/1?v={version}")
        assert status == 409 and b"reload the page" in body
        post = fetch(server, API + f"/tags/stale?v={version}", data=json.dumps({"rows": [1]}).encode(),
                     headers={"Content-Type": "application/json", **WRITE})
        assert post[0] == 409
        assert TagStore(table_map.index_dir).get_datums_in_tag("stale") == []
        assert fetch(server, API + "/datum/1")[0] == 200  # API users without ?v= are not bothered
    finally:
        server.stop()

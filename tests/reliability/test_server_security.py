"""The map server against hostile requests: traversal, injection, oversized input, missing tokens.

Requests go through a raw `http.client` connection, so paths reach the server exactly as written
(no client-side normalisation of `..` or percent escapes). Rules checked on every response:

- never a 5xx, and the server keeps answering;
- nothing from outside the maps leaks (no file content, no source code, no stack trace);
- a private map without its token, or with a wrong one, answers byte-for-byte what an unknown map
  answers (status, body, the headers that matter): a stranger cannot even learn that it exists;
- oversized input is refused with a 4xx (or, for the URL, by the HTTP layer) and bounded k is clamped.
"""

from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import quote, urlsplit

import pytest

from tests.reliability.conftest import WRITE_TOKEN, ServedMaps

LEAK_MARKERS = [b"root:x:", b"Traceback", b"def create_app", b"import ", b"/work/", b"site-packages", b"ATLAS_HOME"]


def request(
    base: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        own_host = any(name.lower() == "host" for name in (headers or {}))
        connection.putrequest(method, path, skip_host=own_host, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def assert_safe(status: int, body: bytes, what: str) -> None:
    assert status < 500, f"{what}: {status} {body[:200]!r}"
    for marker in LEAK_MARKERS:
        assert marker not in body, f"{what} leaked {marker!r}: {body[:200]!r}"


def api(key: str, rest: str) -> str:
    return f"/api/maps/{key}/{rest}"


TRAVERSALS = [
    "..", "%2e%2e", "%2E%2E", "..%2f..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%5c..%5c",
    "%00", "a%00b", "%252e%252e", "....//", ".%2e", "~root", "%c0%ae%c0%ae", "con", "a;rm%20-rf", "a|id`id`$(id)",
    "'%20OR%201=1--", "%3Cscript%3Ealert(1)%3C%2Fscript%3E", "x" * 5000, "%F0%9F%98%80", "%ff%fe",
]


def test_traversal_and_injection_in_every_path_parameter_reach_nothing(map_server: str, served_home: ServedMaps) -> None:
    organisation, slug, index = served_home.public_key.split("/")
    cases = 0
    for hostile in TRAVERSALS:
        paths = [
            f"/maps/{hostile}/{slug}/{index}", f"/maps/{organisation}/{hostile}/{index}", f"/maps/{organisation}/{slug}/{hostile}",
            api(f"{hostile}/{slug}/{index}", "meta"), api(f"{organisation}/{hostile}/{index}", "points.bin"),
            api(f"{organisation}/{slug}/{hostile}", "meta"),
            api(served_home.public_key, f"field/{hostile}"), api(served_home.public_key, f"datum/{hostile}"),
            api(served_home.public_key, f"image/{hostile}"), api(served_home.public_key, f"tags/{hostile}"),
            f"/static/{hostile}", f"/static/{hostile}/{hostile}/etc/passwd", f"/{hostile}",
        ]
        for path in paths:
            status, headers, body = request(map_server, "GET", path)
            assert_safe(status, body, path)
            if status in (307, 308):  # Starlette's trailing-slash redirect: to this server only
                assert headers["location"].startswith((map_server + "/", "/")), headers["location"]
            elif "/tags/" in path and status == 200:
                assert body == b"", path  # a tag name is data (a key in tags.json): an unknown tag is empty
            else:
                assert status in (400, 401, 404, 405, 409), f"{path}: {status}"
            cases += 1
    for path in ["/static/../../../../etc/passwd", "/static/..%2f..%2f..%2fapp.py", "/static/%2e%2e/app.py",
                 "/static/../app.py", "/static//etc/passwd", "/api/maps/../../../etc/passwd", "//etc/passwd"]:
        status, _, body = request(map_server, "GET", path)
        assert_safe(status, body, path)
        assert status in (400, 401, 404), f"{path}: {status}"
        cases += 1
    from tests.reliability.support import record_cases

    record_cases("server.traversal_requests", cases)


@pytest.mark.parametrize("row", ["99999999999999999999999", "4294967296", "1000", "0x10", "1e3", "-1", "0001000"])
def test_datum_and_image_rows_out_of_range_are_404s(map_server: str, served_home: ServedMaps, row: str) -> None:
    for route in ("datum", "image"):
        status, _, body = request(map_server, "GET", api(served_home.public_key, f"{route}/{row}"))
        assert_safe(status, body, f"{route}/{row}")
        assert status == 404, f"{route}/{row}: {status} {body[:100]!r}"


def test_a_real_row_answers_and_its_fields_are_json_escaped(map_server: str, served_home: ServedMaps) -> None:
    status, headers, body = request(map_server, "GET", api(served_home.public_key, "datum/5"))
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["id"] == "d5"
    status, headers, body = request(map_server, "GET", api(served_home.public_key, "field/%3Cimg%20src=x%20onerror=alert(1)%3E"))
    assert status == 404 and headers["content-type"].startswith("application/json")  # echoed only inside JSON


@pytest.mark.parametrize(
    "query",
    [
        "q=" + "a" * 6000,  # long but within the HTTP layer's limits
        "q=%00%00&mode=text", "q=((([[[&mode=text", "q=.*&mode=text", "q=%27%20OR%201=1&mode=text",
        "q=x&mode=text&k=99999999999999999999", "q=x&mode=text&k=-5", "q=x&mode=text&k=" + "9" * 5000,
        "q=x&mode=text&k=1e3", "q=x&mode=drop%20table", "q=x&k=abc", "q=", "q=%20%20", "mode=text",
        "q=1&mode=meaning&k=100000000", "q=x&mode=text&mode=meaning", "q=%ff%fe&mode=text",
        "q=x&mode=text&token=wrong", "q=" + "%F0%9F%98%80" * 500 + "&mode=text",
    ],
)
def test_search_parameters_are_validated_or_clamped(map_server: str, served_home: ServedMaps, query: str) -> None:
    status, _, body = request(map_server, "GET", api(served_home.public_key, f"search?{query}"))
    assert_safe(status, body, query[:60])
    assert status in (200, 400, 409), f"{query[:60]}: {status} {body[:200]!r}"
    if status == 200:
        document = json.loads(body)
        assert document["count"] <= 10_000 and len(document["rows"]) == document["count"]


def test_a_url_beyond_the_http_layers_limit_is_refused_and_the_server_lives_on(map_server: str, served_home: ServedMaps) -> None:
    try:
        status, _, body = request(map_server, "GET", api(served_home.public_key, "search?q=" + "a" * 200_000))
        assert status in (400, 414, 431), status
    except (ConnectionError, http.client.HTTPException, socket.timeout):
        pass  # closing the connection is a refusal too
    status, _, _ = request(map_server, "GET", api(served_home.public_key, "meta"))
    assert status == 200


WRITE = {"X-Atlas-Write-Token": WRITE_TOKEN}  # tag changes need the server's write token
JSON = {"Content-Type": "application/json", **WRITE}


@pytest.mark.parametrize(
    "body",
    [
        b"{", b"[]", b"null", b'"rows"', b'{"rows": "1,2"}', b'{"rows": [[1]]}', b'{"rows": [-1]}', b'{"rows": [1000000]}', b'{"rows": [1], "action": "drop"}',
        b'{"rows": [1], "action": ["add"]}', b'{"rows": {"0": 1}}', b'{"rows": [true]}', b'{"rows": [null]}',
        b'{"rows": ["1"]}', b"\xff\xfe\x00", b'{"rows": [1]' + b" " * 100_000 + b"}",
    ],
)
def test_malformed_tag_posts_are_400s_and_tag_nothing(map_server: str, served_home: ServedMaps, body: bytes) -> None:
    path = api(served_home.public_key, "tags/reliability-malformed")
    status, _, answer = request(map_server, "POST", path, body, JSON)
    assert_safe(status, answer, body[:40].decode(errors="replace"))
    if status == 200:  # only a well-formed body may tag, and only real rows
        assert json.loads(answer)["action"] in ("add", "remove")
    else:
        assert status == 400, f"{body[:40]!r}: {status} {answer[:200]!r}"
    status, _, rows = request(map_server, "GET", path)
    assert status == 200 and len(rows) % 4 == 0 and len(rows) // 4 <= 1


@pytest.mark.parametrize("body", [b'{"rows": [1.5e300]}', b'{"rows": [18446744073709551616]}'])
def test_rows_beyond_int64_in_a_tag_post_are_400s(map_server: str, served_home: ServedMaps, body: bytes) -> None:
    status, _, answer = request(map_server, "POST", api(served_home.public_key, "tags/overflow"), body, JSON)
    assert status == 400, f"{body!r}: {status} {answer[:100]!r}"


@pytest.mark.parametrize(
    "name",
    ["..%2F..%2Fetc", "%2e%2e", "a%00b", "%3Cimg%20src=x%20onerror=alert(1)%3E", "x" * 101, "%20%20", "%0d%0aSet-Cookie:%20a=b"],
)
def test_hostile_tag_names_are_refused_or_kept_as_plain_names(map_server: str, served_home: ServedMaps, name: str) -> None:
    status, headers, body = request(map_server, "POST", api(served_home.public_key, f"tags/{name}"), b'{"rows": [3]}', JSON)
    assert_safe(status, body, name)
    assert "set-cookie" not in headers
    assert status in (200, 400, 404), f"{name}: {status} {body[:200]!r}"
    if status == 200:
        assert json.loads(body)["tag"]  # stored as a name in tags.json, never a path
        request(map_server, "POST", api(served_home.public_key, f"tags/{name}"), b'{"rows": [3], "action": "remove"}', JSON)
    index_dir = served_home.home / "datasets" / served_home.public_key.replace(served_home.public_key.split("/")[-1], "")
    assert not list(served_home.home.rglob("etc")), "a tag name became a path"
    assert index_dir.exists()


def test_tag_posts_need_a_json_or_binary_content_type(map_server: str, served_home: ServedMaps) -> None:
    path = api(served_home.public_key, "tags/reliability-form")
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""):
        status, _, _ = request(map_server, "POST", path, b"rows=1", {"Content-Type": content_type, **WRITE} if content_type else WRITE)
        assert status == 415, content_type
    status, _, _ = request(map_server, "POST", path + "?action=add", b"\x01\x00\x00", {"Content-Type": "application/octet-stream", **WRITE})
    assert status == 400


def test_an_oversized_tag_body_is_refused_with_413(map_server: str, served_home: ServedMaps) -> None:
    body = b"\x00" * (64 * 1024 * 1024)
    status, _, _ = request(map_server, "POST", api(served_home.public_key, "tags/huge") + "?action=remove", body,
                           {"Content-Type": "application/octet-stream", **WRITE})
    assert status == 413


def test_a_private_map_without_or_with_a_wrong_token_looks_exactly_like_no_map(map_server: str, served_home: ServedMaps) -> None:
    private = served_home.private_key
    organisation, slug, index = private.split("/")
    unknown = f"{organisation}/{slug}-nope/{index}"
    wrong_tokens = [
        {}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer " + "x" * len(served_home.private_token)},
        {"Authorization": "Bearer " + served_home.private_token[:-1]}, {"Authorization": "Bearer"},
        {"Authorization": "Basic " + served_home.private_token}, {"Authorization": "Bearer " + served_home.private_token + "x"},
        {"Authorization": "Bearer " + "é" * 10},
    ]
    routes = ["meta", "points.bin", "field/digit", "datum/0", "image/0", "search?q=1&mode=text", "tags", "tags/x"]
    compared = 0
    for route in routes:
        reference = request(map_server, "GET", api(unknown, route))
        assert reference[0] == 401
        for headers in wrong_tokens:
            for path in (api(private, route), api(private, route) + ("&" if "?" in route else "?") + "token=wrong"):
                answer = request(map_server, "GET", path, headers=headers)
                assert answer[0] == 401, f"{path} {headers}: {answer[0]}"
                assert answer[2] == reference[2], f"{path}: the body differs from an unknown map's"
                for header in ("content-type", "content-length", "www-authenticate", "cache-control"):
                    assert answer[1].get(header) == reference[1].get(header), header
                compared += 1
        post = request(map_server, "POST", api(private, "tags/x"), b'{"rows": [1]}', JSON)
        assert post[0] == 401 and post[2] == request(map_server, "POST", api(unknown, "tags/x"), b'{"rows": [1]}', JSON)[2]
    page = request(map_server, "GET", f"/maps/{private}")
    assert page[0] == 401 and page[2] == request(map_server, "GET", f"/maps/{unknown}")[2]
    home = request(map_server, "GET", "/")
    assert f"{organisation}/".encode() not in home[2] and index.encode() not in home[2]
    # with the token, it opens
    assert request(map_server, "GET", api(private, "meta"), headers={"Authorization": f"Bearer {served_home.private_token}"})[0] == 200
    assert request(map_server, "GET", api(private, "meta") + "?token=" + quote(served_home.private_token))[0] == 200
    from tests.reliability.support import record_cases

    record_cases("server.unauthorised_requests_compared", compared)


def test_only_loopback_host_names_are_answered(map_server: str, served_home: ServedMaps) -> None:
    for host in ("evil.example", "127.0.0.1.nip.io", "localhost.evil", ""):
        status, _, _ = request(map_server, "GET", api(served_home.public_key, "meta"), headers={"Host": host})
        assert status == 400, host

"""`atlas demo`: a real map of Python docstrings; a second run reuses it (and updates it when it is
behind its data); with servers, both URLs answer and Ctrl-C stops everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from atlas_assets import AtlasDataset
from atlas_assets.cli.demo import DEMO_DATASET, DEMO_MAP, corpus_table, prepare_demo, run_demo
from atlas_assets.cli.servers import answers, port_is_free
from tests.conftest import REPO_ROOT

LIMIT = 150


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow  # parses every docstring of the stdlib and site-packages once (cached for the next test)
def test_the_corpus_is_real_docstrings_with_the_package_as_category():
    table = corpus_table(40)
    assert table.column_names == ["id", "package", "module", "name", "kind", "text"]
    assert table.num_rows == 40 and len(set(table["id"].to_pylist())) == 40
    rows = table.to_pylist()
    assert all(row["module"].split(".")[0] == row["package"] for row in rows)
    assert all(len(row["text"]) >= 40 for row in rows)
    assert {row["kind"] for row in rows} <= {"module", "class", "function"}


@pytest.mark.slow
def test_first_run_builds_second_run_reuses_stale_map_is_updated_and_servers_answer(atlas_home, capsys):
    said: list[str] = []
    first = prepare_demo(LIMIT, say=said.append)
    assert first.built and first.rows == LIMIT and first.rows_added == LIMIT
    dataset = AtlasDataset(DEMO_DATASET)
    atlas_map = dataset.get_map(name=DEMO_MAP)
    assert len(atlas_map.embeddings.projected) == LIMIT
    assert atlas_map.topics.df["topic_depth_1"].notna().all()
    assert "package" in dataset.dataset_fields

    started = time.perf_counter()
    second = prepare_demo(LIMIT, say=said.append)
    reuse_seconds = time.perf_counter() - started
    assert not second.built and not second.updated and second.rows_added == 0
    assert second.map_link == first.map_link
    assert reuse_seconds < first.seconds  # reuse does no collecting and no indexing

    # Data added since (by the user, the inbox...) makes the map stale: the next run updates it.
    dataset.add_data(corpus_table(LIMIT + 5).slice(LIMIT))  # sorted by id: 5 new docstrings
    third = prepare_demo(LIMIT, say=said.append)
    assert third.updated and not third.built and third.rows == LIMIT + 5
    assert len(atlas_map.embeddings.projected) == LIMIT + 5

    assert run_demo(LIMIT, serve=False, say=said.append) == 0
    assert any("reused" in line for line in said)

    # With servers: `atlas demo` prints both URLs, both answer, Ctrl-C stops it and its children.
    ui_port, map_port = free_port(), free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    demo = subprocess.Popen(
        [sys.executable, "-m", "atlas_assets.cli", "demo", "--limit", str(LIMIT),
         "--ui-port", str(ui_port), "--map-port", str(map_port)],
        cwd=atlas_home, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Ctrl-C stops both" in line:
                break
        text = "".join(output)
        assert "Ctrl-C stops both" in text, text[-3000:]
        map_url = next(line.split()[-1] for line in output if line.strip().startswith("map:"))
        ui_url = next(line.split()[2] for line in output if line.strip().startswith("Dagster UI:"))
        assert map_url == f"http://127.0.0.1:{map_port}/maps/demo/python-docstrings/{atlas_map.atlas_index_id}"
        with urllib.request.urlopen(map_url, timeout=30) as response:
            assert response.status == 200 and "python-docstrings" in response.read().decode()
        assert ui_url.startswith(f"http://127.0.0.1:{ui_port}/")
        assert answers(f"http://127.0.0.1:{ui_port}/server_info")
        # the workspace the UI loads lives in ATLAS_HOME, so it works outside the repository
        assert "atlas_assets.definitions" in (atlas_home / "workspace.yaml").read_text()
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=90)
    assert demo.returncode == 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (port_is_free("127.0.0.1", ui_port) and port_is_free("127.0.0.1", map_port)):
        time.sleep(0.5)
    assert port_is_free("127.0.0.1", ui_port) and port_is_free("127.0.0.1", map_port)
    assert not answers(f"http://127.0.0.1:{ui_port}/server_info") and not answers(map_url)


def test_a_taken_port_is_one_line_with_the_fix_before_any_work(atlas_home, capsys):
    import socket

    from atlas_assets.cli import main

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert main(["demo", "--ui-port", str(port), "--limit", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"atlas: error: port {port} on 127.0.0.1 is taken, so the Dagster UI cannot start there; stop what uses it or pass --ui-port <port>"
    assert not (atlas_home / "datasets").exists()


def test_the_makefile_demo_target_runs_atlas_demo():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "demo: $(STAMP)\n\t$(BIN)/atlas demo" in makefile  # the text model is built on first use

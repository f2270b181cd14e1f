"""A process that used atlas-assets exits with status 0: nothing native aborts it after it has finished.

The abort this guards against (docs/reliability.md, "Exit status"): Arrow tears a Parquet scan down on
one of its pool threads after `read_table` has returned; when the scan had read through a Python file
object, that teardown drops Python-owned buffers and so takes the GIL; if the interpreter is already
finalising, CPython ends the thread with pthread_exit inside a C++ destructor and libstdc++ aborts:
"terminate called without an active exception", exit 134, after the program printed its result.
`resources.index_outputs.read_output` now hands Arrow only memory Arrow owns.

A race, so each test runs fresh processes many times while busy loops hold the cores. The first test
widens the window the way the bug needs it (an output of many row groups read column by column, so
many buffers are dropped after the read returns, and a long GIL switch interval, so the main thread
keeps the GIL until finalisation): against the old reader it aborted in 3 of 40 runs.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, news_frame

pytestmark = pytest.mark.slow


def _spin() -> None:
    while True:
        pass


class BusyCores:
    """One busy process per core for the duration of a `with` block (the machine is loaded)."""

    def __enter__(self) -> "BusyCores":
        context = multiprocessing.get_context("spawn")
        self.processes = [context.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 2)]
        for process in self.processes:
            process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.kill()
            process.join()


def run_fresh(script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def assert_clean_exits(results: list[subprocess.CompletedProcess]) -> None:
    bad = [(r.returncode, r.stderr[-1500:]) for r in results if r.returncode != 0 or "terminate called" in r.stderr]
    assert not bad, f"{len(bad)} of {len(results)} processes did not exit cleanly; first: {bad[0]}"


READ_MANY_CHUNKS = textwrap.dedent(
    """
    import sys
    sys.setswitchinterval(30)
    from upath import UPath
    from resources.index_outputs import read_output
    print(read_output(UPath(sys.argv[1]), columns=["a", "b"]).table.num_rows)
    """
)


def test_reading_a_stage_output_in_a_fresh_process_exits_cleanly(tmp_path: Path) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 100 * 200
    path = tmp_path / "projection.parquet"
    table = pa.table({"a": np.arange(rows), "pad": [f"x{i}" * 300 for i in range(rows)], "b": np.random.rand(rows)})
    pq.write_table(table, path, row_group_size=200, compression="none")
    with BusyCores(), ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run_fresh(READ_MANY_CHUNKS, str(path), timeout=120), range(40)))
    assert_clean_exits(results)
    assert all(r.stdout.strip() == str(rows) for r in results)


BUILD_MAP = textwrap.dedent(
    """
    import sys
    import pandas as pd
    from atlas_assets import AtlasDataset

    frame = pd.read_parquet(sys.argv[1])
    dataset = AtlasDataset("exit/news", unique_id_field="id")
    dataset.add_data(frame)
    atlas_map = dataset.create_index(indexed_field="text")
    sys.setswitchinterval(30)  # from here on the main thread keeps the GIL until finalisation
    print(len(atlas_map.embeddings.projected), len(atlas_map.topics.df), len(atlas_map.duplicates.df))
    """
)


def test_building_a_map_in_a_fresh_process_exits_cleanly(tmp_path: Path, shared_data: Path) -> None:
    rows = 300
    data = tmp_path / "news.parquet"
    news_frame(shared_data, rows=rows).to_parquet(data)

    def build(run: int) -> subprocess.CompletedProcess:
        home = tmp_path / f"home{run}"
        return run_fresh(BUILD_MAP, str(data), env={"ATLAS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")})

    with BusyCores(), ThreadPoolExecutor(2) as pool:
        results = list(pool.map(build, range(4)))
    assert_clean_exits(results)
    assert all(r.stdout.split() == [str(rows)] * 3 for r in results)

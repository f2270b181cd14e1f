"""TagStore: tags written by the web map and by Python are the same tags."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from atlas_assets.errors import AtlasError
from resources.tags import TagStore


def test_added_ids_are_listed_under_the_tag_in_insertion_order(tmp_path: Path) -> None:
    store = TagStore(tmp_path / "index")
    assert store.get_tags() == []
    assert store.add(["b", "a", 3], "reviewed") == 3
    assert store.get_tags() == ["reviewed"]
    assert store.get_datums_in_tag("reviewed") == ["b", "a", "3"]


def test_adding_an_id_twice_keeps_one_copy(tmp_path: Path) -> None:
    store = TagStore(tmp_path)
    store.add(["a", "b"], "t")
    assert store.add(["b", "c"], "t") == 1
    assert store.get_datums_in_tag("t") == ["a", "b", "c"]


def test_removing_every_id_makes_the_tag_disappear(tmp_path: Path) -> None:
    store = TagStore(tmp_path)
    store.add(["a", "b"], "t")
    store.add(["a"], "u")
    assert store.remove(["a", "zz"], "t") == 1
    assert store.get_datums_in_tag("t") == ["b"]
    store.remove(["b"], "t")
    assert store.get_tags() == ["u"]
    assert store.get_datums_in_tag("t") == []


def test_a_second_store_on_the_same_folder_sees_the_tags(tmp_path: Path) -> None:
    TagStore(tmp_path).add(np.array([10, 11]), "from-web")
    assert TagStore(tmp_path).get_datums_in_tag("from-web") == ["10", "11"]


def test_tag_columns_are_aligned_with_the_ids_asked_for(tmp_path: Path) -> None:
    store = TagStore(tmp_path)
    store.add(["c", "a"], "x")
    store.add(["b"], "y")
    columns = store.tag_columns(["a", "b", "c", "d"])
    assert set(columns) == {"x", "y"}
    assert columns["x"].tolist() == [True, False, True, False]
    assert columns["y"].tolist() == [False, True, False, False]
    assert columns["x"].dtype == bool


def test_the_file_is_plain_json_and_no_temp_files_are_left(tmp_path: Path) -> None:
    store = TagStore(tmp_path)
    store.add(["a"], "t")
    assert json.loads((tmp_path / "tags.json").read_text())["tags"] == {"t": ["a"]}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


@pytest.mark.parametrize("bad", ["", "   ", "x" * 101, "a\nb"])
def test_unusable_tag_names_are_refused_with_an_atlas_error(tmp_path: Path, bad: str) -> None:
    with pytest.raises(AtlasError, match="tag name"):
        TagStore(tmp_path).add(["a"], bad)


def test_a_single_string_is_not_mistaken_for_a_list_of_ids(tmp_path: Path) -> None:
    with pytest.raises(AtlasError, match="list"):
        TagStore(tmp_path).add("abc", "t")


def _add_many(folder: str, worker: int) -> None:
    store = TagStore(folder)
    for step in range(20):
        store.add([f"{worker}-{step}"], "shared")


def test_concurrent_writers_in_separate_processes_lose_nothing(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_add_many, args=(str(tmp_path), w)) for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
        assert process.exitcode == 0
    members = TagStore(tmp_path).get_datums_in_tag("shared")
    assert sorted(members) == sorted(f"{w}-{s}" for w in range(3) for s in range(20))

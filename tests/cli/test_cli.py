"""The `atlas` command line: every command documents itself, errors are one line with the fix and
exit code 2, and the newcomer path (ingest -> index -> search -> update -> export -> delete) works."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from atlas_assets import AtlasDataset
from atlas_assets.cli import main
from tests.conftest import news_frame

COMMANDS = [
    ["ingest"], ["index"], ["update"], ["status"], ["search"], ["export"], ["serve"], ["ui"], ["delete"],
    ["demo"], ["token"], ["models"], ["models", "install"], ["models", "list"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: atlas " + " ".join(command))


def test_an_unknown_dataset_is_one_line_naming_the_fix_and_exit_code_2(atlas_home, capsys):
    assert main(["status", "acme/missing"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("atlas: error: no dataset acme/missing") and "atlas ingest" in err


def test_verbose_shows_the_trace(atlas_home, capsys):
    assert main(["--verbose", "search", "acme/missing", "query"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "DatasetNotFoundError" in err


def test_an_unsupported_file_is_refused_before_anything_is_created(atlas_home, tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    assert main(["ingest", str(path), "--dataset", "acme/notes"]) == 2
    assert "use .csv, .parquet or .jsonl" in capsys.readouterr().err
    assert not (atlas_home / "datasets" / "acme" / "notes").exists()


def test_csv_jsonl_and_parquet_files_each_become_one_batch(atlas_home, tmp_path, shared_data, capsys):
    frame = news_frame(shared_data, rows=90)
    frame["id"] = "n" + frame["id"]  # text ids in every format (a CSV of digits would give integer ids)
    frame.iloc[:30].to_csv(tmp_path / "a.csv", index=False)
    frame.iloc[30:60].to_json(tmp_path / "b.jsonl", orient="records", lines=True)
    pq.write_table(pa.Table.from_pandas(frame.iloc[60:], preserve_index=False), tmp_path / "c.parquet")
    for name in ("a.csv", "b.jsonl", "c.parquet"):
        assert main(["ingest", str(tmp_path / name), "--dataset", "acme/news", "--id-field", "id"]) == 0
    assert "next: atlas index acme/news --field <text field>" in capsys.readouterr().out
    dataset = AtlasDataset("acme/news")
    assert dataset.total_datums == 90 and len(dataset._record().batches) == 3
    assert dataset.get_data(["n0", "n45", "n89"])[1]["text"] == frame.iloc[45]["text"]

    # A folder of data files: one batch per file, in name order.
    folder = tmp_path / "more"
    folder.mkdir()
    news_frame(shared_data, start=90, rows=10).assign(id=lambda f: "n" + f["id"]).to_csv(folder / "x.csv", index=False)
    news_frame(shared_data, start=100, rows=5).assign(id=lambda f: "n" + f["id"]).to_csv(folder / "y.csv", index=False)
    assert main(["ingest", str(folder), "--dataset", "acme/news"]) == 0
    assert dataset.total_datums == 105 and len(dataset._record().batches) == 5

    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    (status,) = json.loads(capsys.readouterr().out)
    assert status["identifier"] == "acme/news" and status["rows"] == 105 and status["batches"] == 5


def test_a_folder_of_images_becomes_an_image_dataset(atlas_home, tmp_path):
    digits = load_digits()
    folder = tmp_path / "digits"
    for i in range(12):
        sub = folder / str(digits.target[i])
        sub.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[i] * 15).astype(np.uint8)
        Image.fromarray(pixels).resize((32, 32)).save(sub / f"digit-{i}.png")
    assert main(["ingest", str(folder), "--dataset", "acme/digits", "--id-field", "path"]) == 0
    dataset = AtlasDataset("acme/digits")
    assert dataset.modality == "image" and dataset.total_datums == 12
    (row,) = dataset.get_data([f"{digits.target[3]}/digit-3.png"])
    assert row["filename"] == f"{digits.target[3]}/digit-3.png"


def test_delete_needs_confirmation_when_not_interactive(atlas_home, tmp_path, shared_data, capsys, monkeypatch):
    news_frame(shared_data, rows=5).to_csv(tmp_path / "a.csv", index=False)
    assert main(["ingest", str(tmp_path / "a.csv"), "--dataset", "acme/gone", "--id-field", "id"]) == 0
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["delete", "acme/gone"]) == 2
    assert "pass --yes" in capsys.readouterr().err
    assert AtlasDataset("acme/gone").total_datums == 5
    assert main(["delete", "acme/gone", "--yes"]) == 0
    assert "deleted acme/gone" in capsys.readouterr().out
    assert main(["status", "acme/gone"]) == 2


def test_search_prints_the_closest_rows_with_their_text(news_map, capsys):
    assert main(["search", "tests/ag-news", "football match", "-k", "3", "--width", "60"]) == 0
    header, *lines, footer = capsys.readouterr().out.strip().splitlines()
    assert header.split()[:3] == ["#", "similarity", "id"] and "1 - cosine distance" in footer
    assert len(lines) == 3
    assert [line.split()[0] for line in lines] == ["1.", "2.", "3."]
    similarities = [float(line.split()[1]) for line in lines]
    assert similarities == sorted(similarities, reverse=True) and similarities[0] > 0.3
    assert all(len(line) < 120 for line in lines)


@pytest.mark.slow
def test_ingest_index_update_export_and_delete_from_the_command_line(atlas_home, tmp_path, shared_data, capsys):
    news_frame(shared_data, rows=80).to_csv(tmp_path / "first.csv", index=False)
    news_frame(shared_data, start=80, rows=8).to_csv(tmp_path / "second.csv", index=False)
    assert main(["ingest", str(tmp_path / "first.csv"), "--dataset", "acme/news", "--id-field", "id"]) == 0
    assert main(["index", "acme/news", "--field", "text", "--name", "news", "--no-topics", "--no-duplicates",
                 "--n-neighbors", "10"]) == 0
    out = capsys.readouterr().out
    assert "map 'news' ready" in out and "/maps/acme/news/" in out

    assert main(["ingest", str(tmp_path / "second.csv"), "--dataset", "acme/news"]) == 0
    assert "atlas update acme/news" in capsys.readouterr().out
    assert main(["status", "acme/news", "--check"]) == 1
    assert "STALE: 1 batch(es) not embedded; 8 row(s) not in the map" in capsys.readouterr().out
    assert main(["update", "acme/news"]) == 0
    assert main(["status", "acme/news", "--check"]) == 0
    assert main(["update", "acme/news"]) == 0
    assert "every map is up to date (88 rows)" in capsys.readouterr().out

    assert main(["export", "acme/news", "--format", "parquet", "-o", str(tmp_path / "map.parquet")]) == 0
    exported = pd.read_parquet(tmp_path / "map.parquet")
    assert len(exported) == 88 and {"id", "text", "x", "y"} <= set(exported.columns)

    # The CLI-built index has the options asked for.
    (index,) = AtlasDataset("acme/news").indices
    assert index.topic_model is None and index.duplicate_detection is None
    assert index.projection["n_neighbors"] == 10

    assert main(["delete", "acme/news", "--map", "news", "--yes"]) == 0  # one map goes, the data stays
    assert "deleted map 'news' of acme/news; maps left: none" in capsys.readouterr().out
    assert AtlasDataset("acme/news").indices == [] and AtlasDataset("acme/news").total_datums == 88

    assert main(["delete", "acme/news", "--yes"]) == 0
    assert not (atlas_home / "datasets" / "acme" / "news").exists()


def test_the_readme_starts_with_the_two_commands_and_its_links_resolve():
    from tests.conftest import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("make ")]
    assert [c.split()[1] for c in commands[:2]] == ["demo", "test"]
    import re

    for document in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md")), REPO_ROOT / "deploy" / "README.md"]:
        for target in re.findall(r"\]\(([^)#:]+)\)", document.read_text()):
            assert (document.parent / target).exists(), f"{document.name} links to missing {target}"

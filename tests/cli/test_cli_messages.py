"""The command line's first hour: errors in its own words, a failed first ingest that leaves nothing,
an unreadable image named by its file, and a "did you mean" for a mistyped dataset."""

from __future__ import annotations

import pandas as pd
import pytest

from atlas_assets import AtlasDataset
from atlas_assets.cli import main
from atlas_assets.cli.messages import in_cli_terms
from resources.storage import DatasetStore


@pytest.mark.parametrize(
    ("python", "cli"),
    [
        ("acme/news has no data; add rows with add_data before create_index",
         "acme/news has no data; add rows with `atlas ingest` before `atlas index`"),
        ("map 'm' has not been built yet; run dataset.update_indices()", "map 'm' has not been built yet; run `atlas update DATASET`"),
        ("acme/news already has an index named 'm'; pass another name=", "acme/news already has an index named 'm'; pass another --name"),
        ("a text index needs indexed_field= naming the text field", "a text index needs --field naming the text field"),
        ("acme/news has 2 maps ('a', 'b'); pass name= or atlas_index_id=", "acme/news has 2 maps ('a', 'b'); pass --map NAME"),
        ("create it with AtlasDataset('acme/x', unique_id_field=...)", "create it with `atlas ingest FILE --dataset acme/x --id-field FIELD`"),
    ],
)
def test_library_messages_name_the_cli_command_or_flag(python, cli):
    assert in_cli_terms(python) == cli


def test_a_cli_error_from_the_library_speaks_cli(atlas_home, capsys):
    AtlasDataset("acme/news", unique_id_field="id").add_data(pd.DataFrame({"id": ["1"], "n": [1]}))
    assert main(["index", "acme/news"]) == 2
    err = capsys.readouterr().err
    assert "--field" in err and "indexed_field=" not in err and "create_index" not in err


def test_a_mistyped_dataset_gets_a_did_you_mean(atlas_home, capsys):
    AtlasDataset("acme/news", unique_id_field="id").add_data(pd.DataFrame({"id": ["1"], "text": ["a"]}))
    assert main(["status", "acme/nwes"]) == 2
    assert "did you mean acme/news?" in capsys.readouterr().err


def test_a_failed_first_ingest_leaves_nothing_and_the_retry_works(atlas_home, tmp_path, capsys):
    bad = tmp_path / "notes.csv"
    pd.DataFrame({"key": ["a", "a"], "text": ["x", "y"]}).to_csv(bad, index=False)  # duplicate ids
    assert main(["ingest", str(bad), "--dataset", "acme/notes", "--id-field", "key"]) == 2
    err = capsys.readouterr().err
    assert "nothing was created" in err and "atlas ingest" in err
    assert DatasetStore().find_dataset("acme", "notes") is None
    good = tmp_path / "fixed.csv"
    pd.DataFrame({"id": ["a", "b"], "text": ["x", "y"]}).to_csv(good, index=False)
    assert main(["ingest", str(good), "--dataset", "acme/notes", "--id-field", "id"]) == 0  # another id field: fine
    assert AtlasDataset("acme/notes").id_field == "id"


def test_an_unreadable_image_is_named_by_its_file(atlas_home, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "pictures"
    folder.mkdir()
    Image.new("RGB", (8, 8), "red").save(folder / "good.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert main(["ingest", str(folder), "--dataset", "acme/pictures"]) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and "nothing was created" in err
    assert DatasetStore().find_dataset("acme", "pictures") is None

"""AtlasDataset, data half: every rule of issue 2 as seen by a user of the Atlas API."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from PIL import Image

import atlas_assets.client.dataset as dataset_module
from atlas_assets import AtlasDataset
from atlas_assets.compute import tables
from atlas_assets.errors import (
    AtlasError,
    DatasetLockedError,
    DatasetNotFoundError,
    DuplicateIdError,
    InvalidDataError,
    InvalidEmbeddingsError,
    InvalidIdentifierError,
    InvalidImageError,
    SchemaMismatchError,
    UnknownIdsError,
)
from resources.storage import DatasetStore


def fingerprint(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`: equal fingerprints mean byte-for-byte equal trees."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def folder_of(ds: AtlasDataset) -> Path:
    return ds.store.dataset_dir(ds.organisation, ds.slug)


@pytest.fixture
def news(shared_data: Path) -> pd.DataFrame:
    """ag_news rows: id (int), label (int), label_name, title, description."""
    return pd.read_csv(shared_data / "ag_news" / "test.csv")


@pytest.fixture
def loaded(atlas_home: Path, news: pd.DataFrame) -> AtlasDataset:
    ds = AtlasDataset("acme/news", unique_id_field="id")
    ds.add_data(news.iloc[:200])
    return ds


def png_bytes(colour: tuple[int, int, int], size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


# ------------------------------------------------------------------------------------ identity


@pytest.mark.parametrize(
    ("identifier", "organisation", "slug"),
    [
        ("acme/My News_2", "acme", "my-news-2"),
        ("Acme Corp/Café  Über!", "acme-corp", "cafe-uber"),
        ("plain name", "local", "plain-name"),
        ("x/a__b--c", "x", "a-b-c"),
    ],
)
def test_identifiers_are_slug_normalised(atlas_home: Path, identifier: str, organisation: str, slug: str) -> None:
    ds = AtlasDataset(identifier, unique_id_field="id")
    assert (ds.organisation, ds.slug, ds.identifier) == (organisation, slug, f"{organisation}/{slug}")
    assert ds.name == identifier.split("/")[-1]
    assert (atlas_home / "datasets" / organisation / slug / "dataset.json").is_file()


def test_default_organisation_comes_from_configuration(atlas_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_ORG", "Research Lab")
    assert AtlasDataset("notes", unique_id_field="id").identifier == "research-lab/notes"


@pytest.mark.parametrize("identifier", ["a/b/c", "acme/!!!", "", "  "])
def test_unusable_identifiers_are_errors(atlas_home: Path, identifier: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        AtlasDataset(identifier, unique_id_field="id")


def test_neither_identifier_nor_id_is_an_error(atlas_home: Path) -> None:
    with pytest.raises(InvalidIdentifierError, match="identifier.*dataset_id"):
        AtlasDataset()


def test_create_then_load_by_identifier_or_id(atlas_home: Path) -> None:
    created = AtlasDataset("acme/news", description="AG news", unique_id_field="id", is_public=False)
    again = AtlasDataset("Acme/News")
    by_id = AtlasDataset(dataset_id=created.id)
    assert created.id == again.id == by_id.id
    assert by_id.description == "AG news" and by_id.is_public is False and by_id.id_field == "id"
    with pytest.raises(DatasetNotFoundError):
        AtlasDataset(dataset_id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(InvalidIdentifierError, match="not acme/other"):
        AtlasDataset("acme/other", dataset_id=created.id)
    with pytest.raises(InvalidIdentifierError, match="unique_id_field 'id', not 'key'"):
        AtlasDataset("acme/news", unique_id_field="key")


def test_properties_before_and_after_the_first_upload(atlas_home: Path, news: pd.DataFrame) -> None:
    ds = AtlasDataset("acme/news", unique_id_field="id")
    assert ds.total_datums == 0 and ds.modality is None and ds.schema is None and ds.dataset_fields == []
    assert ds.description == "A description for your map."
    assert ds.created_timestamp.tzinfo is not None
    assert ds.is_accepting_data and not ds.is_locked
    ds.add_data(news.iloc[:50])
    assert ds.total_datums == 50 and ds.modality == "text"
    assert ds.dataset_fields == ["id", "label", "label_name", "title", "description"]
    assert ds.schema.field("label").type == pa.int32()


def test_the_object_is_thin_and_never_stale(loaded: AtlasDataset, news: pd.DataFrame) -> None:
    other = AtlasDataset("acme/news")
    other.add_data(news.iloc[200:300])
    assert loaded.total_datums == 300


# ------------------------------------------------------------------------------------ add_data


def test_every_input_kind_is_accepted(atlas_home: Path, news: pd.DataFrame) -> None:
    ds = AtlasDataset("acme/kinds", unique_id_field="id")
    ds.add_data(news.iloc[0:100])
    ds.add_data(pl.from_pandas(news.iloc[100:200]))
    ds.add_data(pa.Table.from_pandas(news.iloc[200:300]))  # carries __index_level_0__: dropped
    ds.add_data(news.iloc[300:400].to_dict("records"))
    rows = ds.store.read_rows(ds.organisation, ds.slug)
    assert rows.column("id").to_pylist() == list(range(400))
    assert rows.column("title").to_pylist() == news["title"].iloc[:400].tolist()
    assert ds.dataset_fields == ["id", "label", "label_name", "title", "description"]


def test_a_dataset_survives_a_reload_bit_for_bit(atlas_home: Path, news: pd.DataFrame) -> None:
    frame = news.iloc[:300].copy()
    frame["published"] = pd.date_range("2004-08-01", periods=300, freq="37min", tz="UTC")
    frame["score"] = np.linspace(0, 1, 300)
    frame["label_name"] = frame["label_name"].astype("category")
    ds = AtlasDataset("acme/reload", unique_id_field="id")
    ds.add_data(frame.iloc[:150])
    ds.add_data(frame.iloc[150:])
    before = (ds.schema, ds.store.read_rows(ds.organisation, ds.slug), ds.total_datums, ds.created_timestamp)

    reloaded = AtlasDataset(dataset_id=ds.id, store=DatasetStore(root=str(atlas_home)))
    after = (
        reloaded.schema,
        reloaded.store.read_rows(reloaded.organisation, reloaded.slug),
        reloaded.total_datums,
        reloaded.created_timestamp,
    )
    assert after[0] == before[0] and after[0].field("published").type == pa.timestamp("ms", tz="UTC")
    assert after[0].field("label_name").type == tables.DICTIONARY
    assert after[1].equals(before[1]) and after[2:] == before[2:]
    assert after[1].schema.field("score").type == pa.float32()


def test_extra_fields_are_dropped_with_a_warning(loaded: AtlasDataset, news: pd.DataFrame) -> None:
    more = news.iloc[200:210].assign(extra="x")
    with pytest.warns(UserWarning, match="dropped: extra"):
        loaded.add_data(more)
    assert "extra" not in loaded.dataset_fields and loaded.total_datums == 210


def bad_uploads(news: pd.DataFrame) -> list[tuple[str, dict, type[AtlasError], str]]:
    """(case, add_data kwargs, error, message pattern) for a dataset holding ids 0..199 of ag_news."""
    fresh = news.iloc[200:210].reset_index(drop=True)
    return [
        ("reserved name", {"data": fresh.assign(_score=1)}, InvalidDataError, "reserved.*'_score'"),
        ("names equal ignoring case", {"data": fresh.assign(Title="t")}, InvalidDataError, "ignoring case"),
        ("id field missing", {"data": fresh.drop(columns=["id"])}, InvalidDataError, "no column 'id'"),
        ("null id", {"data": fresh.assign(id=[1000.0] * 9 + [None])}, InvalidDataError, "null in row\\(s\\) 9"),
        ("id repeated in the upload", {"data": fresh.assign(id=[5000] * 10)}, DuplicateIdError, "5000"),
        ("id already stored", {"data": news.iloc[195:205]}, DuplicateIdError, "already in the dataset.*195"),
        ("schema field missing", {"data": fresh.drop(columns=["title"])}, SchemaMismatchError, "lacks.*'title'"),
        ("field kind changed", {"data": fresh.assign(label="four")}, SchemaMismatchError, "'label' was frozen"),
        ("int32 overflow", {"data": fresh.assign(label=2**40)}, SchemaMismatchError, "'label'.*32-bit"),
        ("embeddings on text", {"data": fresh, "embeddings": np.ones((10, 4))}, InvalidDataError, "text dataset"),
        ("blobs and embeddings", {"data": fresh, "embeddings": np.ones((10, 4)), "blobs": [b""] * 10},
         InvalidDataError, "both embeddings and blobs"),
        ("empty upload", {"data": fresh.iloc[:0]}, InvalidDataError, "no rows"),
        ("not a table", {"data": "text"}, InvalidDataError, "builtins.str"),
    ]


def test_each_bad_upload_gets_its_error_and_changes_nothing(loaded: AtlasDataset, news: pd.DataFrame) -> None:
    before = fingerprint(folder_of(loaded))
    for case, kwargs, error, message in bad_uploads(news):
        with pytest.raises(error, match=message):
            loaded.add_data(**kwargs)
        assert fingerprint(folder_of(loaded)) == before, case
    assert loaded.total_datums == 200


@pytest.mark.parametrize(
    ("column", "message"),
    [([True, False], "bool"), ([["a"], ["b", "c"]], "list"), ([{"x": 1}, {"x": 2}], "struct")],
)
def test_first_upload_rejects_bool_list_and_struct(atlas_home: Path, column: list, message: str) -> None:
    ds = AtlasDataset("acme/types", unique_id_field="id")
    before = fingerprint(folder_of(ds))
    with pytest.raises(InvalidDataError, match=f"'bad' has type {message}"):
        ds.add_data(pa.table({"id": ["a", "b"], "bad": column}))
    assert fingerprint(folder_of(ds)) == before and ds.schema is None and ds.modality is None


def test_string_ids_longer_than_36_characters_are_rejected(atlas_home: Path, news: pd.DataFrame) -> None:
    ds = AtlasDataset("acme/keys", unique_id_field="key")
    frame = news.iloc[:5].assign(key=["a", "b", "c", "d", "e" * 37])
    before = fingerprint(folder_of(ds))
    with pytest.raises(InvalidDataError, match="longer than 36.*row\\(s\\) 4"):
        ds.add_data(frame)
    assert fingerprint(folder_of(ds)) == before and ds.schema is None
    ds.add_data(frame.iloc[:4])
    assert ds.get_data(["c"])[0]["title"] == news["title"].iloc[2]


def test_a_bad_chunk_late_in_a_large_upload_writes_nothing(
    loaded: AtlasDataset, news: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset_module, "ADD_DATA_CHUNK_ROWS", 1000)
    upload = news.iloc[200:].copy()
    upload.iloc[-1, upload.columns.get_loc("id")] = 300  # repeats an id of the first chunk
    before = fingerprint(folder_of(loaded))
    with pytest.raises(DuplicateIdError, match="300"):
        loaded.add_data(upload)
    assert fingerprint(folder_of(loaded)) == before


def test_large_uploads_are_chunked_with_progress(
    atlas_home: Path, news: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset_module, "ADD_DATA_CHUNK_ROWS", 1000)

    class Recorder:
        def __init__(self) -> None:
            self.updates: list[int] = []

        def update(self, n: int) -> None:
            self.updates.append(n)

    pbar = Recorder()
    ds = AtlasDataset("acme/chunks", unique_id_field="id")
    ds.add_data(news, pbar=pbar)
    assert pbar.updates == [1000] * 7 + [600]
    assert len(ds.store.batch_ids(ds.organisation, ds.slug)) == 1  # one upload, one batch
    assert ds.store.read_rows(ds.organisation, ds.slug, columns=["id"]).column(0).to_pylist() == list(range(7600))


def test_tqdm_bar_is_shown_for_many_rows(atlas_home: Path, news: pd.DataFrame, capsys: pytest.CaptureFixture) -> None:
    ds = AtlasDataset("acme/bar", unique_id_field="id")
    ds.add_data(pd.concat([news, news.assign(id=news["id"] + 10_000)]))
    assert "add_data" in capsys.readouterr().err and ds.total_datums == 15_200


# ------------------------------------------------------------------------------------ generated ids


def test_without_unique_id_field_ids_are_generated(atlas_home: Path, news: pd.DataFrame) -> None:
    ds = AtlasDataset("acme/auto")
    ds.add_data(news[["title"]].iloc[:5])
    ds.add_data(news[["title"]].iloc[5:8])
    assert ds.id_field == "id_" and ds.dataset_fields == ["title", "id_"]
    assert [row["title"] for row in ds.get_data(["6", "0"])] == [news["title"][6], news["title"][0]]
    before = fingerprint(folder_of(ds))
    with pytest.raises(InvalidDataError, match="generated ids"):
        ds.add_data(news[["title"]].iloc[:2].assign(id_=["x", "y"]))
    assert fingerprint(folder_of(ds)) == before


# ------------------------------------------------------------------------------------ embeddings


def test_embedding_datasets(atlas_home: Path, news: pd.DataFrame) -> None:
    vectors = np.random.default_rng(7).normal(size=(60, 24))
    ds = AtlasDataset("acme/vectors", unique_id_field="id")
    ds.add_data(news.iloc[:40], embeddings=vectors[:40])
    assert ds.modality == "embedding"
    before = fingerprint(folder_of(ds))
    nan = vectors[40:60].copy()
    nan[3, 5] = np.nan
    failures = [
        ({"embeddings": nan}, InvalidEmbeddingsError, "NaN or Inf.*row\\(s\\) 3"),
        ({"embeddings": vectors[40:60, :16]}, InvalidEmbeddingsError, "width 16.*width 24"),
        ({"embeddings": vectors[40:59]}, InvalidEmbeddingsError, "19 rows but the data has 20"),
        ({"embeddings": vectors[40:60, 0]}, InvalidEmbeddingsError, "2-D"),
        ({}, InvalidDataError, "embedding dataset"),
    ]
    for kwargs, error, message in failures:
        with pytest.raises(error, match=message):
            ds.add_data(news.iloc[40:60], **kwargs)
        assert fingerprint(folder_of(ds)) == before
    ds.add_data(news.iloc[40:60], embeddings=vectors[40:60])
    stored = ds.store.read_rows(ds.organisation, ds.slug, columns=["id", tables.EMBEDDING])
    np.testing.assert_array_equal(tables.embedding_matrix(stored.column(1)), vectors.astype(np.float32))


# ------------------------------------------------------------------------------------ images


def test_image_datasets_store_each_content_once(atlas_home: Path, tmp_path: Path) -> None:
    red, blue = png_bytes((255, 0, 0)), jpeg_bytes((0, 0, 255))
    path = tmp_path / "photo.jpg"
    path.write_bytes(blue)
    blobs = [red, str(path), Image.new("RGB", (4, 4), (0, 255, 0)), red]
    ds = AtlasDataset("acme/pictures", unique_id_field="id")
    ds.add_data([{"id": f"img{i}", "caption": f"picture {i}"} for i in range(4)], blobs=blobs)
    assert ds.modality == "image"
    refs = ds.store.read_rows(ds.organisation, ds.slug, columns=[tables.BLOB]).column(0).to_pylist()
    assert refs[0] == refs[3] and refs[0].endswith(".png") and refs[1].endswith(".jpg") and refs[2].endswith(".png")
    assert sorted(p.name for p in (folder_of(ds) / "blobs").iterdir()) == sorted(set(refs))
    assert ds.store.blob_path(ds.organisation, ds.slug, refs[1]).read_bytes() == blue
    assert Image.open(ds.store.blob_path(ds.organisation, ds.slug, refs[2])).getpixel((0, 0)) == (0, 255, 0)


def test_an_unreadable_image_names_its_row_and_writes_nothing(atlas_home: Path, tmp_path: Path) -> None:
    ds = AtlasDataset("acme/pictures", unique_id_field="id")
    ds.add_data([{"id": "first"}], blobs=[png_bytes((1, 2, 3))])
    before = fingerprint(folder_of(ds))
    truncated = png_bytes((9, 9, 9), size=64)[:-40]
    cases = [
        ([png_bytes((5, 5, 5)), b"not an image at all", png_bytes((6, 6, 6))], "row 1"),
        ([png_bytes((5, 5, 5)), png_bytes((7, 7, 7)), truncated], "row 2"),
        ([str(tmp_path / "missing.png"), png_bytes((8, 8, 8)), png_bytes((7, 7, 7))], "missing.png \\(row 0\\) cannot be read"),
        ([png_bytes((5, 5, 5)), 42, png_bytes((7, 7, 7))], "row 1 is a int"),
    ]
    for blobs, message in cases:
        with pytest.raises(InvalidImageError, match=message):
            ds.add_data([{"id": f"x{i}"} for i in range(3)], blobs=blobs)
        assert fingerprint(folder_of(ds)) == before
    with pytest.raises(InvalidDataError, match="blobs has 2 rows but the data has 3"):
        ds.add_data([{"id": f"x{i}"} for i in range(3)], blobs=[png_bytes((5, 5, 5))] * 2)
    assert fingerprint(folder_of(ds)) == before


# ------------------------------------------------------------------------------------ get / delete


def test_get_data_keeps_order_and_names_unknown_ids(loaded: AtlasDataset, news: pd.DataFrame) -> None:
    rows = loaded.get_data([150, 3, 77])
    assert [row["id"] for row in rows] == [150, 3, 77]
    assert rows[1] == {
        "id": 3,
        "label": int(news["label"][3]),
        "label_name": news["label_name"][3],
        "title": news["title"][3],
        "description": news["description"][3],
    }
    with pytest.raises(UnknownIdsError, match="9999, 12345"):
        loaded.get_data([3, 9999, 12345])
    assert loaded.get_data([]) == []


def test_delete_data_removes_rows(loaded: AtlasDataset) -> None:
    assert loaded.delete_data([10, 11]) is True
    assert loaded.total_datums == 198
    with pytest.raises(UnknownIdsError, match="10"):
        loaded.get_data([10])
    before = fingerprint(folder_of(loaded))
    with pytest.raises(UnknownIdsError, match="11"):
        loaded.delete_data([12, 11])
    assert fingerprint(folder_of(loaded)) == before and loaded.total_datums == 198


def test_delete_removes_everything(loaded: AtlasDataset, atlas_home: Path) -> None:
    folder = folder_of(loaded)
    loaded.delete()
    assert not folder.exists()
    with pytest.raises(DatasetNotFoundError, match="deleted"):
        _ = loaded.total_datums
    assert AtlasDataset("acme/news", unique_id_field="id").total_datums == 0  # a new, empty dataset


# ------------------------------------------------------------------------------------ locks


def _index_for_a_while(root: str, ready, release) -> None:
    store = DatasetStore(root=root)
    with store.indexing_lock("acme", "news"):
        ready.set()
        release.wait(30)


def test_wait_for_dataset_lock(loaded: AtlasDataset, atlas_home: Path) -> None:
    context = multiprocessing.get_context("fork")
    ready, release = context.Event(), context.Event()
    indexer = context.Process(target=_index_for_a_while, args=(str(atlas_home), ready, release))
    indexer.start()
    try:
        assert ready.wait(60)
        assert loaded.is_locked and not loaded.is_accepting_data
        with pytest.raises(DatasetLockedError, match="acme/news"):
            with loaded.wait_for_dataset_lock(timeout=0.3):
                pass
    finally:
        release.set()
        indexer.join(30)
    with loaded.wait_for_dataset_lock(timeout=5) as ds:
        assert ds is loaded and loaded.is_accepting_data


def test_ids_may_come_as_numpy_arrow_or_pandas(loaded: AtlasDataset) -> None:
    for ids in (np.array([4, 2]), pa.array([4, 2]), pd.Series([4, 2]), (4, 2)):
        assert [row["id"] for row in loaded.get_data(ids)] == [4, 2]
    with pytest.raises(InvalidDataError, match="list of ids"):
        loaded.get_data("4")


def test_vectors_or_images_alone_need_generated_ids(atlas_home: Path) -> None:
    vectors = AtlasDataset("acme/only-vectors")
    vectors.add_data(embeddings=np.eye(3, 5))
    assert vectors.modality == "embedding" and vectors.total_datums == 3
    assert vectors.get_data(["2"]) == [{"id_": "2"}]
    pictures = AtlasDataset("acme/only-pictures")
    pictures.add_data(blobs=[png_bytes((1, 1, 1)), png_bytes((2, 2, 2))])
    assert pictures.modality == "image" and pictures.total_datums == 2
    keyed = AtlasDataset("acme/keyed-vectors", unique_id_field="id")
    with pytest.raises(InvalidDataError, match="data is required.*'id'"):
        keyed.add_data(embeddings=np.eye(3, 5))

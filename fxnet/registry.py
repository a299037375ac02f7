"""The pretrained-model index, and how a model spec becomes a local file.

A spec is a file path, ``hf://ORG/REPO/PATH/IN/REPO.safetensors[@REVISION]``, or a name
from the index (``pretrained.toml``: the package's, then the user's own in fxnet's config
directory). A named model comes from its bundled copy, else the local Hugging Face cache
(no network at all), else the Hub. A copy with a known sha256 is checked, in 1 MiB blocks,
before it is used; a download that fails the check is deleted from the cache.

The Hub client (``huggingface_hub``) is imported only when it is needed. It honours
``HF_ENDPOINT``, ``HF_TOKEN`` and ``HF_HUB_OFFLINE``; fxnet reads the endpoint and the
offline switch itself at call time, because the client reads them once, at import.
The layering (an index kept as data, local and remote sources behind one call, checksums
in blocks) follows demucs' ``repo.py``/``pretrained.py``.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fxnet import constants
from fxnet.errors import CheckpointError, DownloadError, FxnetError, ModelNotFoundError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

HF_PREFIX = "hf://"
#: Name of the index file, in the package and in the user's config directory.
INDEX_FILENAME = "pretrained.toml"
#: Checksums are computed over blocks of this many bytes.
HASH_BLOCK_BYTES = 1 << 20

Status = Literal["bundled", "cached", "remote"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_TRUE = {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class HubFile:
    """One file of one revision of a Hub repository."""

    repo_id: str
    filename: str
    revision: str = "main"

    def __str__(self) -> str:
        return f"{self.repo_id}/{self.filename}@{self.revision}"


@dataclass(frozen=True)
class RegistryEntry:
    """One ``[models.NAME]`` table of a ``pretrained.toml`` (see that file for the keys)."""

    name: str
    repo_id: str
    filename: str
    task: Literal["apply", "remove"] = "apply"
    description: str = ""
    revision: str = "main"
    sha256: str | None = None
    license: str = ""
    bundled: bool = False
    recipe: str = ""
    knobs: tuple[str, ...] = ()
    size_bytes: int | None = None  #: expected file size in bytes, shown before download
    source: Path | None = None  #: the index file this entry came from

    @property
    def hub_file(self) -> HubFile:
        return HubFile(self.repo_id, self.filename, self.revision)

    @property
    def bundled_path(self) -> Path:
        """Where the copy shipped with fxnet lives (it may be absent, e.g. in a checkout)."""
        return constants.WEIGHTS_DIR / self.filename


# --- the index -----------------------------------------------------------------------


def index_files() -> list[Path]:
    """The index files read, in order: the package's (if found), then the user's path."""
    files = []
    for candidate in (constants.PACKAGE_DIR / INDEX_FILENAME, constants.PACKAGE_DIR.parent / INDEX_FILENAME):
        if candidate.is_file():
            files.append(candidate)
            break
    files.append(constants.config_dir() / INDEX_FILENAME)
    return files


def load_registry() -> dict[str, RegistryEntry]:
    """Read every index file; a user's entry replaces a package entry of the same name.

    Raises UsageError naming the file when one is not valid TOML or has a bad entry.
    """
    entries: dict[str, RegistryEntry] = {}
    for path in index_files():
        if path.is_file():
            entries.update(_read_index(path))
    return entries


def _read_index(path: Path) -> dict[str, RegistryEntry]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"not valid TOML ({e}); fix or remove this file", path=path) from None
    except OSError as e:
        raise UsageError(f"cannot read the model index ({e.strerror or e})", path=path) from None
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise UsageError("'models' must be a table of [models.NAME] tables", path=path)
    return {name: _parse_entry(name, table, path) for name, table in models.items()}


_FIELDS: dict[str, tuple[type | tuple[type, ...], Any]] = {
    "task": (str, "apply"),
    "description": (str, ""),
    "repo_id": (str, None),
    "filename": (str, None),
    "revision": (str, "main"),
    "sha256": (str, None),
    "license": (str, ""),
    "bundled": (bool, False),
    "recipe": (str, ""),
    "knobs": (list, []),
    "size_bytes": (int, None),
}


def _parse_entry(name: str, table: Any, path: Path) -> RegistryEntry:
    where = f"[models.{name}]"

    def bad(message: str) -> UsageError:
        return UsageError(f"{where}: {message}", path=path)

    if not _NAME.match(name):
        raise bad("model names use letters, digits, '.', '_' and '-' only")
    if not isinstance(table, dict):
        raise bad("must be a table of keys")
    unknown = sorted(set(table) - set(_FIELDS))
    if unknown:
        raise bad(f"unknown key(s) {', '.join(unknown)}; known keys: {', '.join(_FIELDS)}")
    values: dict[str, Any] = {}
    for key, (kind, default) in _FIELDS.items():
        value = table.get(key, default)
        if value is None:
            if key in ("repo_id", "filename"):
                raise bad(f"missing required key '{key}'")
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise bad(f"'{key}' must be a {kind.__name__}, got {value!r}")
        values[key] = value
    if values["task"] not in ("apply", "remove"):
        raise bad(f"'task' must be \"apply\" or \"remove\", got {values['task']!r}")
    if not values["repo_id"] or not values["filename"] or not values["revision"]:
        raise bad("'repo_id', 'filename' and 'revision' must not be empty")
    if values["filename"].startswith("/") or ".." in values["filename"].split("/"):
        raise bad(f"'filename' must be a relative path inside the repository, got {values['filename']!r}")
    if values["sha256"] is not None:
        values["sha256"] = values["sha256"].lower()
        if not _SHA256.match(values["sha256"]):
            raise bad("'sha256' must be 64 hexadecimal digits")
    if not all(isinstance(k, str) for k in values["knobs"]):
        raise bad("'knobs' must be a list of knob names")
    if values["size_bytes"] is not None and values["size_bytes"] < 0:
        raise bad("'size_bytes' must not be negative")
    values["knobs"] = tuple(values["knobs"])
    return RegistryEntry(name=name, source=path, **values)


# --- resolving a spec ------------------------------------------------------------------


def resolve_model(spec: str) -> Path:
    """Turn a model spec into a local checkpoint file, downloading it if needed.

    In order: an existing file; ``hf://ORG/REPO/FILE[@REVISION]``; a registry name.
    Raises ModelNotFoundError (listing the known names) when nothing matches, and
    DownloadError when the file cannot be fetched or fails its checksum.
    """
    if not spec:
        raise UsageError("empty model name")
    if spec.startswith(HF_PREFIX):
        return _fetch(parse_hf_spec(spec), sha256=None, spec=spec)
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    registry = load_registry()
    if spec in registry:
        return _resolve_entry(registry[spec])
    if path.is_dir():
        raise ModelNotFoundError(f"{spec}: is a directory, not a model file")
    if "/" in spec or os.sep in spec or spec.endswith(".safetensors"):
        raise ModelNotFoundError(f"{spec}: no such model file")
    raise _unknown(spec, registry)


def pull(spec: str) -> Path:
    """Make a registry model (or an ``hf://`` file) available locally; returns its path.

    A bundled model needs no download: its bundled path is returned.
    """
    if spec.startswith(HF_PREFIX):
        return _fetch(parse_hf_spec(spec), sha256=None, spec=spec)
    registry = load_registry()
    if spec not in registry:
        raise _unknown(spec, registry)
    return _resolve_entry(registry[spec])


def parse_hf_spec(spec: str) -> HubFile:
    """``hf://ORG/REPO/PATH/IN/REPO[@REVISION]`` -> HubFile (revision defaults to main).

    The revision follows the last '@', so a file name containing '@' needs an explicit
    ``@REVISION``.
    """
    body = spec[len(HF_PREFIX) :] if spec.startswith(HF_PREFIX) else spec
    revision = "main"
    if "@" in body:
        body, revision = body.rsplit("@", 1)
    parts = body.split("/")
    if len(parts) < 3 or not all(parts) or not revision or ".." in parts:
        raise UsageError(
            f"bad model spec '{spec}': expected hf://ORG/REPO/PATH/IN/REPO.safetensors[@REVISION]"
        )
    return HubFile(f"{parts[0]}/{parts[1]}", "/".join(parts[2:]), revision)


def _unknown(spec: str, registry: dict[str, RegistryEntry]) -> ModelNotFoundError:
    known = ", ".join(sorted(registry)) if registry else "none (the registry is empty)"
    return ModelNotFoundError(
        f"unknown model '{spec}': not a file and not in the registry; known models: {known} "
        "(see 'fxnet models list')"
    )


def _resolve_entry(entry: RegistryEntry) -> Path:
    """Bundled copy, else the cached copy, else a download; all checked against sha256."""
    if entry.bundled and entry.bundled_path.is_file():
        path = entry.bundled_path
        if entry.sha256 is not None and (actual := file_sha256(path)) != entry.sha256:
            raise CheckpointError(
                f"bundled copy of model '{entry.name}' is corrupt (sha256 {actual}, expected "
                f"{entry.sha256}); reinstall fxnet",
                path=path,
            )
        return path
    cached = _cached(entry.hub_file)
    if cached is not None:
        if entry.sha256 is None or (actual := file_sha256(cached)) == entry.sha256:
            return cached
        _discard(cached)  # stale or corrupt: fetch it again
        if _offline():
            raise DownloadError(
                f"{entry.name}: the cached copy failed its checksum (sha256 {actual}, "
                f"expected {entry.sha256}) and was deleted; offline mode is on (HF_HUB_OFFLINE), "
                f"so it cannot be fetched again: run 'fxnet models pull {entry.name}' online"
            )
    return _fetch(entry.hub_file, sha256=entry.sha256, spec=entry.name)


# --- status, for `fxnet models list` ----------------------------------------------------


def entry_status(entry: RegistryEntry) -> dict[str, Any]:
    """Where a model is available without network: bundled, cached, or only remote.

    Returns ``{"status", "path" (str or None), "size_bytes" (of the local file, else the
    index's figure, possibly None)}``. Checksums are not verified here.
    """
    local: Path | None = None
    status: Status = "remote"
    if entry.bundled and entry.bundled_path.is_file():
        local, status = entry.bundled_path, "bundled"
    elif (cached := _cached(entry.hub_file)) is not None:
        local, status = cached, "cached"
    size = local.stat().st_size if local is not None else entry.size_bytes
    return {"status": status, "path": None if local is None else str(local), "size_bytes": size}


def list_models() -> list[dict[str, Any]]:
    """Every registry entry, sorted by name, with its status (JSON-serialisable)."""
    rows = []
    for name, entry in sorted(load_registry().items()):
        rows.append(
            {
                "name": name,
                "task": entry.task,
                "description": entry.description,
                "knobs": list(entry.knobs),
                "repo_id": entry.repo_id,
                "filename": entry.filename,
                "revision": entry.revision,
                "sha256": entry.sha256,
                "license": entry.license,
                "recipe": entry.recipe,
                "bundled": entry.bundled,
                **entry_status(entry),
            }
        )
    return rows


# --- the Hub cache and downloads ---------------------------------------------------------


def hub_cache_dir() -> Path:
    """fxnet's Hugging Face cache (same layout as ``~/.cache/huggingface/hub``)."""
    return constants.cache_dir() / "hub"


def file_sha256(path: str | Path, *, block_bytes: int = HASH_BLOCK_BYTES) -> str:
    """Hex sha256 of a file, read in blocks of ``block_bytes`` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(block_bytes):
            digest.update(block)
    return digest.hexdigest()


def _offline() -> bool:
    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return flag.strip().upper() in _TRUE


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or None


def _cached(hub: HubFile) -> Path | None:
    """The cached copy of ``hub`` without any network access, or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(hub.repo_id, hub.filename, cache_dir=hub_cache_dir(), revision=hub.revision)
    return Path(found) if isinstance(found, str) and os.path.isfile(found) else None


def _fetch(hub: HubFile, *, sha256: str | None, spec: str) -> Path:
    """``hf_hub_download`` into fxnet's cache, then the checksum; errors become fxnet's."""
    from huggingface_hub import hf_hub_download

    offline = _offline()
    try:
        path = Path(
            hf_hub_download(
                hub.repo_id,
                hub.filename,
                revision=hub.revision,
                cache_dir=hub_cache_dir(),
                endpoint=_endpoint(),
                local_files_only=offline,
            )
        )
    except Exception as exc:
        error = _hub_error(exc, hub, spec=spec, offline=offline)
        if error is None:
            raise
        raise error from exc
    if sha256 is not None and (actual := file_sha256(path)) != sha256:
        _discard(path)
        raise DownloadError(
            f"{spec}: checksum mismatch for {hub} (sha256 {actual}, expected {sha256}); "
            "the download was deleted. The file on the Hub differs from the one the index "
            "names: check its 'revision' and 'sha256'"
        )
    return path


def _discard(path: Path) -> None:
    """Delete a cached file: the snapshot entry and the blob it points to (cache only)."""
    root = hub_cache_dir().resolve()
    blob = Path(os.path.realpath(path))
    for p in (path, blob):
        if root in Path(os.path.realpath(p.parent)).parents:
            try:
                p.unlink()
            except FileNotFoundError:
                pass
    parent = path.parent
    while parent.name != "snapshots" and root in parent.resolve().parents:
        try:
            parent.rmdir()  # only succeeds when empty
        except OSError:
            break
        parent = parent.parent


def _hub_error(exc: BaseException, hub: HubFile, *, spec: str, offline: bool) -> FxnetError | None:
    """Map any failure of the Hub client to one fxnet error with a one-line message.

    Returns None for exceptions that are not transport or Hub errors (bugs surface).
    """
    from huggingface_hub import constants as hf_constants
    from huggingface_hub import errors as hf

    def kind(name: str) -> type | tuple[()]:
        return getattr(hf, name, ())  # tolerate older clients lacking a class

    endpoint = _endpoint() or hf_constants.ENDPOINT
    chain = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 8:
        chain.append(chain[-1].__cause__)
    if (offline and isinstance(exc, kind("LocalEntryNotFoundError"))) or any(
        isinstance(e, kind("OfflineModeIsEnabled")) for e in chain
    ):
        return DownloadError(
            f"{spec}: {hub} is not cached and offline mode is on (HF_HUB_OFFLINE); "
            f"run 'fxnet models pull {spec}' once with network access"
        )
    if isinstance(exc, kind("GatedRepoError")):
        return DownloadError(f"{spec}: repository {hub.repo_id} is gated; accept its terms on the Hub and set HF_TOKEN")
    if isinstance(exc, kind("RepositoryNotFoundError")):
        return ModelNotFoundError(
            f"{spec}: repository {hub.repo_id} not found on {endpoint} (a private one needs HF_TOKEN)"
        )
    if isinstance(exc, kind("RevisionNotFoundError")):
        return ModelNotFoundError(f"{spec}: revision '{hub.revision}' not found in {hub.repo_id} on {endpoint}")
    if isinstance(exc, kind("EntryNotFoundError")) and not isinstance(exc, kind("LocalEntryNotFoundError")):
        return ModelNotFoundError(
            f"{spec}: file '{hub.filename}' not found in {hub.repo_id} at revision '{hub.revision}' on {endpoint}"
        )
    if isinstance(exc, kind("HfHubHTTPError")):
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        if status in (401, 403):
            return DownloadError(
                f"{spec}: access to {hub.repo_id} denied (HTTP {status}); set HF_TOKEN to a valid token"
            )
        return DownloadError(f"{spec}: the Hub at {endpoint} answered HTTP {status} for {hub}; try again later")
    if isinstance(exc, kind("HFValidationError")):
        return UsageError(f"{spec}: invalid repository id or revision ({_first_line(exc)})")
    if any(isinstance(e, kind("FileMetadataError")) for e in chain):
        return DownloadError(
            f"{spec}: {endpoint} does not answer like a Hugging Face Hub (no X-Repo-Commit/ETag "
            "headers) and the file is not cached; check HF_ENDPOINT"
        )
    if isinstance(exc, kind("LocalEntryNotFoundError")) and len(chain) > 1:
        inner = _hub_error(chain[1], hub, spec=spec, offline=False)
        if inner is not None and not _is_transport(chain[1]):
            return inner
    if isinstance(exc, kind("LocalEntryNotFoundError")) or any(_is_transport(e) for e in chain):
        return DownloadError(
            f"{spec}: cannot reach the Hub at {endpoint} and {hub} is not cached; "
            "check the network connection (and HF_ENDPOINT)"
        )
    if isinstance(exc, OSError):
        return DownloadError(f"{spec}: cannot store {hub} in {hub_cache_dir()}: {_first_line(exc)}")
    return None


def _is_transport(exc: BaseException) -> bool:
    """A network-level failure from any HTTP stack the Hub client has used."""
    package = type(exc).__module__.split(".")[0]
    return package in {"httpx", "httpx2", "httpcore", "requests", "urllib3"} or isinstance(
        exc, (ConnectionError, TimeoutError)
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

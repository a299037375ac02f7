"""fxnet model files: safetensors weights plus JSON metadata in the safetensors header.

One file per model. The header's ``__metadata__`` holds a single key, ``"fxnet"``, whose
value is a JSON document:

    {"format_version": 1, "fxnet_version": "0.1.0",
     "model": {"arch": ..., "sample_rate": ..., "knobs": [...], <hyper-parameters>},
     "task": "apply" | "remove", "geometry": {...}, "name": ..., "description": ...,
     "training": {...}}

Loading never unpickles anything: the header is parsed and checked by hand first (so a
truncated, corrupt or foreign file gets a clear message), then safetensors reads the
tensors. Saving writes a temporary file next to the target and renames it.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fxnet import __version__
from fxnet.constants import CHECKPOINT_FORMAT_VERSION, CHECKPOINT_METADATA_KEY
from fxnet.errors import CheckpointError

_MAX_HEADER_BYTES = 100 * 1024 * 1024
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


@dataclass
class CheckpointInfo:
    """The parsed metadata of a checkpoint (cheap: reads only the header)."""

    path: Path
    meta: dict[str, Any]
    tensor_bytes: int = 0
    num_parameters: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def model_config(self) -> dict[str, Any]:
        return self.meta["model"]

    @property
    def task(self) -> str:
        return self.meta.get("task", "apply")

    @property
    def knobs(self):
        from fxnet.knobs import KnobSpec

        return [KnobSpec.from_dict(k) for k in self.model_config.get("knobs", [])]


def read_header(path: str | Path) -> CheckpointInfo:
    """Parse and validate the safetensors header and fxnet metadata of ``path``."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError("not a model file (too short to be safetensors)", path=path)
            (n,) = struct.unpack("<Q", head)
            if n == 0 or n > _MAX_HEADER_BYTES or n > size - 8:
                raise CheckpointError(
                    "not a safetensors model file (bad header length; truncated or another format?)",
                    path=path,
                )
            raw = f.read(n)
    except FileNotFoundError:
        raise CheckpointError("model file not found", path=path) from None
    except IsADirectoryError:
        raise CheckpointError("is a directory, not a model file", path=path) from None
    except PermissionError:
        raise CheckpointError("model file is not readable (permission denied)", path=path) from None
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError("corrupt safetensors header (not JSON)", path=path) from None
    metadata = header.pop("__metadata__", None) or {}
    if CHECKPOINT_METADATA_KEY not in metadata:
        raise CheckpointError(
            "a safetensors file, but not an fxnet model (no 'fxnet' metadata); "
            "fxnet models are made by 'fxnet profile'",
            path=path,
        )
    try:
        meta = json.loads(metadata[CHECKPOINT_METADATA_KEY])
    except ValueError:
        raise CheckpointError("corrupt fxnet metadata (not JSON)", path=path) from None
    if not isinstance(meta, dict) or "model" not in meta or "arch" not in meta.get("model", {}):
        raise CheckpointError("fxnet metadata lacks the model description", path=path)
    if int(meta.get("format_version", 0)) > CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"made by a newer fxnet (format {meta.get('format_version')}); upgrade fxnet", path=path
        )
    data_bytes = size - 8 - n
    end = 0
    params = 0
    for name, t in header.items():
        try:
            start, stop = t["data_offsets"]
            count = 1
            for d in t["shape"]:
                count *= int(d)
            width = _DTYPE_BYTES.get(t["dtype"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"corrupt tensor entry '{name}' in header", path=path) from None
        if width is not None and stop - start != count * width:
            raise CheckpointError(f"corrupt tensor entry '{name}' (size mismatch)", path=path)
        end = max(end, stop)
        params += count
    if end > data_bytes:
        raise CheckpointError(
            f"truncated model file ({data_bytes} of {end} weight bytes present); download it again",
            path=path,
        )
    return CheckpointInfo(path=path, meta=meta, tensor_bytes=end, num_parameters=params)


def save_model(
    model,
    path: str | Path,
    *,
    task: str = "apply",
    name: str | None = None,
    description: str = "",
    training: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (an FxModel) to ``path`` atomically; returns the path."""
    from safetensors.torch import save_file

    path = Path(path)
    meta: dict[str, Any] = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "fxnet_version": __version__,
        "name": name or path.stem,
        "description": description,
        "task": task,
        "model": model.config(),
        "geometry": model.geometry.to_dict(),
        "training": training or {},
    }
    if extra:
        meta.update(extra)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata={CHECKPOINT_METADATA_KEY: json.dumps(meta)})
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_model(path: str | Path, *, device: str = "cpu"):
    """Load an fxnet model file; returns ``(model, info)`` with the model in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from fxnet.models import build

    info = read_header(path)
    model = build(info.model_config)
    try:
        state = load_file(str(info.path), device="cpu")
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"cannot read weights ({e})", path=path) from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(
            f"weights do not match architecture '{info.model_config['arch']}': "
            f"{first[1].strip() if len(first) > 1 else first[0]}",
            path=path,
        ) from None
    model.eval()
    return model.to(device), info

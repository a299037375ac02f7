"""Architecture registry: name -> model class, imported lazily.

Register a new architecture by adding ``name: "module:Class"`` to ``_BUILTIN`` or by
calling ``register(name, cls)``. ``build(config)`` rebuilds a model from the dict that
``FxModel.config()`` returned (this is what checkpoints store).
"""

from __future__ import annotations

import importlib
from typing import Any

from fxnet.errors import CheckpointError, UsageError

_BUILTIN: dict[str, str] = {
    "gain": "fxnet.models.simple:Gain",
    "fir": "fxnet.models.simple:FIR",
    "signaltrain": "fxnet.models.signaltrain:SignalTrain",
    "tcn": "fxnet.models.tcn:TCN",
    "rnn": "fxnet.models.rnn:RNN",
    "dynamics": "fxnet.models.dynamics:Dynamics",
    "demucs": "fxnet.models.demucs:Demucs",
    "waveunet": "fxnet.models.waveunet:WaveUNet",
    "waveshaper": "fxnet.models.waveshaper:WaveShaper",
    "openunmix": "fxnet.models.openunmix:OpenUnmix",
    "crafx": "fxnet.models.crafx:CRAFx",
}
_REGISTERED: dict[str, type] = {}


def register(name: str, cls: type, *, overwrite: bool = False) -> None:
    if not overwrite and (name in _REGISTERED or name in _BUILTIN):
        raise ValueError(f"architecture '{name}' is already registered")
    _REGISTERED[name] = cls


def available() -> list[str]:
    return sorted(set(_BUILTIN) | set(_REGISTERED))


def get(name: str) -> type:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in _BUILTIN:
        raise UsageError(f"unknown architecture '{name}'; available: {', '.join(available())}")
    module, _, attr = _BUILTIN[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    _REGISTERED[name] = cls
    return cls


def build(config: dict[str, Any]):
    """Instantiate a model from its config dict (``arch`` plus hyper-parameters)."""
    config = dict(config)
    arch = config.pop("arch", None)
    if not arch:
        raise CheckpointError("model config has no 'arch'")
    try:
        cls = get(arch)
    except UsageError as e:
        raise CheckpointError(str(e)) from None
    try:
        return cls(**config)
    except TypeError as e:
        raise CheckpointError(f"bad hyper-parameters for architecture '{arch}': {e}") from None

"""Reference audio effects: exact DSP ground truth for training data, tests and evaluation.

Every effect has one call shape::

    effect(x, sample_rate, knobs) -> y
    x: float array (..., samples); knobs: normalised [0, 1] in the order of
    ``effect.knobs`` (shape (K,), or (..., K) for one set per row); y: float32, x's shape

The registry maps names to :class:`Effect` entries and imports each module only when
the effect is first asked for (numba kernels compile, or load from cache, on first call)::

    from fxnet.effects import get_effect
    comp = get_effect("comp4c")
    y = comp(x, 44100, [0.5, 0.25, 0.1, 0.6])
    comp.knobs[0].to_physical(0.5)   # -15.0 dB
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from fxnet.errors import UsageError
from fxnet.knobs import KnobSpec

__all__ = ["EFFECTS", "Effect", "EffectRef", "available", "get_effect"]


@dataclass(frozen=True)
class EffectRef:
    """Where an effect lives: ``module.function`` and its ``module.KNOBS``-style attribute."""

    module: str
    function: str
    knobs: str
    description: str


@dataclass(frozen=True)
class Effect:
    """A loaded effect: callable as ``effect(x, sample_rate, knobs, **options)``."""

    name: str
    knobs: tuple[KnobSpec, ...]
    description: str
    function: Callable[..., np.ndarray] = field(repr=False)

    @property
    def knob_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.knobs)

    def default_knobs(self) -> list[float]:
        return [k.default for k in self.knobs]

    def __call__(
        self, x: np.ndarray, sample_rate: int, knobs: Sequence[float] | np.ndarray, **options: Any
    ) -> np.ndarray:
        return self.function(x, sample_rate, knobs, **options)


_PKG = "fxnet.effects"

EFFECTS: dict[str, EffectRef] = {
    "comp4c": EffectRef(
        f"{_PKG}.comp4c", "comp4c", "KNOBS", "SignalTrain's 4-knob compressor (Tarr, Hack Audio)"
    ),
    "la2a": EffectRef(
        f"{_PKG}.la2a", "la2a", "KNOBS", "LA-2A-style optical leveller (emulation)"
    ),
    "overdrive": EffectRef(
        f"{_PKG}.overdrive", "overdrive", "KNOBS", "SoX overdrive (soft clip + DC blocker + dry mix)"
    ),
    "hardclip": EffectRef(
        f"{_PKG}.clipping", "hardclip", "HARDCLIP_KNOBS", "gain then hard clip at ±1"
    ),
    "softclip": EffectRef(
        f"{_PKG}.clipping", "softclip", "SOFTCLIP_KNOBS", "gain then cubic soft clip"
    ),
    "tanh": EffectRef(f"{_PKG}.clipping", "tanh_drive", "TANH_KNOBS", "gain then tanh"),
    "clip_sdr": EffectRef(
        f"{_PKG}.distortion", "clip_sdr", "CLIP_SDR_KNOBS", "hard clip at an input SDR of 1-20 dB (SignalTrain-HC)"
    ),
    "overdrive_ceg": EffectRef(
        f"{_PKG}.distortion", "overdrive_ceg", "OVERDRIVE_CEG_KNOBS", "sox overdrive 20-50 dB, dry mixed in (CEG-OD)"
    ),
    "distortion": EffectRef(
        f"{_PKG}.distortion", "distortion", "DISTORTION_KNOBS", "hard/soft clip, tanh or sox overdrive (for removal)"
    ),
}


def available() -> list[str]:
    """Names of the registered effects, sorted."""
    return sorted(EFFECTS)


def get_effect(name: str) -> Effect:
    """Load the effect called ``name``; raises UsageError listing the valid names."""
    ref = EFFECTS.get(name)
    if ref is None:
        raise UsageError(f"unknown effect '{name}'; available effects: {', '.join(available())}")
    module = importlib.import_module(ref.module)
    return Effect(
        name=name,
        knobs=tuple(getattr(module, ref.knobs)),
        description=ref.description,
        function=getattr(module, ref.function),
    )

"""The contract every fxnet model follows, and the geometry it declares to the engine.

A model maps a chunk of audio plus its declared context to exactly ``n`` output samples:

    forward(x: (B, C, left_context + n + right_context), knobs: (B, K) in [0, 1])
        -> (B, C, n)

Output sample ``i`` belongs to input position ``left_context + i`` of the chunk, shifted
later by ``latency`` samples when the model's output lags its input (the engine
compensates, so files come out aligned). ``n`` is any positive multiple of
``geometry.multiple``. The engine never guesses any of this: models declare it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar, Literal, Sequence

import torch
from torch import nn

from fxnet.knobs import KnobSpec

Task = Literal["apply", "remove"]


@dataclass(frozen=True)
class Geometry:
    """What the streaming engine needs to know to run a model over a long file.

    All lengths are in samples at ``sample_rate``.
    """

    sample_rate: int
    channels: int = 1  #: 1 = mono model, applied to each channel as a batch
    left_context: int = 0  #: past input samples needed before the first output sample
    right_context: int = 0  #: future input samples needed after the last output sample
    latency: int = 0  #: output lags input by this many samples
    chunk: int = 1 << 16  #: preferred output samples per chunk
    multiple: int = 1  #: output samples per chunk must be a multiple of this
    overlap: int = 0  #: crossfade between chunks, for models whose context is incomplete

    def with_overrides(self, *, chunk: int | None = None, overlap: int | None = None) -> "Geometry":
        g = self
        if chunk is not None:
            g = replace(g, chunk=max(g.multiple, (chunk // g.multiple) * g.multiple))
        if overlap is not None:
            g = replace(g, overlap=overlap)
        return g

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Geometry":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


class FxModel(nn.Module):
    """Base class of fxnet architectures.

    Subclasses set ``arch`` (the registry name), take their hyper-parameters as keyword
    arguments, store them with ``self.hparams`` (JSON-serialisable), and implement
    ``geometry`` and ``forward``. ``sample_rate`` and ``knobs`` are common to all.
    """

    arch: ClassVar[str] = ""

    def __init__(self, *, sample_rate: int, knobs: Sequence[KnobSpec | dict] = (), **hparams: Any):
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.knob_specs: tuple[KnobSpec, ...] = tuple(
            k if isinstance(k, KnobSpec) else KnobSpec.from_dict(k) for k in knobs
        )
        self.hparams: dict[str, Any] = dict(hparams)

    @property
    def num_knobs(self) -> int:
        return len(self.knob_specs)

    @property
    def any_rate(self) -> bool:
        """True when the model runs at the file's own sample rate instead of resampling to
        ``sample_rate``: for models whose input would be spoilt by resampling (a clip-mask
        declipper needs the flat plateaus that a resampler turns into ringing)."""
        return False

    @property
    def geometry(self) -> Geometry:  # pragma: no cover - abstract
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this model with ``fxnet.models.build``."""
        return {
            "arch": self.arch,
            "sample_rate": self.sample_rate,
            "knobs": [k.to_dict() for k in self.knob_specs],
            **self.hparams,
        }

    def forward(self, x: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class ContextModel(FxModel):
    """A non-causal model that sees ``context`` samples either side of its output.

    Subclasses set ``self._multiple`` and store ``context``, ``chunk`` and ``overlap`` in
    their hyper-parameters, and implement ``net(x (B, C, L)) -> (B, 1, L)`` for ``L`` a
    multiple of ``_multiple``; ``forward`` pads callers outside the engine to that
    multiple and returns the ``n`` samples between the contexts.
    """

    _multiple: int = 1

    @property
    def geometry(self) -> Geometry:
        h = self.hparams
        return Geometry(sample_rate=self.sample_rate, channels=1, left_context=h["context"],
                        right_context=h["context"], latency=0, chunk=h["chunk"], multiple=self._multiple,
                        overlap=h["overlap"])

    def padded(self, net, h: torch.Tensor, length: int) -> torch.Tensor:
        """``net`` over ``h`` zero-padded at the end to a multiple, cut back to ``length``."""
        pad = (-h.shape[-1]) % self._multiple
        return net(torch.nn.functional.pad(h, (0, pad)) if pad else h)[..., :length]

    def crop(self, y: torch.Tensor) -> torch.Tensor:
        c = self.hparams["context"]
        return y[..., c : y.shape[-1] - c]

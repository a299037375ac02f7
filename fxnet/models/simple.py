"""Two small linear architectures: a knob-conditioned gain and a knob-conditioned FIR.

They are real, trainable models (``fxnet profile --arch fir`` captures an EQ or a cab's
linear response) and, because their output is known in closed form, they are what the
engine's property tests and the CLI's end-to-end tests run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fxnet.models.base import FxModel, Geometry


class Gain(FxModel):
    """y = x * 10^((gain_db + sum_k w_k * knob_k) / 20); no context, any chunk size."""

    arch = "gain"

    def __init__(self, *, sample_rate: int, knobs=(), gain_db: float = 0.0, chunk: int = 1 << 16):
        super().__init__(sample_rate=sample_rate, knobs=knobs, gain_db=gain_db, chunk=chunk)
        self.gain_db = nn.Parameter(torch.tensor(float(gain_db)))
        self.knob_db = nn.Parameter(torch.zeros(len(self.knob_specs)))

    @property
    def geometry(self) -> Geometry:
        return Geometry(sample_rate=self.sample_rate, chunk=self.hparams["chunk"])

    def forward(self, x: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
        db = self.gain_db + knobs.to(x.dtype) @ self.knob_db  # (B,)
        return x * torch.pow(10.0, db / 20.0)[:, None, None]


class FIR(FxModel):
    """Causal FIR filter whose taps depend linearly on the knobs.

    ``taps`` coefficients h(knobs) = h0 + knobs @ W; needs ``taps - 1`` past samples.
    ``latency`` declares how many samples the learnt response is delayed by (a capture
    of a delayed signal); at initialisation h0 is a unit impulse at ``latency``, so a
    fresh model is an exact identity once the engine compensates the latency.
    """

    arch = "fir"

    def __init__(self, *, sample_rate: int, knobs=(), taps: int = 64, latency: int = 0, chunk: int = 1 << 16):
        if not 0 <= latency < taps:
            raise ValueError(f"latency must be in [0, taps), got {latency} for {taps} taps")
        super().__init__(sample_rate=sample_rate, knobs=knobs, taps=taps, latency=latency, chunk=chunk)
        h0 = torch.zeros(taps)
        h0[latency] = 1.0
        self.h0 = nn.Parameter(h0)
        self.knob_taps = nn.Parameter(torch.zeros(len(self.knob_specs), taps))

    @property
    def geometry(self) -> Geometry:
        return Geometry(
            sample_rate=self.sample_rate,
            left_context=self.hparams["taps"] - 1,
            latency=self.hparams["latency"],
            chunk=self.hparams["chunk"],
        )

    def taps_for(self, knobs: torch.Tensor) -> torch.Tensor:
        """(B, K) knobs -> (B, taps) impulse responses."""
        return self.h0[None, :] + knobs.to(self.h0.dtype) @ self.knob_taps

    def forward(self, x: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
        b, c, length = x.shape
        h = self.taps_for(knobs).to(x.dtype)  # (B, T)
        # conv1d is a correlation: flip the taps to convolve. One group per (batch, channel).
        weight = h.flip(-1).repeat_interleave(c, dim=0)[:, None, :]  # (B*C, 1, T)
        y = F.conv1d(x.reshape(1, b * c, length), weight, groups=b * c)
        return y.reshape(b, c, -1)

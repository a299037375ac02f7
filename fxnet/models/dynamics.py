"""A dynamics-processor model: a network over frame envelopes predicts a gain curve.

Compressors, levellers and limiters (comp4c, the LA-2A) change a signal's level, not its
waveform: y[t] = x[t] · 10^(g[t]/20), with a gain g that moves smoothly and depends on
the signal's recent level and the knobs. This architecture builds that in:

    x (B, 1, W + n) --|x| in frames of `hop` samples--> peak and RMS in dB per frame
    (B, F, 2), knobs appended (B, F, 2 + K) --core--> gain in dB per frame (B, F)
    --causal linear interpolation to samples--> g (B, W + n) --> y = x · 10^(g/20)

Two cores, both fed the knobs with every frame (GuitarML's conditioning):
- ``core="tcn"`` (default): a causal dilated 1-D conv stack over frames (kernel 3,
  dilations 1, 2, 4, ... 2^(layers-1)), residual, PReLU. Fully parallel, so it is fast
  on a CPU; its receptive field is ``(2^(layers+1) - 1)`` frames, which with hop 16 and
  12 layers covers 5.9 s at 44.1 kHz — an LA-2A's slow release included.
- ``core="lstm"``/``"gru"``: a recurrent net over frames (GuitarML/NAM's LSTM, at the
  frame rate). Unbounded memory, but sequential; see `segment` below.

With hop 16 a frame covers 0.36 ms at 44.1 kHz, finer than comp4c's fastest attack
(1 ms). Frame k's gain may use the samples of frame k (a look-ahead of under one hop),
and the gain of sample j of frame k is interpolated between frames k-1 and k, so the
output at a sample depends only on frames up to its own: the model is causal up to one
hop, and chunked output equals whole-file output exactly (tcn core).

Features (``features``): ``"envelope"`` (default) gives the core two numbers per frame,
the peak and RMS level in dB. ``"samples"`` adds the level in dB of every sample of the
frame (``hop`` more inputs): the core then sees the waveform's envelope at full
resolution, which a compressor with millisecond attack and release follows within a
cycle (comp4c's fast corners), for the cost of a wider first 1x1 convolution only.

Depth (``depth=True``): the gain curve is scaled by a learned function of the knobs
alone, ``g = depth(knobs) · core(...)`` (a 16-unit MLP starting at 1). A knob that turns
the effect off (comp4c's ratio 1) can then be met by driving one number to zero rather
than by a core that cancels its own output at every frame (training decides which).

It cannot model waveshaping (overdrive, clipping): use "tcn" or "rnn" for that.

Streaming: the TCN core declares its receptive field as left context. The recurrent
cores cut each chunk into segments of ``segment`` samples, each started from a zero
state ``warmup`` samples earlier (the left context); ``warmup`` must exceed the effect's
memory. The output layer starts at zero, so an untrained model is the identity.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from fxnet.models.base import FxModel, Geometry

_EPS = 1e-5
Core = Literal["tcn", "lstm", "gru"]
Features = Literal["envelope", "samples"]


class _CausalBlock(nn.Module):
    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.dilation = dilation
        self.conv = nn.Conv1d(channels, channels, 3, dilation=dilation)
        self.act = nn.PReLU(channels)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(B, C, F) -> (B, C, F - 2 * dilation): valid convolution, no padding."""
        y = self.mix(self.act(self.conv(h)))
        return h[..., 2 * self.dilation :] + y


class Dynamics(FxModel):
    """Gain-curve model; ``forward(x (B,1,left+n), knobs (B,K)) -> (B,1,n)``.

    Hyper-parameters: ``hop`` (samples per frame, 16), ``channels`` (TCN width / RNN
    hidden size, 32), ``core`` ("tcn", "lstm", "gru"), ``layers`` (TCN depth, 10),
    ``warmup`` and ``segment`` (recurrent cores only, samples, multiples of ``hop``),
    ``chunk`` (preferred output samples per engine chunk), ``features`` ("envelope" or
    "samples") and ``depth`` (bool), see the module docstring.
    """

    arch = "dynamics"

    def __init__(self, *, sample_rate: int = 44100, knobs=(), hop: int = 16, channels: int = 32,
                 core: Core = "tcn", layers: int = 10, warmup: int = 16384, segment: int = 16384,
                 chunk: int = 1 << 18, features: Features = "envelope", depth: bool = False):
        if core != "tcn" and (warmup % hop or segment % hop or chunk % segment):
            raise ValueError("warmup and segment must be multiples of hop, chunk a multiple of segment")
        if chunk % hop:
            raise ValueError("chunk must be a multiple of hop")
        if features not in ("envelope", "samples"):
            raise ValueError(f"features must be 'envelope' or 'samples', not {features!r}")
        super().__init__(sample_rate=sample_rate, knobs=knobs, hop=hop, channels=channels, core=core,
                         layers=layers, warmup=warmup, segment=segment, chunk=chunk, features=features,
                         depth=bool(depth))
        k = len(self.knob_specs)
        self.inp = nn.Conv1d(2 + (hop if features == "samples" else 0) + k, channels, 1)
        if core == "tcn":
            self.blocks = nn.ModuleList(_CausalBlock(channels, 2**i) for i in range(layers))
        else:
            self.rnn = (nn.LSTM if core == "lstm" else nn.GRU)(channels, channels, batch_first=True)
        self.out = nn.Conv1d(channels, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        if depth:
            self.depth = nn.Sequential(nn.Linear(k, 16), nn.Tanh(), nn.Linear(16, 1))
            nn.init.zeros_(self.depth[2].weight)
            nn.init.ones_(self.depth[2].bias)

    def _scale(self, g: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
        """(B, F) frame gains -> scaled by the knobs' learned depth (when enabled)."""
        if not self.hparams["depth"]:
            return g
        return g * self.depth(knobs.to(g.dtype))

    @property
    def receptive_frames(self) -> int:
        """Frames of history the TCN core sees (1 for the recurrent cores' layer math)."""
        return 1 + sum(2 * 2**i for i in range(self.hparams["layers"])) if self.hparams["core"] == "tcn" else 1

    @property
    def geometry(self) -> Geometry:
        h = self.hparams
        if h["core"] == "tcn":
            # the receptive field, plus one frame for the interpolation's previous frame
            left = self.receptive_frames * h["hop"]
            return Geometry(sample_rate=self.sample_rate, left_context=left, chunk=h["chunk"], multiple=h["hop"])
        return Geometry(sample_rate=self.sample_rate, left_context=h["warmup"], chunk=h["chunk"],
                        multiple=h["segment"])

    def _features(self, x: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
        """(B, L) audio, (B, K) knobs -> (B, 2 [+ hop] + K, L / hop) frame features."""
        hop = self.hparams["hop"]
        b, length = x.shape
        frames = x.reshape(b, length // hop, hop)
        peak = 20.0 * torch.log10(frames.abs().amax(-1) + _EPS)
        rms = 10.0 * torch.log10(frames.square().mean(-1) + _EPS**2)
        feats = torch.stack([peak, rms], 1) / 40.0  # roughly [-2.5, 0]
        if self.hparams["features"] == "samples":
            level = (20.0 / 40.0) * torch.log10(frames.abs() + _EPS)  # (B, F, hop), same scale
            feats = torch.cat([feats, level.transpose(1, 2)], 1)
        if knobs.shape[-1]:
            feats = torch.cat([feats, knobs[:, :, None].expand(-1, -1, feats.shape[-1]).to(feats.dtype)], 1)
        return feats

    def _upsample(self, g: torch.Tensor) -> torch.Tensor:
        """(B, F) frame gains -> (B, (F - 1) * hop) sample gains for frames 1..F-1.

        Sample j of frame k gets g[k-1] + (g[k] - g[k-1]) * (j + 1) / hop.
        """
        hop = self.hparams["hop"]
        ramp = torch.arange(1, hop + 1, dtype=g.dtype, device=g.device) / hop
        prev, cur = g[:, :-1, None], g[:, 1:, None]
        return (prev + (cur - prev) * ramp).reshape(g.shape[0], -1)

    def forward(self, x: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
        h = self.hparams
        hop = h["hop"]
        if h["core"] != "tcn":
            return self._forward_recurrent(x, knobs)
        n = x.shape[-1] - self.geometry.left_context
        feats = self._features(x[:, 0, :], knobs)
        z = torch.tanh(self.inp(feats))
        for block in self.blocks:
            z = block(z)
        g = self._scale(20.0 * self.out(z)[:, 0, :], knobs)  # (B, n / hop + 1): the frame before the output, then one per frame
        gain = self._upsample(g)
        return (x[:, 0, -n:] * torch.pow(10.0, gain / 20.0))[:, None, :]

    def _forward_recurrent(self, x: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
        h = self.hparams
        warm, seg = h["warmup"], h["segment"]
        b = x.shape[0]
        m = (x.shape[-1] - warm) // seg
        windows = x[:, 0, :].unfold(-1, warm + seg, seg).reshape(b * m, warm + seg)
        k = knobs.repeat_interleave(m, dim=0)
        z = torch.tanh(self.inp(self._features(windows, k)))
        z, _ = self.rnn(z.transpose(1, 2))
        g = self._scale(20.0 * self.out(z.transpose(1, 2))[:, 0, :], k)
        frames_out = seg // h["hop"]
        gain = self._upsample(g[:, -(frames_out + 1) :])
        y = windows[:, warm:] * torch.pow(10.0, gain / 20.0)
        return y.reshape(b, 1, m * seg)

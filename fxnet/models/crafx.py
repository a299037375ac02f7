"""CRAFx, the convolutional-recurrent remover of paper 001 (Imort et al. 2022).

After CRAFx (Martínez Ramírez, Benetos, Reiss 2019/2020), written from the published
description (../shared/reference/models.md), not from its code. Shapes for a mono chunk
of L samples, F = ``filters`` (32), P = ``pool`` (64):

    adaptive front end:
        X1 = Conv1d(1 -> F, kernel 64, no bias)(x)           (N, F, L)   the filterbank
        M  = softplus(depthwise Conv1d(F, kernel 128)(|X1|))  (N, F, L)   smoothed envelopes
        Z  = MaxPool1d(P)(M)                                  (N, F, L/P)
    latent space: BLSTM(F -> 128 per direction) -> BLSTM(64) -> BLSTM(16) -> SAAF
        (the last BLSTM has 2 x 16 = F outputs)               (N, F, L/P)
    unpool: repeat every frame P times                       (N, F, L)
    multiplicative skip: H = X1 * unpooled
    dense back end, per sample, no biases (the paper's 32-16-16-32 widths):
        Linear(F -> 32) -> tanh -> Linear(32 -> 16) -> tanh -> Linear(16 -> 16) -> tanh
        -> Linear(16 -> F) -> SAAF
    synthesis: transposed convolution F -> 1 with the front end's filters (tied weights)

About 0.36 M parameters with the defaults (``lstm`` = (128, 64, 16)); the paper's
CRAFx had BLSTMs of 64, 32 and 16 units, widened here towards the ~1 M parameters
paper 001 gave every model. The full-rate layers (filterbank, smoothing, back end,
synthesis) stay at the paper's widths: they, not the BLSTMs, cost the time per sample
(forward and backward over 16 x (8192 + 2 x 2048) samples: about 1.2 s on one CPU thread).
Default ``context`` 2048 samples = 32 pooled frames each side.

SAAF (smooth adaptive activation function, Hou et al. 2017): here a per-channel
``f(x) = a x + sum_j c_j B((x - x_j) / h)``, with ``B`` the quadratic B-spline on a
uniform grid of ``saaf_knots`` (16) knots over [-``saaf_span``, ``saaf_span``] (2):
piecewise quadratic and C1-smooth, linear outside the grid, minus its value at 0 so
that f(0) = 0. ``a`` starts at 1 and the ``c_j`` at 0, so every SAAF starts as the
identity. Only the three spline pieces that touch ``x`` are evaluated, so the cost does
not grow with the number of knots. One SAAF follows the last BLSTM (frame rate), one
ends the back end (sample rate); the BLSTMs themselves keep their tanh.

Changes from the paper, for a streaming remover over whole chunks:

- The paper's CRAFx processes frames of 4096 samples (plus neighbouring frames) with
  "valid" convolutions; here the front end and the synthesis are "same"-padded
  convolutions over the whole chunk, and the BLSTMs run over the chunk's pooled frames.
  ``context`` and ``chunk`` are multiples of ``pool`` (the chunk ``multiple``), so pooling
  windows lie on one global grid; the model declares ``context`` samples either side and
  the engine crossfades chunks over ``overlap``.
- No squeeze-and-excitation block in the back end: its global average over time would
  make a sample's output depend on where its chunk starts and ends.
- ``residual`` (default, like the other fxnet removers): ``y = x + CRAFx(x)`` with the back
  end's last Linear starting at zero, so an untrained model is the identity and training
  learns the correction. ``residual=False`` is the paper's plain output.
- The signal path is zero-preserving (silence in, no correction out): the filterbank,
  the back-end Linears and the synthesis have no biases, the back end's hidden
  activations are tanh (not softplus: softplus(0) = 0.69), and SAAF(0) = 0. With biases
  and softplus, the first Adam steps on the zero-initialised last Linear moved mostly a
  per-channel constant, which the synthesis filters turned into a DC offset: after one
  step at ``fxnet profile``'s defaults the validation ESR went from ~0 to 160 on quiet
  material. (The latent path keeps its biases: it only scales the filterbank output.)
- ``tied`` (default, as in the paper): the synthesis uses the front-end filters
  transposed; ``tied=False`` gives it its own weights.
- Stereo input is run as a batch of mono signals (``geometry.channels`` is 1).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fxnet.models.base import ContextModel
from fxnet.models.demucs import _one_thread


def _depthwise(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """``conv(x)`` for a depthwise (groups = channels) Conv1d, computed as a Conv2d over
    (N, C, L, 1): the same numbers, but its backward pass is about 2.3x faster on CPU
    (torch 2.x's grouped Conv1d backward takes a slow path)."""
    w = conv.weight[..., None]
    return F.conv2d(x[..., None], w, conv.bias, groups=conv.groups)[..., 0]


class SAAF(nn.Module):
    """Per-channel smooth adaptive activation on (N, C, ...) inputs (channels on dim 1)."""

    def __init__(self, channels: int, knots: int = 16, span: float = 2.0):
        super().__init__()
        if knots < 1 or span <= 0:
            raise ValueError("SAAF needs at least one knot and a positive span")
        self.knots = knots
        self.low = -float(span)
        self.step = 2.0 * span / max(knots - 1, 1)
        self.slope = nn.Parameter(torch.ones(channels))
        self.coef = nn.Parameter(torch.zeros(channels, knots))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, k = self.coef.shape
        view = (1, c) + (1,) * (x.ndim - 2)
        # spline j covers u in [j, j + 3) and peaks at knot j (u = j + 1.5); beyond the
        # outermost supports every spline is 0, so clamping u there changes nothing
        u = ((x - self.low) / self.step + 1.5).clamp(0.0, k + 2 - 1e-4)
        i = u.detach().floor()
        f = u - i
        i = i.long()
        padded = F.pad(self.coef, (2, 2)).reshape(-1)  # index j + 2, zero outside 0..k-1
        base = (torch.arange(c, device=x.device) * (k + 4)).view(view)
        w0 = 0.5 * f * f  # spline j = i (t = f)
        w1 = 0.5 + f - f * f  # spline j = i - 1 (t = f + 1)
        w2 = 0.5 * (1.0 - f) ** 2  # spline j = i - 2 (t = f + 2)
        spline = w0 * padded[base + i + 2] + w1 * padded[base + i + 1] + w2 * padded[base + i]
        return self.slope.view(view) * x + spline - self._at_zero().view(view)

    def _at_zero(self) -> torch.Tensor:
        """The spline part at x = 0 per channel (subtracted, so SAAF(0) = 0)."""
        k = self.knots
        u = -self.low / self.step + 1.5
        j = torch.arange(k, device=self.coef.device, dtype=self.coef.dtype)
        t = u - j
        b = torch.where(t < 1, 0.5 * t * t, torch.where(t < 2, 0.5 + (t - 1) - (t - 1) ** 2, 0.5 * (3 - t) ** 2))
        b = torch.where((t >= 0) & (t < 3), b, torch.zeros_like(b))
        return self.coef @ b


class CRAFx(ContextModel):
    """``forward(x (B,C,context+n+context), knobs (B,0)) -> (B,C,n)``.

    Hyper-parameters: ``filters`` (32), ``kernel`` (front-end filter length, 64),
    ``smooth`` (depthwise smoothing length, 128), ``pool`` (64, the chunk multiple),
    ``lstm`` (units per direction of each BLSTM, (128, 64, 16)), ``dense`` (back-end
    hidden widths, (32, 16, 16)), ``saaf_knots`` (16), ``saaf_span`` (2.0), ``tied`` (True),
    ``residual`` (True), ``context`` (samples each side, a multiple of ``pool``),
    ``chunk``, ``overlap``.
    """

    arch = "crafx"

    def __init__(self, *, sample_rate: int = 44100, knobs=(), filters: int = 32, kernel: int = 64,
                 smooth: int = 128, pool: int = 64, lstm: Sequence[int] = (128, 64, 16),
                 dense: Sequence[int] = (32, 16, 16), saaf_knots: int = 16, saaf_span: float = 2.0,
                 tied: bool = True, residual: bool = True, context: int = 2048, chunk: int = 1 << 17,
                 overlap: int = 1024):
        lstm, dense = [int(v) for v in lstm], [int(v) for v in dense]
        if min([filters, kernel, smooth, pool, *lstm, *dense, 1]) < 1 or not lstm:
            raise ValueError("filters, kernel, smooth, pool, lstm and dense sizes must be positive")
        if context % pool or chunk % pool or chunk <= 0:
            raise ValueError(f"context and chunk must be multiples of pool = {pool}")
        super().__init__(sample_rate=sample_rate, knobs=knobs, filters=filters, kernel=kernel, smooth=smooth,
                         pool=pool, lstm=lstm, dense=dense, saaf_knots=saaf_knots, saaf_span=saaf_span,
                         tied=tied, residual=residual, context=context, chunk=chunk, overlap=overlap)
        self.conv = nn.Conv1d(1, filters, kernel, bias=False)
        self.smooth = nn.Conv1d(filters, filters, smooth, groups=filters)
        self.lstms = nn.ModuleList()
        width = filters
        for units in lstm:
            self.lstms.append(nn.LSTM(width, units, bidirectional=True, batch_first=True))
            width = 2 * units
        self.latent_proj = nn.Linear(width, filters) if width != filters else None
        self.latent_saaf = SAAF(filters, saaf_knots, saaf_span)
        widths = [filters, *dense, filters]
        self.dense = nn.ModuleList(nn.Conv1d(a, b, 1, bias=False) for a, b in zip(widths[:-1], widths[1:]))
        self.out_saaf = SAAF(filters, saaf_knots, saaf_span)
        self.deconv = None if tied else nn.Parameter(self.conv.weight.detach().clone())
        if residual:
            nn.init.zeros_(self.dense[-1].weight)
        self._multiple = pool

    @staticmethod
    def _same(k: int) -> tuple[int, int]:
        return (k - 1) // 2, k // 2

    def net(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, L), L a multiple of pool -> (N, 1, L)."""
        h = self.hparams
        length = x.shape[-1]
        x1 = self.conv(F.pad(x, self._same(h["kernel"])))
        m = F.softplus(_depthwise(F.pad(x1.abs(), self._same(h["smooth"])), self.smooth))
        z = F.max_pool1d(m, h["pool"]).transpose(1, 2)  # (N, frames, F)
        with _one_thread():
            for lstm in self.lstms:
                z, _ = lstm(z)
        if self.latent_proj is not None:
            z = self.latent_proj(z)
        z = self.latent_saaf(z.transpose(1, 2))  # (N, F, frames)
        n, f, frames = z.shape
        y = (x1.view(n, f, frames, -1) * z[..., None]).view(n, f, length)  # unpool: repeat each frame
        for i, layer in enumerate(self.dense):
            y = layer(y)
            y = torch.tanh(y) if i < len(self.dense) - 1 else self.out_saaf(y)
        weight = self.conv.weight if self.deconv is None else self.deconv
        left = self._same(h["kernel"])[0]
        return F.conv_transpose1d(y, weight)[..., left : left + length]  # adjoint of the "same" conv

    def forward(self, x: torch.Tensor, knobs: torch.Tensor | None = None) -> torch.Tensor:
        b, c, length = x.shape
        h = x.reshape(b * c, 1, length)
        y = self.padded(self.net, h, length)
        if self.hparams["residual"]:
            y = y + h
        return self.crop(y).reshape(b, c, -1)

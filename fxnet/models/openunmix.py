"""Open-Unmix, the spectral-mask remover of paper 001 (Imort et al. 2022), and its IRM oracle.

After Open-Unmix (Stöter, Uhlich, Liutkus, Mitsufuji 2019), written from the published
description (../shared/reference/models.md), not from its code, and shrunk to about a
million parameters as paper 001 shrank every model it compared:

    X = STFT(x)  (n_fft 1024, hop 256, periodic Hann; |X| is (frames, 513 bins))
    h = tanh(BN(Linear(bins -> hidden, no bias)((|X| + in_shift) * in_scale)))
    r = 3-layer BLSTM(h), hidden / 2 units per direction
    m = ReLU(BN(Linear(hidden -> bins)(ReLU(BN(Linear(2 hidden -> hidden)([h, r]))))))
    y = iSTFT(m * X)      # the mask scales the magnitude; the phase is the input's

``hidden`` is 200 instead of 512 (about 1.0 M parameters for a mono model instead of
about 5.8 M), and all 513 bins are used (Open-Unmix crops the input to a bandwidth).
The per-bin input shift and scale are learned and start at 0 and 1 (Open-Unmix starts
them at the training set's statistics); the model has no output affine beyond the last
BatchNorm's. ``dropout`` (between BLSTM layers; Open-Unmix uses 0.4) defaults to 0.

Changes for a streaming remover (the Geometry contract of :mod:`fxnet.models.base`):

- The STFT is uncentred (``center=False``): frame ``j`` covers chunk samples
  ``[j hop, j hop + n_fft)``. ``context`` and ``chunk`` are multiples of ``hop`` (the
  chunk ``multiple``), so every chunk's frames lie on one global grid and a chunk computes
  the same frames as the whole file would, except where its BLSTM context differs.
  The inverse is a windowed overlap-add divided by the summed squared window, which is
  exact wherever ``n_fft / hop`` frames overlap, i.e. everywhere but the first and last
  ``n_fft - hop`` samples of the chunk: ``context`` must be at least that.
- The BLSTM sees the whole chunk, so the model declares ``context`` samples either side
  and the engine crossfades chunks over ``overlap``; BatchNorm uses running statistics in
  eval mode, so a frame's output does not depend on its chunk's other contents.
- Initialisation: the last BatchNorm starts with weight 0 and bias 1, so the mask starts
  at exactly 1 and an untrained model is the identity (up to float rounding of the
  STFT round trip), like the residual time-domain removers; training moves the mask
  away from 1 (the zero weight gets a gradient on the first step, the rest follows).
- Stereo input is run as a batch of mono signals (``geometry.channels`` is 1).

:func:`ideal_ratio_mask` is Open-Unmix's oracle upper bound in the paper: the mask
``|T| / (|X| + eps)`` of the true target ``T`` over the input ``X``, applied to ``X``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fxnet.models.base import ContextModel
from fxnet.models.demucs import _one_thread


def _window(n_fft: int, device=None, dtype=torch.float32) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True, device=device, dtype=dtype)


def stft(x: torch.Tensor, window: torch.Tensor, hop: int) -> torch.Tensor:
    """(N, L) -> complex (N, n_fft // 2 + 1, (L - n_fft) // hop + 1), uncentred frames."""
    n_fft = window.shape[0]
    return torch.stft(x, n_fft, hop, window=window, center=False, return_complex=True)


def istft(spec: torch.Tensor, window: torch.Tensor, hop: int, length: int) -> torch.Tensor:
    """Inverse of :func:`stft` by weighted overlap-add: complex (N, bins, T) -> (N, length).

    Samples no frame covers come out 0; samples near the ends, covered by fewer than
    ``n_fft / hop`` frames, are divided by a small window sum and are only approximate.
    """
    n_fft = window.shape[0]
    frames = torch.fft.irfft(spec, n=n_fft, dim=1) * window[:, None]  # (N, n_fft, T)
    count = frames.shape[-1]
    total = (count - 1) * hop + n_fft
    kw = dict(output_size=(1, total), kernel_size=(1, n_fft), stride=(1, hop))
    y = F.fold(frames, **kw)[:, 0, 0]
    env = F.fold((window**2)[None, :, None].expand(1, n_fft, count), **kw)[0, 0, 0]
    y = torch.where(env > 1e-6, y / env.clamp_min(1e-6), torch.zeros_like(y))
    if total < length:
        y = F.pad(y, (0, length - total))
    return y[:, :length]


class OpenUnmix(ContextModel):
    """Spectral-mask remover; ``forward(x (B,C,context+n+context), knobs (B,0)) -> (B,C,n)``.

    Hyper-parameters: ``n_fft`` (1024), ``hop`` (256, the chunk multiple), ``hidden``
    (200), ``lstm_layers`` (3), ``dropout`` (0), ``context`` (samples each side, a
    multiple of ``hop`` and at least ``n_fft - hop``), ``chunk``, ``overlap``.
    """

    arch = "openunmix"

    def __init__(self, *, sample_rate: int = 44100, knobs=(), n_fft: int = 1024, hop: int = 256,
                 hidden: int = 200, lstm_layers: int = 3, dropout: float = 0.0, context: int = 8192,
                 chunk: int = 1 << 17, overlap: int = 1024):
        if n_fft % 2 or n_fft < 4 or not 1 <= hop <= n_fft // 2:
            raise ValueError(f"need an even n_fft >= 4 and 1 <= hop <= n_fft / 2, got {n_fft}, {hop}")
        if hidden < 2 or hidden % 2 or lstm_layers < 1:
            raise ValueError("hidden must be even and positive, lstm_layers positive")
        if context % hop or chunk % hop or chunk <= 0:
            raise ValueError(f"context and chunk must be multiples of hop = {hop}")
        if context < n_fft - hop:
            raise ValueError(f"context must be at least n_fft - hop = {n_fft - hop} (overlap-add edges)")
        super().__init__(sample_rate=sample_rate, knobs=knobs, n_fft=n_fft, hop=hop, hidden=hidden,
                         lstm_layers=lstm_layers, dropout=dropout, context=context, chunk=chunk, overlap=overlap)
        bins = n_fft // 2 + 1
        self.register_buffer("window", _window(n_fft), persistent=False)
        self.in_shift = nn.Parameter(torch.zeros(bins))
        self.in_scale = nn.Parameter(torch.ones(bins))
        self.fc1 = nn.Linear(bins, hidden, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden)
        self.lstm = nn.LSTM(hidden, hidden // 2, num_layers=lstm_layers, bidirectional=True, batch_first=True,
                            dropout=dropout if lstm_layers > 1 else 0.0)
        self.fc2 = nn.Linear(2 * hidden, hidden, bias=False)
        self.bn2 = nn.BatchNorm1d(hidden)
        self.fc3 = nn.Linear(hidden, bins, bias=False)
        self.bn3 = nn.BatchNorm1d(bins)
        nn.init.zeros_(self.bn3.weight)  # mask = ReLU(0 * . + 1) = 1: start at the identity
        nn.init.ones_(self.bn3.bias)
        self._multiple = hop

    @staticmethod
    def _bn(bn: nn.BatchNorm1d, h: torch.Tensor) -> torch.Tensor:
        """BatchNorm over (N, T, features), statistics over all N * T frames."""
        n, t, f = h.shape
        return bn(h.reshape(n * t, f)).reshape(n, t, f)

    def mask(self, mag: torch.Tensor) -> torch.Tensor:
        """|X| (N, bins, T) -> mask (N, bins, T), >= 0."""
        h = (mag.transpose(1, 2) + self.in_shift) * self.in_scale
        h = torch.tanh(self._bn(self.bn1, self.fc1(h)))
        with _one_thread():
            r, _ = self.lstm(h)
        h = F.relu(self._bn(self.bn2, self.fc2(torch.cat([h, r], dim=-1))))
        m = F.relu(self._bn(self.bn3, self.fc3(h)))
        return m.transpose(1, 2)

    def net(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, L), L a multiple of hop and >= n_fft -> (N, 1, L)."""
        hop = self.hparams["hop"]
        window = self.window.to(x.dtype)
        spec = stft(x[:, 0], window, hop)
        y = istft(spec * self.mask(spec.abs()), window, hop, x.shape[-1])
        return y[:, None]

    def forward(self, x: torch.Tensor, knobs: torch.Tensor | None = None) -> torch.Tensor:
        b, c, length = x.shape
        y = self.padded(self.net, x.reshape(b * c, 1, length), length)
        return self.crop(y).reshape(b, c, -1)


def ideal_ratio_mask(target: Any, mixture: Any, n_fft: int = 1024, hop: int = 256, *, clip: bool = False,
                     eps: float = 1e-8) -> Any:
    """The ideal ratio mask (IRM) estimate of ``target`` from ``mixture``: an oracle.

    ``estimate = iSTFT(M * X)`` with ``X = STFT(mixture)``, ``T = STFT(target)`` and
    ``M = |T| / (|X| + eps)`` per bin and frame: the target's magnitude with the
    mixture's phase, the best any magnitude mask with the input's phase can do (paper
    001's upper bound for Open-Unmix). ``clip=True`` bounds the mask to [0, 1] (the
    variant for additive mixtures, where a source is never louder than the mix).
    STFT as in :class:`OpenUnmix` (periodic Hann, uncentred frames); the signals are
    zero-padded by ``n_fft`` on both sides so every sample is fully covered.

    ``target`` and ``mixture``: numpy arrays or torch tensors of the same shape, 1-D
    ``(frames,)`` or 2-D ``(channels, frames)``. Returns the estimate with the mixture's
    shape, length and type (numpy in, numpy out with the mixture's float dtype).
    """
    is_numpy = not isinstance(mixture, torch.Tensor)
    x = torch.as_tensor(np.asarray(mixture) if is_numpy else mixture)
    t = torch.as_tensor(np.asarray(target) if not isinstance(target, torch.Tensor) else target)
    if x.shape != t.shape or x.ndim not in (1, 2):
        raise ValueError(f"target and mixture must have the same 1-D or 2-D shape, got {tuple(t.shape)}, "
                         f"{tuple(x.shape)}")
    out_dtype = x.dtype if x.is_floating_point() else torch.float32
    work = torch.float64 if out_dtype == torch.float64 else torch.float32
    shape = x.shape
    x = x.reshape(-1, shape[-1]).to(work)
    t = t.reshape(-1, shape[-1]).to(device=x.device, dtype=work)
    length = shape[-1]
    pad = (n_fft, n_fft + (-(length + 2 * n_fft)) % hop)
    window = _window(n_fft, device=x.device, dtype=work)
    xs = stft(F.pad(x, pad), window, hop)
    ts = stft(F.pad(t, pad), window, hop)
    m = ts.abs() / (xs.abs() + eps)
    if clip:
        m = m.clamp(0.0, 1.0)
    y = istft(m * xs, window, hop, length + sum(pad))[:, n_fft : n_fft + length]
    y = y.reshape(shape).to(out_dtype)
    return y.numpy() if is_numpy else y

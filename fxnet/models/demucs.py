"""A Demucs-style waveform U-Net for removing distortion (Imort et al. 2022, paper 001).

After Demucs v2 (Défossez et al. 2019), shrunk to about a million parameters as in the
paper, written from the published description (../shared/reference/models.md):

    encoder level i (depth levels, width H_i = channels * growth^i):
        Conv1d(H_{i-1}, H_i, kernel 8, stride 4) -> ReLU -> Conv1d(H_i, 2 H_i, 1) -> GLU
    bottleneck: bidirectional LSTM (``lstm_layers``) over the coarsest frames + Linear
    decoder level i (mirror): + skip_i -> Conv1d(H_i, 2 H_i, 3) -> GLU
        -> ConvTranspose1d(H_i, H_{i-1}, 8, stride 4) -> ReLU (none on the last level)

Differences from Demucs v2, chosen for a streaming remover:
- Padding 2 on every strided (transposed) convolution, so a length that is a multiple
  of ``4**depth`` maps exactly to ``length / 4**i`` at level ``i`` and back: no
  "valid length" trimming, and the engine's chunk ``multiple`` is ``4**depth``.
- No input normalisation by the chunk's standard deviation (it would make a chunk's
  output depend on where the chunk starts); training material spans -40..0 dBFS.
- ``clip_mask`` (the ``declip`` model): the samples on the window's clip plateau are
  found first (:func:`clipped_mask`) and given to the network as a second input channel
  (+1 clipped high, -1 low); only those samples change, and at inference the change is
  projected onto the clipping-consistent set (clipped-high samples can only go up),
  the constraint A-SPADE enforces. Reliable samples pass through exactly.
  With ``max_clip_level`` > 0 a window whose peak (the plateau, where there is one) is
  above that level is first scaled down to it, and the correction scaled back: the
  network is not level-invariant, and a real clipped master has its plateau near
  0 dBFS, above nearly all of the training material's. Measured with the bundled
  declip on the 17 held-out clips clipped and normalised to -0.1 dBFS, median ΔSI-SDR
  at 1 / 7 / 20 dB input SDR: without it +0.15 / +0.42 / +1.17 dB; capped at 0.5
  +0.73 / +3.20 / +4.24; at 0.1 (shipped) +2.77 / +3.35 / +3.67. One fixed level for
  every window (0.25, scaling up as well as down) cost 1.7 dB at 1 dB input SDR on
  the unnormalised clips, whose plateaus sit low.
- Otherwise a global residual: ``y = x + U(x)``. Distortion removal is a small correction of
  mostly-clean audio (at 20 dB input SDR 99 % of the energy is right already), and the
  decoder's last layer starts at zero, so an untrained model is the identity and
  training only has to learn the correction.

The BLSTM sees the whole chunk, so the model is not causal: it declares ``context``
samples of left and right context, and the engine crossfades chunks over ``overlap``.
Weights are rescaled at init as Demucs does (each conv's std brought towards 0.1).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from fxnet.models.base import ContextModel

_KERNEL = 8
_STRIDE = 4


def _rescale(module: nn.Module, reference: float = 0.1) -> None:
    """Demucs' init rescaling: divide each conv's weights by sqrt(std / reference)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
            std = m.weight.detach().std()
            scale = (std / reference) ** 0.5
            m.weight.data /= scale
            if m.bias is not None:
                m.bias.data /= scale


@contextmanager
def _one_thread():
    """Run the bottleneck LSTM on one intra-op thread.

    It is a few hundred small sequential steps; with several threads each step ends at an
    OpenMP barrier, and on a loaded machine (measured: load 10 on 2 cores) every barrier
    waits for a scheduler slice: 15 s instead of 0.19 s for one 3-chunk batch.
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class Demucs(ContextModel):
    """Waveform U-Net remover; ``forward(x (B,1,context+n+context), knobs (B,0)) -> (B,1,n)``.

    Hyper-parameters: ``channels`` (width of the first level, 8), ``growth`` (width
    factor per level, 2), ``depth`` (levels, 5), ``lstm_layers`` (2), ``context``
    (samples each side, a multiple of ``4**depth``), ``chunk`` (preferred output samples
    per engine chunk), ``overlap`` (engine crossfade, samples), ``residual`` (y = x + U(x)).
    """

    arch = "demucs"

    def __init__(self, *, sample_rate: int = 44100, knobs=(), channels: int = 8, growth: int = 2, depth: int = 5,
                 lstm_layers: int = 2, context: int = 8192, chunk: int = 1 << 18, overlap: int = 1024,
                 residual: bool = True, clip_mask: bool = False, max_clip_level: float = 0.0):
        multiple = _STRIDE**depth
        if depth < 1 or channels < 1 or growth < 1:
            raise ValueError("depth, channels and growth must be positive")
        if context % multiple or chunk % multiple or chunk <= 0:
            raise ValueError(f"context and chunk must be multiples of 4**depth = {multiple}")
        super().__init__(sample_rate=sample_rate, knobs=knobs, channels=channels, growth=growth, depth=depth,
                         lstm_layers=lstm_layers, context=context, chunk=chunk, overlap=overlap, residual=residual,
                         clip_mask=clip_mask, max_clip_level=float(max_clip_level))
        widths = [2 if clip_mask else 1] + [channels * growth**i for i in range(depth)]
        self.encoder = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for i in range(depth):
            c_in, c_out = widths[i], widths[i + 1]
            self.encoder.append(nn.Sequential(
                nn.Conv1d(c_in, c_out, _KERNEL, _STRIDE, padding=(_KERNEL - _STRIDE) // 2), nn.ReLU(),
                nn.Conv1d(c_out, 2 * c_out, 1), nn.GLU(dim=1)))
            layers: list[nn.Module] = [
                nn.Conv1d(c_out, 2 * c_out, 3, padding=1), nn.GLU(dim=1),
                nn.ConvTranspose1d(c_out, 1 if i == 0 else c_in, _KERNEL, _STRIDE, padding=(_KERNEL - _STRIDE) // 2)]
            if i > 0:
                layers.append(nn.ReLU())
            self.decoder.insert(0, nn.Sequential(*layers))
        width = widths[-1]
        self.lstm = nn.LSTM(width, width, num_layers=lstm_layers, bidirectional=True, batch_first=True) \
            if lstm_layers > 0 else None
        self.lstm_out = nn.Linear(2 * width, width) if lstm_layers > 0 else None
        _rescale(self)
        last = self.decoder[-1][-1]  # the final ConvTranspose1d: start at zero (identity model)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self._multiple = multiple

    @property
    def any_rate(self) -> bool:
        """A clip-mask model runs at the file's rate: resampling a clipped signal smears its
        plateaus (the mask would find nothing, and nothing would change). Measured with the
        bundled declip (trained at 44.1 kHz) on guitar clipped to 3 / 10 dB input SDR:
        +2.0 / +2.6 dB SI-SDR at 16 kHz, +2.9 / +2.5 at 44.1 kHz, +3.0 / +2.8 at 96 kHz."""
        return bool(self.hparams.get("clip_mask"))

    def unet(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, L) with L a multiple of 4**depth -> the correction (B, 1, L)."""
        skips = []
        h = x
        for enc in self.encoder:
            h = enc(h)
            skips.append(h)
        if self.lstm is not None:
            with _one_thread():
                seq, _ = self.lstm(h.transpose(1, 2))
            h = self.lstm_out(seq).transpose(1, 2)
        for dec in self.decoder:
            h = dec(h + skips.pop())
        return h

    def forward(self, x: torch.Tensor, knobs: torch.Tensor | None = None) -> torch.Tensor:
        length = x.shape[-1]
        if self.hparams["clip_mask"]:
            signed = clipped_mask(x) * torch.sign(x)  # +1 clipped high, -1 clipped low, 0 reliable
            level = self.hparams["max_clip_level"]
            if level > 0.0:  # a window whose peak (the plateau) is above the level: down to it, and back
                peak = x.abs().amax(dim=-1, keepdim=True)
                scale = torch.where(peak > level, level / peak.clamp_min(1e-30), torch.ones_like(peak))
                y = self.padded(self.unet, torch.cat([x * scale, signed], dim=1), length) / scale
            else:
                y = self.padded(self.unet, torch.cat([x, signed], dim=1), length)
            if not self.training:  # project onto the clipping-consistent set, as A-SPADE does
                y = signed * torch.relu(y * signed)
            y = x + y * signed.abs()  # only clipped samples change
        else:
            y = self.padded(self.unet, x, length)
            if self.hparams["residual"]:
                y = y + x
        return self.crop(y)


#: ``clip_mask``: samples within this fraction of the window's peak are on the plateau ...
PLATEAU_TOLERANCE = 1e-4
#: ... and a plateau needs this many samples (a lone natural peak is not clipping).
MIN_PLATEAU = 8


def clipped_mask(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, L) -> float mask of the samples at the window's peak level |x| (hard clipping).

    Judged per row over the whole window the model sees (context included), so the
    engine's chunks agree wherever they share a clip level; rows with fewer than
    ``MIN_PLATEAU`` such samples have none (``fxnet.restore.detect`` applies a stricter,
    whole-file test for reporting).
    """
    a = x.abs()
    peak = a.amax(dim=-1, keepdim=True)
    at = (a >= peak * (1.0 - PLATEAU_TOLERANCE)) & (peak > 0)
    enough = at.sum(dim=-1, keepdim=True) >= MIN_PLATEAU
    return (at & enough).to(x.dtype)

"""SignalTrain: a knob-conditioned spectral autoencoder that profiles an audio effect.

After S. H. Hawley, B. Colburn, S. I. Mimilakis, "SignalTrain: Profiling Audio
Compressors with Deep Neural Networks" (AES 147, 2019) and W. Mitchell, S. H. Hawley,
"Exploring Quality and Generalizability in Parameterized Neural Audio Effects" (2020).
Written from the description in ``shared/reference/models.md``, not from the GPL code.

One *window* of ``window`` input samples (default 8192) predicts its last ``output``
samples (default 2048); everything before them (6144) is look-back. ``forward`` takes
``k`` windows at once: an input of ``6144 + k * 2048`` samples is unfolded into ``k``
windows of 8192 with hop 2048, run as one batch, and the ``k`` outputs are concatenated.

Per window (shapes for the defaults, W = windows, K = knobs, F = 513 bins)::

    x (W, 1, 8192) --zero-pad 1024 both sides--> (W, 1, 10240)
      --analysis Conv1d(1 -> 2F, kernel 1024, stride 384; DFT x Hamming)--> re, im (W, F, 25)
    |X|, angle(X) (W, F, 25)        # each frequency bin is a row: 25 frames along time
      --per-bin MLP 25->64->32->16->16, ++knobs, (16+K)->16, 16->16->32->64->9 (ELU)-->
    mag' = ELU(dec_mag) * |X|[..., -9:];  phase' = dec_phase + angle(X)[..., -9:]
      --synthesis ConvTranspose1d(1024 -> 1, 1024, stride 384; inverse DFT x LS window)-->
    (W, 1, 4096) --crop [1024:3072]--> (W, 1, 2048) --+ x[..., -2048:] (final skip)--> y

Frame arithmetic (checked in ``_frames``): 8192 samples unpadded give only
``(8192 - 1024) // 384 + 1 = 19`` frames; padding ``n_fft = 1024`` zeros on both sides
gives ``(8192 + 1024) // 384 + 1 = 25`` frames whose grid ends exactly at the padded end
(9216 = 24 * 384). The last 9 frames (16..24) start at padded sample 16 * 384 = 6144 and
their overlap-add spans 8 * 384 + 1024 = 4096 samples; the output region (padded samples
7168..9216) is that span's [1024, 3072) and is covered by frames 17..23 in full, so the
synthesis is exact there. Frames 16 and 24 only touch the region's edges, and frames 0
and 24 read padding only: those inputs/outputs of the autoencoders are inert (kept so the
layer sizes are the paper's 25 -> ... -> 9).

Parameter layouts (``dft_layout``), identical outputs at initialisation:

* ``"compact"`` (default, ~2.12 M parameters): the analysis conv computes only the 513
  kept bins (real and imaginary, 1026 channels) and the synthesis is one
  ``ConvTranspose1d(1024 -> 1)`` over [Re 0..512, Im 1..511], a real inverse DFT.
* ``"reference"`` (~4.21 M, the paper's count): the analysis computes all 1024 bins of
  which 511 are discarded (those weights never receive a gradient), and the synthesis runs
  on the Hermitian-extended spectrum (real and imaginary parts, 2048 input channels),
  which parameterises the same family of linear maps twice over. Choose it to reproduce
  the paper's parameter count or its optimiser dynamics; it is ~1.5x slower.

Ablations of paper 000 (Table I): ``freeze_dft=True`` freezes the Fourier layers,
``final_skip=False`` removes ``+ x[..., -2048:]``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from fxnet.models.base import FxModel, Geometry

DftLayout = Literal["compact", "reference"]

_ENCODER = (64, 32, 16, 16)  #: per-bin encoder widths after the input frames
_DECODER = (16, 32, 64)  #: per-bin decoder widths before the output frames
_BOTTLENECK = 16


def _frames(window: int, output: int, n_fft: int, hop: int, out_frames: int) -> tuple[int, int, int]:
    """(frames in, first output frame, crop offset into the synthesis) for these sizes.

    The window is zero-padded by ``n_fft`` on both sides, so frame ``j`` covers padded
    samples ``[j*hop, j*hop + n_fft)`` and the output region is
    ``[window - output + n_fft, window + n_fft)``. The last ``out_frames`` frames must
    include every frame that overlaps the region (then the least-squares window sums to
    one all over it); raises ValueError otherwise.
    """
    if n_fft % 2 or n_fft < 4 or not 1 <= hop <= n_fft:
        raise ValueError(f"need an even n_fft >= 4 and 1 <= hop <= n_fft, got n_fft={n_fft}, hop={hop}")
    if not 0 < output <= window:
        raise ValueError(f"output ({output}) must be in (0, window={window}]")
    frames_in = (window + n_fft) // hop + 1
    first = frames_in - out_frames
    region_start = window - output + n_fft
    if not 0 <= first < frames_in or (first > 0 and (first - 1) * hop + n_fft > region_start):
        needed = frames_in - (region_start - n_fft) // hop - 1
        raise ValueError(
            f"out_frames={out_frames}: the last {output} samples of a {window}-sample window "
            f"need the last {needed} of its {frames_in} frames"
        )
    return frames_in, first, region_start - first * hop


def _least_squares_window(window: torch.Tensor, hop: int) -> torch.Tensor:
    """Griffin-Lim synthesis window: w[n] / sum_m w[n + m*hop]^2 (steady state)."""
    n = window.numel()
    denom = torch.zeros(hop, dtype=window.dtype)
    sq = window**2
    for start in range(0, n, hop):
        seg = sq[start : start + hop]
        denom[: seg.numel()] += seg
    return window / denom.repeat(math.ceil(n / hop))[:n]


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ELU())
    return nn.Sequential(*layers)


class _BinAutoencoder(nn.Module):
    """Per-frequency-bin MLP along time: (W, F, frames_in) + knobs -> (W, F, out_frames)."""

    def __init__(self, frames_in: int, out_frames: int, num_knobs: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(_mlp([frames_in, *_ENCODER]), nn.ELU())
        self.bottleneck = nn.Sequential(nn.Linear(_ENCODER[-1] + num_knobs, _BOTTLENECK), nn.ELU())
        self.decoder = _mlp([_BOTTLENECK, *_DECODER, out_frames])

    def forward(self, x: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x)
        if knobs.shape[-1]:
            z = torch.cat([z, knobs[:, None, :].expand(-1, z.shape[1], -1)], dim=-1)
        return self.decoder(self.bottleneck(z))


class SignalTrain(FxModel):
    """SignalTrain (Hawley et al. 2019): see the module docstring for shapes.

    Geometry: ``left_context = window - output``, ``multiple = output``; the output is
    causal (no right context, no latency) and exactly chunk-invariant.
    """

    arch = "signaltrain"

    def __init__(
        self,
        *,
        sample_rate: int = 44100,
        knobs=(),
        window: int = 8192,
        output: int = 2048,
        n_fft: int = 1024,
        hop: int = 384,
        out_frames: int = 9,
        freeze_dft: bool = False,
        final_skip: bool = True,
        dft_layout: DftLayout = "compact",
        chunk: int = 16 * 2048,
    ) -> None:
        if dft_layout not in ("compact", "reference"):
            raise ValueError(f"dft_layout must be 'compact' or 'reference', got {dft_layout!r}")
        frames_in, first, crop = _frames(window, output, n_fft, hop, out_frames)
        super().__init__(
            sample_rate=sample_rate, knobs=knobs, window=window, output=output, n_fft=n_fft,
            hop=hop, out_frames=out_frames, freeze_dft=freeze_dft, final_skip=final_skip,
            dft_layout=dft_layout, chunk=chunk,
        )
        self.frames_in, self.first_out_frame, self.crop = frames_in, first, crop
        self.bins = n_fft // 2 + 1
        an, syn = self._dft_init(n_fft, hop, dft_layout)
        self.analysis = nn.Parameter(an, requires_grad=not freeze_dft)  # (channels, 1, n_fft)
        self.synthesis = nn.Parameter(syn, requires_grad=not freeze_dft)  # (channels, 1, n_fft)
        self.mag_ae = _BinAutoencoder(frames_in, out_frames, self.num_knobs)
        self.phase_ae = _BinAutoencoder(frames_in, out_frames, self.num_knobs)

    # -- initialisation ----------------------------------------------------------
    def _dft_init(self, n_fft: int, hop: int, layout: DftLayout) -> tuple[torch.Tensor, torch.Tensor]:
        nb = n_fft // 2 + 1
        win = torch.hamming_window(n_fft, periodic=True, dtype=torch.float64)
        syn_win = _least_squares_window(win, hop)
        n = torch.arange(n_fft, dtype=torch.float64)
        n_bins = nb if layout == "compact" else n_fft
        k = torch.arange(n_bins, dtype=torch.float64)[:, None]
        ang = 2 * math.pi * k * n / n_fft  # (bins, n_fft)
        analysis = torch.cat([win * torch.cos(ang), -win * torch.sin(ang)])  # X = sum x w e^{-i..}
        if layout == "compact":
            # x w = (1/N) [Re_0 + 2 sum_{k=1}^{N/2-1} (Re_k cos - Im_k sin) + Re_{N/2} cos(pi n)]
            scale = torch.full((nb, 1), 2.0, dtype=torch.float64)
            scale[0] = scale[-1] = 1.0
            synthesis = torch.cat([scale * torch.cos(ang), -2.0 * torch.sin(ang[1:-1])])
        else:  # full Hermitian spectrum: (1/N) sum_{k=0}^{N-1} (Re_k cos - Im_k sin)
            synthesis = torch.cat([torch.cos(ang), -torch.sin(ang)])
        synthesis = synthesis * syn_win / n_fft
        return analysis.float()[:, None, :], synthesis.float()[:, None, :]

    # -- contract ----------------------------------------------------------------
    @property
    def geometry(self) -> Geometry:
        h = self.hparams
        return Geometry(
            sample_rate=self.sample_rate,
            left_context=h["window"] - h["output"],
            chunk=h["chunk"],
            multiple=h["output"],
        )

    def forward(self, x: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
        """(B, C, window - output + k*output), (B, K) -> (B, C, k*output)."""
        h = self.hparams
        b, c, length = x.shape
        left, out = h["window"] - h["output"], h["output"]
        n = length - left
        if n <= 0 or n % out:
            raise ValueError(f"signaltrain needs {left} + a positive multiple of {out} input samples, got {length}")
        k = n // out
        windows = x.reshape(b * c, length).unfold(-1, h["window"], out)  # (B*C, k, window)
        windows = windows.reshape(b * c * k, 1, h["window"])
        kn = knobs.to(x.dtype).repeat_interleave(c * k, dim=0)  # (B*C*k, K)
        y = self.process_windows(windows, kn)  # (B*C*k, output)
        return y.reshape(b, c, n)

    def process_windows(self, windows: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
        """(W, 1, window), (W, K) -> (W, output): the model proper, one window per row."""
        h = self.hparams
        n_fft, hop, nb = h["n_fft"], h["hop"], self.bins
        spec = F.conv1d(F.pad(windows, (n_fft, n_fft)), self.analysis, stride=hop)
        half = spec.shape[1] // 2
        re, im = spec[:, :nb], spec[:, half : half + nb]  # (W, F, frames_in)
        mag, phase = _polar(re, im)
        last = slice(self.first_out_frame, None)
        mag_out = F.elu(self.mag_ae(mag, knobs)) * mag[..., last]
        phase_out = self.phase_ae(phase, knobs) + phase[..., last]
        re_out, im_out = mag_out * torch.cos(phase_out), mag_out * torch.sin(phase_out)
        if h["dft_layout"] == "compact":
            frames = torch.cat([re_out, im_out[:, 1:-1]], dim=1)  # (W, n_fft, out_frames)
        else:
            # Bins N/2+1 .. N-1 are the conjugates of bins N/2-1 .. 1.
            re_mirror, im_mirror = re_out[:, 1:-1].flip(1), im_out[:, 1:-1].flip(1)
            frames = torch.cat([re_out, re_mirror, im_out, -im_mirror], dim=1)
        wave = F.conv_transpose1d(frames, self.synthesis, stride=hop)  # (W, 1, span)
        y = wave[:, 0, self.crop : self.crop + h["output"]]
        if h["final_skip"]:
            y = y + windows[:, 0, -h["output"] :]
        return y


def _polar(re: torch.Tensor, im: torch.Tensor, floor: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """Magnitude and phase with finite gradients everywhere (bins below ``floor`` power
    count as silent: magnitude 0, phase 0). ``sqrt`` and ``atan2`` have 0/0 gradients at
    the origin, and the zero padding makes exact-zero bins common."""
    power = re * re + im * im
    silent = power <= floor
    safe_re = torch.where(silent, torch.ones_like(re), re)
    safe_im = torch.where(silent, torch.zeros_like(im), im)
    mag = torch.where(silent, torch.zeros_like(re), torch.sqrt(torch.where(silent, torch.ones_like(power), power)))
    return mag, torch.atan2(safe_im, safe_re)

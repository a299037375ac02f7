"""Wave-U-Net (Stoller, Ewert, Dixon 2018), the second time-domain remover of paper 001.

Written from the published description, shrunk to about a million parameters:

    down level i (i = 1..levels, width F_i = growth * i):
        Conv1d(F_{i-1}, F_i, kernel_down) -> LeakyReLU -> keep as skip -> decimate by 2
    bottom: Conv1d(F_L, F_{L+1}, kernel_down) -> LeakyReLU
    up level i (mirror): linear-interpolation upsampling x2 -> concat skip_i
        -> Conv1d(F_{i+1} + F_i, F_i, kernel_up) -> LeakyReLU
    out: concat the input -> Conv1d(F_1 + 1, 1, 1)

The original uses unpadded ("valid") convolutions and crops skips; fxnet pads every
convolution ("same") so a chunk whose length is a multiple of ``2**levels`` keeps its
length, and declares ``context`` samples either side for the engine instead. Like
:mod:`fxnet.models.demucs`, the output is a correction added to the input (``residual``)
starting at zero, so an untrained model is the identity. It costs far more per sample
than the Demucs U-Net (full-rate convolutions with long kernels), as in the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fxnet.models.base import ContextModel


class WaveUNet(ContextModel):
    """``forward(x (B,1,context+n+context), knobs (B,0)) -> (B,1,n)``.

    Hyper-parameters: ``levels`` (8), ``growth`` (extra filters per level, 16),
    ``kernel_down`` (15), ``kernel_up`` (5), ``context`` (samples, a multiple of
    ``2**levels``), ``chunk``, ``overlap``, ``residual``.
    """

    arch = "waveunet"

    def __init__(self, *, sample_rate: int = 44100, knobs=(), levels: int = 8, growth: int = 16,
                 kernel_down: int = 15, kernel_up: int = 5, context: int = 4096, chunk: int = 1 << 17,
                 overlap: int = 1024, residual: bool = True):
        multiple = 2**levels
        if levels < 1 or growth < 1 or kernel_down % 2 == 0 or kernel_up % 2 == 0:
            raise ValueError("levels and growth must be positive, kernels odd")
        if context % multiple or chunk % multiple or chunk <= 0:
            raise ValueError(f"context and chunk must be multiples of 2**levels = {multiple}")
        super().__init__(sample_rate=sample_rate, knobs=knobs, levels=levels, growth=growth,
                         kernel_down=kernel_down, kernel_up=kernel_up, context=context, chunk=chunk,
                         overlap=overlap, residual=residual)
        widths = [1] + [growth * (i + 1) for i in range(levels + 1)]
        self.down = nn.ModuleList(
            nn.Conv1d(widths[i], widths[i + 1], kernel_down, padding=kernel_down // 2) for i in range(levels))
        self.bottom = nn.Conv1d(widths[levels], widths[levels + 1], kernel_down, padding=kernel_down // 2)
        self.up = nn.ModuleList(
            nn.Conv1d(widths[i + 2] + widths[i + 1], widths[i + 1], kernel_up, padding=kernel_up // 2)
            for i in reversed(range(levels)))
        self.out = nn.Conv1d(widths[1] + 1, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self._multiple = multiple

    def unet(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for conv in self.down:
            h = F.leaky_relu(conv(h), 0.2)
            skips.append(h)
            h = h[..., ::2]  # decimation, as in the paper
        h = F.leaky_relu(self.bottom(h), 0.2)
        for conv in self.up:
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[-1], mode="linear", align_corners=False)
            h = F.leaky_relu(conv(torch.cat([h, skip], dim=1)), 0.2)
        return self.out(torch.cat([h, x], dim=1))

    def forward(self, x: torch.Tensor, knobs: torch.Tensor | None = None) -> torch.Tensor:
        y = self.padded(self.unet, x, x.shape[-1])
        return self.crop(y + x if self.hparams["residual"] else y)
